"""The mending of a cut-off checkout touches only what git did: never an operator's edit, a
file of theirs at a path the release adds, or a folder they had; and it runs only where git
had started at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrelease.git.repo import GitRepo
from gitrelease.git.switch import Before, before_checkout, put_back
from tests.conftest import World, git
from tests.deploy import crash

NEW_BOT = "print('1.11.0')\n" * 40  # long enough that a write of it can be cut off
OPERATOR_EDIT = "print('operator hotfix')\n"


def _release(world: World) -> None:
    """1.11.0 changes bot.py, pyproject.toml and VERSION, adds extra/new.py, extra/more.py
    and tools/x.py."""
    pyproject = (world.release / "pyproject.toml").read_text() + "# 1.11.0\n"
    world.commit("1.11.0", {"bot.py": NEW_BOT, "VERSION": "1.11.0\n", "pyproject.toml": pyproject,
                            "extra/new.py": "x = 1\n", "extra/more.py": "y = 2\n",
                            "tools/x.py": "z = 3\n"})
    world.tag("v1.11.0", "Release 1.11.0")
    world.push()
    (world.deploy / "data" / "settings.toml").write_text("require_confirmation = false\n")


def test_an_edit_made_after_a_kill_before_git_ran_is_left_as_it_is(world: World) -> None:
    # Killed at the checkout step's start: git never ran. What the operator does before the
    # next start (an edit of a file the release changes, a file of their own where the
    # release would add one) is theirs, and the settling leaves it.
    _release(world)
    crash.kill_at(world.deploy, "install:checkout", "install", "--type", "bot",
                  "--to", "1.11.0", "--no-backup")
    (world.deploy / "bot.py").write_text(OPERATOR_EDIT)
    (world.deploy / "extra").mkdir()
    (world.deploy / "extra" / "new.py").write_text("operator's own\n")
    shown = crash.gitrelease(world.deploy, "--json", "status", "--history", "--no-metrics")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    (session,) = json.loads(shown.stdout)["recent_sessions"]
    assert session["status"] == "failed"
    assert "undone" not in session["error_message"], session["error_message"]
    assert world.head() == world.tag_commit("v1.0.0")
    assert (world.deploy / "bot.py").read_text() == OPERATOR_EDIT
    assert (world.deploy / "extra" / "new.py").read_text() == "operator's own\n"


def test_an_edit_that_stops_the_install_is_not_reverted_by_its_undo(world: World) -> None:
    # An edit made while the install runs makes it refuse the checkout: the undo after that
    # refusal leaves the edit (it is what the refusal was about), and the release is not
    # marked bad for it.
    _release(world)
    install, marker = crash.start(world.deploy, "--json", "install", "--type", "bot",
                                  "--to", "1.11.0", "--no-backup", pause="install:checkout",
                                  env={"GITRELEASE_PAUSE_SECONDS": "1"})
    crash.wait_for(marker.exists, install, "the checkout")
    (world.deploy / "bot.py").write_text(OPERATOR_EDIT)
    assert install.wait(timeout=60) != 0
    assert world.head() == world.tag_commit("v1.0.0")
    assert (world.deploy / "bot.py").read_text() == OPERATOR_EDIT
    assert not (world.deploy / "data" / "bad_releases.json").exists()


def _half_switched(world: World) -> tuple[GitRepo, str, str]:
    """The deployment as a checkout to 1.11.0 cut off half-way leaves it (HEAD at 1.0.0):
    bot.py written whole, VERSION and extra/new.py cut off mid-write, tools/x.py written."""
    _release(world)
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    repo = GitRepo(world.deploy)
    return repo, world.tag_commit("v1.0.0"), world.tag_commit("v1.11.0")


def _git_wrote(deploy: Path) -> None:
    (deploy / "bot.py").write_text(NEW_BOT)
    (deploy / "VERSION").write_text("1.1")
    (deploy / "extra").mkdir(exist_ok=True)
    (deploy / "extra" / "new.py").write_text("x =")
    (deploy / "tools").mkdir(exist_ok=True)
    (deploy / "tools" / "x.py").write_text("z = 3\n")


def test_putting_back_touches_only_what_git_wrote(world: World) -> None:
    repo, old, new = _half_switched(world)
    deploy = world.deploy
    kept = put_back_record(repo, old, new)
    _git_wrote(deploy)
    git(deploy, "read-tree", new)  # the index git had written, as if cut off at HEAD's move
    # After the crash, the operator changes a file the release changes, and writes one of
    # their own where the release adds one.
    (deploy / "pyproject.toml").write_text("# operator's\n")
    (deploy / "extra" / "more.py").write_text("operator's own\n")
    said = put_back(repo, old, new, kept)
    assert (deploy / "pyproject.toml").read_text() == "# operator's\n"
    assert (deploy / "extra" / "more.py").read_text() == "operator's own\n"
    assert world.head() == old
    assert (deploy / "bot.py").read_text() == "print('hello')\n"
    assert (deploy / "VERSION").read_text() == "1.0.0\n"
    assert not (deploy / "extra" / "new.py").exists()
    assert not (deploy / "tools").exists()
    assert "left as you changed it: extra/more.py, pyproject.toml" in said, said
    assert git(deploy, "diff", "--cached", "--name-only") == ""  # the index at 1.0.0
    status = git(deploy, "status", "--porcelain", "--untracked-files=all")
    assert status.splitlines() == ["M pyproject.toml", "?? extra/more.py"], status


def test_putting_back_keeps_the_folders_that_were_there_before(world: World) -> None:
    repo, old, new = _half_switched(world)
    deploy = world.deploy
    (deploy / "tools").mkdir()  # empty folders of the operator's, from before
    (deploy / "extra").mkdir()
    kept = put_back_record(repo, old, new)
    _git_wrote(deploy)
    put_back(repo, old, new, kept)
    assert not (deploy / "tools" / "x.py").exists()
    assert not (deploy / "extra" / "new.py").exists()
    assert (deploy / "tools").is_dir() and (deploy / "extra").is_dir()
    assert git(deploy, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_folder_git_made_before_it_wrote_a_file_in_it_goes_too(world: World) -> None:
    repo, old, new = _half_switched(world)
    deploy = world.deploy
    kept = put_back_record(repo, old, new)
    (deploy / "tools").mkdir()  # git was killed right after making it
    put_back(repo, old, new, kept)
    assert not (deploy / "tools").exists()
    assert git(deploy, "status", "--porcelain", "--untracked-files=all") == ""


def put_back_record(repo: GitRepo, old: str, new: str) -> Before:
    """What `Installer._checkout` journals before git starts (`checkout:kept`), read back."""
    return Before.parse(before_checkout(repo, old, new).text())


def test_a_note_of_an_older_gitrelease_is_read_and_removes_no_folder() -> None:
    assert Before.parse('["config/local.toml"]') == Before(("config/local.toml",), None)
    assert Before.parse(None) == Before.parse("not json") == Before((), None)


@pytest.mark.parametrize("operator_file", [False, True])
def test_a_file_the_release_turns_into_a_folder_is_put_back(
        world: World, operator_file: bool) -> None:
    (world.release / "bot.py").unlink()
    world.commit("1.11.0", {"bot.py/main.py": "print('1.11.0')\n"})
    world.tag("v1.11.0", "Release 1.11.0")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    repo = GitRepo(world.deploy)
    old, new = world.tag_commit("v1.0.0"), world.tag_commit("v1.11.0")
    kept = put_back_record(repo, old, new)
    (world.deploy / "bot.py").unlink()  # what git did before it was cut off
    (world.deploy / "bot.py").mkdir()
    (world.deploy / "bot.py" / "main.py").write_text("print('1.11.0')\n")
    if operator_file:  # the operator's, in the folder git made, after the crash
        (world.deploy / "bot.py" / "notes.txt").write_text("mine\n")
    said = put_back(repo, old, new, kept)
    if operator_file:
        assert (world.deploy / "bot.py" / "notes.txt").read_text() == "mine\n"
        assert not (world.deploy / "bot.py" / "main.py").exists()
        assert "left as you changed it: bot.py" in said, said
        return
    assert (world.deploy / "bot.py").read_text() == "print('hello')\n", said
    assert git(world.deploy, "status", "--porcelain", "--untracked-files=all") == ""
