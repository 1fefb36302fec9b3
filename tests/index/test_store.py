"""The index: schema versions (SQLite's), the journal, the audit log and backup rows (in both
backends: SQLite, and PostgreSQL on a real server)."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from gitrelease.core.errors import IndexStoreError
from gitrelease.core.models import UpdateSession, UpdateStatus, UpdateType, utcnow
from gitrelease.core.tether import Group
from gitrelease.core.text import Secrets
from gitrelease.index.sqlite import SQLiteStore
from tests.index.backends import Backend, backend

__all__ = ["backend"]  # the fixture, used here


def make_session(session_id: str, status: UpdateStatus, age: timedelta) -> UpdateSession:
    started = utcnow() - age
    return UpdateSession(
        session_id, UpdateType.BOT, status, 0, started,
        started if status is UpdateStatus.COMPLETED else None, "1.1.0", "1.0.0", None, [], 5,
        False, "test", from_commit="a" * 40, warnings=["w"])


async def test_new_index_is_wal_versioned_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "update_manager.db"
    store = await SQLiteStore.open(path)
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 8
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"update_sessions", "session_steps", "audit_log", "backups"} <= tables
    assert path.stat().st_mode & 0o777 == 0o600
    reopened = await SQLiteStore.open(path)  # migrations are not applied twice
    await reopened.close()


async def test_index_from_a_newer_gitrelease_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "update_manager.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(IndexStoreError) as caught:
        await SQLiteStore.open(path)
    assert "newer" in caught.value.message


async def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "update_manager.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexStoreError):
        await SQLiteStore.open(path)


async def test_sessions_roundtrip_and_statistics(backend: Backend) -> None:
    store = await backend.open()
    try:
        old = make_session("old", UpdateStatus.FAILED, timedelta(days=10))
        done = make_session("done", UpdateStatus.COMPLETED, timedelta(hours=2))
        running = make_session("running", UpdateStatus.INSTALLING, timedelta(minutes=1))
        for s in (old, done, running):
            await store.create_session(s)
        done.steps_completed = ["preflight", "fetch"]
        done.package_changes = [{"name": "botlib", "from": "2.0", "to": "1.5",
                                 "downgrade": True}]
        await store.save_session(done)
        loaded = await store.get_session("done")
        assert loaded == done
        assert await store.get_session("nope") is None
        recent = await store.list_sessions(since=utcnow() - timedelta(days=1))
        assert [s.id for s in recent] == ["running", "done"]
        assert [s.id for s in await store.unfinished_sessions()] == ["running"]
        assert await store.session_counts(utcnow() - timedelta(days=1)) == {
            "completed": 1, "installing": 1}
        assert (await store.session_counts())["failed"] == 1
        last = await store.last_completed()
        assert last is not None and last.id == "done"
        await store.add_step("done", "fetch", "started")
        await store.add_step("done", "fetch", "done", "ok")
        steps = await store.steps("done")
        assert [(s.seq, s.step, s.state, s.detail) for s in steps] == [
            (1, "fetch", "started", ""), (2, "fetch", "done", "ok")]
        await store.audit("cli:root", "install", "1.1.0", "completed", {"session": "done"})
        (entry,) = await store.audit_entries()
        assert (entry.actor, entry.action, entry.outcome) == ("cli:root", "install", "completed")
        assert entry.detail == {"session": "done"}
    finally:
        await store.close()


async def test_journal_notes_are_stored_as_written_and_failures_without_secrets(
        backend: Backend, tmp_path: Path) -> None:
    """A note is machine data the product wrote for its own recovery (a pip freeze with an
    editable install's path, a process group, the paths a checkout keeps): it is stored
    byte for byte, even where it holds a value of `.env`, or recovery would read ``***``
    (no packages put back, a group not stopped, a path deleted). What a step said when it
    failed is text for people, and has the secrets taken out."""
    env = tmp_path / ".env"
    env.write_text("BOT_HOME=/srv/bot\nGROUP_SECRET=4242\nDISCORD_TOKEN=tok-en-value-1\n")
    store = await backend.open(hide=Secrets(env))
    notes = {"freeze": "-e /srv/bot\nrequests==2.31.0\n",
             "group:health_check": "pgid=4242 started=1733580000",
             "checkout:kept": json.dumps(["/srv/bot/data/kept.txt"])}
    try:
        await store.create_session(make_session("s", UpdateStatus.INSTALLING, timedelta()))
        for name, detail in notes.items():
            await store.add_step("s", name, "note", detail)
        await store.add_step("s", "health_check", "failed",
                             "exited 3 in /srv/bot with tok-en-value-1")
        steps = {s.step: s for s in await store.steps("s")}
    finally:
        await store.close()
    assert {name: steps[name].detail for name in notes} == notes
    assert Group.parse(steps["group:health_check"].detail) == Group(4242, 1733580000)
    assert steps["health_check"].detail == "exited 3 in *** with ***"


async def test_two_connections_opening_a_new_index_at_once(backend: Backend) -> None:
    import asyncio

    stores = await asyncio.gather(*(backend.open() for _ in range(4)))
    try:
        await stores[0].audit("a", "b", None, "completed")
        assert len(await stores[3].audit_entries()) == 1  # one index, migrated once
    finally:
        for store in stores:
            await store.close()


async def test_a_version_1_index_is_migrated_in_place(tmp_path: Path) -> None:
    from gitrelease.index import sqlite_schema as store_module

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(store_module._MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO update_sessions (id, update_type, status, progress, started_at, "
            "target_version, current_version, steps_completed, total_steps, "
            "rollback_available, initiated_by) VALUES ('s1', 'bot', 'completed', 100, "
            "'2024-01-01T00:00:00+00:00', '1.1.0', '1.0.0', '[]', 5, 0, 'cli')")
    db.close()
    store = await SQLiteStore.open(path)
    try:
        old = await store.get_session("s1")
        assert old is not None and old.backup_id is None and old.package_changes == []
        assert await store.list_backups() == []
    finally:
        await store.close()
    assert rows_of(path, "PRAGMA user_version") == [(8,)]


def rows_of(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        result = db.execute(sql).fetchall()
    db.close()
    return result


async def test_backup_rows_stay_small_whatever_the_file_count(backend: Backend) -> None:
    from gitrelease.core.models import Backup, BackupStatus, BackupType

    store = await backend.open()
    files = [{"path": f"data/f{n}.json", "kind": "data", "size": 1, "mode": 420,
              "sha256": "0" * 64} for n in range(5000)]
    backup = Backup("b1", "b1", BackupType.FULL, BackupStatus.COMPLETED, None, 1, 1, utcnow(),
                    utcnow(), None, None, False, {"manifest": {"backup_id": "b1",
                                                               "files": files}})
    try:
        await store.save_backup(backup)
        (listed,) = await store.list_backups()
        assert "files" not in listed.metadata["manifest"]
        assert listed.metadata["manifest"]["file_count"] == 5000
        assert (await store.backup_manifest(listed))["files"] == files
        await store.delete_backup("b1")
        assert (await store.backup_manifest(listed))["files"] == []
    finally:
        await store.close()
    assert backend.read_elsewhere("SELECT MAX(LENGTH(metadata)) FROM backups") == [(None,)]


async def test_the_offsite_queue_and_its_columns(backend: Backend) -> None:
    """Only the offsite columns change (a row's other fields are never written back stale),
    and the queue holds what is to be uploaded, under way or failed, oldest first."""
    from gitrelease.core.models import Backup, BackupStatus, BackupType, OffsiteState

    store = await backend.open()
    now = utcnow()
    try:
        for n, state in enumerate([OffsiteState.QUEUED, OffsiteState.UPLOADED,
                                   OffsiteState.NONE, OffsiteState.FAILED]):
            await store.save_backup(Backup(
                f"b{n}", f"b{n}", BackupType.FULL, BackupStatus.COMPLETED, f"/x/b{n}.tar", 1,
                1, now + timedelta(seconds=n), now, None, "0" * 64, False, {},
                offsite=state))
        assert [b.id for b in await store.offsite_queue()] == ["b0", "b3"]
        first = await store.get_backup("b0")
        assert first is not None
        first.keep = True
        await store.save_backup(first)
        await store.set_offsite("b0", OffsiteState.FAILED, error="InvalidAccessKeyId",
                                attempts=2, at=now)
        again = await store.get_backup("b0")
        assert again is not None and again.keep  # the other columns as they were
        assert (again.offsite, again.offsite_error, again.offsite_attempts) == (
            OffsiteState.FAILED, "InvalidAccessKeyId", 2)
        assert again.offsite_at == now and again.location == "failed"
        await store.set_offsite("b0", OffsiteState.UPLOADED, at=now)
        await store.set_offsite("b3", OffsiteState.UPLOADING, attempts=1, at=now)
        assert [b.id for b in await store.offsite_queue()] == ["b3"]
        done = await store.get_backup("b0")
        assert done is not None and done.offsite_error is None and done.location == "both"
    finally:
        await store.close()
