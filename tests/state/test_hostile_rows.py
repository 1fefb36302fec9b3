"""Index rows are not trusted: a backup row naming a file outside the backups folder.

A row's `file_path` is only the index's word. A row pointing elsewhere (an absolute path
outside, a path through ``..``, a relative one, a symbolic link in the backups folder that
points out, a directory, another backup's archive, a file in the backups folder that is no
archive: `backup_path` may be a shared folder such as /var/backups) is refused by every
operation that would unlink, read, verify, restore from or upload it, with an error naming
the backup; the file outside is never touched, and the row is left as it was. A missing
archive in the backups folder is no refusal: it is deleted as a row, and a verify says it
is missing.

Each case starts from one prepared deployment (a real backup of its database, a real copy
of that archive outside the backups folder, so that reading it would "work"), copied.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitrelease.core.errors import GitReleaseError
from gitrelease.manager import ReleaseManager
from tests.conftest import World, copy_world

HOSTILE_ID = "backup_20240101_000000"
OLD = datetime(2024, 1, 1, tzinfo=UTC)  # older than the retention keeps


@dataclass
class Prepared:
    world: World
    archive: Path  # the real backup's archive, in the backups folder


@pytest.fixture(scope="module")
def prepared(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    world = copy_world(template_world, tmp_path_factory.mktemp("hostile") / "world")

    async def backup() -> Path:
        async with await ReleaseManager.open(world.deploy) as manager:
            return Path((await manager.create_backup("database")).file_path or "")

    return Prepared(world, asyncio.run(backup()))


@dataclass
class Case:
    world: World
    victim: Path  # a file outside the backups folder (a copy of a real archive)
    backups: Path
    digest: str
    others: dict[Path, str]  # files in the backups folder a row may name, and their sha256

    def untouched(self) -> bool:
        return self.victim.is_file() and _sha(self.victim) == self.digest and all(
            path.is_file() and _sha(path) == digest for path, digest in self.others.items())


def _suffix(archive: Path) -> str:
    return archive.name[archive.name.index(".tar"):]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _case(prepared: Prepared, base: Path) -> Case:
    world = copy_world(prepared.world, base / "world")
    old, new = str(prepared.world.base), str(world.base)
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as db:
        db.execute("UPDATE backups SET file_path = replace(file_path, ?, ?)", (old, new))
    db.close()
    backups = world.deploy / "data" / "backups"
    victim = world.base / f"victim{_suffix(prepared.archive)}"
    shutil.copy(backups / prepared.archive.name, victim)
    real = backups / prepared.archive.name
    return Case(world, victim, backups, _sha(victim), {real: _sha(real)})


# Where each hostile row points; the callable also makes what is there.
def _outside(c: Case) -> str:
    return str(c.victim)


def _dotdot(c: Case) -> str:
    return str(c.backups / ".." / ".." / ".." / c.victim.name)


def _relative(c: Case) -> str:
    return c.victim.name


def _symlink(c: Case) -> str:
    link = c.backups / f"{HOSTILE_ID}{_suffix(c.victim)}"
    link.symlink_to(c.victim)
    return str(link)


def _directory(c: Case) -> str:
    folder = c.backups / f"{HOSTILE_ID}{_suffix(c.victim)}"
    folder.mkdir()
    (folder / "inside").write_text("kept")
    return str(folder)


def _another(c: Case) -> str:
    """The archive of the real backup: deleting this row must not delete that backup."""
    (real,) = c.others
    return str(real)


def _stray(c: Case) -> str:
    """A file of someone else's in a shared backups folder, archive-like but not named
    as gitrelease names its archives."""
    stray = c.backups / f"database-dump{_suffix(c.victim)}"
    shutil.copy(c.victim, stray)
    c.others[stray] = _sha(stray)
    return str(stray)


HOSTILE: dict[str, Callable[[Case], str]] = {
    "outside": _outside, "dotdot": _dotdot, "relative": _relative, "symlink": _symlink,
    "directory": _directory, "another": _another, "stray": _stray,
}


async def _plant(manager: ReleaseManager, location: str) -> None:
    """A copy of the real backup's row, older than the retention keeps, pointing at
    `location`."""
    store = await manager.index()
    (real,) = await store.list_backups()
    manifest = await store.backup_manifest(real)
    await store.save_backup(replace(
        real, metadata={**real.metadata, "manifest": manifest}, id=HOSTILE_ID,
        name=HOSTILE_ID, file_path=location, created_at=OLD, completed_at=OLD, tag=None))


def _rows(world: World) -> list[tuple]:
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as db:
        found = db.execute("SELECT id, status, file_path, problem, deleting FROM backups "
                           "ORDER BY id").fetchall()
    db.close()
    return found


async def _operate(manager: ReleaseManager, operation: str) -> object:
    if operation == "delete":
        return await manager.delete_backup(HOSTILE_ID, confirm=True)
    if operation == "verify":
        return await manager.verify_backup(HOSTILE_ID, deep=True)
    if operation == "restore":
        return await manager.restore_backup(HOSTILE_ID, {"confirm": True, "verify_backup": False})
    if operation == "push":
        return await manager.push_backup(HOSTILE_ID)
    raise AssertionError(operation)


# Every kind for a delete (what the issue found); two each for the other operations, so
# that the family stays within its time.
CASES = [*(("delete", kind) for kind in sorted(HOSTILE)),
         ("verify", "dotdot"), ("verify", "symlink"), ("restore", "outside"),
         ("restore", "symlink"), ("restore", "another"), ("push", "relative"),
         ("push", "directory"), ("push", "stray")]


@pytest.mark.parametrize(("operation", "kind"), CASES)
async def test_a_row_pointing_elsewhere_is_refused_and_nothing_outside_is_touched(
        prepared: Prepared, tmp_path: Path, kind: str, operation: str) -> None:
    case = _case(prepared, tmp_path)
    settings = case.world.deploy / "data" / "settings.toml"
    settings.write_text('offsite = "manual"\noffsite_url = "s3://bucket/bot"\n'
                        'offsite_endpoint = "http://127.0.0.1:9"\n')
    with sqlite3.connect(case.world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (3, '#')")  # a restore would have work to do
    db.close()
    live_db = _sha(case.world.deploy / "data" / "app.db")
    async with await ReleaseManager.open(case.world.deploy) as manager:
        await _plant(manager, HOSTILE[kind](case))
        rows = _rows(case.world)
        with pytest.raises(GitReleaseError) as caught:
            await _operate(manager, operation)
    assert caught.value.code == "archive_refused", caught.value.message
    assert HOSTILE_ID in caught.value.message
    assert "backups folder" in caught.value.message
    assert case.untouched()
    assert _rows(case.world) == rows
    assert _sha(case.world.deploy / "data" / "app.db") == live_db
    if kind == "symlink":
        assert (case.backups / f"{HOSTILE_ID}{_suffix(case.victim)}").is_symlink()
    if kind == "directory":
        assert (case.backups / f"{HOSTILE_ID}{_suffix(case.victim)}" / "inside").read_text() \
            == "kept"


@pytest.mark.parametrize("kind", ["outside", "symlink", "another", "stray"])
async def test_prune_never_deletes_what_a_row_names_outside(
        prepared: Prepared, tmp_path: Path, kind: str) -> None:
    case = _case(prepared, tmp_path)
    async with await ReleaseManager.open(case.world.deploy) as manager:
        await _plant(manager, HOSTILE[kind](case))
        rows = _rows(case.world)
        result = await manager.prune_backups()
    assert case.untouched()
    assert _rows(case.world) == rows  # the row is kept, and says why
    assert HOSTILE_ID not in [b.id for b in result.deleted]
    assert "backups folder" in result.kept[HOSTILE_ID]


async def test_retention_after_a_backup_leaves_an_outside_file_alone(
        prepared: Prepared, tmp_path: Path) -> None:
    case = _case(prepared, tmp_path)
    async with await ReleaseManager.open(case.world.deploy) as manager:
        await _plant(manager, _dotdot(case))
        await manager.create_backup("database")  # auto_cleanup prunes after it
        assert HOSTILE_ID in [b.id for b in await manager.list_backups({"time_range": "all"})]
    assert case.untouched()


async def test_a_missing_archive_in_the_backups_folder_is_no_refusal(
        prepared: Prepared, tmp_path: Path) -> None:
    case = _case(prepared, tmp_path)
    async with await ReleaseManager.open(case.world.deploy) as manager:
        await _plant(manager, str(case.backups / f"{HOSTILE_ID}{_suffix(case.victim)}"))
        with pytest.raises(GitReleaseError) as caught:
            await manager.verify_backup(HOSTILE_ID)
        assert "missing" in caught.value.message
        await manager.delete_backup(HOSTILE_ID, confirm=True)
        assert HOSTILE_ID not in [b.id for b in await manager.list_backups({"time_range": "all"})]
    assert case.untouched()


@pytest.mark.parametrize("kind", ["outside", "another", "stray"])
async def test_a_half_deleted_row_pointing_outside_is_finished_without_unlinking(
        prepared: Prepared, tmp_path: Path, kind: str) -> None:
    case = _case(prepared, tmp_path)
    async with await ReleaseManager.open(case.world.deploy) as manager:
        await _plant(manager, HOSTILE[kind](case))
        store = await manager.index()
        row = await store.get_backup(HOSTILE_ID)
        assert row is not None
        row.deleting = True
        await store.save_backup(row)
        await manager.recover()
        assert await store.get_backup(HOSTILE_ID) is None
    assert case.untouched()


async def test_an_archive_moved_into_the_backups_folder_is_found_by_name(
        prepared: Prepared, tmp_path: Path) -> None:
    """The refusal's hint holds: a row of an older backups folder, its archive moved into
    the current one by hand, points there again at the next operation, which verifies."""
    case = _case(prepared, tmp_path)
    async with await ReleaseManager.open(case.world.deploy) as manager:
        store = await manager.index()
        (real,) = await store.list_backups()
        moved_from = case.world.base / "old-backups" / Path(real.file_path or "").name
        real.file_path = str(moved_from)
        await store.save_backup(real)
        # The operation's reconcile (under its lock) points the row there, then it runs.
        assert (await manager.verify_backup(real.id)).file_path == str(
            case.backups / moved_from.name)


async def test_an_archive_another_row_names_is_still_adopted_as_its_own(
        prepared: Prepared, tmp_path: Path) -> None:
    """A crafted row naming another backup's archive does not make that archive known:
    the index having lost the archive's own row, the reconcile adopts it again under its
    own id, and leaves the crafted row as it is."""
    case = _case(prepared, tmp_path)
    (real,) = case.others
    real_id = real.name.split(".tar")[0]
    async with await ReleaseManager.open(case.world.deploy) as manager:
        await _plant(manager, str(real))
        store = await manager.index()
        await store.delete_backup(real_id)
        await manager.recover()
        adopted, crafted = await store.get_backup(real_id), await store.get_backup(HOSTILE_ID)
    assert adopted is not None and adopted.file_path == str(real)
    assert crafted is not None and crafted.file_path == str(real)
    assert case.untouched()
