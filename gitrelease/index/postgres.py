"""`PostgresStore`: the index on a PostgreSQL server that several deployments share.

Chosen with `index_url = "postgresql://…"` (or `GITRELEASE_INDEX_URL`). Every row carries the
`scope` of the deployment it belongs to, so each deployment sees exactly what it would see in
its own SQLite index, and a fleet's instances can be read side by side. psycopg 3 through a
small connection pool, autocommit: each method is one statement, as in the SQLite backend,
and a write bumps the scope's change stamp in the same statement's transaction (a trigger).
The URL is never shown with its password: errors name the server by user, host and database.
One class on purpose, over the ~400-line aim, for the reason `SQLiteStore` gives.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gitrelease.core.errors import IndexBusy, IndexFull, IndexStoreError
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
from gitrelease.index import rows
from gitrelease.index.postgres_fleet import FleetTables
from gitrelease.index.postgres_schema import MIGRATION_LOCK, MIGRATIONS
from gitrelease.index.rows import BACKUP_COLUMNS, SESSION_COLUMNS
from gitrelease.index.store import AuditEntry, BackupFiles, BackupSummary, JournalStep

__all__ = ["PostgresStore", "shown_url"]

# As `SQLiteStore.BACKUP_SORTS`: the same orders, ties included (text compares by code point).
_SORTS = {
    "date": "created_at DESC, id DESC",
    "size": "COALESCE(compressed_size, 0) DESC, created_at DESC, id DESC",
    "name": "name_key, created_at DESC, id DESC",  # name_key: the name as str.lower has it
    "type": "backup_type, created_at, id DESC",
}
_MISSING = ARCHIVE_MISSING
_CHANGED = "(from_commit IS NULL OR to_commit IS NULL OR from_commit <> to_commit)"
_POOL_SIZE = 4


def _moment(value: datetime) -> datetime:
    return value.astimezone(UTC)


def shown_url(url: str) -> str:
    """The server as people may see it: user, host, port and database, never a password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed URL is shown by its scheme only
        return "postgresql://(unreadable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresStore(FleetTables):
    """The shared index backend: one deployment's view (its `scope`) of the server."""

    def __init__(self, pool: Any, scope: str, url: str, hide: rows.Hide = redact) -> None:
        self._pool = pool
        self.scope = scope
        self.hide = hide  # applied to what a failure said, before it is stored
        self.busy_timeout = 10.0  # as `open` was given it
        self.shown = shown_url(url)
        self._url = url  # for the fleet's listening connection; never shown
        self._listener: Any = None
        self._lease: Any = None

    @classmethod
    async def open(cls, url: str, scope: str, *, timeout: float = 10.0,
                   hide: rows.Hide = redact, busy_timeout: float = 10.0) -> PostgresStore:
        """Connect (a pool of a few connections), and bring the schema up to date. A
        statement waits up to `busy_timeout` seconds for a lock another session holds
        (the server's lock_timeout), then the index is said to be busy."""
        import psycopg
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        if not isinstance(scope, str) or not scope or len(scope) > 300:
            raise IndexStoreError(f"invalid index scope {scope!r}")

        # The pool logs each failed attempt; the one error raised below says it all.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

        async def configure(conn: Any) -> None:
            await conn.set_autocommit(True)
            # Without it a table locked by a tool would hold every command, unbounded.
            await conn.execute(f"SET lock_timeout = {max(1, round(busy_timeout * 1000))}")

        pool = AsyncConnectionPool(url, min_size=1, max_size=_POOL_SIZE, open=False,
                                   configure=configure, timeout=timeout,
                                   kwargs={"connect_timeout": max(1, round(timeout))})
        store = cls(pool, scope, url, hide)
        store.busy_timeout = busy_timeout
        try:
            # One plain connection first: a server that refuses, or a name that does not
            # resolve, is said at once and in libpq's words, not after the pool's retries.
            probe = await psycopg.AsyncConnection.connect(
                url, connect_timeout=max(1, round(timeout)))
            await probe.close()
            await pool.open(wait=True, timeout=timeout)
            await store._migrate()
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            await pool.close()
            passing = _passing(exc, store.shown, busy_timeout)
            raise passing or IndexStoreError(
                f"cannot use the index server {store.shown}: {_reason(exc)}",
                hint="check index_url (or GITRELEASE_INDEX_URL) and that the server is up",
            ) from None
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self.let_go()
        await self._pool.close()

    async def _migrate(self) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS gitrelease_schema "
                               "(one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER)")
            cursor = await conn.execute("SELECT version FROM gitrelease_schema")
            row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise IndexStoreError(
                    f"the index on {self.shown} has schema version {version}, newer than "
                    f"this gitrelease knows ({len(MIGRATIONS)})",
                    hint="upgrade gitrelease; never downgrade it over a newer index")
            for script in MIGRATIONS[version:]:
                await conn.execute(script)  # type: ignore[arg-type]  # our own constant SQL
            if version < len(MIGRATIONS):
                await conn.execute(
                    "INSERT INTO gitrelease_schema (one, version) VALUES (1, %s) "
                    "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                    (len(MIGRATIONS),))

    # -- statements ------------------------------------------------------------------------

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write; the number of rows it touched."""
        import psycopg

        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql, tuple(params))  # type: ignore[arg-type]
                return int(cursor.rowcount)
        except psycopg.Error as exc:
            raise _passing(exc, self.shown, self.busy_timeout) or IndexStoreError(
                f"the index server {self.shown} refused a write: {_reason(exc)}") from None

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql, tuple(params))  # type: ignore[arg-type]
                return list(await cursor.fetchall())
        except psycopg.Error as exc:
            raise _passing(exc, self.shown, self.busy_timeout) or IndexStoreError(
                f"the index server {self.shown} could not be read: {_reason(exc)}") from None

    # -- update sessions -------------------------------------------------------------------

    async def create_session(self, session: UpdateSession) -> None:
        marks = ", ".join("%s" for _ in SESSION_COLUMNS)
        await self._run(
            f"INSERT INTO update_sessions (scope, {', '.join(SESSION_COLUMNS)}) "  # noqa: S608
            f"VALUES (%s, {marks})", (self.scope, *rows.session_values(session, self.hide)))

    async def save_session(self, session: UpdateSession) -> None:
        assignments = ", ".join(f"{c} = %s" for c in SESSION_COLUMNS[1:])
        values = rows.session_values(session, self.hide)
        await self._run(
            f"UPDATE update_sessions SET {assignments} "  # noqa: S608
            "WHERE scope = %s AND id = %s", (*values[1:], self.scope, values[0]))

    async def add_step(self, session_id: str, step: str, state: str, detail: str = "") -> None:
        await self._run(
            "INSERT INTO session_steps (scope, session_id, seq, step, state, at, detail) "
            "VALUES (%s, %s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM session_steps "
            "WHERE scope = %s AND session_id = %s), %s, %s, %s, %s)",
            (self.scope, session_id, self.scope, session_id, step, state, utcnow(),
             rows.step_detail(self.hide, state, detail)))

    async def get_session(self, session_id: str) -> UpdateSession | None:
        found = await self._sessions("AND id = %s", (session_id,))
        return found[0] if found else None

    async def list_sessions(
        self, since: datetime | None = None, limit: int = 20
    ) -> list[UpdateSession]:
        where, params = ("AND started_at >= %s", (since,)) if since else ("", ())
        return await self._sessions(f"{where} ORDER BY started_at DESC LIMIT %s",
                                    (*params, limit))

    async def unfinished_sessions(self) -> list[UpdateSession]:
        """As `SQLiteStore.unfinished_sessions`: half-way, not waiting for a restart."""
        done = {*TERMINAL_STATUSES, UpdateStatus.RESTARTING}
        running = [s.value for s in UpdateStatus if s not in done]
        return await self._sessions("AND status = ANY(%s) ORDER BY started_at", (running,))

    async def last_completed(self) -> UpdateSession | None:
        found = await self._sessions(
            f"AND status = %s AND {_CHANGED} ORDER BY completed_at DESC LIMIT 1",
            (UpdateStatus.COMPLETED.value,))
        return found[0] if found else None

    async def steps(self, session_id: str) -> list[JournalStep]:
        found = await self._rows(
            "SELECT seq, step, state, at, detail FROM session_steps "
            "WHERE scope = %s AND session_id = %s ORDER BY seq", (self.scope, session_id))
        return [JournalStep(r[0], r[1], r[2], r[3].astimezone(UTC), r[4]) for r in found]

    async def session_counts(self, since: datetime | None = None) -> dict[str, int]:
        where, params = ("AND started_at >= %s", (since,)) if since else ("", ())
        found = await self._rows(
            f"SELECT status, COUNT(*) FROM update_sessions WHERE scope = %s "  # noqa: S608
            f"AND {_CHANGED} {where} GROUP BY status", (self.scope, *params))
        return {status: int(count) for status, count in found}

    async def session_analytics(self, since: datetime | None = None) -> dict[str, Any]:
        where, params = ("AND started_at >= %s", (since,)) if since else ("", ())
        found = await self._rows(
            "SELECT update_type, status, COUNT(*), AVG(duration_seconds), "  # noqa: S608
            f"MAX(duration_seconds) FROM update_sessions WHERE scope = %s AND {_CHANGED} "
            f"{where} GROUP BY update_type, status", (self.scope, *params))
        return rows.analytics(found)

    async def _sessions(self, clause: str, params: Sequence[Any]) -> list[UpdateSession]:
        found = await self._rows(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM update_sessions "  # noqa: S608
            f"WHERE scope = %s {clause}", (self.scope, *params))
        return [rows.session_from(row, _moment) for row in found]

    # -- audit log -------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str | None, outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self._run(
            "INSERT INTO audit_log (scope, at, actor, action, target, outcome, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (self.scope, utcnow(), actor, action, target, outcome,
             json.dumps(rows.hidden(self.hide, detail or {}))))

    async def audit_entries(self, limit: int = 50) -> list[AuditEntry]:
        found = await self._rows(
            "SELECT at, actor, action, target, outcome, detail FROM audit_log "
            "WHERE scope = %s ORDER BY id DESC LIMIT %s", (self.scope, limit))
        return [AuditEntry(r[0].astimezone(UTC), r[1], r[2], r[3], r[4], json.loads(r[5]))
                for r in found]

    # -- backups ---------------------------------------------------------------------------

    async def save_backup(self, backup: Backup) -> None:
        """Insert or update a backup's row; a manifest's file list goes to its own table."""
        manifest = backup.metadata.get("manifest")
        if isinstance(manifest, dict) and "files" in manifest:
            await self._run(
                "INSERT INTO backup_manifests (scope, backup_id, files) VALUES (%s, %s, %s) "
                "ON CONFLICT (scope, backup_id) DO UPDATE SET files = excluded.files",
                (self.scope, backup.id, json.dumps(manifest["files"])))
        columns = (*BACKUP_COLUMNS, "name_key")
        marks = ", ".join("%s" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:]
                            if c not in rows.OFFSITE_COLUMNS)
        await self._run(
            f"INSERT INTO backups (scope, {', '.join(columns)}) "  # noqa: S608
            f"VALUES (%s, {marks}) ON CONFLICT (scope, id) DO UPDATE SET {updates}",
            (self.scope, *rows.backup_values(backup, self.hide), backup.name.lower()))

    async def get_backup(self, id_or_name: str) -> Backup | None:
        found = await self._backups("AND (id = %s OR name = %s) ORDER BY id = %s DESC",
                                    (id_or_name, id_or_name, id_or_name))
        return found[0] if found else None

    async def list_backups(self) -> list[Backup]:
        return await self._backups("ORDER BY created_at DESC, id DESC", ())

    async def query_backups(
        self, *, backup_type: BackupType | None, since: datetime | None, sort_by: str,
        limit: int,
    ) -> list[Backup]:
        if sort_by not in _SORTS:
            raise ValueError(f"unknown sort {sort_by!r}")
        where, params = ["NOT deleting"], []
        if since is not None:
            where.append("created_at >= %s")
            params.append(since)
        if backup_type is not None:
            where.append("backup_type = %s")
            params.append(backup_type.value)
        return await self._backups(
            f"AND {' AND '.join(where)} ORDER BY {_SORTS[sort_by]} LIMIT %s", (*params, limit))

    async def backup_summary(self) -> BackupSummary:
        completed = BackupStatus.COMPLETED.value
        counted = await self._rows(
            "SELECT status, COUNT(*), SUM(COALESCE(compressed_size, 0)) FROM backups "
            "WHERE scope = %s GROUP BY status", (self.scope,))
        damaged = await self._rows(
            "SELECT SUM(COALESCE(compressed_size, 0)) FROM backups WHERE scope = %s "
            "AND status = %s AND file_path IS NOT NULL AND problem IS DISTINCT FROM %s",
            (self.scope, BackupStatus.CORRUPTED.value, _MISSING))
        latest = await self._rows(
            "SELECT id, created_at FROM backups WHERE scope = %s AND status = %s "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (self.scope, completed))
        verified = await self._rows(
            "SELECT id FROM backups WHERE scope = %s AND status = %s "
            "AND verified_at IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1",
            (self.scope, completed))
        return rows.backup_summary(
            counted, damaged[0][0] if damaged else 0,
            (latest[0][0], latest[0][1].astimezone(UTC)) if latest else None,
            verified[0][0] if verified else None)

    async def backup_files(self) -> BackupFiles:
        lists = []
        for where, params in (
            ("file_path IS NOT NULL", ()),
            ("status = %s AND file_path IS NOT NULL", (BackupStatus.COMPLETED.value,)),
            ("status = %s AND file_path IS NOT NULL AND problem = %s",
             (BackupStatus.CORRUPTED.value, _MISSING)),
        ):
            found = await self._rows(f"SELECT file_path FROM backups "  # noqa: S608
                                     f"WHERE scope = %s AND {where}", (self.scope, *params))
            lists.append([r[0] for r in found])
        return BackupFiles(*lists)

    async def backups_unsettled(self) -> bool:
        found = await self._rows(
            "SELECT EXISTS (SELECT 1 FROM backups WHERE scope = %s AND (deleting "
            "OR status IN ('creating', 'compressing') "
            "OR (status = 'completed' AND file_path IS NULL)))", (self.scope,))
        return bool(found and found[0][0])

    async def change_stamp(self) -> tuple[int, int]:
        """Bumped by every write to this scope's rows, from any process or host."""
        found = await self._rows("SELECT stamp FROM gitrelease_stamps WHERE scope = %s",
                                 (self.scope,))
        return (int(found[0][0]) if found else 0, 0)

    async def delete_backup(self, backup_id: str) -> None:
        await self._run("DELETE FROM backup_manifests WHERE scope = %s AND backup_id = %s",
                        (self.scope, backup_id))
        await self._run("DELETE FROM backups WHERE scope = %s AND id = %s",
                        (self.scope, backup_id))

    async def set_offsite(self, backup_id: str, state: OffsiteState, *,
                          error: str | None = None, attempts: int = 0,
                          at: datetime | None = None) -> None:
        """Only the offsite columns (see SQLiteStore.set_offsite)."""
        await self._run(
            "UPDATE backups SET offsite = %s, offsite_error = %s, offsite_attempts = %s, "
            "offsite_at = %s WHERE scope = %s AND id = %s",
            (state.value, rows.hidden(self.hide, error), attempts, at, self.scope, backup_id))

    async def offsite_queue(self) -> list[Backup]:
        return await self._backups(
            "AND offsite IN ('queued', 'uploading', 'failed') AND NOT deleting "
            "ORDER BY created_at, id", ())

    async def backup_manifest(self, backup: Backup) -> dict[str, Any]:
        found = await self._rows(
            "SELECT files FROM backup_manifests WHERE scope = %s AND backup_id = %s",
            (self.scope, backup.id))
        summary = backup.metadata.get("manifest", {})
        return {**summary,
                "files": json.loads(found[0][0]) if found else summary.get("files", [])}

    async def backups_in_use(self) -> set[str]:
        found = await self._rows(
            "SELECT backup_id FROM update_sessions WHERE scope = %s AND backup_id IS NOT NULL "
            "AND NOT (status = ANY(%s))", (self.scope, [s.value for s in TERMINAL_STATUSES]))
        return {r[0] for r in found}

    async def _backups(self, clause: str, params: Sequence[Any]) -> list[Backup]:
        found = await self._rows(
            f"SELECT {', '.join(BACKUP_COLUMNS)} FROM backups "  # noqa: S608
            f"WHERE scope = %s {clause}", (self.scope, *params))
        return [rows.backup_from(row, _moment) for row in found]

    # -- schedules ---------------------------------------------------------------------------

    async def save_schedule(self, schedule: UpdateSchedule) -> None:
        marks = ", ".join("%s" for _ in rows.SCHEDULE_COLUMNS)
        kept = ("name", "update_time", "update_days", "update_types", "enabled", "last_run",
                "next_run", "last_outcome")
        await self._run(
            f"INSERT INTO schedules (scope, {', '.join(rows.SCHEDULE_COLUMNS)}) "  # noqa: S608
            f"VALUES (%s, {marks}) ON CONFLICT (scope, id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in kept),
            (self.scope, *rows.schedule_values(schedule, self.hide)))

    async def list_schedules(self) -> list[UpdateSchedule]:
        found = await self._rows(
            f"SELECT {', '.join(rows.SCHEDULE_COLUMNS)} FROM schedules "  # noqa: S608
            "WHERE scope = %s ORDER BY created_at, id", (self.scope,))
        return [rows.schedule_from(r, _moment) for r in found]

    async def delete_schedule(self, schedule_id: str) -> bool:
        return await self._run("DELETE FROM schedules WHERE scope = %s AND id = %s",
                               (self.scope, schedule_id)) > 0

    async def claim_schedule(
        self, schedule_id: str, due: datetime, following: datetime | None
    ) -> bool:
        """Compare-and-set on next_run: true for exactly one runner, on any host."""
        return await self._run(
            "UPDATE schedules SET next_run = %s WHERE scope = %s AND id = %s AND next_run = %s",
            (following, self.scope, schedule_id, due)) == 1


#: SQLSTATEs of a server that is busy, not of an index that is wrong: a lock held past
#: lock_timeout, no connection slot free, a deadlock or serialization failure (the other
#: side went on), a server starting up.
_BUSY_STATES = frozenset({"55P03", "53300", "40P01", "40001", "57P03"})
_FULL_STATES = frozenset({"53100"})  # disk_full


def _passing(exc: BaseException, shown: str, waited: float) -> IndexStoreError | None:
    """The error for a passing condition of the server (busy, full), or None."""
    from psycopg_pool import PoolTimeout

    state = getattr(exc, "sqlstate", None)
    if state in _BUSY_STATES or isinstance(exc, PoolTimeout):
        return IndexBusy(f"the index server {shown} is busy (another session holds what "
                         f"this needs, for longer than {waited:g} s, or no connection is "
                         f"free: {_reason(exc)}); retry")
    if state in _FULL_STATES:
        return IndexFull(f"the index server {shown} has no disk space left: {_reason(exc)}",
                         hint="free space on the server's disk, then retry")
    return None


def _reason(exc: BaseException) -> str:
    """What went wrong, on one line, without the connection string (psycopg's messages
    name the host and user at most; a password never appears in them)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
