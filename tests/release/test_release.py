"""The release side: `gitrelease release` and the pre-push check, on real repositories."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from packaging.version import Version

from gitrelease.core.errors import InvalidInput
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import is_breaking, is_security
from gitrelease.release.bump import next_version
from gitrelease.release.changelog import build_section, parse_entry
from gitrelease.release.cut import ReleaseOptions, cut_release
from gitrelease.release.prepush import check_push
from tests.conftest import World, git

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ZERO = "0" * 40


# -- helpers -------------------------------------------------------------------------------


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(root), *args], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False)


def released(root: Path, *args: str) -> dict:
    result = cli(root, "--json", "release", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def everything(repo: Path) -> dict[str, str]:
    """Every file of the clone, .git included, by content: what a no-op must leave alone."""
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file()}


def state(repo: Path) -> dict[str, object]:
    """HEAD, every ref and every work-tree file: what an undone release must put back."""
    files = {p.relative_to(repo).as_posix(): p.read_bytes() for p in sorted(repo.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(repo).parts}
    return {"head": git(repo, "symbolic-ref", "--quiet", "HEAD"),
            "commit": git(repo, "rev-parse", "HEAD"),
            "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
            "files": files, "status": git(repo, "status", "--porcelain")}


def tag_message(repo: Path, tag: str) -> str:
    """The tag's message as written (a signature, if any, left out)."""
    return git(repo, "for-each-ref", "--format=%(contents:subject)%0a%0a%(contents:body)",
               f"refs/tags/{tag}") + "\n"


def commit(repo: Path, message: str, files: dict[str, str] | None = None) -> str:
    for name, content in (files or {}).items():
        (repo / name).write_text(content)
    git(repo, "add", "--all")
    stamp = "2024-04-01T00:00:00+0000"
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message,
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    return git(repo, "rev-parse", "--short", "HEAD")


def fresh(tmp_path: Path, version: str | None = "1.2.0", *, tag: bool = True) -> Path:
    """A clone of a new bare origin with one commit, VERSION `version`, tagged if `tag`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    origin, clone = tmp_path / "fresh.git", tmp_path / "fresh"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    git(tmp_path, "clone", "--quiet", str(origin), str(clone))
    git(clone, "checkout", "--quiet", "-b", "main")
    commit(clone, "chore: start", {"VERSION": f"{version}\n"} if version else {"bot.py": ""})
    if tag and version:
        git(clone, "tag", "--annotate", f"v{version}", "-m", "first")
    return clone


def install_pre_push(clone: Path) -> None:
    result = cli(clone, "hooks", "install", "--release")
    assert result.returncode == 0, result.stderr
    assert os.access(clone / ".git" / "hooks" / "pre-push", os.X_OK)


def push(repo: Path, *refs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "push", "--quiet", "origin", *refs], cwd=repo,
                          capture_output=True, text=True, timeout=120, check=False)


def today() -> set[str]:
    now = datetime.now(UTC)
    return {f"{now:%Y-%m-%d}", f"{now - timedelta(minutes=5):%Y-%m-%d}"}


# -- the next version ----------------------------------------------------------------------


@pytest.mark.parametrize(("base", "bump", "pre", "expected"), [
    ("1.2.3", "patch", None, "1.2.4"),
    ("1.2.3", "minor", None, "1.3.0"),
    ("1.2.3", "major", None, "2.0.0"),
    ("1.2", "patch", None, "1.2.1"),
    ("1.2.0.post1", "patch", None, "1.2.1"),
    ("1.3.0rc1", "patch", None, "1.3.0"),
    ("1.3.0rc1", "minor", None, "1.3.0"),
    ("1.3.1rc1", "minor", None, "1.4.0"),
    ("1.3.0rc1", "major", None, "2.0.0"),
    ("2.0.0rc1", "major", None, "2.0.0"),
    ("2.0.0rc1", "minor", None, "2.0.0"),
    ("1.3.0.dev2", "patch", None, "1.3.0"),
    ("1.2.0", "minor", "rc", "1.3.0rc1"),
    ("1.2.0", "patch", "a", "1.2.1a1"),
    ("1.2.0", "major", "b", "2.0.0b1"),
    ("1.3.0rc1", "patch", "rc", "1.3.0rc2"),
    ("1.3.0rc1", "minor", "rc", "1.3.0rc2"),
    ("1.3.0b2", "patch", "rc", "1.3.0rc1"),
    ("1.3.0rc1", "major", "a", "2.0.0a1"),
    ("1.3.0rc2.dev1", "patch", "rc", "1.3.0rc2"),
    ("1!1.0.0", "minor", None, "1!1.1.0"),
])
def test_next_version(base: str, bump: str, pre: str | None, expected: str) -> None:
    assert next_version(Version(base), bump, pre) == Version(expected)


def test_a_pre_release_label_before_the_last_one_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        next_version(Version("1.3.0rc1"), "patch", "b")
    assert "past b" in caught.value.message and "rc" in caught.value.hint


# -- the changelog section -----------------------------------------------------------------


def entries() -> list:
    v = Version("2.0.0")
    return [
        parse_entry("aaaaaaa", "feat(api): add /stats\n", v),
        parse_entry("bbbbbbb", "fix: rounding\n", v),
        parse_entry("ccccccc", "perf(db): one query\n", v),
        parse_entry("ddddddd", "refactor: split the cog\n", v),
        parse_entry("eeeeeee", "docs: readme\n", v),
        parse_entry("fffffff", "ci: cache pip\n", v),
        parse_entry("1111111", "Update things\n", v),
        parse_entry("2222222", "feat(cmd)!: slash commands only\n", v),
        parse_entry("3333333", "fix: drop the prefix\n\nBREAKING CHANGE: prefix commands\nare "
                               "gone\nRefs: #3\n", v),
        parse_entry("4444444", "security: escape user names\n", v),
        parse_entry("5555555", "fix(security): token in logs\n", v),
        parse_entry("6666666", "fix: sanitize input\n\nSecurity: CVE-2024-0001\n", v),
        parse_entry("7777777", "fix: quota [security]\n", v),
    ]


def lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line]


def test_section_groups_commits_and_calls_out_breaks_and_security_fixes() -> None:
    section = build_section("v2.0.0", DAY, entries(), "v1.10.0")
    assert section.startswith("## v2.0.0 — 2024-05-01\n\n### ⚠ BREAKING CHANGES\n")
    titles = [line for line in section.splitlines() if line.startswith("### ")]
    assert titles == ["### ⚠ BREAKING CHANGES", "### Security", "### Features", "### Fixes",
                      "### Performance", "### Refactoring", "### Documentation", "### Other"]
    blocks = dict(part.split("\n", 1) for part in section.split("\n### ")[1:])
    assert blocks["⚠ BREAKING CHANGES"].splitlines()[-2:] == [
        "- cmd: slash commands only (2222222)", "- prefix commands are gone (3333333)"]
    assert lines(blocks["Security"])[1:] == [
        "- escape user names (4444444)", "- security: token in logs (5555555)",
        "- sanitize input (6666666)", "- quota [security] (7777777)"]
    assert lines(blocks["Features"]) == ["- api: add /stats (aaaaaaa)",
                                         "- cmd: slash commands only (2222222)"]
    assert "- drop the prefix (3333333)" in blocks["Fixes"]
    assert "token in logs" not in blocks["Fixes"]  # security fixes are listed once, up top
    assert lines(blocks["Other"]) == ["- ci: cache pip (fffffff)", "- Update things (1111111)"]
    # The deployment side reads the tag message with exactly these functions.
    assert is_security([section])
    assert is_breaking(None, Version("2.0.0"), [section])


def test_a_section_without_markers_is_neither_breaking_nor_security() -> None:
    plain = [e for e in entries() if not (e.breaking or e.security)]
    section = build_section("v2.0.0", DAY, plain, "v1.10.0")
    assert not is_security([section])
    assert not is_breaking(None, Version("2.0.0"), [section])
    assert build_section("v2.0.0", DAY, [], "v2.0.0rc1").endswith("No changes since "
                                                                  "v2.0.0rc1.\n")


# -- releasing -----------------------------------------------------------------------------


def test_release_minor_from_a_candidate_finishes_it(world: World) -> None:
    world.commit("feat(stats)!: per-guild stats\n\nBREAKING CHANGE: /stats takes a guild")
    world.commit("fix(security): hide the token in logs")
    world.commit("docs: how to deploy")
    data = released(world.release, "minor")
    assert (data["version"], data["tag"], data["previous_tag"]) == ("2.0.0", "v2.0.0",
                                                                    "v2.0.0rc1")
    assert data["pushed"] is data["signed"] is data["dry_run"] is False
    section = data["changelog"]
    assert section.split("\n", 1)[0] in {f"## v2.0.0 — {day}" for day in today()}
    assert "- stats: /stats takes a guild (" in section
    assert "- security: hide the token in logs (" in section
    assert "### Documentation\n\n- how to deploy (" in section
    assert "slash commands only" not in section  # released in v2.0.0rc1 already
    release = world.release
    assert (release / "VERSION").read_text() == "2.0.0\n"
    assert (release / "CHANGELOG.md").read_text() == f"# Changelog\n\n{section}"
    assert git(release, "log", "-1", "--format=%s") == "chore(release): v2.0.0"
    assert git(release, "rev-parse", "HEAD") == data["commit"]
    assert git(release, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").split() \
        == ["CHANGELOG.md", "VERSION"]
    assert git(release, "cat-file", "-t", "v2.0.0") == "tag"  # annotated
    assert git(release, "rev-parse", "v2.0.0^{commit}") == data["commit"]
    assert tag_message(release, "v2.0.0") == section
    assert git(release, "status", "--porcelain") == ""
    # The round trip: the deployment's reading of the tag finds both markers.
    tag = next(t for t in GitRepo(release).list_tags() if t.name == "v2.0.0")
    assert is_breaking(None, Version("2.0.0"), [tag.message])
    assert is_security([tag.message])
    # The next release lists only what came after, and never the release commit itself.
    world.commit("fix: typo")
    data = released(world.release, "patch")
    assert data["tag"] == "v2.0.1"
    assert "chore(release)" not in data["changelog"]
    assert data["changelog"].endswith("### Fixes\n\n- typo (" + git(
        release, "rev-parse", "--short", "HEAD~1") + ")\n")
    changelog = (release / "CHANGELOG.md").read_text()
    assert changelog.index("## v2.0.1") < changelog.index("## v2.0.0 ")


def test_each_bump_from_a_final_release(tmp_path: Path) -> None:
    clone = fresh(tmp_path, "1.2.0")
    commit(clone, "feat: something")
    expected = {("patch", None): "1.2.1", ("minor", None): "1.3.0", ("major", None): "2.0.0",
                ("minor", "rc"): "1.3.0rc1", ("patch", "alpha"): "1.2.1a1",
                ("major", "beta"): "2.0.0b1", ("minor", "c"): "1.3.0rc1"}
    for (bump, pre), version in expected.items():
        result = cut_release(clone, ReleaseOptions(bump, pre=pre, dry_run=True), now=DAY)
        assert (result.version, result.tag) == (version, f"v{version}")
    # Then for real, through a candidate to the final release.
    assert released(clone, "minor", "--pre", "rc")["version"] == "1.3.0rc1"
    assert released(clone, "patch", "--pre", "rc")["version"] == "1.3.0rc2"
    data = released(clone, "minor")
    assert (data["version"], data["previous_tag"]) == ("1.3.0", "v1.3.0rc2")
    assert data["changelog"].endswith("No changes since v1.3.0rc2.\n")
    assert git(clone, "tag", "--list", "v*").split() == ["v1.2.0", "v1.3.0", "v1.3.0rc1",
                                                           "v1.3.0rc2"]


def test_explicit_versions_and_pre_releases_on_the_world(world: World) -> None:
    assert released(world.release, "patch", "--pre", "rc", "--dry-run")["version"] == \
        "2.0.0rc2"
    assert released(world.release, "major", "--dry-run")["version"] == "2.0.0"
    data = released(world.release, "v2.1.0b1")
    assert (data["version"], data["tag"]) == ("2.1.0b1", "v2.1.0b1")
    assert (world.release / "VERSION").read_text() == "2.1.0b1\n"
    assert released(world.release, "2.1.0")["previous_tag"] == "v2.1.0b1"


def test_the_first_release_starts_from_the_version_file_or_zero(tmp_path: Path) -> None:
    clone = fresh(tmp_path / "a", "0.4.0", tag=False)
    data = released(clone, "patch")
    assert (data["version"], data["previous_tag"]) == ("0.4.1", None)
    assert "### Other\n\n- chore: start (" in data["changelog"]  # all commits: no tag yet
    bare = fresh(tmp_path / "b", None, tag=False)
    assert released(bare, "minor")["version"] == "0.1.0"
    assert (bare / "CHANGELOG.md").read_text().startswith("# Changelog\n\n## v0.1.0 — ")


def test_an_existing_changelog_keeps_its_title_and_intro(tmp_path: Path) -> None:
    clone = fresh(tmp_path, "1.2.0")
    old = "# History\n\nAll notable changes.\n\n## v1.2.0 — 2024-01-01\n\n- first\n"
    commit(clone, "docs: changelog", {"CHANGELOG.md": old})
    data = released(clone, "patch")
    assert (clone / "CHANGELOG.md").read_text() == (
        "# History\n\nAll notable changes.\n\n" + data["changelog"] + "\n## v1.2.0 — "
        "2024-01-01\n\n- first\n")


def test_signed_release_with_an_ssh_key(world: World, tmp_path: Path) -> None:
    key = tmp_path / "release_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "release",
                    "-f", str(key)], check=True, capture_output=True)
    git(world.release, "config", "gpg.format", "ssh")
    git(world.release, "config", "user.signingkey", str(key))
    data = released(world.release, "minor", "--sign")
    assert data["signed"] is True
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"release@example.invalid {key.with_suffix('.pub').read_text()}")
    verified = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-tag", "v2.0.0"],
        cwd=world.release, capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    assert "Good" in verified.stderr
    assert tag_message(world.release, "v2.0.0") == data["changelog"]


def test_a_failed_signature_undoes_the_commit(world: World) -> None:
    git(world.release, "config", "gpg.format", "ssh")  # and no user.signingkey
    before = state(world.release)
    result = cli(world.release, "release", "minor", "--sign")
    assert result.returncode != 0
    assert "git tag failed" in result.stderr
    assert "the release was undone (main back at" in result.stderr
    assert "VERSION and CHANGELOG.md restored" in result.stderr
    assert state(world.release) == before


def test_push_reaches_the_origin_atomically_through_the_hook(world: World) -> None:
    install_pre_push(world.release)  # the tool's own tags pass its own check
    world.commit("feat: leaderboard")
    result = cli(world.release, "release", "minor", "--push")
    assert result.returncode == 0, result.stderr
    assert "pushed to origin" in result.stdout
    assert git(world.origin, "rev-parse", "refs/heads/main") == git(world.release,
                                                                    "rev-parse", "HEAD")
    assert git(world.origin, "rev-parse", "refs/tags/v2.0.0") == git(world.release,
                                                                     "rev-parse", "v2.0.0")
    assert git(world.origin, "cat-file", "-t", "v2.0.0") == "tag"


def test_a_rejected_push_undoes_the_release(world: World) -> None:
    # The origin's main moved on: the branch update is rejected, and --atomic keeps the tag
    # from going alone.
    other = git(world.release, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "elsewhere")
    git(world.release, "push", "--quiet", "origin", f"{other}:refs/heads/main")
    origin_refs = git(world.origin, "for-each-ref")
    world.commit("feat: leaderboard")
    before = state(world.release)
    result = cli(world.release, "release", "minor", "--push")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "git push failed" in result.stderr
    assert "tag v2.0.0 deleted, main back at" in result.stderr
    assert state(world.release) == before
    assert git(world.origin, "for-each-ref") == origin_refs


def test_a_push_the_pre_push_hook_refuses_undoes_the_release(world: World) -> None:
    # Someone released v2.1.0 from another clone; this one has not fetched it.
    elsewhere = world.base / "elsewhere"
    git(world.base, "clone", "--quiet", str(world.origin), str(elsewhere))
    git(elsewhere, "tag", "--annotate", "v2.1.0", "-m", "from elsewhere", "origin/main")
    git(elsewhere, "push", "--quiet", "origin", "v2.1.0")
    install_pre_push(world.release)
    before = state(world.release)
    result = cli(world.release, "release", "minor", "--push")
    assert result.returncode != 0
    assert "2.0.0 is not newer than v2.1.0, the newest release tag on origin" in result.stderr
    assert "the release was undone (tag v2.0.0 deleted" in result.stderr
    assert state(world.release) == before
    assert "v2.0.0\n" not in git(world.origin, "tag", "--list") + "\n"


def test_dry_run_changes_nothing(world: World) -> None:
    world.commit("feat: leaderboard")
    before = everything(world.release)
    result = cli(world.release, "release", "minor", "--sign", "--push", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Dry run, nothing changed. Would release 2.0.0 as tag v2.0.0" in out
    assert "git commit --quiet -m 'chore(release): v2.0.0' -- VERSION CHANGELOG.md" in out
    assert "git tag -s --cleanup=verbatim -F" in out
    assert "git push --atomic -- origin refs/heads/main refs/tags/v2.0.0" in out
    assert "### Features\n\n- leaderboard (" in out
    assert everything(world.release) == before


@pytest.mark.parametrize(("args", "says"), [
    (["huge"], "invalid BUMP: 'huge'"),
    (["1.0.0"], "not newer than the last release v2.0.0rc1"),
    (["v2.0.0rc1"], "not newer than the last release v2.0.0rc1"),
    (["1.0.x"], "invalid VERSION: '1.0.x' (not a version)"),
    (["3.0.0+build5"], "a public version"),
    (["minor", "--pre", "zeta"], "invalid --pre: 'zeta'"),
    (["patch", "--pre", "b"], "past b"),
    (["3.0.0", "--pre", "rc"], "--pre goes with major, minor or patch"),
    ([], "the following arguments are required"),
    (["minor", "--sign=yes"], "ignored explicit argument"),
    (["minor", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_change_nothing(world: World, args: list[str], says: str) -> None:
    before = everything(world.release)
    result = cli(world.release, "release", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("gitrelease: error: ") and result.stderr.count("\n") == 1
    assert says in result.stderr
    assert result.stdout == ""
    assert everything(world.release) == before


def test_a_dirty_tree_a_detached_head_or_no_repository_change_nothing(
    world: World, tmp_path: Path
) -> None:
    release = world.release
    (release / "bot.py").write_text("print('changed')\n")
    (release / "notes.txt").write_text("untracked files are fine\n")
    before = everything(release)
    result = cli(release, "release", "minor")
    assert result.returncode == 3 and "1 tracked file(s) have changes: bot.py" in result.stderr
    assert everything(release) == before
    git(release, "checkout", "--quiet", "bot.py")
    assert released(release, "minor", "--dry-run")["version"] == "2.0.0"  # untracked is fine
    git(release, "checkout", "--quiet", "--detach", "HEAD")
    before = everything(release)
    result = cli(release, "release", "minor")
    assert result.returncode == 3 and "HEAD is detached" in result.stderr
    assert "git switch" in result.stderr and result.stderr.count("\n") == 1
    assert everything(release) == before
    (tmp_path / "plain").mkdir()
    result = cli(tmp_path / "plain", "release", "minor")
    assert result.returncode == 13 and "not a git working tree" in result.stderr
    result = cli(tmp_path / "missing", "release", "minor")
    assert result.returncode == 2 and "invalid --root" in result.stderr


def test_a_tag_pattern_can_never_make_a_tag_that_reads_as_an_option(world: World) -> None:
    (world.release / "data" / "settings.toml").write_text('tag_pattern = "-*"\n')
    before = everything(world.release)
    result = cli(world.release, "release", "minor")
    assert result.returncode == 2
    assert "'-2.0.0' is not a valid tag name" in result.stderr
    assert everything(world.release) == before


def test_an_existing_tag_or_an_equal_version_is_refused(tmp_path: Path) -> None:
    clone = fresh(tmp_path, "1.2.0")
    git(clone, "tag", "v1.3.0", "HEAD^{tree}")  # a tag, but of a tree: no release
    before = everything(clone)
    result = cli(clone, "release", "minor")
    assert result.returncode == 2 and "tag v1.3.0 already exists" in result.stderr
    git(clone, "tag", "--annotate", "v1.2.1", "-m", "other spelling", "HEAD")
    result = cli(clone, "release", "1.2.1.0")
    assert result.returncode == 2 and "not newer than the last release v1.2.1" in result.stderr
    assert everything(clone) == {**before, **{k: v for k, v in everything(clone).items()
                                              if k.startswith(".git/")}}


# -- the pre-push check --------------------------------------------------------------------


def test_pre_push_refuses_bad_release_tags(world: World) -> None:
    release = world.release
    install_pre_push(release)
    world.commit("chore: bump", {"VERSION": "2.1.0\n"})
    git(release, "tag", "v2.1.0")  # lightweight
    git(release, "tag", "--annotate", "vnext2", "-m", "no version")
    git(release, "tag", "--annotate", "release-x", "-m", "not under the pattern")
    git(release, "tag", "--annotate", "v2.2.0", "-m", "VERSION says 2.1.0")
    git(release, "tag", "--annotate", "v1.10.1", "HEAD~1", "-m", "a hotfix, but older")
    world.commit("chore: hotfix", {"VERSION": "1.10.1\n"})
    git(release, "tag", "--force", "--annotate", "v1.10.1", "-m", "older than 2.0.0rc1")
    origin_refs = git(world.origin, "for-each-ref")
    result = push(release, "main", "v2.1.0", "vnext2", "release-x", "v2.2.0", "v1.10.1")
    assert result.returncode != 0
    refusals = [line for line in result.stderr.splitlines()
                if line.startswith("gitrelease: refused: ")]
    assert len(refusals) == 5, result.stderr
    text = "\n".join(refusals)
    assert "tag v2.1.0: is a lightweight tag (a commit)" in text
    assert "tag vnext2: is not a release tag" in text
    assert "tag release-x: is not a release tag" in text
    assert "tag v2.2.0: VERSION at the tagged commit says '2.1.0', the tag says 2.2.0" in text
    assert "tag v1.10.1: 1.10.1 is not newer than v2.0.0rc1, the newest release tag on " \
        "origin" in text
    assert all("git push --no-verify" in line for line in refusals)
    assert git(world.origin, "for-each-ref") == origin_refs  # the branch did not go either


def test_pre_push_lets_good_tags_branches_and_deletions_through(world: World) -> None:
    release = world.release
    install_pre_push(release)
    world.commit("chore: bump", {"VERSION": "2.1.0\n"})
    git(release, "tag", "--annotate", "v2.1.0", "-m", "fine")
    result = push(release, "main", "v2.1.0")
    assert result.returncode == 0, result.stderr
    assert git(world.origin, "rev-parse", "v2.1.0") == git(release, "rev-parse", "v2.1.0")
    world.commit("feat: more")
    assert push(release, "main").returncode == 0
    result = push(release, ":refs/tags/vnext")
    assert result.returncode == 0, result.stderr
    assert "vnext" not in git(world.origin, "tag", "--list").split()


def test_pre_push_judges_a_tag_by_its_name_on_the_remote(world: World) -> None:
    install_pre_push(world.release)
    result = push(world.release, "HEAD:refs/tags/v9.0.0")
    assert result.returncode != 0
    assert "tag v9.0.0: is a lightweight tag (a commit)" in result.stderr
    assert "VERSION at the tagged commit says '2.0.0rc1'" in result.stderr


def test_pre_push_refuses_a_ref_moved_onto_another_tag_object(world: World) -> None:
    install_pre_push(world.release)
    world.commit("chore: bump", {"VERSION": "2.1.0\n"})
    git(world.release, "tag", "--annotate", "v2.1.0", "-m", "fine")
    # refs/tags/v2.2.0 made to point at v2.1.0's tag object: deployments refuse it as moved.
    git(world.release, "update-ref", "refs/tags/v2.2.0", git(world.release, "rev-parse", "v2.1.0"))
    result = push(world.release, "v2.2.0")
    assert result.returncode != 0
    assert "tag v2.2.0: points at the tag object named 'v2.1.0'" in result.stderr


def test_check_push_reads_git_input(world: World, tmp_path: Path) -> None:
    # Branches and deletions pass without git or settings at all, even outside a repository.
    lines = [f"refs/heads/main {'a' * 40} refs/heads/main {ZERO}",
             f"(delete) {ZERO} refs/tags/v1.0.0 {'b' * 40}", ""]
    assert check_push(tmp_path, "origin", "", lines) == []
    refusals = check_push(tmp_path, "origin", "", ["refs/tags/v1 nonsense"])
    assert refusals == ["cannot read git's pre-push input 'refs/tags/v1 nonsense'"]
    sha = git(world.release, "rev-parse", "v2.0.0rc1")
    ok = check_push(world.release, "origin", str(world.origin),
                    [f"refs/tags/v2.0.0rc1 {sha} refs/tags/v2.0.0rc1 {ZERO}"])
    assert ok == ["tag v2.0.0rc1: 2.0.0rc1 is not newer than v2.0.0rc1, the newest release "
                  "tag on origin (git push --no-verify skips this check: a deliberate "
                  "override only)"]


def test_hook_command_exit_status_and_json(world: World) -> None:
    sha = git(world.release, "rev-parse", "v1.0.0")
    line = f"refs/tags/v1.0.0 {sha} refs/tags/v1.0.0 {ZERO}\n"
    result = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.release), "--json", "hook",
         "pre-push", "origin", str(world.origin)], input=line, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ})
    assert result.returncode == 1
    assert json.loads(result.stdout)["refusals"][0].startswith("tag v1.0.0: 1.0.0 is not newer")
    result = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.release), "hook", "post-x",
         "origin", "url"], input="", cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 2 and "invalid HOOK: 'post-x'" in result.stderr
