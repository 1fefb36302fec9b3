"""Tag schemes as real projects use them: bare, ``v``-prefixed, switched, or neither.

On the `realbot` world (bare ``1.0.0`` … ``5.0`` then ``v5.1.0`` … ``v6.5.0``, checked out at
``5.0``) and on small repositories built here. Issue 15, points 3 and 4.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import World, git

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(root), *args], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=180, check=False)


def check(root: Path) -> dict:
    result = cli(root, "--json", "check", "--type", "bot")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def set_pattern(deploy: Path, line: str) -> None:
    (deploy / "data").mkdir(exist_ok=True)
    (deploy / "data" / "settings.toml").write_text(f"tag_pattern = {line}\n")


def bot_state(world: World) -> dict[str, object]:
    """The checkout and every file outside data/: what a refused install must leave alone
    (it records the refusal, as a cancelled update, in data/)."""
    state = world.state()
    files = state["files"]
    assert isinstance(files, dict)
    return {"head": state["head"], "refs": state["refs"],
            "files": {k: v for k, v in files.items() if not k.startswith("data/")}}


def small_world(base: Path, tags: list[str], checkout: str | None) -> World:
    """A bot whose every commit carries one lightweight tag of `tags`; the deployment at
    `checkout` (None: at the newest commit)."""
    base.mkdir(parents=True, exist_ok=True)
    world = World(base, base / "origin.git", base / "release", base / "deploy")
    git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(world.origin))
    git(base, "clone", "--quiet", str(world.origin), str(world.release))
    git(world.release, "checkout", "--quiet", "-b", "main")
    world.commit("Initial commit", {"bot.py": "print('bot')\n", ".gitignore": "data/\n"})
    for name in tags:
        world.commit(f"Version {name}")
        world.tag(name)
    world.push()
    git(base, "clone", "--quiet", str(world.origin), str(world.deploy))
    if checkout is not None:
        git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", checkout)
    return world


# -- point 3: any tag scheme ---------------------------------------------------------------


def test_check_sees_the_bare_tag_as_current_and_the_v_tag_as_newest(realbot: World) -> None:
    data = check(realbot.deploy)
    assert data["current_version"] == "5.0" and data["version_known"] is True
    assert data["tag_hint"] is None and data["errors"] == {}
    bot = data["bot"]
    assert (bot["tag"], bot["version"], bot["current_version"]) == ("v6.5.0", "6.5.0", "5.0")
    assert [r["tag"] for r in bot["releases"]] == ["v6.5.0", "v6.0.0", "v5.1.0"]
    assert bot["breaking_changes"] is True  # 5 -> 6: the major rises across the switch
    assert not any("unknown" in w or "tag_pattern" in w for w in data["warnings"])
    text = cli(realbot.deploy, "check", "--type", "bot")
    assert text.returncode == 0, text.stderr
    assert "Bot release v6.5.0 (6.5.0, current 5.0)" in text.stdout
    assert "up to date" not in text.stdout


def test_a_list_setting_is_used_as_given(realbot: World) -> None:
    set_pattern(realbot.deploy, '["release-*", "v*", "*"]')
    data = check(realbot.deploy)
    assert data["current_version"] == "5.0" and data["bot"]["tag"] == "v6.5.0"
    set_pattern(realbot.deploy, '["*"]')  # a list of one is read as the string form is
    data = check(realbot.deploy)
    assert data["bot"] is None and 'tag_pattern "*" does not take them' in data["tag_hint"]


def test_a_bare_star_alone_names_the_v_tags_it_misses_and_never_says_up_to_date(
    realbot: World,
) -> None:
    set_pattern(realbot.deploy, '"*"')
    data = check(realbot.deploy)
    assert data["bot"] is None and data["current_version"] == "5.0"
    hint = data["tag_hint"]
    assert hint is not None and hint in data["warnings"]
    assert "v5.1.0, v6.0.0, v6.5.0" in hint and 'tag_pattern = ["*", "v*"]' in hint
    assert "v5.1.0" not in data["ignored_tags"]  # not "not a PEP 440 version": it is one
    text = cli(realbot.deploy, "check", "--type", "bot")
    assert "up to date" not in text.stdout and "v6.5.0" in text.stdout


def test_v_star_alone_takes_the_v_tags_and_says_the_bare_current_one_is_unknown(
    realbot: World,
) -> None:
    set_pattern(realbot.deploy, '"v*"')
    data = check(realbot.deploy)
    assert data["version_known"] is False
    assert data["current_version"].startswith("0+untagged.g")
    assert data["bot"]["tag"] == "v6.5.0" and data["bot"]["breaking_changes"] is None
    unknown = [w for w in data["warnings"] if w.startswith("the running version is unknown")]
    assert len(unknown) == 1
    assert "it is tagged 5.0" in unknown[0] and 'tag_pattern = ["v*", "*"] would' in unknown[0]


@pytest.mark.parametrize("value", [
    "[]", '["v**"]', "[1]", '"x"', json.dumps([f"r{i}-*" for i in range(11)]), '"v?"',
])
def test_bad_tag_patterns_are_refused_naming_the_setting_with_nothing_changed(
    realbot: World, value: str
) -> None:
    # Given as a value to set: refused, the settings file as it was.
    before = realbot.state()
    text = value[1:-1] if value.startswith('"') else value
    result = cli(realbot.deploy, "settings", "set", "update", "tag_pattern", text)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "exactly one '*'" in result.stderr
    assert realbot.state() == before
    # Written on disk: every command refuses, naming the file and the setting.
    set_pattern(realbot.deploy, value)
    before = realbot.state()
    for args in (("check", "--type", "bot"), ("install", "--type", "bot", "--force")):
        result = cli(realbot.deploy, *args)
        assert result.returncode != 0
        assert "settings.toml: setting 'tag_pattern'" in result.stderr
        assert realbot.state() == before


def test_tags_no_pattern_takes_give_the_hint_never_up_to_date(tmp_path: Path) -> None:
    world = small_world(tmp_path, ["release-1.0", "release-1.1", "nightly"], "release-1.0")
    data = check(world.deploy)
    assert data["bot"] is None
    hint = data["tag_hint"]
    assert hint is not None and hint in data["warnings"]
    assert "release-1.0, release-1.1" in hint and 'tag_pattern = "release-*"' in hint
    text = cli(world.deploy, "check", "--type", "bot")
    assert "up to date" not in text.stdout and 'tag_pattern = "release-*"' in text.stdout
    # An install finds no release: refused with the same words, nothing done or "completed".
    before = bot_state(world)
    for extra in ((), ("--dry-run",)):
        result = cli(world.deploy, "install", "--type", "bot", "--no-backup", *extra)
        assert result.returncode == 4, result.stdout + result.stderr
        assert "no release to install" in result.stderr and "release-*" in result.stderr
        assert "completed" not in result.stdout + result.stderr
        assert bot_state(world) == before
    set_pattern(world.deploy, '"release-*"')  # as the hint says: then it works
    data = check(world.deploy)
    assert data["current_version"] == "1.0" and data["bot"]["tag"] == "release-1.1"
    assert data["tag_hint"] is None


def test_a_repository_with_no_tags_at_all_is_not_up_to_date(tmp_path: Path) -> None:
    world = small_world(tmp_path, [], None)
    data = check(world.deploy)
    assert data["bot"] is None and "has no tags" in data["tag_hint"]


# -- point 4: an unknown current version is not "not breaking" ------------------------------


def test_at_an_untagged_commit_check_says_unknown_and_install_needs_force(
    realbot: World,
) -> None:
    initial = git(realbot.deploy, "rev-list", "--max-parents=0", "HEAD")
    git(realbot.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach",
        initial)
    data = check(realbot.deploy)
    assert data["version_known"] is False
    assert data["current_version"] == f"0+untagged.g{initial[:7]}"
    assert any(w.startswith(f"the running version is unknown: HEAD ({initial[:7]}) is at no "
                            "release tag") for w in data["warnings"])
    assert data["bot"]["tag"] == "v6.5.0" and data["bot"]["breaking_changes"] is None
    text = cli(realbot.deploy, "check", "--type", "bot")
    assert "the running version is unknown" in text.stdout
    assert not re.search(r"breaking: no\b", text.stdout)  # None: unknown, never "no"

    before = bot_state(realbot)
    result = cli(realbot.deploy, "install", "--type", "bot", "--to", "v5.1.0", "--no-backup")
    assert result.returncode == 15, result.stdout + result.stderr
    assert (f"the running version is unknown (0+untagged.g{initial[:7]}): whether v5.1.0 "
            "breaks cannot be told") in result.stderr
    assert bot_state(realbot) == before
    result = cli(realbot.deploy, "install", "--type", "bot", "--to", "v5.1.0", "--no-backup",
                 "--force", "--no-restart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert realbot.head() == realbot.tag_commit("v5.1.0")
    assert "installed with --force although the running version is unknown" in result.stdout


# -- cutting a release after the switch -----------------------------------------------------


def test_a_new_release_is_tagged_as_the_newest_one_is(realbot: World, tmp_path: Path) -> None:
    result = cli(realbot.release, "--json", "release", "minor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["tag"] == "v6.6.0"  # the history switched to "v"
    assert git(realbot.release, "cat-file", "-t", "v6.6.0") == "tag"
    bare = small_world(tmp_path / "bare", ["1.0.0", "1.2.0"], None)
    result = cli(bare.release, "--json", "release", "minor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["tag"] == "1.3.0"  # bare stays bare
    fresh = small_world(tmp_path / "fresh", [], None)
    result = cli(fresh.release, "--json", "release", "1.0.0", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["tag"] == "v1.0.0"  # no release yet: the first pattern


def test_describe_finds_the_nearest_tag_of_any_glob(realbot: World) -> None:
    from gitrelease.core.errors import InvalidInput
    from gitrelease.git.repo import GitRepo

    git(realbot.deploy, "switch", "--quiet", "-c", "local")
    git(realbot.deploy, "commit", "--quiet", "--allow-empty", "-m", "local fix")
    head = git(realbot.deploy, "rev-parse", "--short=7", "HEAD")
    repo = GitRepo(realbot.deploy)
    try:
        assert repo.describe(["v*", "*"]) == f"5.0-1-g{head}"
        assert repo.describe("v*") is None  # v5.1.0 comes after: nothing behind HEAD
        for bad in ([], [""]):
            with pytest.raises(InvalidInput):
                repo.describe(bad)
    finally:
        repo.close()
    data = check(realbot.deploy)
    assert data["current_version"] == f"5.0+1.g{head}" and data["version_known"] is True
