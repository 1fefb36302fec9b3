"""Which backups a prune deletes: max_backups and backup_retention_days, and what is protected.

Protected, whatever their age or number: the newest completed backup, the newest of the
deployed tag, those marked keep, those an unfinished update still needs, and (with offsite
copies on) those whose upload is still to come or failed. They count
toward max_backups; the oldest others go until it is met. `BackupService.prune` deletes
what is chosen here.

Chains (a full backup and the incremental ones taken on it): a restore of a backup reads
every backup of its `chain`, so a backup goes only with every backup that needs it. What
protects a backup protects its chain ("base of <id>"), and a backup the limits would delete
stays while a backup that is kept needs it. A chain is so deleted whole, once its newest
member goes: until then its older members count toward max_backups like the protected
ones. `deletion_order` deletes those that need a base before it, so an interrupted prune
never leaves a backup whose base is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gitrelease.core.models import Backup, BackupStatus, OffsiteState, utcnow
from gitrelease.core.settings import Settings

__all__ = ["PruneResult", "choose_doomed", "deletion_order", "needs", "restorable"]


@dataclass
class PruneResult:
    dry_run: bool
    deleted: list[Backup] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # backup id -> why it is protected

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "deleted": [b.to_dict() for b in self.deleted],
                "kept": self.kept}


def needs(backup: Backup) -> list[str]:
    """The ids a restore of `backup` reads besides it: its chain, full backup first (its
    base too, should a damaged manifest name a base its chain lacks)."""
    ids = [link["id"] for link in backup.chain]
    base = backup.base_id
    if base is not None and base not in ids:
        ids.append(base)
    return ids


def restorable(backup: Backup, by_id: Mapping[str, Backup]) -> bool:
    """Whether every backup `backup`'s chain needs is there and completed."""
    for member in needs(backup):
        row = by_id.get(member)
        if row is None or row.status is not BackupStatus.COMPLETED or row.deleting:
            return False
    return True


def choose_doomed(
    backups: list[Backup], in_use: Iterable[str], current_tag: str | None, settings: Settings,
    *, offsite: bool = False, held: Callable[[Backup], str | None] | None = None,
) -> tuple[list[Backup], dict[str, str]]:
    """The backups to delete, oldest first, and the kept ones that exist (id -> why).

    `backups`: every row not being deleted; `in_use`: ids an unfinished update needs.
    `offsite`: the offsite copies are pruned, by the same rules and their own limits
    (offsite_max_backups, offsite_retention_days). `held`: why the caller keeps one the
    limits would delete (None: it may go); its chain is kept with it.
    """
    max_backups = settings.offsite_max_backups if offsite else settings.max_backups
    days = settings.offsite_retention_days if offsite else settings.backup_retention_days
    completed = [b for b in backups if b.status is BackupStatus.COMPLETED]
    completed.sort(key=lambda b: b.created_at, reverse=True)
    by_id = {b.id: b for b in backups}
    # The newest backups kept as the way back must be restorable: an incremental whose
    # chain has a link gone or damaged is not, whatever its own row says.
    whole = [b for b in completed if restorable(b, by_id)]
    protected: dict[str, str] = {}
    if whole:
        protected.setdefault(whole[0].id, "newest completed backup")
    of_tag = [b for b in whole if current_tag and b.tag == current_tag]
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
    for backup_id in list(protected):  # a protected backup is restorable: its chain stays
        if backup_id in by_id:
            for member in needs(by_id[backup_id]):
                protected.setdefault(member, f"base of {backup_id}")
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
    kept = {k: v for k, v in protected.items() if k in by_id}
    if held is not None:
        for backup in list(doomed):
            why = held(backup)
            if why is not None:
                doomed.remove(backup)
                kept[backup.id] = why
    doomed = _spare_bases(backups, doomed, kept, offsite=offsite)
    return sorted(doomed, key=lambda b: b.created_at), kept


def _spare_bases(backups: list[Backup], doomed: list[Backup], kept: dict[str, str], *,
                 offsite: bool) -> list[Backup]:
    """`doomed` without the bases a staying backup needs (each said in `kept`), until none
    is left: a spared base spares its own chain."""
    going = {b.id: b for b in doomed}
    changed = True
    while changed:
        changed = False
        for backup in sorted(backups, key=lambda b: b.created_at, reverse=True):
            for member in _still_needed(backup, going, backups, offsite=offsite):
                if member in going:
                    del going[member]
                    kept[member] = f"base of {backup.id}"
                    changed = True
    return [b for b in doomed if b.id in going]


def _still_needed(backup: Backup, going: dict[str, Backup], backups: list[Backup], *,
                  offsite: bool) -> list[str]:
    """What `backup` needs here once the prune is over: its whole chain while it stays;
    nothing once it goes (a failed attempt has no archive and needs nothing); and while it
    is, or becomes, held only offsite, the bases that are not offsite too."""
    if backup.status is BackupStatus.FAILED or backup.deleting:
        return []
    stays_offsite = not offsite and backup.file_path is not None \
        and backup.offsite is OffsiteState.UPLOADED
    if backup.only_offsite or (backup.id in going and stays_offsite):
        uploaded = {b.id for b in backups if b.offsite is OffsiteState.UPLOADED}
        return [m for m in needs(backup) if m not in uploaded]
    return [] if backup.id in going else needs(backup)


def deletion_order(doomed: list[Backup]) -> list[Backup]:
    """`doomed` newest first, but never a base before a backup among them that needs it
    (whatever their recorded times say), so that an interruption leaves no orphan."""
    left = sorted(doomed, key=lambda b: b.created_at, reverse=True)
    ordered: list[Backup] = []
    while left:
        needed = {m for b in left for m in needs(b)}
        free = [b for b in left if b.id not in needed] or left[:1]  # a cycle: break it
        ordered.append(free[0])
        left.remove(free[0])
    return ordered
