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

import os
import sqlite3
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


# -- the sweep over the journal's pause points --------------------------------------------------

BEFORE = [(1, "!"), (2, "?")]
MIGRATED = [(1, "migrated"), (2, "migrated"), (3, "added by 1.11.0")]
_MIGRATION = ("import sqlite3; c = sqlite3.connect('data/app.db'); "
              "c.execute(\"UPDATE guilds SET prefix = 'migrated'\"); "
              "c.execute(\"INSERT INTO guilds VALUES (3, 'added by 1.11.0')\"); c.commit()")
#: Where an install is killed: before and after the steps its journal records (of the steps
#: before any change, only the first and the last), and inside the pre-update backup.
INSTALL_POINTS = [
    "install:preflight", "install:resolve:done", "install:backup", "archive:member-written",
    *(f"install:{step}{done}" for step in ("backup", "checkout", "verify", "post_update",
                                           "health_check") for done in ("", ":done")
      if f"{step}{done}" not in ("backup", "verify")),
]
#: Where a rollback to 1.0.0 is killed; "sqlite:restore-writing" is inside the restore's
#: write of the live database (between two steps of SQLite's backup API, in one transaction).
ROLLBACK_POINTS = ["rollback:preflight", "rollback:backup", "rollback:backup:done",
                   "rollback:checkout", "rollback:checkout:done", "rollback:verify:done",
                   "rollback:restore", "sqlite:restore-writing", "rollback:restore:done"]
#: Where `backup restore` is killed: inside its safety backup, and inside the live write.
RESTORE_POINTS = ["archive:member-written", "sqlite:restore-writing"]
#: At a pause point the process sleeps with no child running, so its whole group and its
#: main pid die alike: the main pid alone is killed where a child has just run or is about
#: to (the checkout's git, a release's command, the restore's write).
PID_TOO = {"install:checkout", "install:post_update", "install:health_check",
           "rollback:restore", "sqlite:restore-writing", "archive:member-written"}


def cases(points: list[str], *, pid: set[str] = PID_TOO) -> list[tuple[str, str]]:
    return [(point, how) for point in points
            for how in (("group", "pid") if point in pid else ("group",))]


def rows(world: World) -> list[tuple]:
    with sqlite3.connect(world.deploy / "data" / "app.db", timeout=30) as db:
        answer = db.execute("PRAGMA integrity_check").fetchone()[0]
        found = db.execute("SELECT * FROM guilds ORDER BY id").fetchall()
    db.close()
    assert answer == "ok"
    return found


def last_session(world: World) -> tuple[str, str | None, str | None]:
    """(status, from_commit, to_commit) of the newest session, straight from the index."""
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as db:
        row = db.execute("SELECT status, from_commit, to_commit FROM update_sessions "
                         "ORDER BY started_at DESC LIMIT 1").fetchone()
    db.close()
    return row


def settle(world: World) -> None:
    """The next operation after the crash: it takes the lock, settles what was left, and
    reads the live database (past a journal a kill may have left hot)."""
    done = crash.gitrelease(world.deploy, "--json", "backup", "create", "--type", "database")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def install_world(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = copy_world(template_world, tmp_path_factory.mktemp("install") / "world")
    release_with(world, "1.11.0", post_update_command=[PY, "-c", _MIGRATION],
                 health_check_command=[PY, "-c", "print('ok')"])
    (world.deploy / OPERATOR_FILE).write_text("mine\n")
    return world


@pytest.mark.parametrize(("point", "how"), cases(INSTALL_POINTS,
                                                 pid=PID_TOO - {"archive:member-written"}))
def test_install_killed_at(install_world: World, tmp_path: Path, point: str, how: str) -> None:
    world = copy_world(install_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    start, target = world.head(), world.tag_commit("v1.11.0", world.release)
    crash.kill_at(world.deploy, point, "install", "--type", "bot", how=how)
    settle(world)
    checked(world, before, {start, target})
    status, _, _ = last_session(world)
    assert (status, world.head()) in {("completed", target), ("failed", start)}
    assert rows(world) == (MIGRATED if world.head() == target else BEFORE)


@pytest.fixture(scope="module")
def rollback_world(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """At 1.11.0 with a row added since, a full backup taken at 1.0.0 (named "at-1.0.0") of
    a database big enough (~1.5 MiB) to be written in several steps."""
    world = copy_world(template_world, tmp_path_factory.mktemp("rollback") / "world")
    release_with(world, "1.11.0")
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("CREATE TABLE blobs (data BLOB)")
        db.executemany("INSERT INTO blobs VALUES (?)", [(os.urandom(1500),)] * 1000)
    db.close()
    done = crash.gitrelease(world.deploy, "install", "--type", "bot", "--backup-name",
                            "at-1.0.0")
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (3, 'since 1.11.0')")
    db.close()
    (world.deploy / OPERATOR_FILE).write_text("mine\n")
    return world


SINCE = [*BEFORE, (3, "since 1.11.0")]


@pytest.mark.parametrize(("point", "how"), cases(ROLLBACK_POINTS))
def test_rollback_killed_at(rollback_world: World, tmp_path: Path, point: str,
                            how: str) -> None:
    world = copy_world(rollback_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    start, target = world.head(), world.tag_commit("v1.0.0")
    crash.kill_at(world.deploy, point, "rollback", "1.0.0", "--yes", how=how)
    settle(world)
    checked(world, before, {start, target})
    status, _, _ = last_session(world)
    assert (status, world.head()) in {("completed", target), ("failed", start)}
    assert rows(world) == (BEFORE if world.head() == target else SINCE)


@pytest.mark.parametrize(("point", "how"), cases(RESTORE_POINTS))
def test_restore_killed_at(rollback_world: World, tmp_path: Path, point: str,
                           how: str) -> None:
    world = copy_world(rollback_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    crash.kill_at(world.deploy, point, "backup", "restore", "at-1.0.0", "--yes", "--type",
                  "database", how=how)
    settle(world)
    checked(world, before, {world.tag_commit("v1.11.0")})
    assert rows(world) in (SINCE, BEFORE)
    again = crash.gitrelease(world.deploy, "--json", "backup", "restore", "at-1.0.0", "--yes",
                             "--type", "database")
    assert again.returncode == 0, again.stdout + again.stderr
    assert rows(world) == BEFORE
