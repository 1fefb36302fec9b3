"""The kill -9 sweep: install, rollback and restore killed at the journal's pause points (and
mid-checkout, mid-migration and mid-database-write, where no pause point can be), by their
main pid and by their whole process group; after the next start each case must hold:

* HEAD at a recorded commit (where the operation started, or where it was going);
* a clean tree: `git status --porcelain` shows what it showed before, no `.git/index.lock`;
* `PRAGMA integrity_check` ok, and the bot's rows those of before or of after, nothing else;
* `.env` as it was; the next operation takes the lock (a dead holder's note is fine).

One world is built per module (a release of a few thousand files, a migration, a database
of a few MiB) and copied for each case.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import ENV_SECRET, World, copy_world, git
from tests.deploy import crash
from tests.deploy.test_transaction import release_with

PY = crash.PY
ASSETS = 1500  # files the big release adds: enough for a checkout to be killed mid-way
OPERATOR_FILE = "operator-notes.txt"  # untracked, the operator's own: must survive


def _big_release(world: World) -> None:
    """1.11.0: thousands of new files, one changed (bot.py), one gone (CHANGES)."""
    assets = world.release / "assets"
    assets.mkdir()
    for number in range(ASSETS):
        (assets / f"{number:05d}.txt").write_text(f"asset {number}\n" * 4)
    (world.release / "bot.py").write_text("print('hello, 1.11.0')\n")
    (world.release / "CHANGES").unlink()
    release_with(world, "1.11.0")
    # Packed, fetched, and the release side's tree back to small: each copy of the world is
    # a few hundred files, not thousands.
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.release, "checkout", "--quiet", "--detach", "v1.0.0")
    for repo in (world.release, world.deploy):
        git(repo, "repack", "-adq")
        git(repo, "prune")


@pytest.fixture(scope="module")
def big_world(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = copy_world(template_world, tmp_path_factory.mktemp("big") / "world")
    _big_release(world)
    (world.deploy / OPERATOR_FILE).write_text("mine\n")
    return world


def porcelain(world: World) -> str:
    return git(world.deploy, "status", "--porcelain", env={"GIT_OPTIONAL_LOCKS": "0"})


def checked(world: World, before: dict[str, object], commits: set[str]) -> None:
    """What every case must hold once the next start has settled the crash."""
    assert not (world.deploy / ".git" / "index.lock").exists()
    assert world.head() in commits
    assert porcelain(world) == before["porcelain"]
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert (world.deploy / OPERATOR_FILE).read_text() == "mine\n"


@pytest.mark.parametrize("how", ["pid", "group"])
def test_a_checkout_killed_half_way_is_put_back_whole(
        big_world: World, tmp_path: Path, how: str) -> None:
    world = copy_world(big_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    start, target = world.head(), world.tag_commit("v1.11.0", world.release)
    lock = world.deploy / ".git" / "index.lock"
    for _attempt in range(5):  # by timing: bounded, and each try is told apart
        install, marker = crash.start(world.deploy, "install", "--type", "bot", "--no-backup",
                                      pause="install:checkout",
                                      env={"GITRELEASE_PAUSE_SECONDS": "0"})
        crash.wait_for(marker.exists, install, "the checkout")
        while not lock.exists() and install.poll() is None:
            time.sleep(0.0005)
        crash.kill(install, how)
        if lock.exists():
            break
    assert lock.exists(), "no kill landed inside the checkout"
    settled = crash.gitrelease(world.deploy, "--json", "status", "--history", "--no-metrics")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    checked(world, before, {start})
    again = crash.gitrelease(world.deploy, "--json", "install", "--type", "bot", "--no-backup")
    assert again.returncode == 0, again.stdout + again.stderr
    assert world.head() == target
