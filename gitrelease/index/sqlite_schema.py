"""The SQLite index's schema: its columns and its migrations, applied in order.

Schema versions are SQLite's `user_version`; each entry of `_MIGRATIONS` takes the index one
version up. SQL is kept portable where it can be: timestamps are ISO-8601 UTC text, booleans
integers, lists JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__: list[str] = []


_MIGRATIONS: Sequence[str] = (
    # 1: the update journal and the audit log
    """
    CREATE TABLE update_sessions (
        id TEXT PRIMARY KEY,
        update_type TEXT NOT NULL,
        status TEXT NOT NULL,
        progress INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        completed_at TEXT,
        target_version TEXT NOT NULL,
        current_version TEXT NOT NULL,
        error_message TEXT,
        steps_completed TEXT NOT NULL,
        total_steps INTEGER NOT NULL,
        rollback_available INTEGER NOT NULL,
        initiated_by TEXT NOT NULL,
        from_commit TEXT,
        to_commit TEXT,
        target_tag TEXT,
        restart_needed INTEGER NOT NULL DEFAULT 0,
        warnings TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX update_sessions_started_at ON update_sessions (started_at);
    CREATE INDEX update_sessions_status ON update_sessions (status);
    CREATE TABLE session_steps (
        session_id TEXT NOT NULL REFERENCES update_sessions (id),
        seq INTEGER NOT NULL,
        step TEXT NOT NULL,
        state TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (session_id, seq)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    """,
    # 2: backups, indexed by the tag and commit they were taken at
    """
    CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        backup_type TEXT NOT NULL,
        status TEXT NOT NULL,
        file_path TEXT,
        file_size INTEGER,
        compressed_size INTEGER,
        created_at TEXT NOT NULL,
        completed_at TEXT,
        description TEXT,
        checksum TEXT,
        auto_created INTEGER NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        tag TEXT,
        commit_id TEXT,
        keep INTEGER NOT NULL DEFAULT 0,
        verified_at TEXT,
        problem TEXT,
        deleting INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX backups_created_at ON backups (created_at);
    ALTER TABLE update_sessions ADD COLUMN backup_id TEXT;
    """,
    # 3: each archive's file list in a table of its own, read only by verify and restore, so
    # that listing thousands of backups of thousands of files stays small and fast
    """
    CREATE TABLE backup_manifests (
        backup_id TEXT PRIMARY KEY,
        files TEXT NOT NULL
    );
    """,
    # 4: update schedules; a runner claims a due run by moving next_run (compare-and-set)
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        schedule_type TEXT NOT NULL,
        update_time TEXT,
        update_days TEXT NOT NULL,
        update_types TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_run TEXT,
        next_run TEXT,
        max_backups_to_keep INTEGER NOT NULL,
        last_outcome TEXT
    );
    """,
    # 5: `backup list`, `status` and the look before a reconcile answered from indexes,
    # never by reading every row (a backup's row holds its manifest summary: kilobytes).
    # backups_unsettled is partial: its WHERE is _UNSETTLED word for word, which is what
    # lets SQLite use it. The sessions' indexes cover the analytics and the last update.
    """
    CREATE INDEX backups_type_created_at ON backups (backup_type, created_at);
    CREATE INDEX backups_status_created_at ON backups (status, created_at, compressed_size);
    CREATE INDEX backups_archives ON backups (status, file_path, problem);
    CREATE INDEX backups_unsettled ON backups (id) WHERE deleting <> 0
        OR status IN ('creating', 'compressing') OR (status = 'completed' AND file_path IS NULL);
    DROP INDEX update_sessions_started_at;
    DROP INDEX update_sessions_status;
    CREATE INDEX update_sessions_started_at ON update_sessions
        (started_at, update_type, status, completed_at, from_commit, to_commit);
    CREATE INDEX update_sessions_status ON update_sessions (status, completed_at);
    """,
    # 6: each session's duration stored as it is written, so the status analytics average
    # a number instead of parsing two timestamps per row (julianday: over half their cost).
    """
    ALTER TABLE update_sessions ADD COLUMN duration_seconds REAL;
    UPDATE update_sessions SET duration_seconds =
        (julianday(completed_at) - julianday(started_at)) * 86400.0
        WHERE completed_at IS NOT NULL;
    DROP INDEX update_sessions_started_at;
    CREATE INDEX update_sessions_started_at ON update_sessions
        (started_at, update_type, status, duration_seconds, completed_at, from_commit,
         to_commit);
    """,
    # 7: the packages each session moved (name, from, to, downgrade), as JSON like warnings
    """
    ALTER TABLE update_sessions ADD COLUMN package_changes TEXT NOT NULL DEFAULT '[]';
    """,
    # 8: each backup's offsite copy: where it stands, why its last upload failed, how often
    # it has failed, when; the queue of uploads to retry is indexed
    """
    ALTER TABLE backups ADD COLUMN offsite TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE backups ADD COLUMN offsite_error TEXT;
    ALTER TABLE backups ADD COLUMN offsite_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE backups ADD COLUMN offsite_at TEXT;
    CREATE INDEX backups_offsite_queue ON backups (created_at)
        WHERE offsite IN ('queued', 'uploading', 'failed');
    """,
)

