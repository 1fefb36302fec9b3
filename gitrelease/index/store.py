"""The index behind a small protocol: what the engine asks of it, and the records it returns.

The index holds the update sessions (a journal written before and after every step), the
audit log, the backups' rows and manifests, and the schedules. `Store` is all the engine
sees of it; `gitrelease.index.sqlite` is the embedded backend (`open_store` in
`gitrelease.index` picks one). Nothing outside a backend knows its SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gitrelease.core.models import (
    Backup,
    BackupType,
    Instance,
    UpdateSchedule,
    UpdateSession,
)

__all__ = ["AuditEntry", "BackupFiles", "BackupSummary", "FleetStore", "JournalStep", "Store"]


@dataclass(frozen=True)
class JournalStep:
    seq: int
    step: str
    state: str  # "started", "done" or "failed"
    at: datetime
    detail: str


@dataclass(frozen=True)
class BackupSummary:
    """Counts over every backup row, for `status`."""

    total: int
    by_status: dict[str, int]
    completed_bytes: int  # compressed bytes of the completed backups
    latest: tuple[str, datetime] | None  # the newest completed backup's id and creation time
    newest_verified: str | None  # the newest completed backup that has been verified
    archive_bytes: int = 0  # bytes of every archive on disk (completed and corrupted ones)


@dataclass(frozen=True)
class BackupFiles:
    """What the index says about the archives, for the look before a reconcile."""

    paths: list[str]  # every row's archive path
    completed: list[str]  # rows that say their archive is there
    missing: list[str]  # rows marked CORRUPTED because their archive had gone


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any]


class Store(Protocol):
    async def close(self) -> None: ...
    async def create_session(self, session: UpdateSession) -> None: ...
    async def save_session(self, session: UpdateSession) -> None: ...
    async def add_step(self, session_id: str, step: str, state: str, detail: str = "") -> None: ...
    async def get_session(self, session_id: str) -> UpdateSession | None: ...
    async def list_sessions(
        self, since: datetime | None = None, limit: int = 20
    ) -> list[UpdateSession]: ...
    async def unfinished_sessions(self) -> list[UpdateSession]: ...
    async def steps(self, session_id: str) -> list[JournalStep]: ...
    async def session_counts(self, since: datetime | None = None) -> dict[str, int]: ...
    async def last_completed(self) -> UpdateSession | None: ...
    async def session_analytics(self, since: datetime | None = None) -> dict[str, Any]: ...
    async def audit(
        self, actor: str, action: str, target: str | None, outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None: ...
    async def audit_entries(self, limit: int = 50) -> list[AuditEntry]: ...
    async def save_backup(self, backup: Backup) -> None: ...
    async def get_backup(self, id_or_name: str) -> Backup | None: ...
    async def list_backups(self) -> list[Backup]: ...
    async def query_backups(
        self, *, backup_type: BackupType | None, since: datetime | None, sort_by: str,
        limit: int,
    ) -> list[Backup]: ...
    async def backup_summary(self) -> BackupSummary: ...
    async def backup_files(self) -> BackupFiles: ...
    async def backups_unsettled(self) -> bool: ...
    async def change_stamp(self) -> tuple[int, int]: ...
    async def delete_backup(self, backup_id: str) -> None: ...
    async def backups_in_use(self) -> set[str]: ...
    async def backup_manifest(self, backup: Backup) -> dict[str, Any]: ...
    async def save_schedule(self, schedule: UpdateSchedule) -> None: ...
    async def list_schedules(self) -> list[UpdateSchedule]: ...
    async def delete_schedule(self, schedule_id: str) -> bool: ...
    async def claim_schedule(
        self, schedule_id: str, due: datetime, following: datetime | None
    ) -> bool: ...


class FleetStore(Store, Protocol):
    """A `Store` that several deployments share (a server database): it also holds what each
    of them last reported of itself. The embedded SQLite index has no fleet."""

    async def save_instance(self, instance: Instance) -> None: ...
    async def list_instances(self) -> list[Instance]: ...
