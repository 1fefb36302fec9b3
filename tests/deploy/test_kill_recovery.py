"""What a kill -9 left behind, found and settled by the next start: a release command still
running, a checkout cut off half-way, a hot SQLite journal, and a status that must show the
state after the settling, not before it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import World, guilds
from tests.deploy import crash
from tests.deploy.test_transaction import release_with

PY = sys.executable


def gitrelease(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return crash.gitrelease(world.deploy, *args)


def test_status_right_after_a_crash_shows_the_settled_version(world: World) -> None:
    # Killed once the checkout to 1.10.0 is done: the next start rolls back to 1.0.0, and the
    # status that ran that recovery says 1.0.0, not the 1.10.0 it found before.
    crash.kill_at(world.deploy, "install:checkout:done", "install", "--type", "bot")
    shown = gitrelease(world, "--json", "status", "--no-metrics")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert world.head() == world.tag_commit("v1.0.0")
    assert info["commit"] == world.tag_commit("v1.0.0")
    assert info["version"] == "1.0.0", info


# -- a hot SQLite journal ---------------------------------------------------------------------

_WRITER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('PRAGMA cache_size = 1')  # the change spills into the file before any commit
c.execute('BEGIN')
c.execute("UPDATE guilds SET prefix = 'half-written'")
c.executemany('INSERT INTO guilds (prefix) VALUES (?)', [('x' * 900,)] * 400)
print('writing', flush=True)
time.sleep(120)
"""


def leave_hot_journal(database: Path) -> None:
    """A process killed while it writes `database`: its rollback journal is left beside it,
    hot (the file holds half a transaction), as after a restore killed mid-write."""
    writer = subprocess.Popen([PY, "-c", _WRITER, str(database)], stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    assert Path(f"{database}-journal").exists()


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as db:
        answer = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    return answer


def test_a_hot_journal_left_by_a_killed_write_blocks_no_later_operation(world: World) -> None:
    app = world.deploy / "data" / "app.db"
    leave_hot_journal(app)
    made = gitrelease(world, "--json", "backup", "create", "--type", "database",
                      "--name", "after-the-kill")
    assert made.returncode == 0, made.stdout + made.stderr
    installed = gitrelease(world, "--json", "install", "--type", "bot", "--to", "1.1.0")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    leave_hot_journal(app)
    restored = gitrelease(world, "--json", "backup", "restore", "after-the-kill", "--yes",
                          "--type", "database")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    leave_hot_journal(app)
    rolled = gitrelease(world, "--json", "rollback", "1.0.0", "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]  # the half-written change is gone
    assert not Path(f"{app}-journal").exists()
    assert integrity(app) == "ok"


# -- a release command still running ----------------------------------------------------------

_MIGRATION = """
import os, pathlib, sqlite3, time
pathlib.Path('data/migration.pid').write_text(str(os.getpid()))
c = sqlite3.connect('data/app.db', isolation_level=None, timeout=30)
for _ in range(600):
    c.execute("INSERT INTO guilds (prefix) VALUES ('migrated')")
    time.sleep(0.03)
"""


def count(database: Path) -> int:
    with sqlite3.connect(database, timeout=30) as db:
        rows = db.execute("SELECT COUNT(*) FROM guilds").fetchone()[0]
    db.close()
    return rows


@pytest.mark.parametrize("how", ["pid", "group", "helper frozen"])
def test_a_migration_running_when_its_install_is_killed_is_stopped_before_the_rollback(
        world: World, how: str) -> None:
    """Killed mid-migration (its pid alone, or its whole group): the migration dies with it.
    With the helper that would kill it frozen (SIGSTOP), recovery finds the group in the
    journal and stops it before it rolls the database back."""
    release_with(world, "1.11.0", post_update_command=[PY, "-c", _MIGRATION],
                 post_update_timeout=120)
    app = world.deploy / "data" / "app.db"
    pid_file = world.deploy / "data" / "migration.pid"
    install, _ = crash.start(world.deploy, "install", "--type", "bot")
    crash.wait_for(lambda: pid_file.exists() and count(app) > 4, install, "the migration")
    if how == "helper frozen":
        migration = Path(f"/proc/{pid_file.read_text()}/stat").read_text()
        os.kill(int(migration.rpartition(")")[2].split()[2]), signal.SIGSTOP)  # its leader
    crash.kill(install, "group" if how == "helper frozen" else how)
    settled = gitrelease(world, "--json", "status", "--history", "--no-metrics")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    (session,) = json.loads(settled.stdout)["recent_sessions"]
    assert session["status"] == "failed"
    assert world.head() == world.tag_commit("v1.0.0")
    assert not crash.alive(int(pid_file.read_text()))  # stopped, not merely outlived
    after = count(app)
    time.sleep(0.5)
    assert count(app) == after == 2  # rolled back, and nothing writes into it any more
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]


def test_a_recorded_group_whose_id_was_given_to_another_process_is_left_alone() -> None:
    from gitrelease.core.tether import Group, stop

    other = subprocess.Popen([PY, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        stat = Path(f"/proc/{other.pid}/stat").read_text().rpartition(")")[2].split()
        assert stop(Group(other.pid, int(stat[19]) - 1)) is None  # started at another time
        assert other.poll() is None
        assert stop(Group(other.pid, int(stat[19]))) is None  # the recorded one: stopped
        assert other.wait(timeout=10) == -signal.SIGKILL
    finally:
        other.kill()
        other.wait()


async def test_a_release_command_that_cannot_start_says_why(world: World) -> None:
    from gitrelease.deploy.command_runner import CommandFailed
    from gitrelease.manager import ReleaseManager

    release_with(world, "1.11.0", post_update_command=["/nonexistent/migrate"])
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(CommandFailed) as caught:
            await manager.install_updates("bot", {})
    assert "could not start: No such file or directory (/nonexistent/migrate)" in \
        caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")


def test_a_locked_git_index_is_refused_first_with_a_hint_that_works(world: World) -> None:
    # A lock no interrupted session of gitrelease made (an operator's git, or one killed
    # long ago): refused before anything changes, with the command that clears it.
    lock = world.deploy / ".git" / "index.lock"
    lock.write_bytes(b"")
    before = world.state()
    refused = gitrelease(world, "--json", "install", "--type", "bot")
    assert refused.returncode != 0
    error = json.loads(refused.stdout)["error"]
    assert "index.lock" in error["message"], error
    after = world.state()
    files = {name: digest for name, digest in after["files"].items()  # type: ignore[union-attr]
             if name != "data/gitrelease.lock"}  # the operation lock's own (empty) file
    assert after["head"] == before["head"] and files == before["files"]
    command = error["hint"].rpartition(": ")[2].split()
    assert command == ["rm", str(lock)], error["hint"]
    subprocess.run(command, check=True)
    installed = gitrelease(world, "--json", "install", "--type", "bot")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert world.head() == world.tag_commit("v1.10.0")
