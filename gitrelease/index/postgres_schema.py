"""The PostgreSQL index's schema: one set of tables shared by every deployment that points at
the server, each row carrying the `scope` (the deployment) it belongs to.

The version lives in `gitrelease_schema`; each entry of `MIGRATIONS` takes the database one
version up, applied in one transaction under an advisory lock, so that deployments starting
at once apply each migration exactly once. Text sorts as Python sorts it (`COLLATE "C"`:
by code point), timestamps are `timestamptz`, JSON is kept as the text the engine wrote (a
manifest's key order is its own). A trigger bumps the scope's change stamp on every write,
whichever process made it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["COORDINATOR_LOCK", "MIGRATIONS", "MIGRATION_LOCK", "RESTART_LOCK"]

#: The advisory lock key under which migrations run (any constant: "gitrelea" in ASCII).
MIGRATION_LOCK = 0x67697472656C6561
#: The advisory lock a rollout's coordinator holds for as long as it coordinates ("rollout").
COORDINATOR_LOCK = 0x726F6C6C6F7574
#: The advisory lock under which restart slots are handed out ("restarts").
RESTART_LOCK = 0x7265737461727473

#: Every text column compares by code point, as Python's str does.
_C = 'TEXT COLLATE "C"'

MIGRATIONS: Sequence[str] = (
    # 1: the whole index as SQLite's schema 7 has it, scoped per deployment
    """
    CREATE TABLE gitrelease_stamps (
        scope TEXT_C PRIMARY KEY,
        stamp BIGINT NOT NULL
    );
    CREATE FUNCTION gitrelease_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        changed TEXT;
    BEGIN
        IF TG_OP = 'DELETE' THEN changed := OLD.scope; ELSE changed := NEW.scope; END IF;
        INSERT INTO gitrelease_stamps (scope, stamp) VALUES (changed, 1)
            ON CONFLICT (scope) DO UPDATE SET stamp = gitrelease_stamps.stamp + 1;
        RETURN NULL;
    END $$;

    CREATE TABLE update_sessions (
        scope TEXT_C NOT NULL,
        id TEXT_C NOT NULL,
        update_type TEXT_C NOT NULL,
        status TEXT_C NOT NULL,
        progress INTEGER NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        completed_at TIMESTAMPTZ,
        target_version TEXT_C NOT NULL,
        current_version TEXT_C NOT NULL,
        error_message TEXT_C,
        steps_completed TEXT_C NOT NULL,
        total_steps INTEGER NOT NULL,
        rollback_available BOOLEAN NOT NULL,
        initiated_by TEXT_C NOT NULL,
        from_commit TEXT_C,
        to_commit TEXT_C,
        target_tag TEXT_C,
        restart_needed BOOLEAN NOT NULL DEFAULT FALSE,
        warnings TEXT_C NOT NULL DEFAULT '[]',
        backup_id TEXT_C,
        package_changes TEXT_C NOT NULL DEFAULT '[]',
        duration_seconds DOUBLE PRECISION,
        PRIMARY KEY (scope, id)
    );
    CREATE INDEX update_sessions_started_at ON update_sessions (scope, started_at);
    CREATE INDEX update_sessions_status ON update_sessions (scope, status, completed_at);

    CREATE TABLE session_steps (
        scope TEXT_C NOT NULL,
        session_id TEXT_C NOT NULL,
        seq INTEGER NOT NULL,
        step TEXT_C NOT NULL,
        state TEXT_C NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        detail TEXT_C NOT NULL DEFAULT '',
        PRIMARY KEY (scope, session_id, seq),
        FOREIGN KEY (scope, session_id) REFERENCES update_sessions (scope, id)
    );

    CREATE TABLE audit_log (
        id BIGSERIAL PRIMARY KEY,
        scope TEXT_C NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        actor TEXT_C NOT NULL,
        action TEXT_C NOT NULL,
        target TEXT_C,
        outcome TEXT_C NOT NULL,
        detail TEXT_C NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_log_scope ON audit_log (scope, id);

    CREATE TABLE backups (
        scope TEXT_C NOT NULL,
        id TEXT_C NOT NULL,
        name TEXT_C NOT NULL,
        backup_type TEXT_C NOT NULL,
        status TEXT_C NOT NULL,
        file_path TEXT_C,
        file_size BIGINT,
        compressed_size BIGINT,
        created_at TIMESTAMPTZ NOT NULL,
        completed_at TIMESTAMPTZ,
        description TEXT_C,
        checksum TEXT_C,
        auto_created BOOLEAN NOT NULL,
        metadata TEXT_C NOT NULL DEFAULT '{}',
        tag TEXT_C,
        commit_id TEXT_C,
        keep BOOLEAN NOT NULL DEFAULT FALSE,
        verified_at TIMESTAMPTZ,
        problem TEXT_C,
        deleting BOOLEAN NOT NULL DEFAULT FALSE,
        -- Python's str.lower of the name (the server's lower() depends on its locale)
        name_key TEXT_C NOT NULL,
        PRIMARY KEY (scope, id),
        UNIQUE (scope, name)
    );
    CREATE INDEX backups_created_at ON backups (scope, created_at);
    CREATE INDEX backups_type_created_at ON backups (scope, backup_type, created_at);
    CREATE INDEX backups_status_created_at ON backups (scope, status, created_at);

    CREATE TABLE backup_manifests (
        scope TEXT_C NOT NULL,
        backup_id TEXT_C NOT NULL,
        files TEXT_C NOT NULL,
        PRIMARY KEY (scope, backup_id)
    );

    CREATE TABLE schedules (
        scope TEXT_C NOT NULL,
        id TEXT_C NOT NULL,
        name TEXT_C NOT NULL,
        schedule_type TEXT_C NOT NULL,
        update_time TEXT_C,
        update_days TEXT_C NOT NULL,
        update_types TEXT_C NOT NULL,
        enabled BOOLEAN NOT NULL,
        created_by TEXT_C NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        last_run TIMESTAMPTZ,
        next_run TIMESTAMPTZ,
        max_backups_to_keep INTEGER NOT NULL,
        last_outcome TEXT_C,
        PRIMARY KEY (scope, id)
    );

    """.replace("TEXT_C", _C) + "".join(
        f"CREATE TRIGGER {table}_stamp AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION gitrelease_bump();\n"
        for table in ("update_sessions", "session_steps", "audit_log", "backups",
                      "backup_manifests", "schedules")),
    # 2: the fleet: each deployment's last report of where it runs and what it is at
    """
    CREATE TABLE fleet_instances (
        id TEXT_C PRIMARY KEY,
        host TEXT_C NOT NULL,
        grp TEXT_C NOT NULL,
        shards TEXT_C NOT NULL DEFAULT '[]',
        version TEXT_C NOT NULL,
        tag TEXT_C,
        commit_id TEXT_C,
        health TEXT_C NOT NULL,
        pid INTEGER,
        started_at TIMESTAMPTZ,
        heartbeat_at TIMESTAMPTZ NOT NULL
    );
    """.replace("TEXT_C", _C),
    # 3: rollouts: one release across the fleet, in waves, each instance's part of it
    """
    CREATE TABLE fleet_rollouts (
        id TEXT_C PRIMARY KEY,
        target TEXT_C NOT NULL,
        status TEXT_C NOT NULL,
        options TEXT_C NOT NULL,
        created_by TEXT_C NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        reason TEXT_C
    );
    -- one rollout at a time, fleet-wide
    CREATE UNIQUE INDEX fleet_rollouts_one_active ON fleet_rollouts ((TRUE))
        WHERE status IN ('running', 'paused', 'reverting');
    CREATE TABLE fleet_assignments (
        rollout_id TEXT_C NOT NULL REFERENCES fleet_rollouts (id),
        instance_id TEXT_C NOT NULL,
        wave INTEGER NOT NULL,
        baseline TEXT_C NOT NULL,
        state TEXT_C NOT NULL,
        detail TEXT_C NOT NULL DEFAULT '',
        started_at TIMESTAMPTZ,
        healthy_since TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (rollout_id, instance_id)
    );
    -- Agents and coordinators LISTEN: a change of a rollout wakes them at once.
    CREATE FUNCTION gitrelease_fleet_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('gitrelease_fleet', TG_TABLE_NAME);
        RETURN NULL;
    END $$;
    CREATE TRIGGER fleet_assignments_notify AFTER INSERT OR UPDATE ON fleet_assignments
        FOR EACH ROW EXECUTE FUNCTION gitrelease_fleet_notify();
    CREATE TRIGGER fleet_rollouts_notify AFTER INSERT OR UPDATE ON fleet_rollouts
        FOR EACH ROW EXECUTE FUNCTION gitrelease_fleet_notify();
    CREATE TABLE fleet_audit (
        id BIGSERIAL PRIMARY KEY,
        rollout_id TEXT_C NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        actor TEXT_C NOT NULL,
        action TEXT_C NOT NULL,
        detail TEXT_C NOT NULL DEFAULT ''
    );
    """.replace("TEXT_C", _C),
    # 4: a rollout's coordinator and its fencing epoch; where a revert takes each instance;
    # each instance's slot to restart in; the session starts its bot last heard of
    """
    ALTER TABLE fleet_rollouts ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN coordinator TEXT_C;
    ALTER TABLE fleet_assignments ADD COLUMN restart_at TIMESTAMPTZ,
        ADD COLUMN revert_to TEXT_C;
    ALTER TABLE fleet_instances ADD COLUMN session_starts TEXT_C;
    """.replace("TEXT_C", _C),
    # 5: each backup's offsite copy: where it stands, why its last upload failed, how often
    # it has failed, when; the queue of uploads to retry is indexed
    """
    ALTER TABLE backups ADD COLUMN offsite TEXT_C NOT NULL DEFAULT 'none',
        ADD COLUMN offsite_error TEXT_C,
        ADD COLUMN offsite_attempts INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN offsite_at TIMESTAMPTZ;
    CREATE INDEX backups_offsite_queue ON backups (scope, created_at)
        WHERE offsite IN ('queued', 'uploading', 'failed');
    """.replace("TEXT_C", _C),
)
