"""The specification's enums and dataclasses.

`to_dict()` keeps the specification's keys (front-ends and `--json` consumers rely on them)
and adds the fields a git-native tool needs, such as the tag and commit of a release.
Every datetime is timezone-aware UTC.

Over the ~400-line aim: the specification's models are one vocabulary, shared by every layer;
split, each front-end would import half of it from two places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

__all__ = [
    "RESTART_EXIT_CODE",
    "TERMINAL_STATUSES",
    "Backup",
    "BackupOrigin",
    "BackupStatus",
    "BackupType",
    "Progress",
    "ScheduleType",
    "SystemInfo",
    "UpdateInfo",
    "UpdateSchedule",
    "UpdateSession",
    "UpdateStatus",
    "UpdateType",
    "compact_metadata",
    "isoformat",
    "parse_update_type",
    "utcnow",
]

#: The one progress callback type: ``progress(step, percent, detail)``.
Progress = Callable[[str, int, str], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


#: EX_TEMPFAIL: "exited to be started again". systemd: Restart=on-abnormal plus
#: RestartForceExitStatus=75 restarts on it and leaves a deliberate stop stopped. The bot
#: exits with it when restart_method = exit asks it to.
RESTART_EXIT_CODE = 75


class UpdateType(Enum):
    ALL = "all"
    BOT = "bot"
    PACKAGES = "packages"
    CONFIG = "config"
    DEPENDENCIES = "dependencies"
    ROLLBACK = "rollback"  # a session that went back to an older release (not an install type)


def parse_update_type(value: str, *, field: str = "update_type") -> UpdateType:
    """A type `check` and `install` take (a rollback is its own command). The same rule as
    install.parse_update_type, here so that `check` needs no installer to read it."""
    from gitrelease.core.errors import InvalidInput

    allowed = [t.value for t in UpdateType if t is not UpdateType.ROLLBACK]
    if value not in allowed:
        raise InvalidInput(field, value, allowed)
    return UpdateType(value)


class UpdateStatus(Enum):
    PENDING = "pending"
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"
    RESTARTING = "restarting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A session in one of these states is over; any other state found at start-up was interrupted.
TERMINAL_STATUSES = frozenset({UpdateStatus.COMPLETED, UpdateStatus.FAILED, UpdateStatus.CANCELLED})


class BackupType(Enum):
    FULL = "full"
    DATABASE = "database"
    CONFIG = "config"
    DATA_ONLY = "data_only"


class BackupOrigin(Enum):
    """Why a backup was taken: by hand, or by the product before it changed something."""

    MANUAL = "manual"
    PRE_UPDATE = "pre_update"  # before an install
    PRE_ROLLBACK = "pre_rollback"  # before a rollback
    SAFETY = "safety"  # of the files a restore replaces, before it replaces them
    SCHEDULED = "scheduled"  # before an install a schedule started


class OffsiteState(Enum):
    """Where a backup's offsite copy stands (settings `offsite`, `offsite_url`)."""

    NONE = "none"  # never sent: offsite copies off, or manual and not pushed
    QUEUED = "queued"  # to be uploaded (offsite = after_backup)
    UPLOADING = "uploading"
    UPLOADED = "uploaded"  # its archive and record are offsite
    FAILED = "failed"  # the last upload failed; it stays queued and is retried


#: The problem of a completed backup whose archive has gone (reconcile writes it; the index's
#: queries look for it word for word).
ARCHIVE_MISSING = "the archive is missing"


#: How backups recorded before origins were stored are told apart: by their description.
_ORIGIN_BY_DESCRIPTION = (("before installing ", BackupOrigin.PRE_UPDATE),
                          ("before a scheduled install", BackupOrigin.SCHEDULED),
                          ("before rolling back ", BackupOrigin.PRE_ROLLBACK),
                          ("taken before restoring ", BackupOrigin.SAFETY))


class BackupStatus(Enum):
    CREATING = "creating"
    COMPRESSING = "compressing"
    COMPLETED = "completed"
    FAILED = "failed"
    CORRUPTED = "corrupted"


class ScheduleType(Enum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CUSTOM = "custom"


@dataclass
class UpdateInfo:
    """One available update. For a bot release, `checksum` is the tag's commit id."""

    update_type: UpdateType
    version: str
    size: int | None
    changelog: str | None
    security_update: bool | None  # None: not checked (include_security was off)
    breaking_changes: bool | None  # None: unknown (the running version is at no release)
    dependencies: list[str]
    release_date: datetime
    download_url: str | None
    checksum: str | None
    tag: str | None = None
    current_version: str | None = None
    commit: str | None = None
    commit_count: int = 0
    files_changed: int = 0
    signature: str | None = None  # valid, unsigned, unknown_key, bad or name_mismatch
    signature_detail: str | None = None
    releases: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "update_type": self.update_type.value,
            "version": self.version,
            "size": self.size,
            "changelog": self.changelog,
            "security_update": self.security_update,
            "breaking_changes": self.breaking_changes,
            "dependencies": self.dependencies,
            "release_date": self.release_date.isoformat(),
            "download_url": self.download_url,
            "checksum": self.checksum,
            "tag": self.tag,
            "current_version": self.current_version,
            "commit": self.commit,
            "commit_count": self.commit_count,
            "files_changed": self.files_changed,
            "signature": self.signature,
            "signature_detail": self.signature_detail,
            "releases": self.releases,
        }


@dataclass
class UpdateSession:
    """One install (or later rollback) as journalled in the index."""

    id: str
    update_type: UpdateType
    status: UpdateStatus
    progress: int  # 0-100
    started_at: datetime
    completed_at: datetime | None
    target_version: str
    current_version: str
    error_message: str | None
    steps_completed: list[str]
    total_steps: int
    rollback_available: bool
    initiated_by: str
    from_commit: str | None = None
    to_commit: str | None = None
    target_tag: str | None = None
    restart_needed: bool = False
    warnings: list[str] = field(default_factory=list)
    backup_id: str | None = None  # the pre-update backup that is this update's way back
    # Packages the update moved: {"name", "from", "to", "downgrade"}; None: not installed.
    package_changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "update_type": self.update_type.value,
            "status": self.status.value,
            "progress": self.progress,
            "started_at": self.started_at.isoformat(),
            "completed_at": isoformat(self.completed_at),
            "target_version": self.target_version,
            "current_version": self.current_version,
            "error_message": self.error_message,
            "steps_completed": self.steps_completed,
            "total_steps": self.total_steps,
            "rollback_available": self.rollback_available,
            "initiated_by": self.initiated_by,
            "from_commit": self.from_commit,
            "to_commit": self.to_commit,
            "target_tag": self.target_tag,
            "restart_needed": self.restart_needed,
            "warnings": self.warnings,
            "backup_id": self.backup_id,
            "package_changes": self.package_changes,
        }


@dataclass
class Backup:
    id: str
    name: str
    backup_type: BackupType
    status: BackupStatus
    file_path: str | None
    file_size: int | None
    compressed_size: int | None
    created_at: datetime
    completed_at: datetime | None
    description: str | None
    checksum: str | None
    auto_created: bool
    metadata: dict[str, Any]
    tag: str | None = None
    commit: str | None = None
    keep: bool = False  # never pruned
    verified_at: datetime | None = None
    problem: str | None = None  # why it is CORRUPTED or FAILED, for people
    deleting: bool = False  # marked before its file is deleted, so a crash is reconciled
    offsite: OffsiteState = OffsiteState.NONE
    offsite_error: str | None = None  # why the last upload failed (never a credential)
    offsite_attempts: int = 0  # failed uploads since the last one that landed
    offsite_at: datetime | None = None  # when it was uploaded, or last tried
    # What the backup that was just taken has to say (no database found, ...); not stored.
    warnings: list[str] = field(default_factory=list)
    # Bytes a restore of it reads: its own archive and those of its chain (filled in by the
    # listing, which knows the other rows; None: not worked out). Not stored, and not part
    # of a row's equality: the same row is the same whether a listing worked it out or not.
    chain_size: int | None = field(default=None, compare=False)

    @property
    def origin(self) -> BackupOrigin:
        """Why it was taken (recorded since origins were; before that, told from the
        description the product gave its own backups)."""
        recorded = self.metadata.get("origin")
        if recorded in {o.value for o in BackupOrigin}:
            return BackupOrigin(recorded)
        if self.auto_created:
            for start, origin in _ORIGIN_BY_DESCRIPTION:
                if (self.description or "").startswith(start):
                    return origin
        return BackupOrigin.MANUAL

    @property
    def base_id(self) -> str | None:
        """The backup this one stores its changes against (None: a full backup)."""
        manifest = self.metadata.get("manifest")
        base = manifest.get("base") if isinstance(manifest, dict) else None
        return base if isinstance(base, str) else None

    @property
    def chain(self) -> list[dict[str, str]]:
        """What a restore of this backup reads besides it: the full backup its chain starts
        with, then each later one up to its base, with the sha256 each had when this one was
        taken (``[{"id": ..., "sha256": ...}, ...]``; empty for a full backup)."""
        manifest = self.metadata.get("manifest")
        links = manifest.get("chain") if isinstance(manifest, dict) else None
        if not isinstance(links, list):
            return []
        return [link for link in links if isinstance(link, dict)
                and isinstance(link.get("id"), str) and isinstance(link.get("sha256"), str)]

    @property
    def only_offsite(self) -> bool:
        """Its archive is gone from here but its offsite copy is there: restorable by
        fetching it back."""
        return (self.offsite is OffsiteState.UPLOADED and self.status is BackupStatus.CORRUPTED
                and self.problem == ARCHIVE_MISSING)

    @property
    def location(self) -> str:
        """Where it can be restored from: local, offsite, both, queued, uploading or failed
        (the last three: here, with its upload to come, under way, or failed and retried)."""
        here = self.status is BackupStatus.COMPLETED and self.file_path is not None
        if self.offsite is OffsiteState.UPLOADED:
            return "both" if here else "offsite"
        if self.offsite is OffsiteState.NONE or not here:
            return "local" if here else "none"
        return self.offsite.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "backup_type": self.backup_type.value,
            "origin": self.origin.value,
            "status": self.status.value,
            "file_path": self.file_path,
            "file_size": self.file_size,
            "compressed_size": self.compressed_size,
            "created_at": self.created_at.isoformat(),
            "completed_at": isoformat(self.completed_at),
            "description": self.description,
            "checksum": self.checksum,
            "auto_created": self.auto_created,
            "metadata": compact_metadata(self.metadata),
            "tag": self.tag,
            "commit": self.commit,
            "keep": self.keep,
            "verified": self.verified_at is not None and self.status is BackupStatus.COMPLETED,
            "verified_at": isoformat(self.verified_at),
            "problem": self.problem,
            "warnings": self.warnings,
            "location": self.location,
            "offsite": self.offsite.value,
            "offsite_error": self.offsite_error,
            "offsite_attempts": self.offsite_attempts,
            "offsite_at": isoformat(self.offsite_at),
            "base": self.base_id,
            "chain": [link["id"] for link in self.chain],
            "chain_size": self.chain_size if self.chain_size is not None
            else (self.compressed_size if not self.chain else None),
        }


def compact_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as shown to people: a manifest's file list becomes its length."""
    manifest = metadata.get("manifest")
    if isinstance(manifest, dict) and "files" in manifest:
        rest = {k: v for k, v in manifest.items() if k != "files"}
        return {**metadata, "manifest": {**rest, "file_count": len(manifest["files"])}}
    return metadata


@dataclass
class UpdateSchedule:
    id: str
    name: str
    schedule_type: ScheduleType
    update_time: str | None
    update_days: list[str]
    update_types: list[UpdateType]
    enabled: bool
    created_by: str
    created_at: datetime
    last_run: datetime | None
    next_run: datetime | None
    max_backups_to_keep: int
    last_outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "schedule_type": self.schedule_type.value,
            "update_time": self.update_time,
            "update_days": self.update_days,
            "update_types": [t.value for t in self.update_types],
            "enabled": self.enabled,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "last_run": isoformat(self.last_run),
            "next_run": isoformat(self.next_run),
            "max_backups_to_keep": self.max_backups_to_keep,
            "last_outcome": self.last_outcome,
        }


@dataclass
class SystemInfo:
    """What `status` reports. `version` is the deployment's current release version."""

    version: str
    python_version: str
    bot_version: str | None  # the VERSION file of the deployment, if it has one
    last_update: datetime | None
    uptime: timedelta
    disk_usage: dict[str, Any]
    memory_usage: dict[str, Any]
    update_statistics: dict[str, Any]
    backup_statistics: dict[str, Any]
    tag: str | None = None
    commit: str | None = None
    version_file_agrees: bool | None = None
    uptime_source: str = "host"
    gitrelease_version: str = ""
    recent_sessions: list[UpdateSession] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What a full backup would hold now: {"databases": [...], "config": [...], "data": [...]}.
    backup_holds: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "python_version": self.python_version,
            "bot_version": self.bot_version,
            "last_update": isoformat(self.last_update),
            "uptime_seconds": self.uptime.total_seconds(),
            "disk_usage": self.disk_usage,
            "memory_usage": self.memory_usage,
            "update_statistics": self.update_statistics,
            "backup_statistics": self.backup_statistics,
            "tag": self.tag,
            "commit": self.commit,
            "version_file_agrees": self.version_file_agrees,
            "uptime_source": self.uptime_source,
            "gitrelease_version": self.gitrelease_version,
            "recent_sessions": [s.to_dict() for s in self.recent_sessions],
            "warnings": self.warnings,
            "backup_holds": self.backup_holds,
        }
