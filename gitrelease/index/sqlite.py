"""`SQLiteStore`: the embedded backend of the index (aiosqlite, WAL) at data/update_manager.db.

SQLite specifics (pragmas, `user_version`, the partial indexes' exact WHERE terms) stay here.
One class on purpose, over the ~400-line aim: each method is one statement against one
connection, and splitting them by table would only scatter the connection's handling.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from gitrelease.core.errors import IndexBusy, IndexStoreError
from gitrelease.core.models import (
    ARCHIVE_MISSING,
    TERMINAL_STATUSES,
    Backup,
    BackupStatus,
    BackupType,
    OffsiteState,
    UpdateSchedule,
    UpdateSession,
    UpdateStatus,
    utcnow,
)
from gitrelease.core.text import redact
from gitrelease.index import rows as records
from gitrelease.index.rows import BACKUP_COLUMNS as _BACKUP_COLUMNS
from gitrelease.index.rows import SESSION_COLUMNS as _SESSION_COLUMNS
from gitrelease.index.sqlite_errors import Guarded, index_error
from gitrelease.index.sqlite_schema import _MIGRATIONS
from gitrelease.index.store import AuditEntry, BackupFiles, BackupSummary, JournalStep

__all__ = ["BACKUP_SORTS", "BUSY_TIMEOUT", "SQLiteStore"]

#: Seconds a statement waits for another process's hold on the index (the setting
#: index_busy_timeout) before the index is said to be busy.
BUSY_TIMEOUT = 10.0

# How `query_backups` orders each sort, ties included. The reference is a stable Python sort
# of every row (newest first, then id descending) by one key, reversed for date and size:
# rows with equal keys keep that base order, hence the trailing columns.
BACKUP_SORTS = {
    "date": "created_at DESC, id DESC",
    "size": "COALESCE(compressed_size, 0) DESC, created_at DESC, id DESC",
    "name": "py_lower(name), created_at DESC, id DESC",
    "type": "backup_type, created_at, id DESC",
}
# What `backups.reconcile` writes on a completed backup whose archive has gone.
_MISSING = ARCHIVE_MISSING
# Rows a reconcile must settle: the WHERE of the partial index backups_unsettled, term for
# term (SQLite uses a partial index only for a query whose WHERE implies the index's).
_UNSETTLED = ("deleting <> 0 OR status IN ('creating', 'compressing') "
              "OR (status = 'completed' AND file_path IS NULL)")

# A session that found nothing to do starts and ends at the same commit.
_CHANGED = "(from_commit IS NULL OR to_commit IS NULL OR from_commit <> to_commit)"


# Word for word the WHERE of the partial index backups_offsite_queue, so that it is used.
_QUEUED = "offsite IN ('queued', 'uploading', 'failed')"


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _stored(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A record's values as SQLite keeps them: timestamps as ISO text, booleans as 0/1."""
    return tuple(_ts(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v
                 for v in values)


class SQLiteStore:
    """The embedded index backend."""

    def __init__(self, db: Guarded, path: Path, hide: records.Hide = redact) -> None:
        self._db = db
        self.path = path
        self.hide = hide  # applied to what a failure said, before it is stored

    @classmethod
    async def open(cls, path: Path, hide: records.Hide = redact, *,
                   busy_timeout: float = BUSY_TIMEOUT) -> SQLiteStore:
        """Open (create, migrate) the index. A statement waits up to `busy_timeout`
        seconds for another process's hold on the file before it says the index is busy
        (`sqlite_errors.index_error` says what each failure is)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        try:
            raw = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        except sqlite3.Error as exc:
            raise index_error(exc, path, busy_timeout) from None
        db = Guarded(raw, path, busy_timeout)
        store = cls(db, path, hide)
        try:
            if created:
                os.chmod(path, 0o600)  # it names who did what; not for every local user
            await db.execute(f"PRAGMA busy_timeout = {max(1, round(busy_timeout * 1000))}")
            await store._enable_wal(busy_timeout)
            # FULL: a journal row must survive power loss, not only a crash of the process.
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            # SQLite's lower() knows ASCII only; names sort as Python's str.lower sorts them.
            await db.create_function("py_lower", 1, str.lower, deterministic=True)
            await store._migrate()
        except sqlite3.Error as exc:  # what the guard does not see (create_function)
            await db.close()
            raise index_error(exc, path, busy_timeout) from None
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _enable_wal(self, bound: float) -> None:
        # Switching a new file to WAL needs it to itself and SQLite answers "locked" at once
        # (no busy handler) while another process is opening it too: wait a little, retry,
        # for as long as a statement would wait.
        deadline = time.monotonic() + bound
        while True:
            try:
                await self._db.execute("PRAGMA journal_mode = WAL")
                return
            except IndexBusy:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _migrate(self) -> None:
        # The version is read inside the write transaction: two processes opening a new
        # index at once must not both apply the same migration.
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            async with self._db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            if version > len(_MIGRATIONS):
                raise IndexStoreError(
                    f"the index {self.path} has schema version {version}, newer than this "
                    f"gitrelease knows ({len(_MIGRATIONS)})",
                    hint="upgrade gitrelease; never downgrade it over a newer index",
                )
            for script in _MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        await self._db.execute(statement)
            if version < len(_MIGRATIONS):
                await self._db.execute(f"PRAGMA user_version = {len(_MIGRATIONS)}")
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    # -- update sessions -------------------------------------------------------------------

    async def create_session(self, session: UpdateSession) -> None:
        marks = ", ".join("?" for _ in _SESSION_COLUMNS)
        await self._db.execute(
            f"INSERT INTO update_sessions ({', '.join(_SESSION_COLUMNS)}) VALUES ({marks})",  # noqa: S608
            self._session_row(session),
        )

    async def save_session(self, session: UpdateSession) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _SESSION_COLUMNS[1:])
        row = self._session_row(session)
        await self._db.execute(
            f"UPDATE update_sessions SET {assignments} WHERE id = ?",  # noqa: S608
            (*row[1:], row[0]),
        )

    async def add_step(self, session_id: str, step: str, state: str, detail: str = "") -> None:
        await self._db.execute(
            "INSERT INTO session_steps (session_id, seq, step, state, at, detail) "
            "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM session_steps "
            "WHERE session_id = ?), ?, ?, ?, ?)",
            (session_id, session_id, step, state, _ts(utcnow()),
             records.step_detail(self.hide, state, detail)),
        )

    async def get_session(self, session_id: str) -> UpdateSession | None:
        rows = await self._select_sessions("WHERE id = ?", (session_id,))
        return rows[0] if rows else None

    async def list_sessions(
        self, since: datetime | None = None, limit: int = 20
    ) -> list[UpdateSession]:
        where, params = ("WHERE started_at >= ?", (_ts(since),)) if since else ("", ())
        return await self._select_sessions(
            f"{where} ORDER BY started_at DESC LIMIT ?", (*params, limit))

    async def unfinished_sessions(self) -> list[UpdateSession]:
        """Sessions a dead process left half-way. One that is RESTARTING did all its steps
        and waits for the restarted bot to confirm (gitrelease.deploy.boot): it is not half-way."""
        done = {*TERMINAL_STATUSES, UpdateStatus.RESTARTING}
        # The complement spelled out (IN, not NOT IN) lets the status index answer it.
        running = [s.value for s in UpdateStatus if s not in done]
        marks = ", ".join("?" for _ in running)
        return await self._select_sessions(
            f"WHERE status IN ({marks}) ORDER BY started_at", tuple(running))

    async def last_completed(self) -> UpdateSession | None:
        """The last update that changed something (an "already up to date" run does not)."""
        rows = await self._select_sessions(
            f"WHERE status = ? AND {_CHANGED} ORDER BY completed_at DESC LIMIT 1",
            (UpdateStatus.COMPLETED.value,))
        return rows[0] if rows else None

    async def steps(self, session_id: str) -> list[JournalStep]:
        async with self._db.execute(
            "SELECT seq, step, state, at, detail FROM session_steps "
            "WHERE session_id = ? ORDER BY seq", (session_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [JournalStep(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4]) for r in rows]

    async def session_counts(self, since: datetime | None = None) -> dict[str, int]:
        """Sessions by status, leaving out the runs that found nothing to install."""
        where, params = (f"WHERE {_CHANGED} AND started_at >= ?", (_ts(since),)) if since \
            else (f"WHERE {_CHANGED}", ())
        async with self._db.execute(
            f"SELECT status, COUNT(*) FROM update_sessions {where} GROUP BY status",  # noqa: S608
            params,
        ) as cursor:
            rows = await cursor.fetchall()
        return {status: count for status, count in rows}

    async def session_analytics(self, since: datetime | None = None) -> dict[str, Any]:
        """Counts by type and outcome and durations, computed by SQL over the journal."""
        where, params = (f"WHERE {_CHANGED} AND started_at >= ?", (_ts(since),)) if since \
            else (f"WHERE {_CHANGED}", ())
        async with self._db.execute(
            "SELECT update_type, status, COUNT(*), AVG(duration_seconds), "  # noqa: S608
            f"MAX(duration_seconds) FROM update_sessions {where} GROUP BY update_type, status",
            params,
        ) as cursor:
            rows = await cursor.fetchall()
        return records.analytics(rows)

    async def _select_sessions(
        self, clause: str, params: Sequence[Any]
    ) -> list[UpdateSession]:
        async with self._db.execute(
            f"SELECT {', '.join(_SESSION_COLUMNS)} FROM update_sessions {clause}",  # noqa: S608
            tuple(params),
        ) as cursor:
            rows = await cursor.fetchall()
        return [self._session_from_row(row) for row in rows]

    def _session_row(self, s: UpdateSession) -> tuple[Any, ...]:
        return _stored(records.session_values(s, self.hide))

    @staticmethod
    def _session_from_row(row: Sequence[Any]) -> UpdateSession:
        return records.session_from(row, datetime.fromisoformat)

    # -- audit log -------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str | None, outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self._db.execute(
            "INSERT INTO audit_log (at, actor, action, target, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (_ts(utcnow()), actor, action, target, outcome,
             json.dumps(records.hidden(self.hide, detail or {}))),
        )

    async def audit_entries(self, limit: int = 50) -> list[AuditEntry]:
        async with self._db.execute(
            "SELECT at, actor, action, target, outcome, detail FROM audit_log "
            "ORDER BY id DESC LIMIT ?", (limit,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            AuditEntry(datetime.fromisoformat(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]))
            for r in rows
        ]

    # -- backups ---------------------------------------------------------------------------

    async def save_backup(self, backup: Backup) -> None:
        """Insert or update a backup's row; a manifest's file list goes to its own table."""
        manifest = backup.metadata.get("manifest")
        if isinstance(manifest, dict) and "files" in manifest:
            await self._db.execute(
                "INSERT INTO backup_manifests (backup_id, files) VALUES (?, ?) "
                "ON CONFLICT (backup_id) DO UPDATE SET files = excluded.files",
                (backup.id, json.dumps(manifest["files"])))
        row = self._backup_row(backup)
        columns = ", ".join(_BACKUP_COLUMNS)
        marks = ", ".join("?" for _ in _BACKUP_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _BACKUP_COLUMNS[1:]
                            if c not in records.OFFSITE_COLUMNS)
        await self._db.execute(
            f"INSERT INTO backups ({columns}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT (id) DO UPDATE SET {updates}", row)

    async def get_backup(self, id_or_name: str) -> Backup | None:
        rows = await self._select_backups("WHERE id = ? OR name = ? ORDER BY id = ? DESC",
                                          (id_or_name, id_or_name, id_or_name))
        return rows[0] if rows else None

    async def list_backups(self) -> list[Backup]:
        return await self._select_backups("ORDER BY created_at DESC, id DESC", ())

    async def query_backups(
        self, *, backup_type: BackupType | None, since: datetime | None, sort_by: str,
        limit: int,
    ) -> list[Backup]:
        """The backups `backup list` shows: not being deleted, created at or after `since`,
        of one type, in the order of BACKUP_SORTS, at most `limit`; only those rows are read."""
        if sort_by not in BACKUP_SORTS:
            raise ValueError(f"unknown sort {sort_by!r}")
        where, params = ["deleting = 0"], []
        if since is not None:
            where.append("created_at >= ?")
            params.append(_ts(since))
        if backup_type is not None:
            where.append("backup_type = ?")
            params.append(backup_type.value)
        return await self._select_backups(
            f"WHERE {' AND '.join(where)} ORDER BY {BACKUP_SORTS[sort_by]} LIMIT ?",
            (*params, limit))

    async def backup_summary(self) -> BackupSummary:
        """Counts by status and stored bytes by SQL: two rows read, not every backup."""
        completed = BackupStatus.COMPLETED.value
        async with self._db.execute(
            "SELECT status, COUNT(*), SUM(COALESCE(compressed_size, 0)) FROM backups "
            "GROUP BY status") as cursor:
            rows = await cursor.fetchall()
        # Damaged archives still take room: the few corrupted rows whose file is there.
        async with self._db.execute(
            "SELECT SUM(COALESCE(compressed_size, 0)) FROM backups WHERE status = ? "
            "AND file_path IS NOT NULL AND problem IS NOT ?",
            (BackupStatus.CORRUPTED.value, _MISSING)) as cursor:
            damaged = await cursor.fetchone()
        async with self._db.execute(
            "SELECT id, created_at FROM backups WHERE status = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (completed,)) as cursor:
            latest = await cursor.fetchone()
        async with self._db.execute(
            "SELECT id FROM backups WHERE status = ? AND verified_at IS NOT NULL "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (completed,)) as cursor:
            verified = await cursor.fetchone()
        return records.backup_summary(
            rows, damaged[0] if damaged else 0,
            (latest[0], datetime.fromisoformat(latest[1])) if latest else None,
            verified[0] if verified else None)

    async def backup_files(self) -> BackupFiles:
        """Every row's archive path and whether the row says it exists, from the index
        backups_archives alone; each list comes back as one string (tens of thousands of
        rows as Python tuples would cost more than all the rest)."""
        lists = []
        for where, params in (
            ("file_path IS NOT NULL", ()),
            ("status = ? AND file_path IS NOT NULL", (BackupStatus.COMPLETED.value,)),
            ("status = ? AND file_path IS NOT NULL AND problem = ?",
             (BackupStatus.CORRUPTED.value, _MISSING)),
        ):
            async with self._db.execute(
                f"SELECT group_concat(file_path, char(0)) FROM backups INDEXED BY "  # noqa: S608
                f"backups_archives WHERE {where}", params) as cursor:
                row = await cursor.fetchone()
            lists.append(row[0].split("\0") if row and row[0] else [])
        return BackupFiles(*lists)

    async def backups_unsettled(self) -> bool:
        """A row a dead process left half-way (still being written, or being deleted), or
        a completed one that names no archive at all."""
        async with self._db.execute(
            f"SELECT EXISTS (SELECT 1 FROM backups WHERE {_UNSETTLED})") as cursor:  # noqa: S608
            row = await cursor.fetchone()
        return bool(row and row[0])

    async def change_stamp(self) -> tuple[int, int]:
        """A value that differs after any write to the index, by this connection (its count
        of changes) or another, in this process or not (SQLite's data_version)."""
        async with self._db.execute(
            "SELECT total_changes(), data_version FROM pragma_data_version") as cursor:
            row = await cursor.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def delete_backup(self, backup_id: str) -> None:
        await self._db.execute("DELETE FROM backup_manifests WHERE backup_id = ?", (backup_id,))
        await self._db.execute("DELETE FROM backups WHERE id = ?", (backup_id,))

    async def set_offsite(self, backup_id: str, state: OffsiteState, *,
                          error: str | None = None, attempts: int = 0,
                          at: datetime | None = None) -> None:
        """Only the offsite columns: a row's other fields (verified, kept) are never
        written back stale by an upload that ran beside the change."""
        await self._db.execute(
            "UPDATE backups SET offsite = ?, offsite_error = ?, offsite_attempts = ?, "
            "offsite_at = ? WHERE id = ?",
            (state.value, records.hidden(self.hide, error), attempts,
             None if at is None else _ts(at), backup_id))

    async def offsite_queue(self) -> list[Backup]:
        """Backups whose upload is to come, under way or failed; oldest first."""
        return await self._select_backups(
            f"WHERE {_QUEUED} AND deleting = 0 ORDER BY created_at, id", ())

    async def backup_manifest(self, backup: Backup) -> dict[str, Any]:
        """A backup's whole manifest: the summary in its row and the list of its files."""
        async with self._db.execute(
            "SELECT files FROM backup_manifests WHERE backup_id = ?", (backup.id,)
        ) as cursor:
            row = await cursor.fetchone()
        summary = backup.metadata.get("manifest", {})
        return {**summary, "files": json.loads(row[0]) if row else summary.get("files", [])}

    async def backups_in_use(self) -> set[str]:
        """Backups that an unfinished update session may still need for its way back."""
        done = [s.value for s in TERMINAL_STATUSES]
        marks = ", ".join("?" for _ in done)
        async with self._db.execute(
            f"SELECT backup_id FROM update_sessions WHERE backup_id IS NOT NULL "  # noqa: S608
            f"AND status NOT IN ({marks})", tuple(done),
        ) as cursor:
            return {row[0] for row in await cursor.fetchall()}

    async def _select_backups(self, clause: str, params: Sequence[Any]) -> list[Backup]:
        async with self._db.execute(
            f"SELECT {', '.join(_BACKUP_COLUMNS)} FROM backups {clause}",  # noqa: S608
            tuple(params),
        ) as cursor:
            rows = await cursor.fetchall()
        return [self._backup_from_row(row) for row in rows]

    def _backup_row(self, b: Backup) -> tuple[Any, ...]:
        return _stored(records.backup_values(b, self.hide))

    @staticmethod
    def _backup_from_row(row: Sequence[Any]) -> Backup:
        return records.backup_from(row, datetime.fromisoformat)

    # -- schedules ---------------------------------------------------------------------------

    async def save_schedule(self, schedule: UpdateSchedule) -> None:
        marks = ", ".join("?" for _ in records.SCHEDULE_COLUMNS)
        kept = ("name", "update_time", "update_days", "update_types", "enabled", "last_run",
                "next_run", "last_outcome")
        await self._db.execute(
            f"INSERT INTO schedules ({', '.join(records.SCHEDULE_COLUMNS)}) "  # noqa: S608
            f"VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in kept),
            _stored(records.schedule_values(schedule, self.hide)))

    async def list_schedules(self) -> list[UpdateSchedule]:
        async with self._db.execute(
            f"SELECT {', '.join(records.SCHEDULE_COLUMNS)} FROM schedules "  # noqa: S608
            "ORDER BY created_at, id") as cursor:
            found = await cursor.fetchall()
        return [records.schedule_from(r, datetime.fromisoformat) for r in found]

    async def delete_schedule(self, schedule_id: str) -> bool:
        cursor = await self._db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
        return cursor.rowcount > 0

    async def claim_schedule(
        self, schedule_id: str, due: datetime, following: datetime | None
    ) -> bool:
        """Take the run due at `due` by moving next_run on: true for exactly one runner,
        however many try at once. A runner that dies after this loses that one run rather
        than holding the schedule forever."""
        cursor = await self._db.execute(
            "UPDATE schedules SET next_run = ? WHERE id = ? AND next_run = ?",
            (_ts(following) if following else None, schedule_id, _ts(due)))
        return cursor.rowcount == 1
