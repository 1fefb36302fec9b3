"""A full disk at each write of a restore and of a backup, for real: the deployment lives on
a small tmpfs, filled to leave less than the next step needs.

Each case asserts a clear error that says the disk is full (never "internal error"), the
deployment exactly as before (its files byte for byte, the bot's database whole with the
same rows, no SQLite journal left beside it), and that the same operation works once the
space is freed. The moment to fill the disk is a pause point the operation reaches in one of
its worker threads (``GITRELEASE_PAUSE_AT``): the test fills the tmpfs while that thread
waits, then the operation goes on into a full disk.

Mounting needs root; elsewhere each case is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitrelease.core.errors import InsufficientDiskSpace
from gitrelease.core.models import BackupStatus
from gitrelease.manager import ReleaseManager
from tests.conftest import ENV_SECRET, World, copy_world

YES = {"confirm": True}
SIZE_MB = 40  # the safety backup alone keeps 16 MiB in hand


@pytest.fixture
def small(template_world: World, tmp_path: Path) -> Iterator[World]:
    """A world whose deployment (data dir, index and backups with it) is on a 40 MB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip(f"a full disk needs a tmpfs mount, which needs root (uid {os.geteuid()})")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs",
                              str(disk)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        world = copy_world(template_world, disk / "world")
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("CREATE TABLE notes (body BLOB)")
            db.executemany("INSERT INTO notes VALUES (?)",
                           [(os.urandom(2000),) for _ in range(100)])
        db.close()
        (world.deploy / "data" / "notes.json").write_text('{"n": 1}')
        yield world
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(world: World, leave: int = 0) -> Path:
    """Take all the tmpfs's free space but `leave` bytes; the filler, to delete again."""
    disk = world.base
    filler = disk / f"filler-{len(list(disk.glob('filler-*')))}"
    free = shutil.disk_usage(disk).free - leave
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if free > 0:
            os.posix_fallocate(fd, 0, free)
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free <= leave
    return filler


def free_again(world: World) -> None:
    for filler in world.base.glob("filler-*"):
        filler.unlink()


def snapshot(world: World) -> dict[str, object]:
    """What must be as before: every live file but the archives, the lock and the index
    (compared by its rows), and the bot's database by integrity and rows."""
    files = {k: v for k, v in world.state()["files"].items()  # type: ignore[union-attr]
             if not k.startswith(("data/backups/", "data/gitrelease.lock", "data/app.db"))}
    db = world.deploy / "data" / "app.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        content = (connection.execute("SELECT * FROM guilds ORDER BY id").fetchall(),
                   connection.execute("SELECT count(*), sum(length(body)) FROM notes")
                   .fetchone())
    connection.close()
    sidecars = sorted(p.name for p in db.parent.glob("app.db-*"))
    return {"files": files, "db": (check, content), "sidecars": sidecars}


async def changed_since_backup(world: World, manager: ReleaseManager, *,
                               chained: bool = False) -> str:
    """A full backup (`chained`: an incremental one, on a backup taken before a change),
    then the live state moved on (the database, .env, a data file)."""
    if chained:
        await manager.create_backup("full", {"compress": False})
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("UPDATE guilds SET prefix = 'between'")
        db.close()
    backup = await manager.create_backup("full", {"compress": False})
    assert (backup.base_id is not None) is chained
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("UPDATE guilds SET prefix = 'now'")
        db.execute("DELETE FROM notes WHERE rowid % 2 = 0")
    db.close()
    (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
    (world.deploy / "data" / "notes.json").write_text('{"n": 2}')
    return backup.id


async def fill_at(world: World, point: str, monkeypatch: pytest.MonkeyPatch,
                  work: asyncio.Future[object]) -> None:
    """Fill the disk when `work` reaches pause point `point` (in a worker thread)."""
    marker = world.base.parent.parent / f"paused-{point.replace(':', '-')}"
    monkeypatch.setenv("GITRELEASE_PAUSE_AT", point)
    monkeypatch.setenv("GITRELEASE_PAUSE_MARKER", str(marker))
    monkeypatch.setenv("GITRELEASE_PAUSE_SECONDS", "1")
    for _ in range(1000):
        if marker.exists() or work.done():
            break
        await asyncio.sleep(0.01)
    assert marker.exists(), f"never reached {point}"
    fill(world)
    monkeypatch.delenv("GITRELEASE_PAUSE_AT")


def assert_disk_full(error: BaseException) -> None:
    assert isinstance(error, InsufficientDiskSpace), repr(error)
    assert any(said in error.message for said in ("disk full", "disk filled up", "needs")), \
        error.message
    assert "internal error" not in error.message


# -- restore -------------------------------------------------------------------------------


async def test_a_restore_that_cannot_fit_is_refused_before_it_writes(small: World) -> None:
    world = small
    async with await ReleaseManager.open(world.deploy) as manager:
        backup_id = await changed_since_backup(world, manager)
        before = snapshot(world)
        fill(world, leave=8 * 2**20)  # less than the safety backup's own margin
        with pytest.raises(InsufficientDiskSpace) as caught:
            await manager.restore_backup(backup_id, YES)
        backups = await manager.list_backups({"time_range": "all"})
    message = caught.value.message
    assert f"restoring {backup_id} needs" in message and "are free there" in message
    assert "safety backup" in message and "nothing was changed" in message
    assert [b.status for b in backups] == [BackupStatus.COMPLETED]  # no safety row left
    assert not list((world.deploy / "data" / "backups").glob(".restore-*"))
    assert snapshot(world) == before
    free_again(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.restore_backup(backup_id, YES)
    assert (world.deploy / ".env").read_text() == ENV_SECRET


@pytest.mark.parametrize("chained", [False, True], ids=["full", "incremental"])
@pytest.mark.parametrize("point", ["restore:staged", "archive:member-written",
                                   "restore:database"])
async def test_a_disk_filling_up_during_a_restore_leaves_everything_as_it_was(
    small: World, monkeypatch: pytest.MonkeyPatch, point: str, chained: bool
) -> None:
    """Full while unpacking into staging, while writing the safety backup, while SQLite
    writes the live database: the restore's own error, and everything put back; the same
    for an incremental backup, rebuilt from its chain."""
    world = small
    async with await ReleaseManager.open(world.deploy) as manager:
        backup_id = await changed_since_backup(world, manager, chained=chained)
        before = snapshot(world)
        work = asyncio.ensure_future(manager.restore_backup(backup_id, YES))
        await fill_at(world, point, monkeypatch, work)
        with pytest.raises(InsufficientDiskSpace) as caught:
            await work
    assert_disk_full(caught.value)
    assert snapshot(world) == before
    free_again(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        result = await manager.restore_backup(backup_id, YES)
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert "data/app.db" in result.restored
    after = snapshot(world)
    assert after["db"][0] == "ok" and after["sidecars"] == []  # type: ignore[index]


async def test_an_audit_row_the_full_disk_refuses_does_not_hide_the_error(
    small: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backups on another disk, the data dir's disk filling up while SQLite writes the
    database: the restore fails (SQLite rolls its write back), and the audit row cannot be
    written either, on that full disk. The restore's own error is the one reported, the
    audit's failure said with it."""
    world = small
    elsewhere = tmp_path / "backups"
    (world.deploy / "data" / "settings.toml").write_text(f'backup_path = "{elsewhere}"\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        backup_id = await changed_since_backup(world, manager)
        before = snapshot(world)
        work = asyncio.ensure_future(manager.restore_backup(
            backup_id, {**YES, "restore_type": "database"}))
        await fill_at(world, "restore:database", monkeypatch, work)
        with pytest.raises(InsufficientDiskSpace) as caught:
            await work
    assert_disk_full(caught.value)
    assert "data/app.db" in caught.value.message
    assert "the audit row could not be written" in caught.value.message
    assert snapshot(world) == before
    free_again(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.restore_backup(backup_id, {**YES, "restore_type": "database"})
    assert snapshot(world)["db"][1][0] == [(1, "!"), (2, "?")]  # type: ignore[index]


# -- backup --------------------------------------------------------------------------------


async def test_a_disk_filling_up_during_a_backup_keeps_nothing_and_says_so(
    small: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = small
    before = snapshot(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        work = asyncio.ensure_future(manager.create_backup("full", {"compress": False}))
        await fill_at(world, "archive:member-written", monkeypatch, work)
        with pytest.raises(InsufficientDiskSpace) as caught:
            await work
    assert_disk_full(caught.value)
    assert snapshot(world) == before
    assert [p.name for p in (world.deploy / "data" / "backups").iterdir()] == []
    free_again(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        listed = await manager.list_backups({"time_range": "all"})
    assert backup.status is BackupStatus.COMPLETED
    assert sorted(b.status.value for b in listed) == ["completed", "failed"]


async def test_a_restore_on_a_full_disk_says_so_and_not_an_internal_error(
    small: World,
) -> None:
    """The disk at 100%: whatever fails first (the pre-check here; the index's rows, the
    audit), the error says the disk is full, and an audit row that cannot be written does
    not take its place."""
    world = small
    async with await ReleaseManager.open(world.deploy) as manager:
        backup_id = await changed_since_backup(world, manager)
        before = snapshot(world)
        fill(world)
        with pytest.raises(InsufficientDiskSpace) as caught:
            await manager.restore_backup(backup_id, YES)
    assert_disk_full(caught.value)
    assert snapshot(world) == before
    free_again(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.restore_backup(backup_id, YES)
    assert (world.deploy / ".env").read_text() == ENV_SECRET
