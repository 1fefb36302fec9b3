"""The look before a reconcile: it sees exactly what the reconcile would act on.

Each case puts a real deployment in a state a crash or a person can leave, checks that the
look asks for a reconcile, lets a listing run it, and checks that the look is then quiet.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from gitrelease.core.models import BackupStatus, UpdateSession, UpdateStatus, UpdateType, utcnow
from gitrelease.manager import ReleaseManager
from gitrelease.state.sources import Layout
from gitrelease.state.upkeep import UpkeepWatch, pending_work
from tests.conftest import World

ALL = {"time_range": "all", "limit": 50}


def backup_dir(manager: ReleaseManager) -> Path:
    return Layout.of(manager.root, manager.data_dir, manager.settings).backup_dir


def age(directory: Path, seconds: float = 60) -> None:
    """Date a directory back, as one untouched for a while is."""
    past = time.time() - seconds
    os.utime(directory, (past, past))


async def looked(manager: ReleaseManager) -> str | None:
    return await pending_work(await manager.index(), backup_dir(manager))


async def with_backups(world: World, count: int = 2) -> ReleaseManager:
    manager = await ReleaseManager.open(world.deploy)
    for n in range(count):
        await manager.create_backup("config", {"backup_name": f"b{n}"})
    assert await looked(manager) is None
    return manager


async def test_a_deployment_in_order_needs_nothing(world: World) -> None:
    async with await with_backups(world) as manager:
        directory = backup_dir(manager)
        # Files gitrelease never adopts do not make every command look again.
        (directory / "notes.txt").write_text("mine")
        (directory / "backup_by_hand.tar.gz").write_bytes(b"not ours")
        (directory / "backup_20240101_000000.tar.gz").mkdir()
        assert await looked(manager) is None


async def test_a_leftover_of_an_interrupted_write(world: World) -> None:
    async with await with_backups(world) as manager:
        leftover = backup_dir(manager) / ".tmp-backup_x-123"
        leftover.mkdir()
        assert "leftover" in (await looked(manager) or "")
        await manager.list_backups(ALL)
        assert not leftover.exists()
        assert await looked(manager) is None


async def test_an_archive_gone_and_back(world: World) -> None:
    async with await with_backups(world) as manager:
        first = (await manager.list_backups(ALL))[-1]
        archive = Path(first.file_path or "")
        kept = archive.with_name("kept-aside")
        shutil.move(archive, kept)
        assert "has gone" in (await looked(manager) or "")
        listed = {b.id: b for b in await manager.list_backups(ALL)}
        assert listed[first.id].status is BackupStatus.CORRUPTED
        assert await looked(manager) is None
        shutil.move(kept, archive)
        assert "is back" in (await looked(manager) or "")
        listed = {b.id: b for b in await manager.list_backups(ALL)}
        assert listed[first.id].status is BackupStatus.COMPLETED
        assert await looked(manager) is None


async def test_a_lost_index_is_rebuilt_from_the_archives(world: World) -> None:
    async with await with_backups(world) as manager:
        before = {b.id for b in await manager.list_backups(ALL)}
    for name in os.listdir(world.deploy / "data"):
        if name.startswith("update_manager.db"):
            os.remove(world.deploy / "data" / name)
    async with await ReleaseManager.open(world.deploy) as manager:
        assert "not in the index" in (await looked(manager) or "")
        assert {b.id for b in await manager.list_backups(ALL)} == before
        assert await looked(manager) is None


async def test_rows_left_half_way(world: World) -> None:
    async with await with_backups(world) as manager:
        store = await manager.index()
        first, second = await manager.list_backups(ALL)
        first.status = BackupStatus.CREATING
        await store.save_backup(first)
        assert "half" in (await looked(manager) or "")
        await manager.list_backups(ALL)
        assert (await store.get_backup(first.id)).status is BackupStatus.FAILED  # type: ignore[union-attr]
        second.deleting = True
        await store.save_backup(second)
        assert "half" in (await looked(manager) or "")
        await manager.list_backups(ALL)
        assert await store.get_backup(second.id) is None
        assert await looked(manager) is None


async def test_a_session_left_unfinished(world: World) -> None:
    async with await with_backups(world, 0) as manager:
        store = await manager.index()
        await store.create_session(UpdateSession(
            "upd_dead", UpdateType.BOT, UpdateStatus.INSTALLING, 10, utcnow(), None, "2.0.0",
            "1.0.0", None, [], 8, True, "test"))
        assert "unfinished" in (await looked(manager) or "")
        await manager.get_update_status("1d", show_metrics=False)
        settled = await store.get_session("upd_dead")
        assert settled is not None and settled.status is UpdateStatus.FAILED
        assert await looked(manager) is None


async def test_a_backup_dir_that_is_not_there_marks_nothing(world: World) -> None:
    async with await with_backups(world) as manager:
        store = await manager.index()
        elsewhere = (await manager.list_backups(ALL))[0]
        elsewhere.id = elsewhere.name = "backup_20240101_000000"
        elsewhere.file_path = str(world.deploy / "unmounted" / f"{elsewhere.id}.tar.gz")
        await store.save_backup(elsewhere)
        assert await looked(manager) is None  # the reconcile leaves it alone too:
        await manager.recover()
        assert (await store.get_backup(elsewhere.id)).status is BackupStatus.COMPLETED  # type: ignore[union-attr]


async def test_the_watch_remembers_only_what_it_can_see_change(world: World) -> None:
    async with await with_backups(world) as manager:
        store = await manager.index()
        directory = backup_dir(manager)
        watch = UpkeepWatch()
        assert await watch.pending(store, directory) is None
        assert watch._clean is None  # the dir changed just now: not trusted to its mtime
        age(directory)
        assert await watch.pending(store, directory) is None
        assert watch._clean is not None
        assert await watch.pending(store, directory) is None
        # A write to the index by another connection (another process) is seen...
        with sqlite3.connect(world.deploy / "data" / "update_manager.db") as other:
            other.execute("UPDATE backups SET status = 'creating' WHERE name = 'b0'")
        other.close()
        assert "half" in (await watch.pending(store, directory) or "")
        await manager.list_backups(ALL)
        age(directory)
        assert await watch.pending(store, directory) is None
        assert watch._clean is not None
        # ...and so is an archive taken away (the dir's mtime moves, however old it was).
        archive = Path((await manager.list_backups(ALL))[0].file_path or "")
        archive.unlink()
        assert "has gone" in (await watch.pending(store, directory) or "")


async def test_a_symbolic_link_is_never_remembered(world: World) -> None:
    async with await with_backups(world) as manager:
        store = await manager.index()
        directory = backup_dir(manager)
        (directory / "link").symlink_to(directory / "nowhere")
        age(directory)
        watch = UpkeepWatch()
        assert await watch.pending(store, directory) is None
        assert watch._clean is None
