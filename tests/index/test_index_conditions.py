"""A busy or full index is not a broken one.

An index held by another process (a second SQLite connection in BEGIN EXCLUSIVE, a
PostgreSQL table lock) is waited for, up to a bound, and then said to be busy ("retry"),
never to be broken; a full disk is said with the index's path; only a corrupt file gets
the hint to move it aside (which would lose the recovery journal, the audit and the
schedules). The conditions are real: a real lock, a real full tmpfs (root only: skipped,
saying why, elsewhere), a real file of garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitrelease.core.errors import IndexBusy, IndexFull, IndexStoreError
from gitrelease.index.sqlite import SQLiteStore
from tests.conftest import REPO_ROOT, World
from tests.tmpfs import fill, small_disk

__all__ = ["small_disk"]  # the fixture, used here


@contextlib.contextmanager
def held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's hold on the index: a connection in an exclusive transaction."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield other
    finally:
        with contextlib.suppress(sqlite3.Error):
            other.execute("ROLLBACK")
        other.close()


async def new_index(path: Path) -> None:
    store = await SQLiteStore.open(path)
    await store.audit("tester", "made", None, "ok")
    await store.close()


def audit_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count = int(db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
    db.close()
    return count


def assert_busy(error: IndexStoreError, path: Path) -> None:
    assert isinstance(error, IndexBusy), error.message
    assert "busy" in error.message and "retry" in error.message
    assert str(path) in error.message
    assert "aside" not in error.hint and "new index" not in error.hint


async def test_a_held_index_is_busy_at_open_after_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "update_manager.db"
    await new_index(path)
    with held(path):
        started = time.monotonic()
        with pytest.raises(IndexStoreError) as caught:
            await SQLiteStore.open(path, busy_timeout=0.5)
        waited = time.monotonic() - started
    assert_busy(caught.value, path)
    assert 0.4 <= waited < 5
    assert audit_rows(path) == 1  # nothing lost, nothing to move aside


async def test_a_hold_let_go_within_the_bound_is_waited_out(tmp_path: Path) -> None:
    path = tmp_path / "update_manager.db"
    await new_index(path)
    with held(path) as other:
        threading.Timer(0.3, other.execute, ("ROLLBACK",)).start()
        store = await SQLiteStore.open(path, busy_timeout=5)
    await store.audit("tester", "after", None, "ok")
    await store.close()
    assert audit_rows(path) == 2


async def test_a_held_index_is_busy_mid_operation(tmp_path: Path) -> None:
    path = tmp_path / "update_manager.db"
    await new_index(path)
    store = await SQLiteStore.open(path, busy_timeout=0.3)
    try:
        with held(path), pytest.raises(IndexStoreError) as caught:
            await store.audit("tester", "during", None, "ok")
        assert_busy(caught.value, path)
        await store.audit("tester", "after", None, "ok")  # the same store, once let go
    finally:
        await store.close()
    assert audit_rows(path) == 2


def test_the_cli_says_busy_within_the_setting(world: World) -> None:
    index = world.deploy / "data" / "update_manager.db"
    asyncio.run(new_index(index))
    (world.deploy / "data" / "settings.toml").write_text("index_busy_timeout = 1\n")
    with held(index):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "backup",
             "list"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        waited = time.monotonic() - started
    assert done.returncode == 75, done.stderr
    assert "busy" in done.stderr and "retry" in done.stderr
    assert "aside" not in done.stderr and "internal error" not in done.stderr
    assert waited < 8


async def test_a_corrupt_index_still_says_move_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "update_manager.db"
    path.write_bytes(b"this is not a database, " * 200)
    with pytest.raises(IndexStoreError) as caught:
        await SQLiteStore.open(path, busy_timeout=0.5)
    assert not isinstance(caught.value, IndexBusy | IndexFull)
    assert "aside" in caught.value.hint


async def test_a_full_disk_is_said_with_the_path_and_loses_nothing(small_disk: Path) -> None:
    path = small_disk / "update_manager.db"
    await new_index(path)
    store = await SQLiteStore.open(path)
    try:
        filler = fill(small_disk)
        with pytest.raises(IndexStoreError) as caught:
            for n in range(50):  # a write that needs new pages
                await store.audit("tester", "big", None, "ok", {"n": n, "x": "y" * 60000})
        error = caught.value
        assert isinstance(error, IndexFull), error.message
        assert "full" in error.message and str(path) in error.message
        assert "aside" not in error.hint
        filler.unlink()
        await store.audit("tester", "after", None, "ok")  # space again: it goes on
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT action FROM audit_log WHERE action <> 'big'").fetchall() \
            == [("made",), ("after",)]
    db.close()


async def test_a_locked_postgres_table_is_busy_after_the_bound(pg_url: str) -> None:
    import psycopg

    from gitrelease.index.postgres import PostgresStore

    store = await PostgresStore.open(pg_url, "host:/srv/bot", busy_timeout=0.5)
    try:
        with psycopg.connect(pg_url) as other:
            other.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(IndexStoreError) as caught:
                await store.audit("tester", "during", None, "ok")
            other.rollback()
        assert isinstance(caught.value, IndexBusy), caught.value.message
        assert "busy" in caught.value.message and "retry" in caught.value.message
        await store.audit("tester", "after", None, "ok")
    finally:
        await store.close()
