"""Making the index and the archive store agree after a crash, or after the index was lost.

Leftovers of interrupted writes are removed, rows left half-written are marked failed, rows
left half-deleted are finished, a completed backup whose archive has gone is marked
CORRUPTED (and back again when it returns), and an archive the index does not know is
adopted from its own manifest. The caller holds the operation lock, so no other process is
writing an archive meanwhile. `upkeep` answers, cheaply, whether any of this is needed.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import (
    ARCHIVE_MISSING,
    Backup,
    BackupOrigin,
    BackupStatus,
    BackupType,
    utcnow,
)
from gitrelease.index.store import Store
from gitrelease.state import archive
from gitrelease.state.archives import (
    ARCHIVE_NAME,
    ArchiveStore,
    Presence,
    StoredArchive,
    row_refusal,
)
from gitrelease.state.backup_options import BACKUP_NAME

__all__ = ["MISSING", "reconcile"]

MISSING = ARCHIVE_MISSING
_SHA40 = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


async def reconcile(store: Store, archives: ArchiveStore) -> list[str]:
    """Put the index and the store in order; says what it did, a note per thing."""
    notes: list[str] = []
    for leftover in await asyncio.to_thread(archives.sweep_leftovers):
        notes.append(f"removed leftover {leftover}")
    rows = await store.list_backups()
    listed = {stored.name: stored for stored in await asyncio.to_thread(archives.archives)}
    for backup in rows:
        location = backup.file_path or None
        if location is not None and row_refusal(archives, backup) is not None:
            notes.append(await _foreign(store, backup, location, rows, listed))
        elif backup.deleting:
            if location is not None:
                await asyncio.to_thread(archives.delete, location)
            await store.delete_backup(backup.id)
            notes.append(f"finished deleting {backup.id}")
        elif backup.status in (BackupStatus.CREATING, BackupStatus.COMPRESSING):
            backup.status = BackupStatus.FAILED
            backup.problem = "interrupted while being written"
            backup.completed_at = utcnow()
            await store.save_backup(backup)
            notes.append(f"{backup.id} was interrupted: marked failed")
        elif backup.status is BackupStatus.COMPLETED and (
                presence := _presence(archives, location)) is not Presence.PRESENT:
            if presence is Presence.UNREACHABLE:
                notes.append(f"{Path(location or '').parent} is not there (a disk not "
                             "mounted?): nothing marked")
                continue
            backup.status = BackupStatus.CORRUPTED
            backup.problem = MISSING
            await store.save_backup(backup)
            notes.append(f"{backup.id}: archive missing")
        elif backup.status is BackupStatus.CORRUPTED and backup.problem == MISSING \
                and _presence(archives, location) is Presence.PRESENT:
            backup.status = BackupStatus.COMPLETED  # it is back; `verify` will tell
            backup.problem = None
            backup.verified_at = None
            await store.save_backup(backup)
            notes.append(f"{backup.id}: archive found again (not verified)")
    # By file name, not location: an archive the index knows under another directory (the
    # backups dir moved) is the same archive, not one to adopt. Known by its own backup's
    # row only: a row naming another backup's archive does not make that archive known.
    known = {name for b in rows if b.file_path and (named := ARCHIVE_NAME.match(
        name := Path(b.file_path).name)) is not None and named.group(1) == b.id}
    for stored in listed.values():
        if stored.name not in known:
            adopted = await _adopt(store, archives, stored)
            notes.append(f"adopted {stored.name} as {adopted.id}" if adopted
                         else f"{stored.name} is not a readable gitrelease archive: left alone")
    return notes


async def _foreign(store: Store, backup: Backup, location: str, rows: list[Backup],
                   listed: dict[str, StoredArchive]) -> str:
    """A row naming no archive of its own (`row_refusal`): what it names is never touched.
    A half-deleted one is finished as a row; one whose archive is in the store under the
    same name, its own by that name's id, and named by no other row (the backups folder
    moved, its files with it), points there again; any other is left as it is, and said."""
    if backup.deleting:
        await store.delete_backup(backup.id)
        return f"finished deleting {backup.id} (its row named {location!r}, left alone)"
    stored = listed.get(Path(location).name)
    if stored is not None and stored.backup_id == backup.id and \
            not any(b.file_path == stored.location for b in rows):
        backup.file_path = stored.location
        backup.verified_at = None  # the checksum still answers for it; `verify` will tell
        await store.save_backup(backup)
        return f"{backup.id}: its archive {stored.name} found in the backups folder"
    return f"{backup.id} names {location!r}, not its archive in the backups folder: left alone"


def _presence(archives: ArchiveStore, location: str | None) -> Presence:
    # A row without a location has no archive anywhere: absent, not unreachable.
    return Presence.ABSENT if location is None else archives.presence(location)


async def _adopt(store: Store, archives: ArchiveStore, stored: StoredArchive) -> Backup | None:
    """A row for an archive the index does not know, from the archive's own manifest.

    The manifest is the archive's word, so nothing in it is taken on trust: the id must
    be the file's own name, text fields must be plain, a date cannot lie in the future,
    and an adopted archive is never `keep` (an operator marks that again).
    """
    try:
        async with archives.reading(stored.location) as path:
            manifest = await asyncio.to_thread(archive.read_manifest, path)
            checksum = await asyncio.to_thread(archive.sha256_file, path)
        backup_id = stored.backup_id
        if manifest.get("backup_id") != backup_id:
            return None
        created = min(datetime.fromisoformat(manifest["created_at"]).astimezone(UTC),
                      stored.modified, utcnow())
        name = manifest.get("name")
        if not isinstance(name, str) or not BACKUP_NAME.match(name) or \
                await store.get_backup(name) is not None:
            name = backup_id
        description = manifest.get("description")
        if not isinstance(description, str) or not description.isprintable():
            description = None
        tag, commit = manifest.get("tag"), manifest.get("commit")
        backup = Backup(
            id=backup_id, name=name,
            backup_type=BackupType(manifest["backup_type"]), status=BackupStatus.COMPLETED,
            file_path=stored.location, file_size=sum(int(f["size"]) for f in manifest["files"]),
            compressed_size=stored.size, created_at=created, completed_at=created,
            description=description[:500] if description else None, checksum=checksum,
            auto_created=bool(manifest.get("auto_created")),
            metadata={"manifest": manifest, "adopted": True,
                      **({"origin": manifest["origin"]} if manifest.get("origin") in
                         {o.value for o in BackupOrigin} else {})},
            tag=tag if isinstance(tag, str) and BACKUP_NAME.match(tag.replace("/", "-"))
            else None,
            commit=commit if isinstance(commit, str) and _SHA40.match(commit) else None)
    except (GitReleaseError, KeyError, TypeError, ValueError, OSError):
        return None
    if await store.get_backup(backup.id) is not None:
        return None
    await store.save_backup(backup)
    return backup
