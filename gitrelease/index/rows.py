"""The index's records as rows and back, for every backend.

A row holds Python values (datetimes, bools, ints, JSON text); each backend maps them to its
own column types (SQLite stores timestamps as ISO-8601 text and booleans as integers,
PostgreSQL takes them as they are) and hands back a reader for its timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gitrelease.core.models import (
    Backup,
    BackupStatus,
    BackupType,
    OffsiteState,
    ScheduleType,
    UpdateSchedule,
    UpdateSession,
    UpdateStatus,
    UpdateType,
    compact_metadata,
)
from gitrelease.index.store import BackupSummary

__all__ = ["BACKUP_COLUMNS", "SCHEDULE_COLUMNS", "SESSION_COLUMNS", "Hide", "analytics",
           "backup_from", "backup_summary",
           "backup_values", "hidden", "schedule_from", "schedule_values", "session_from",
           "session_values", "step_detail"]

#: How a backend reads a stored timestamp back (never given None).
Moment = Callable[[Any], datetime]
#: What takes the deployment's secrets out of a text before a backend stores it
#: (`gitrelease.core.text.Secrets`; `redact` alone when no deployment is known).
Hide = Callable[[str], str]


def _same(text: str) -> str:
    return text


def hidden(hide: Hide, value: Any) -> Any:
    """`value` with `hide` applied to every text in it (a message, a JSON detail's strings):
    what a failure said is stored, its secrets are not."""
    if isinstance(value, str):
        return hide(value)
    if isinstance(value, dict):
        return {k: hidden(hide, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [hidden(hide, v) for v in value]
    return value


def step_detail(hide: Hide, state: str, detail: str) -> str:
    """A journal step's detail as stored. A note is machine data gitrelease wrote for its
    own recovery (a pip freeze, a process group, the paths a checkout keeps) and is stored
    as written: hidden, a path or a pgid that happens to be a value of `.env` would read
    ``***`` and recovery would restore the wrong packages, not stop the group, or delete a
    kept file. What a step said (failed, done) is text for people, stored with `hide`."""
    return detail if state == "note" else hide(detail)


def _at(moment: Moment, value: Any) -> datetime | None:
    return None if value is None else moment(value)

SESSION_COLUMNS = (
    "id", "update_type", "status", "progress", "started_at", "completed_at", "target_version",
    "current_version", "error_message", "steps_completed", "total_steps", "rollback_available",
    "initiated_by", "from_commit", "to_commit", "target_tag", "restart_needed", "warnings",
    "backup_id", "package_changes",
    "duration_seconds",  # the last is derived: written, never read back
)
BACKUP_COLUMNS = (
    "id", "name", "backup_type", "status", "file_path", "file_size", "compressed_size",
    "created_at", "completed_at", "description", "checksum", "auto_created", "metadata", "tag",
    "commit_id", "keep", "verified_at", "problem", "deleting", "offsite", "offsite_error",
    "offsite_attempts", "offsite_at",
)
#: Written when a row is inserted and afterwards only by `set_offsite`: an upload runs outside
#: the operation lock, and a row read before it must not put its offsite state back.
OFFSITE_COLUMNS = ("offsite", "offsite_error", "offsite_attempts", "offsite_at")
SCHEDULE_COLUMNS = (
    "id", "name", "schedule_type", "update_time", "update_days", "update_types", "enabled",
    "created_by", "created_at", "last_run", "next_run", "max_backups_to_keep", "last_outcome",
)


def session_values(s: UpdateSession, hide: Hide = _same) -> tuple[Any, ...]:
    """In the order of the backends' session columns; the last (the duration) is derived.
    What a failure said (the error, the warnings) is stored with `hide` applied."""
    return (
        s.id, s.update_type.value, s.status.value, s.progress, s.started_at, s.completed_at,
        s.target_version, s.current_version, hidden(hide, s.error_message),
        json.dumps(s.steps_completed),
        s.total_steps, s.rollback_available, s.initiated_by, s.from_commit, s.to_commit,
        s.target_tag, s.restart_needed, json.dumps(hidden(hide, s.warnings)), s.backup_id,
        json.dumps(s.package_changes),
        (s.completed_at - s.started_at).total_seconds() if s.completed_at else None,
    )


def session_from(row: Sequence[Any], moment: Moment) -> UpdateSession:
    return UpdateSession(
        id=row[0], update_type=UpdateType(row[1]), status=UpdateStatus(row[2]),
        progress=row[3], started_at=moment(row[4]), completed_at=_at(moment, row[5]),
        target_version=row[6], current_version=row[7], error_message=row[8],
        steps_completed=json.loads(row[9]), total_steps=row[10],
        rollback_available=bool(row[11]), initiated_by=row[12], from_commit=row[13],
        to_commit=row[14], target_tag=row[15], restart_needed=bool(row[16]),
        warnings=json.loads(row[17]), backup_id=row[18], package_changes=json.loads(row[19]),
    )


def backup_values(b: Backup, hide: Hide = _same) -> tuple[Any, ...]:
    return (
        b.id, b.name, b.backup_type.value, b.status.value, b.file_path, b.file_size,
        b.compressed_size, b.created_at, b.completed_at, b.description, b.checksum,
        b.auto_created, json.dumps(compact_metadata(b.metadata)), b.tag, b.commit, b.keep,
        b.verified_at, hidden(hide, b.problem), b.deleting, b.offsite.value,
        hidden(hide, b.offsite_error),
        b.offsite_attempts, b.offsite_at,
    )


def backup_from(row: Sequence[Any], moment: Moment) -> Backup:
    return Backup(
        id=row[0], name=row[1], backup_type=BackupType(row[2]), status=BackupStatus(row[3]),
        file_path=row[4], file_size=row[5], compressed_size=row[6], created_at=moment(row[7]),
        completed_at=_at(moment, row[8]), description=row[9], checksum=row[10],
        auto_created=bool(row[11]), metadata=json.loads(row[12]), tag=row[13], commit=row[14],
        keep=bool(row[15]), verified_at=_at(moment, row[16]), problem=row[17],
        deleting=bool(row[18]), offsite=OffsiteState(row[19]), offsite_error=row[20],
        offsite_attempts=int(row[21]), offsite_at=_at(moment, row[22]),
    )


def schedule_values(s: UpdateSchedule, hide: Hide = _same) -> tuple[Any, ...]:
    return (
        s.id, s.name, s.schedule_type.value, s.update_time, json.dumps(s.update_days),
        json.dumps([t.value for t in s.update_types]), s.enabled, s.created_by, s.created_at,
        s.last_run, s.next_run, s.max_backups_to_keep, hidden(hide, s.last_outcome),
    )


def schedule_from(r: Sequence[Any], moment: Moment) -> UpdateSchedule:
    return UpdateSchedule(
        id=r[0], name=r[1], schedule_type=ScheduleType(r[2]), update_time=r[3],
        update_days=json.loads(r[4]), update_types=[UpdateType(t) for t in json.loads(r[5])],
        enabled=bool(r[6]), created_by=r[7], created_at=moment(r[8]),
        last_run=_at(moment, r[9]), next_run=_at(moment, r[10]), max_backups_to_keep=r[11],
        last_outcome=r[12])


def analytics(grouped: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """`session_analytics` from rows of (update_type, status, count, mean, longest)."""
    by_type: dict[str, dict[str, int]] = {}
    total = weighted = 0.0
    longest = None
    for kind, status, count, mean, most in grouped:
        by_type.setdefault(kind, {})[status] = int(count)
        if mean is not None:
            total += count
            weighted += float(mean) * count
            longest = most if longest is None else max(longest, most)
    return {"by_type": by_type,
            "mean_duration_seconds": round(weighted / total, 3) if total else None,
            "longest_duration_seconds": round(longest, 3) if longest is not None else None}


def backup_summary(counted: Sequence[Sequence[Any]], damaged: Any, latest: tuple[str, datetime]
                   | None, newest_verified: str | None) -> BackupSummary:
    """`backup_summary` from rows of (status, count, compressed bytes), the bytes of the
    damaged archives still on disk, the newest completed backup and the newest verified."""
    by_status = {status: int(count) for status, count, _ in counted}
    completed_bytes = next((int(size or 0) for status, _, size in counted
                            if status == BackupStatus.COMPLETED.value), 0)
    return BackupSummary(
        total=sum(by_status.values()), by_status=by_status, completed_bytes=completed_bytes,
        archive_bytes=completed_bytes + int(damaged or 0), latest=latest,
        newest_verified=newest_verified)
