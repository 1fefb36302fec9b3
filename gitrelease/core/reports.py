"""Results of `check` and of a dry-run `install`, shaped as the specification's dictionaries."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import Backup, UpdateInfo, UpdateSchedule, UpdateType

__all__ = ["CheckReport", "InstallPlan", "SourceError"]


@dataclass(frozen=True)
class SourceError:
    """Why one source of a check has no answer; the other sources are unaffected."""

    code: str
    message: str
    exit_code: int = 1

    @classmethod
    def from_exception(cls, exc: GitReleaseError) -> SourceError:
        return cls(exc.code, exc.message, exc.exit_code)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class CheckReport:
    check_type: UpdateType
    last_check: datetime
    current_version: str
    bot: UpdateInfo | None = None
    packages: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, SourceError] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    security_checked: bool = True
    # Sources whose security was asked for and could not be checked ("packages" without
    # pip-audit): nothing found there means "not checked", never "none".
    security_unchecked: list[str] = field(default_factory=list)
    ignored_tags: list[str] = field(default_factory=list)
    # False when HEAD is at no release the tag patterns know (its version reads 0+untagged…):
    # then nothing can be judged "not breaking" against it.
    version_known: bool = True
    # Set when no tag at all matched the patterns: which tags were seen, which pattern would.
    tag_hint: str | None = None
    # What a full backup would hold now, by kind: {"databases": [...], "config": [...], ...}.
    backup_holds: dict[str, list[str]] = field(default_factory=dict)

    def _updates(self) -> dict[str, list[dict[str, Any]]]:
        """What an install would change, by category: a newer release; each package with a
        newer version, a known vulnerability, or an installed version the requirements no
        longer allow; the requirement changes and a Python the release needs; the config
        keys to add or drop. Packages that are fine, pip's conflicts, npm's list and values
        only the operator can set are facts, not updates."""
        return {
            "bot": [self.bot.to_dict()] if self.bot is not None else [],
            "packages": [p for p in self.packages
                         if p.get("update_available") or p.get("satisfied") is False
                         or p.get("security")],  # a known vulnerability is something to do
            "dependencies": [d for d in self.dependencies
                             if d.get("kind") == "requirements"
                             or (d.get("kind") == "python" and d.get("satisfied") is False)],
            "config": [self.config] if self.config
            and self.config.get("update_available", True) else [],
        }

    def security_count(self) -> int | None:
        """Updates that fix a known hole; None when nothing was found where the check could
        not look (then "0" would read as "none"). Found ones count even then."""
        found = sum(1 for updates in self._updates().values() for u in updates
                    if u.get("security_update") or u.get("security"))
        if not self.security_checked or (self.security_unchecked and not found):
            return None
        return found

    def to_dict(self) -> dict[str, Any]:
        by_category = self._updates()
        updates = [u for found in by_category.values() for u in found]
        return {
            "check_type": self.check_type.value,
            "current_version": self.current_version,
            "bot": self.bot.to_dict() if self.bot else None,
            "packages": self.packages,
            "config": self.config,
            "dependencies": self.dependencies,
            "total_updates": len(updates),
            "updates_by_category": {name: len(found) for name, found in by_category.items()},
            "security_updates": self.security_count(),
            "security_unchecked": self.security_unchecked,
            "breaking_updates": sum(
                1 for u in updates if u.get("breaking_changes") or u.get("breaking")),
            # Whether these break cannot be told (the running version is at no release).
            "breaking_unknown": sum(
                1 for u in updates if "breaking_changes" in u and u["breaking_changes"] is None),
            "last_check": self.last_check.isoformat(),
            "errors": {source: error.to_dict() for source, error in self.errors.items()},
            "warnings": self.warnings,
            "ignored_tags": self.ignored_tags,
            "version_known": self.version_known,
            "tag_hint": self.tag_hint,
            "backup_holds": self.backup_holds,
        }


@dataclass
class InstallPlan:
    """What an install would do; returned by a dry run, which changes nothing."""

    update_type: UpdateType
    current_version: str
    target_version: str
    target_tag: str | None  # None: already at the newest release, nothing to do
    from_commit: str
    to_commit: str
    steps: list[str]
    update: UpdateInfo | None
    warnings: list[str] = field(default_factory=list)
    # What pip would move, as `UpdateSession.package_changes` lists what it moved.
    package_changes: list[dict[str, Any]] = field(default_factory=list)
    # Why the install itself would stop and ask (ConfirmationRequired.reasons): the dry run
    # shows the plan all the same.
    needs_confirmation: list[str] = field(default_factory=list)
    # The config keys the install would add, by live file ({".env": ["PREFIX"]}): names
    # only, as `check` gives them, for the live files hold secrets.
    config_keys: dict[str, list[str]] = field(default_factory=dict)
    # What the pre-update backup would hold, by kind (as `CheckReport.backup_holds`); empty
    # when the install would take no backup, so "nothing to back up" is never implied.
    backup_holds: dict[str, list[str]] = field(default_factory=dict)
    # Newer releases a plain install passes over because they failed to install before:
    # [{"tag", "reason", "session"}], oldest first; for whoever asks to agree to skip them.
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.update is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "up_to_date": self.up_to_date,
            "update_type": self.update_type.value,
            "current_version": self.current_version,
            "target_version": self.target_version,
            "target_tag": self.target_tag,
            "from_commit": self.from_commit,
            "to_commit": self.to_commit,
            "steps": self.steps,
            "update": self.update.to_dict() if self.update else None,
            "warnings": self.warnings,
            "package_changes": self.package_changes,
            "needs_confirmation": self.needs_confirmation,
            "config_keys": self.config_keys,
            "backup_holds": self.backup_holds,
        }


@dataclass
class RestoreResult:
    backup: Backup
    restore_type: str
    safety_backup: Backup | None
    restored: list[str] = field(default_factory=list)  # paths from the bot's root
    # Said alongside: a backup taken at another release than the code here, ...
    warnings: list[str] = field(default_factory=list)
    unchanged: int = 0  # files already as backed up: left as they were

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup.to_dict(),
            "restore_type": self.restore_type,
            "safety_backup": self.safety_backup.to_dict() if self.safety_backup else None,
            "restored": self.restored,
            "unchanged": self.unchanged,
            "warnings": self.warnings,
        }


class Stage(enum.Enum):
    """Where a scheduled run is, for whoever announces it (the bot's notify_channels)."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # missed by more than schedule_grace_minutes


@dataclass(frozen=True)
class ScheduleEvent:
    stage: Stage
    schedule: UpdateSchedule
    detail: str = ""


ScheduleListener = Callable[[ScheduleEvent], Awaitable[None]]
