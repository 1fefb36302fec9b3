"""What the index rows of a chain say of each other: which backups need a backup (and so
keep it from being deleted), and how many bytes a restore of each reads.

A restore of an incremental backup reads its whole `chain` (the full backup first, its base
last) before itself; `retention` keeps a chain together when pruning, and this is how a
deletion by hand is refused while another backup needs the one it deletes.
"""

from __future__ import annotations

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import Backup, BackupStatus
from gitrelease.index.store import Store
from gitrelease.state.retention import needs

__all__ = ["BaseInUse", "dependents_of", "fill_chain_sizes", "refuse_if_needed",
           "with_chain_sizes"]


class BaseInUse(GitReleaseError):
    """A backup to delete is the base (directly or further up) of others: deleted, they
    could no longer be restored."""

    code = "backup_is_base"
    exit_code = 27


def dependents_of(backup: Backup, rows: list[Backup]) -> list[Backup]:
    """The backups whose restore reads `backup`, newest first. A row being deleted or a
    failed attempt (no archive) needs nothing."""
    found = [r for r in rows if r.id != backup.id and not r.deleting
             and r.status is not BackupStatus.FAILED and backup.id in needs(r)]
    return sorted(found, key=lambda r: r.created_at, reverse=True)


def refuse_if_needed(backup: Backup, rows: list[Backup]) -> None:
    """`BaseInUse` naming the backups that need `backup`, if any do."""
    dependents = dependents_of(backup, rows)
    if not dependents:
        return
    names = ", ".join(d.id for d in dependents)
    each = "it" if len(dependents) == 1 else "each of them"
    raise BaseInUse(
        f"{backup.id} is the base of {names}: a restore of {each} reads {backup.id}, so it "
        "is not deleted; nothing was changed",
        hint=f"delete {names} first (newest first, in that order), or keep {backup.id}")


def with_chain_sizes(backups: list[Backup], rows: list[Backup]) -> list[Backup]:
    """`backups` with `chain_size` filled: their own compressed size and that of each
    backup of their chain found among `rows` (None: a member, or a size, is missing)."""
    sizes = {r.id: r.compressed_size for r in rows if not r.deleting}
    for backup in backups:
        total = backup.compressed_size
        for member in needs(backup):
            part = sizes.get(member)
            total = None if total is None or part is None else total + part
        backup.chain_size = total
    return backups


async def fill_chain_sizes(store: Store, backups: list[Backup]) -> list[Backup]:
    """`with_chain_sizes` for rows read on their own (a page of a listing, one backup): the
    members of their chains that are not among them are read by id, not the whole index."""
    shown = {b.id for b in backups}
    rows = list(backups)
    for member in sorted({m for b in backups for m in needs(b)} - shown):
        row = await store.get_backup(member)
        if row is not None and row.id == member:  # an id, never another backup's name
            rows.append(row)
    return with_chain_sizes(backups, rows)
