"""The git layer against real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitrelease.core.errors import FetchFailed, InvalidInput, NotAGitRepository
from gitrelease.core.text import redact
from gitrelease.git.records import DiffStats
from gitrelease.git.repo import GitRepo
from gitrelease.git.worktree import find_toplevel
from tests.conftest import World, git
from tests.git_layer.calls import git_calls


@pytest.fixture
def repo(world: World) -> GitRepo:
    opened = GitRepo(world.deploy)
    yield opened
    opened.close()


def test_list_tags_is_one_git_process_for_all_tags(
    world: World, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(40):
        git(world.deploy, "tag", f"v0.0.{n}", "v1.0.0")
    calls = git_calls(repo, monkeypatch)
    tags = {t.name: t for t in repo.list_tags()}
    assert len(calls) == 1 and calls[0][0] == "for-each-ref"
    assert len(tags) >= 47
    annotated = tags["v1.10.0"]
    assert annotated.annotated and annotated.message == "Tenth release: new /stats"
    assert annotated.commit == world.tag_commit("v1.10.0")
    assert annotated.object != annotated.commit
    assert annotated.object_tag_name == "v1.10.0"
    assert annotated.date.isoformat().startswith("2024-01-01T00:")
    light = tags["nightly"]
    assert not light.annotated and light.message == "" and light.object == light.commit


def test_multiline_tag_message_is_kept(world: World, repo: GitRepo) -> None:
    git(world.deploy, "tag", "--annotate", "v3.0.0", "-m", "Title\n\nLine one\nLine two")
    tags = {t.name: t for t in repo.list_tags()}
    assert tags["v3.0.0"].message == "Title\n\nLine one\nLine two"


def test_dirty_files_only_counts_tracked_changes(world: World, repo: GitRepo) -> None:
    assert repo.dirty_files() == []
    (world.deploy / "scratch.txt").write_text("untracked")
    (world.deploy / "data" / "x.db").write_text("ignored")
    assert repo.dirty_files() == []
    (world.deploy / "bot.py").write_text("changed")
    git(world.deploy, "mv", "VERSION", "VERSION.txt")
    assert sorted(repo.dirty_files()) == ["VERSION.txt", "bot.py"]


def test_commits_stats_and_files_between_releases(world: World, repo: GitRepo) -> None:
    old, new = world.tag_commit("v1.9.0"), world.tag_commit("v1.10.0")
    commits = repo.commits_between(old, new)
    assert [c.subject for c in commits] == [
        "chore: release 1.10.0", "fix: stats rounding", "feat: stats command"]
    stats = repo.diff_stats(old, new)
    assert stats.files_changed == 2
    assert repo.show_file(new, "VERSION") == b"1.10.0\n"
    assert repo.show_file(new, "no/such/file") is None
    assert repo.paths_added(old, new) == []


def test_fetch_reports_moved_tag_and_keeps_ours(world: World, repo: GitRepo) -> None:
    ours = world.tag_commit("v1.1.0")
    world.commit("rewrite")
    world.tag("v1.1.0", "moved", force=True)
    world.push(force=True)
    world.release_version("1.11.0", "new")
    result = repo.fetch_tags("origin", timeout=30)
    assert result.moved_tags == ("v1.1.0",)
    assert world.tag_commit("v1.1.0") == ours
    assert world.tag_commit("v1.11.0") == world.tag_commit("v1.11.0", world.release)


@pytest.mark.parametrize("remote", ["--upload-pack=touch /tmp/x", "-c", "a b", "", "x;y"])
def test_fetch_refuses_option_like_remote_names(repo: GitRepo, remote: str) -> None:
    with pytest.raises(InvalidInput):
        repo.fetch_tags(remote, timeout=5)


def test_fetch_from_unknown_remote(repo: GitRepo) -> None:
    with pytest.raises(FetchFailed) as caught:
        repo.fetch_tags("upstream", timeout=5)
    assert "no remote named 'upstream'" in caught.value.message


def test_checkout_refuses_anything_but_a_commit_id(repo: GitRepo) -> None:
    for bad in ("v1.10.0", "--orphan=x", "HEAD"):
        with pytest.raises(InvalidInput):
            repo.checkout_detached(bad)


def test_checkout_and_describe(world: World, repo: GitRepo) -> None:
    repo.checkout_detached(world.tag_commit("v1.10.0~1"))
    assert repo.head_branch() is None
    assert repo.describe("v*", exclude=["vnext"]) == f"v1.9.0-2-g{world.head()[:7]}"


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(NotAGitRepository):
        GitRepo(tmp_path)
    with pytest.raises(NotAGitRepository):
        find_toplevel(tmp_path)


def test_bare_repository_is_not_a_deployment(world: World) -> None:
    with pytest.raises(NotAGitRepository):
        GitRepo(world.origin)


def test_toplevel_from_a_subdirectory(world: World) -> None:
    assert find_toplevel(world.deploy / "data") == world.deploy


@pytest.mark.parametrize(("text", "expected"), [
    ("https://user:tok@host/x.git", "https://***@host/x.git"),
    ("fatal: unable to access 'https://ghp_abc@github.com/a/b'", "fatal: unable to access "
     "'https://***@github.com/a/b'"),
    ("ssh://git@host/x", "ssh://***@host/x"),
    ("/srv/git/x.git", "/srv/git/x.git"),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("https://user:p@ss@host/x.git", "https://***@host/x.git"),
    ("https://host/x.git?access_token=abc&ref=main", "https://host/x.git?access_token=***&ref=main"),
    ("https://host/x?private_key=k1&sig=s2", "https://host/x?private_key=***&sig=***"),
])
def test_redact_more(text: str, expected: str) -> None:
    assert redact(text) == expected


def _reference_diff_stats(root: Path, old: str, new: str) -> tuple[int, int]:
    """What diff_stats used to compute: every changed path, sized by `ls-tree -l` at `new`."""
    changed = [p for p in git(root, "diff", "--name-only", "-z", "--no-renames", old, new,
                              "--").split("\0") if p]
    sizes = {}
    for record in git(root, "ls-tree", "-r", "-l", "-z", new).split("\0"):
        meta, _, path = record.partition("\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == "blob":
            sizes[path] = int(fields[3])
    return len(changed), sum(sizes.get(p, 0) for p in changed)


def test_diff_stats_sizes_every_kind_of_change(world: World, repo: GitRepo) -> None:
    root = world.deploy
    old = git(root, "rev-parse", "HEAD")
    (root / "same-a.txt").write_text("twin content\n" * 50)
    (root / "same-b.txt").write_text("twin content\n" * 50)  # one blob for two paths
    (root / "bot.py").write_text("print('changed')\n" * 10)
    (root / "VERSION").unlink()
    (root / "link").symlink_to("bot.py")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "name with spaces\tand tab.txt").write_text("odd\n")
    git(root, "add", "--all")
    # A submodule entry: a commit of another repository, which has no size here.
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{old},vendored")
    git(root, "commit", "--quiet", "-m", "every kind of change")
    new = git(root, "rev-parse", "HEAD")
    stats = repo.diff_stats(old, new)
    assert (stats.files_changed, stats.bytes_changed) == _reference_diff_stats(root, old, new)
    assert stats.files_changed == 8
    assert stats.bytes_changed == 2 * 650 + 170 + len("bot.py") + len("#!/bin/sh\n") + 4
    back = repo.diff_stats(new, old)  # the other way: deletions mostly, sizes at `old`
    assert (back.files_changed, back.bytes_changed) == _reference_diff_stats(root, new, old)
    assert repo.diff_stats(old, old) == DiffStats(0, 0)


def test_diff_stats_takes_commit_ids_only(repo: GitRepo) -> None:
    with pytest.raises(InvalidInput):
        repo.diff_stats("v1.9.0", "--output=/tmp/x")


def test_remote_names_are_asked_again_only_when_the_config_changes(
    world: World, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = git_calls(repo, monkeypatch)
    assert repo.remote_names() == ["origin"]
    assert repo.remote_url("origin") is not None
    assert repo.remote_names() == ["origin"]
    assert [c[0] for c in calls].count("remote") == 2  # `remote`, then `remote get-url`
    git(world.deploy, "remote", "add", "upstream", str(world.origin))
    assert repo.remote_names() == ["origin", "upstream"]


def test_a_fetch_says_whether_git_reported_anything(world: World, repo: GitRepo) -> None:
    assert repo.fetch_tags("origin", timeout=30).reported is False  # nothing new
    world.release_version("1.11.0", "new")
    assert repo.fetch_tags("origin", timeout=30).reported is True
    assert repo.fetch_tags("origin", timeout=30).reported is False
