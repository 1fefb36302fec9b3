"""The index's SQL answers against the Python they replaced, on the same real rows, in both
backends (SQLite, and PostgreSQL on a real server: `tests.index.backends`)."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gitrelease.core.models import Backup, BackupStatus, BackupType, utcnow
from gitrelease.core.settings import Settings
from gitrelease.index import sqlite_schema as store_module
from gitrelease.index.sqlite import SQLiteStore
from gitrelease.index.store import Store
from gitrelease.manager import ReleaseManager
from gitrelease.state.backup_options import BACKUP_RANGES, SORTS, ListFilters
from gitrelease.state.backups import BackupService
from gitrelease.state.sources import Layout
from tests.conftest import World
from tests.index.backends import Backend, backend

__all__ = ["backend"]  # the fixture, used here

# Names that sort differently under SQLite's ASCII-only lower() and Python's str.lower.
NAMES = ["alpha", "Alpha", "beta", "Émile", "émile", "Zoë", "zed", "İstanbul", "istanbul",
         "Straße", "STRASSE", "b_1", "B-2", "10", "9"]


def make_backup(
    n: int, created: datetime, *, kind: BackupType, size: int | None, name: str,
    status: BackupStatus = BackupStatus.COMPLETED, deleting: bool = False,
    verified: bool = False, path: str | None = None,
) -> Backup:
    return Backup(
        id=f"backup_{n:04d}", name=name, backup_type=kind, status=status,
        file_path=path if path is not None else f"/nowhere/backup_{n:04d}.tar.gz",
        file_size=size, compressed_size=size, created_at=created,
        completed_at=created + timedelta(seconds=5), description=f"row {n}", checksum=None,
        auto_created=n % 2 == 0,
        metadata={"manifest": {"pip_freeze": "x==1\n" * 20, "files": [{"name": "a"}]}},
        keep=n % 7 == 0, verified_at=created if verified else None, deleting=deleting)


async def fill(store: Store) -> Store:
    """Rows with ties in every sort key, every type and status, some being deleted; no row
    within a minute of a time range's edge (the two sides read the clock apart)."""
    rng = random.Random(7)
    now = utcnow()
    ages = [timedelta(hours=h) for h in (1, 5, 30, 100, 200, 500, 1000, 2000, 2500, 3000)]
    n = 0
    for age in ages:
        created = now - age
        for _ in range(rng.randint(1, 4)):  # several backups at the very same instant
            n += 1
            await store.save_backup(make_backup(
                n, created, kind=rng.choice(list(BackupType)),
                size=rng.choice([None, 0, 10, 10, 500, 2**40]),
                name=f"{NAMES[n % len(NAMES)]}{n // len(NAMES) or ''}",
                status=rng.choice([BackupStatus.COMPLETED] * 3 + list(BackupStatus)),
                deleting=rng.random() < 0.15, verified=rng.random() < 0.5))
    return store


@pytest.fixture
async def filled(backend: Backend) -> AsyncIterator[Store]:
    store = await fill(await backend.open())
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def filled_sqlite(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(tmp_path / "data" / "update_manager.db")
    await fill(store)
    try:
        yield store
    finally:
        await store.close()


def service(store: Store, tmp_path: Path) -> BackupService:
    data = tmp_path / "data"
    layout = Layout(tmp_path, data, data / "backups", data / "update_logs")
    return BackupService(layout, Settings(), store, python="python",
                         gitrelease_version="test")


async def test_query_backups_gives_what_the_python_listing_gives(
    filled: Store, tmp_path: Path
) -> None:
    reference = service(filled, tmp_path)
    kinds = [None, *BackupType]
    for kind, time_range, sort_by, limit in itertools.product(
            kinds, BACKUP_RANGES, SORTS, (1, 3, 50)):
        filters = ListFilters(kind, time_range, limit, sort_by)
        expected = await reference.list_backups(filters)
        window = BACKUP_RANGES[time_range]
        got = await filled.query_backups(
            backup_type=kind, since=utcnow() - window if window else None, sort_by=sort_by,
            limit=limit)
        assert [b.id for b in got] == [b.id for b in expected], filters
        assert got == expected  # whole rows, metadata included


async def test_the_manager_lists_by_sql_as_the_service_does(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        for n in range(4):
            await manager.create_backup("config", {"backup_name": f"B{n}"})
        store = await manager.index()
        reference = manager.deployment.backups(store)
        for sort_by in SORTS:
            filters = {"time_range": "all", "sort_by": sort_by, "limit": 50}
            assert await manager.list_backups(filters) == \
                await reference.list_backups(ListFilters.from_mapping(filters))


async def test_backup_summary_counts_what_the_rows_say(filled: Store) -> None:
    newest = next(b for b in await filled.list_backups() if b.status is BackupStatus.COMPLETED)
    newest.verified_at = None  # so that "the newest verified" is another row
    await filled.save_backup(newest)
    rows = await filled.list_backups()  # newest first, then id descending
    completed = [b for b in rows if b.status is BackupStatus.COMPLETED]
    summary = await filled.backup_summary()
    assert summary.total == len(rows)
    for status in BackupStatus:
        assert summary.by_status.get(status.value, 0) == \
            sum(1 for b in rows if b.status is status)
    assert summary.completed_bytes == sum(b.compressed_size or 0 for b in completed)
    assert summary.latest == (completed[0].id, completed[0].created_at)
    assert summary.newest_verified == next(b.id for b in completed if b.verified_at)
    assert summary.newest_verified != completed[0].id


async def test_backup_summary_of_an_empty_index(backend: Backend) -> None:
    store = await backend.open()
    try:
        summary = await store.backup_summary()
    finally:
        await store.close()
    assert (summary.total, summary.by_status, summary.completed_bytes) == (0, {}, 0)
    assert summary.latest is None and summary.newest_verified is None


async def test_backup_files_and_unsettled_rows(backend: Backend) -> None:
    store = await backend.open()
    now = utcnow()
    try:
        plain = dict(kind=BackupType.FULL, size=1)
        await store.save_backup(make_backup(1, now, **plain, name="1", path="/b/one.tar.gz"))
        await store.save_backup(make_backup(2, now, **plain, name="2", path="/b/two.tar.gz",
                                            status=BackupStatus.FAILED))
        gone = make_backup(3, now, **plain, name="3", path="/b/three.tar.gz",
                           status=BackupStatus.CORRUPTED)
        gone.problem = "the archive is missing"
        await store.save_backup(gone)
        bad = make_backup(4, now, **plain, name="4", path="/b/four.tar.gz",
                          status=BackupStatus.CORRUPTED)
        bad.problem = "member data/x.db differs"
        await store.save_backup(bad)
        files = await store.backup_files()
        assert sorted(files.paths) == sorted(
            ["/b/one.tar.gz", "/b/two.tar.gz", "/b/three.tar.gz", "/b/four.tar.gz"])
        assert files.completed == ["/b/one.tar.gz"]
        assert files.missing == ["/b/three.tar.gz"]
        assert not await store.backups_unsettled()
        for change in ({"status": BackupStatus.CREATING}, {"status": BackupStatus.COMPRESSING},
                       {"deleting": True}, {"file_path": None}):
            row = make_backup(9, now, **plain, name="9", path="/b/nine.tar.gz")
            for key, value in change.items():
                setattr(row, key, value)
            await store.save_backup(row)
            assert await store.backups_unsettled(), change
            await store.delete_backup(row.id)
            assert not await store.backups_unsettled()
    finally:
        await store.close()


async def test_the_change_stamp_moves_with_every_write(backend: Backend) -> None:
    store = await backend.open()
    try:
        first = await store.change_stamp()
        assert await store.change_stamp() == first  # reading changes nothing
        await store.save_backup(make_backup(1, utcnow(), kind=BackupType.FULL, size=1,
                                            name="n"))
        second = await store.change_stamp()
        assert second != first
        # Another connection, as another process (or, sharing a server, another host).
        backend.write_elsewhere("UPDATE backups SET description = 'changed elsewhere'")
        assert await store.change_stamp() != second
    finally:
        await store.close()


async def test_the_hot_queries_never_read_every_row(filled_sqlite: SQLiteStore) -> None:
    """Each statement `backup list`, `status` and the look before a reconcile run is
    planned on an index: none scans a table of rows kilobytes long."""
    statements: list[str] = []
    await filled_sqlite._db.set_trace_callback(statements.append)
    since = utcnow() - timedelta(days=30)
    for sort_by in SORTS:
        await filled_sqlite.query_backups(backup_type=BackupType.FULL, since=since, sort_by=sort_by,
                                   limit=20)
    await filled_sqlite.backup_summary()
    await filled_sqlite.backup_files()
    await filled_sqlite.backups_unsettled()
    await filled_sqlite.unfinished_sessions()
    await filled_sqlite.session_analytics(since)
    await filled_sqlite.last_completed()
    await filled_sqlite.list_sessions(since, limit=10)
    await filled_sqlite.change_stamp()
    await filled_sqlite._db.set_trace_callback(None)
    assert len(statements) >= 14
    for sql in statements:
        if sql.startswith("--"):
            continue  # what SQLite runs inside pragma_data_version, traced as a comment
        async with filled_sqlite._db.execute(f"EXPLAIN QUERY PLAN {sql}") as cursor:
            plan = [row[-1] for row in await cursor.fetchall()]
        # SEARCH reads a range; a SCAN reads every row, unless it is of a covering index or
        # of the partial index that holds only the rows it is about.
        assert not [step for step in plan if step.startswith(("SCAN backups",
                    "SCAN update_sessions")) and "COVERING INDEX" not in step
                    and "backups_unsettled" not in step], (sql, plan)


async def test_a_version_4_index_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    with sqlite3.connect(path) as db:
        for script in store_module._MIGRATIONS[:4]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 4")
    db.close()
    old = await SQLiteStore.open(tmp_path / "scratch.db")  # rows written the usual way...
    now = utcnow()
    try:
        await old.save_backup(make_backup(1, now, kind=BackupType.FULL, size=3, name="kept"))
    finally:
        await old.close()
    with sqlite3.connect(path) as db:  # ...copied into the version-4 file, its columns
        db.execute("ATTACH DATABASE ? AS scratch", (str(tmp_path / "scratch.db"),))
        columns = ", ".join(r[1] for r in db.execute("PRAGMA main.table_info(backups)"))
        db.execute(f"INSERT INTO backups ({columns}) SELECT {columns} "  # noqa: S608
                   "FROM scratch.backups")
    db.close()
    store = await SQLiteStore.open(path)
    try:
        listed = await store.query_backups(backup_type=None, since=None, sort_by="name",
                                           limit=5)
        assert [b.name for b in listed] == ["kept"]
        assert (await store.backup_summary()).total == 1
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(store_module._MIGRATIONS),)
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    db.close()
    assert {"backups_type_created_at", "backups_status_created_at", "backups_archives",
            "backups_unsettled", "update_sessions_started_at", "update_sessions_status"} \
        <= indexes


async def test_a_version_5_index_gets_its_sessions_durations(tmp_path: Path) -> None:
    """Sessions written before durations were stored are given theirs by the migration, and
    the analytics read them; sessions written now carry theirs."""
    from gitrelease.core.models import UpdateSession, UpdateStatus, UpdateType

    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as db:
        for script in store_module._MIGRATIONS[:5]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 5")
        db.execute(
            "INSERT INTO update_sessions (id, update_type, status, progress, started_at, "
            "completed_at, target_version, current_version, steps_completed, total_steps, "
            "rollback_available, initiated_by, from_commit, to_commit, restart_needed, "
            "warnings) VALUES ('old', 'bot', 'completed', 100, '2026-11-01T10:00:00+00:00', "
            "'2026-11-01T10:01:30+00:00', '2', '1', '[]', 5, 1, 'cli', 'a', 'b', 0, '[]')")
    db.close()
    store = await SQLiteStore.open(path)
    try:
        since = datetime.fromisoformat("2026-10-01T00:00:00+00:00")
        assert (await store.session_analytics(since))["mean_duration_seconds"] == 90.0
        started = datetime.fromisoformat("2026-11-02T10:00:00+00:00")
        await store.create_session(UpdateSession(
            id="new", update_type=UpdateType.BOT, status=UpdateStatus.COMPLETED, progress=100,
            started_at=started, completed_at=started + timedelta(seconds=30),
            target_version="3", current_version="2", error_message=None, steps_completed=[],
            total_steps=5, rollback_available=True, initiated_by="cli", from_commit="b",
            to_commit="c"))
        analytics = await store.session_analytics(since)
        assert analytics["mean_duration_seconds"] == 60.0
        assert analytics["longest_duration_seconds"] == 90.0
    finally:
        await store.close()
