"""Which backups a prune deletes: max_backups and backup_retention_days, and what is protected.

Protected, whatever their age or number: the newest completed backup, the newest of the
deployed tag, those marked keep, those an unfinished update still needs, and (with offsite
copies on) those whose upload is still to come or failed. They count
toward max_backups; the oldest others go until it is met. `BackupService.prune` deletes
what is chosen here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gitrelease.core.models import Backup, BackupStatus, OffsiteState, utcnow
from gitrelease.core.settings import Settings

__all__ = ["PruneResult", "choose_doomed"]


@dataclass
class PruneResult:
    dry_run: bool
    deleted: list[Backup] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # backup id -> why it is protected

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "deleted": [b.to_dict() for b in self.deleted],
                "kept": self.kept}


def choose_doomed(
    backups: list[Backup], in_use: Iterable[str], current_tag: str | None, settings: Settings,
    *, offsite: bool = False,
) -> tuple[list[Backup], dict[str, str]]:
    """The backups to delete, oldest first, and the protected ones that exist (id -> why).

    `backups`: every row not being deleted; `in_use`: ids an unfinished update needs.
    `offsite`: the offsite copies are pruned, by the same rules and their own limits
    (offsite_max_backups, offsite_retention_days).
    """
    max_backups = settings.offsite_max_backups if offsite else settings.max_backups
    days = settings.offsite_retention_days if offsite else settings.backup_retention_days
    completed = [b for b in backups if b.status is BackupStatus.COMPLETED]
    completed.sort(key=lambda b: b.created_at, reverse=True)
    protected: dict[str, str] = {}
    if completed:
        protected.setdefault(completed[0].id, "newest completed backup")
    of_tag = [b for b in completed if current_tag and b.tag == current_tag]
    if of_tag:
        protected.setdefault(of_tag[0].id, f"newest backup of the deployed tag {current_tag}")
    for b in completed:
        if b.keep:
            protected.setdefault(b.id, "marked keep")
    for backup_id in in_use:
        protected.setdefault(backup_id, "needed by an unfinished update")
    if not offsite and settings.offsite != "off" and settings.offsite_url:
        # Its upload is to come or failed and is retried: pruned here, it never would be.
        for b in completed:
            if b.offsite in (OffsiteState.QUEUED, OffsiteState.UPLOADING, OffsiteState.FAILED):
                protected.setdefault(b.id, "not copied offsite yet")
    cutoff = utcnow() - timedelta(days=days)
    excess = len(completed) - max_backups
    doomed: list[Backup] = []
    for backup in reversed(completed):
        if backup.id in protected:
            continue
        if excess > 0 or backup.created_at < cutoff:
            doomed.append(backup)
            excess -= 1
    # Failed attempts have no archive and never count; old ones are only clutter.
    doomed += [b for b in backups if b.status is BackupStatus.FAILED and b.created_at < cutoff]
    kept = {k: v for k, v in protected.items() if any(b.id == k for b in backups)}
    return sorted(doomed, key=lambda b: b.created_at), kept
