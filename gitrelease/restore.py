"""Restoring a backup: verify, unpack into staging, take a safety backup, then replace.

Nothing live is touched until the archive has been verified (unless asked not to) and
unpacked safely into a staging dir next to the backups. Databases are written through
SQLite's backup API into the live file, so the bot's open connections stay valid and see the
restored data; other files are swapped in with an atomic rename, keeping their recorded
modes. If a step fails half-way, what was already replaced is put back from the safety
backup, and files the restore created are removed again.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitrelease import archive
from gitrelease.backups import BackupOptions, BackupService, ReleasePoint
from gitrelease.errors import GitReleaseError, InvalidInput, VerificationFailed
from gitrelease.fsutil import fsync_dir
from gitrelease.models import Backup, BackupStatus, BackupType, Progress
from gitrelease.options import options_from
from gitrelease.snapshot import is_sqlite, restore_database
from gitrelease.sources import Layout

__all__ = ["RESTORE_TYPES", "RestoreFailed", "RestoreOptions", "RestoreResult", "restore"]

RESTORE_TYPES = {
    "all": {"database", "config", "data", "log"},
    "full": {"database", "config", "data", "log"},  # the specification's own example says full
    "database": {"database"},
    "config": {"config"},
    "data": {"data"},
    # What a rollback restores when told to keep today's config: all but the config files.
    "all_but_config": {"database", "data", "log"},
}


class RestoreFailed(GitReleaseError):
    code = "restore_failed"
    exit_code = 18


@dataclass(frozen=True)
class RestoreOptions:
    confirm: bool = False
    restore_type: str = "all"
    verify_backup: bool = True

    def __post_init__(self) -> None:
        if self.confirm is not True:
            raise InvalidInput("confirm", self.confirm, "true",
                               reason="a restore replaces live files; it must be confirmed")
        if self.restore_type not in RESTORE_TYPES:
            raise InvalidInput("restore_type", self.restore_type, list(RESTORE_TYPES))
        if not isinstance(self.verify_backup, bool):
            raise InvalidInput("verify_backup", self.verify_backup, "true or false")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> RestoreOptions:
        return options_from(cls, options)


@dataclass
class RestoreResult:
    backup: Backup
    restore_type: str
    safety_backup: Backup | None
    restored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup.to_dict(),
            "restore_type": self.restore_type,
            "safety_backup": self.safety_backup.to_dict() if self.safety_backup else None,
            "restored": self.restored,
        }


async def restore(
    service: BackupService, backup: Backup, options: RestoreOptions, point: ReleasePoint,
    progress: Progress | None = None, *, safety_backup: Backup | None = None,
) -> RestoreResult:
    """Restore `backup`; the caller holds the operation lock.

    `safety_backup`: a backup of the current state the caller has just taken (a rollback
    takes one first); without it, one is taken here before anything is replaced.
    """
    report = progress or (lambda step, percent, detail: None)
    if backup.status is not BackupStatus.COMPLETED:
        raise VerificationFailed(
            f"backup {backup.id} is {backup.status.value}"
            + (f": {backup.problem}" if backup.problem else "") + "; it cannot be restored")
    if options.verify_backup:
        report("verify", 5, backup.id)
        await service.verify(backup)
    manifest = await service.store.backup_manifest(backup)
    kinds = RESTORE_TYPES[options.restore_type]
    entries = {f["path"]: f for f in manifest.get("files", []) if f.get("kind") in kinds}
    if not entries:
        raise InvalidInput("restore_type", options.restore_type,
                           sorted({f.get("kind") for f in manifest.get("files", [])}),
                           reason=f"backup {backup.id} holds no such files")
    layout = service.layout
    tracked = await asyncio.to_thread(service.tracked_files)
    # Versioned files are git's to restore (a backup may hold one, e.g. data/.gitkeep).
    entries = {name: e for name, e in entries.items() if not _versioned(layout, name, tracked)}
    try:
        targets = {name: layout.restorable(name, service.settings, tracked)
                   for name in entries}
    except ValueError as exc:
        raise archive.UnsafeArchive(f"backup {backup.id}: {exc}") from None
    result = RestoreResult(backup, options.restore_type, None)
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{backup.id}-", dir=layout.backup_dir))
    try:
        report("unpack", 20, backup.id)
        staged = await asyncio.to_thread(
            archive.extract_safely, Path(backup.file_path or ""), staging, manifest,
            wanted=set(entries))
        report("safety backup", 40, "current state")
        result.safety_backup = safety_backup or await service.create(
            BackupType.FULL,
            BackupOptions(auto_created=True,
                          include_logs=any(e["kind"] == "log" for e in entries.values()),
                          description=f"taken before restoring {backup.id}"),
            point)
        existed = {name: path.exists() for name, path in targets.items()}
        applied: list[str] = []
        name = ""
        try:
            for number, (name, staged_path) in enumerate(sorted(staged.items())):
                report("restore", 60 + int(number / len(staged) * 35), name)
                await asyncio.to_thread(
                    _apply, staged_path, targets[name], entries[name]["kind"] == "database")
                applied.append(name)
        except BaseException as exc:
            undo = await _put_back(service, result.safety_backup, applied, existed, staging)
            message = exc.message if isinstance(exc, GitReleaseError) else repr(exc)
            raise RestoreFailed(f"restoring {backup.id} failed at {name}: {message}; {undo}",
                                hint=f"the safety backup {result.safety_backup.id} holds the "
                                     "state from before the restore") from None
        result.restored = applied
        report("done", 100, backup.id)
        return result
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)


def _versioned(layout: Layout, name: str, tracked: frozenset[str]) -> bool:
    try:
        path = layout.live_path(name)
    except ValueError:
        return False  # refused below, with the reason
    return path.is_relative_to(layout.root) and \
        path.relative_to(layout.root).as_posix() in tracked


def _apply(staged: Path, live: Path, is_database: bool) -> None:
    if live.is_symlink() and live.resolve().is_file():
        live = live.resolve()  # the operator's link (to where secrets live) stays a link
    if is_database and live.is_file() and is_sqlite(live):
        restore_database(staged, live)
        return
    live.parent.mkdir(parents=True, exist_ok=True)
    if live.is_dir() and not live.is_symlink():
        raise RestoreFailed(f"{live} is a directory; a file was backed up there")
    try:
        os.replace(staged, live)  # staged was fsynced with its recorded mode
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # the live file is on another filesystem
            raise
        temporary = live.parent / f".{live.name}.tmp-restore"
        shutil.copy2(staged, temporary)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, live)
    fsync_dir(live.parent)


async def _put_back(
    service: BackupService, safety: Backup, applied: list[str], existed: dict[str, bool],
    staging: Path,
) -> str:
    """Undo a half-done restore from the safety backup; says what it did."""
    if not applied:
        return "nothing had been replaced yet"
    manifest = await service.store.backup_manifest(safety)
    in_safety = {f["path"] for f in manifest.get("files", [])}
    back = staging / "put-back"
    back.mkdir()
    try:
        wanted = {name for name in applied if existed[name] and name in in_safety}
        staged = await asyncio.to_thread(
            archive.extract_safely, Path(safety.file_path or ""), back, manifest,
            wanted=wanted) if wanted else {}
        for name in applied:
            live = service.layout.live_path(name)
            if name in staged:
                entry = next(f for f in manifest["files"] if f["path"] == name)
                await asyncio.to_thread(_apply, staged[name], live, entry["kind"] == "database")
            elif not existed[name]:
                await asyncio.to_thread(live.unlink, True)
    except (GitReleaseError, OSError) as exc:
        detail = exc.message if isinstance(exc, GitReleaseError) else str(exc)
        return f"putting back the {len(applied)} replaced files FAILED: {detail}"
    return f"the {len(applied)} files already replaced were put back"
