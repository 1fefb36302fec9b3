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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitrelease.core.errors import GitReleaseError, InvalidInput, VerificationFailed
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.models import (
    ARCHIVE_MISSING,
    Backup,
    BackupOrigin,
    BackupStatus,
    BackupType,
    Progress,
    utcnow,
)
from gitrelease.core.options import options_from
from gitrelease.core.reports import RestoreResult
from gitrelease.core.text import counted
from gitrelease.state.archive import sha256_file
from gitrelease.state.archives import own_archive
from gitrelease.state.backup_options import BackupOptions
from gitrelease.state.backups import BackupService, ReleasePoint
from gitrelease.state.snapshot import is_sqlite, restore_database, snapshot_database
from gitrelease.state.sources import Layout
from gitrelease.state.unchanged import unchanged_files
from gitrelease.state.unpack import UnsafeArchive, extract_safely

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


# What a safety backup is, by what the restore replaces.
_SAFETY_TYPES = {"database": BackupType.DATABASE, "config": BackupType.CONFIG,
                 "data": BackupType.DATA_ONLY}


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


async def restore(
    service: BackupService, backup: Backup, options: RestoreOptions, point: ReleasePoint,
    progress: Progress | None = None, *, safety_backup: Backup | None = None,
    take_safety: bool = True,
) -> RestoreResult:
    """Restore `backup`; the caller holds the operation lock.

    `safety_backup`: a backup of the current state the caller has just taken (a rollback
    takes one first); without it, one is taken here of the files about to be replaced,
    unless `take_safety` is false (a rollback told not to back up). Either way a failure
    half-way puts back what was replaced, from copies kept aside until the end.
    """
    report = progress or (lambda step, percent, detail: None)
    if backup.status is not BackupStatus.COMPLETED:
        raise VerificationFailed(
            f"backup {backup.id} is {backup.status.value}"
            + (f": {backup.problem}" if backup.problem else "") + "; it cannot be restored")
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
        targets = {name: layout.restorable(name, service.settings, tracked, e.get("kind"))
                   for name, e in entries.items()}
    except ValueError as exc:
        raise UnsafeArchive(f"backup {backup.id}: {exc}") from None
    databases = {name for name, e in entries.items() if e["kind"] == "database"}
    result = RestoreResult(backup, options.restore_type, None,
                           warnings=_other_release(backup, point, bool(databases)))
    # What already is as backed up is neither unpacked, nor kept aside, nor replaced.
    report("compare", 5, backup.id)
    same = await asyncio.to_thread(unchanged_files, entries, {
        name: _live(path) for name, path in targets.items()}, databases)
    result.unchanged = len(same)
    entries = {name: e for name, e in entries.items() if name not in same}
    targets = {name: targets[name] for name in entries}
    databases -= same
    verify = options.verify_backup and backup.checksum is not None
    if not entries:
        if verify:  # the archive still answers for what the operator restored from
            report("verify", 50, backup.id)
            await _verify_whole(service, backup)
        report("done", 100, backup.id)
        return result
    # The staging dir is beside the archives: a leftover of a crash is swept by the reconcile.
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{backup.id}-",
                                    dir=service.archives.scratch))
    try:
        # Unpacking (which verifies, by the archive's sha256 and each member's) and the
        # safety backup (of what is live now) are independent: they run side by side, and
        # nothing live is touched until both are done.
        report("unpack", 10, backup.id)
        async with service.archives.reading(own_archive(service.archives, backup)) as source:
            unpacking = asyncio.ensure_future(asyncio.to_thread(
                extract_safely, source, staging, manifest, wanted=set(entries),
                checksum=backup.checksum if verify else None,
                durable=set(entries) - databases, shown=layout.shown))
            safety = None if safety_backup is not None or not take_safety else \
                asyncio.ensure_future(_safety_backup(service, backup, options, entries,
                                                     targets, point))
            staged = await _both(service, backup, unpacking, safety,
                                 verify=options.verify_backup)
        result.safety_backup = safety_backup or (safety.result() if safety else None)
        if safety is not None and result.safety_backup is not None:
            result.warnings += [f"the safety backup {result.safety_backup.id}: {w}"
                                for w in result.safety_backup.warnings]
        not_sqlite = sorted(n for n in databases if not is_sqlite(staged[n]))
        if not_sqlite:  # what a restore writes as a database is one, wherever it goes
            await _drop(service, safety)
            raise UnsafeArchive(f"backup {backup.id}: {layout.shown(not_sqlite[0])} is "
                                "listed as a database but is no SQLite file")
        if verify:
            backup.verified_at = utcnow()
            await service.store.save_backup(backup)
        report("restore", 60, backup.id)
        result.restored = [layout.shown(name) for name in await _replace(
            backup, staged, targets, databases, staging / "aside", result.safety_backup, report,
            layout.shown)]
        report("done", 100, backup.id)
        return result
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)


async def _verify_whole(service: BackupService, backup: Backup) -> None:
    """The archive's sha256 against the index, when nothing of it needs unpacking; a mismatch
    marks it corrupted, as a verify pass would."""
    async with service.archives.reading(own_archive(service.archives, backup)) as source:
        if not source.is_file():
            backup.status, backup.problem = BackupStatus.CORRUPTED, ARCHIVE_MISSING
            backup.verified_at = None
            await service.store.save_backup(backup)
            raise VerificationFailed(f"the archive {source.name} is missing")
        try:
            digest = await asyncio.to_thread(sha256_file, source)
        except OSError as exc:
            raise VerificationFailed(f"the archive of {backup.id} cannot be read: "
                                     f"{exc.strerror}") from None
    if digest != backup.checksum:
        backup.status = BackupStatus.CORRUPTED
        backup.problem = f"{source.name}: the archive's sha256 does not match the index"
        backup.verified_at = None
        await service.store.save_backup(backup)
        raise VerificationFailed(backup.problem)
    backup.verified_at = utcnow()
    await service.store.save_backup(backup)


def _other_release(backup: Backup, point: ReleasePoint, databases: bool) -> list[str]:
    """A backup taken at another release than the code here: said, for its database (or its
    files) may not fit this code."""
    if not backup.commit or not point.commit or backup.commit == point.commit:
        return []
    taken = backup.tag or backup.commit[:12]
    here = point.tag or point.version
    what = "its database" if databases else "its files"
    return [f"backup {backup.id} was taken at {taken}; the code here is {here}: {what} may "
            "not match this code"]


async def _both(
    service: BackupService, backup: Backup, unpacking: asyncio.Future[dict[str, Path]],
    safety: asyncio.Future[Backup | None] | None, *, verify: bool,
) -> dict[str, Path]:
    """Wait for the unpacking and the safety backup; if either fails, the other is waited
    for and undone (a safety backup of a restore that never happens is not kept)."""
    waiting = [f for f in (unpacking, safety) if f is not None]
    try:
        await asyncio.shield(asyncio.gather(*waiting, return_exceptions=True))
    except BaseException:
        await asyncio.gather(*waiting, return_exceptions=True)
        await _drop(service, safety)
        raise
    problem = unpacking.exception() or (safety.exception() if safety else None)
    if problem is None:
        return unpacking.result()
    await _drop(service, safety)
    if isinstance(unpacking.exception(), VerificationFailed):
        # What a separate verify pass would have said, and marked.
        backup.status = BackupStatus.CORRUPTED
        backup.problem = problem.message if isinstance(problem, GitReleaseError) else str(problem)
        backup.verified_at = None
        await service.store.save_backup(backup)
    raise problem


async def _drop(service: BackupService, safety: asyncio.Future[Backup | None] | None) -> None:
    if safety is not None and safety.done() and not safety.cancelled() \
            and safety.exception() is None and safety.result() is not None:
        await service.delete(safety.result())  # type: ignore[arg-type]


async def _safety_backup(
    service: BackupService, backup: Backup, options: RestoreOptions,
    entries: dict[str, dict[str, Any]], targets: dict[str, Path], point: ReleasePoint,
) -> Backup | None:
    """A backup of the live files the restore replaces (none of the others: what it does not
    touch needs no way back), uncompressed: it is there to be restored from, and soon."""
    replaced = frozenset(name for name, path in targets.items() if path.exists())
    if not replaced:
        return None
    kind = _SAFETY_TYPES.get(options.restore_type, BackupType.FULL)
    return await service.create(
        kind, BackupOptions(compress=False, auto_created=True, origin=BackupOrigin.SAFETY,
                            include_logs=any(e["kind"] == "log" for e in entries.values()),
                            description=f"taken before restoring {backup.id}"),
        point, only=replaced)


async def _replace(
    backup: Backup, staged: dict[str, Path], targets: dict[str, Path], databases: set[str],
    aside: Path, safety: Backup | None, report: Progress, shown: Callable[[str], str],
) -> list[str]:
    """Swap the staged files in: plain files first, each live one kept aside by a hard link
    (no copy), then the databases, each one transaction in SQLite. A database before the last
    is copied aside first; the last needs no copy, for if it fails SQLite rolls it back and
    nothing after it can fail. On any failure, what was replaced is put back."""
    order = sorted(n for n in staged if n not in databases) + sorted(n for n in staged
                                                                     if n in databases)
    kept: dict[str, Path | None] = {}  # replaced name -> its old content aside, or None
    applied: list[str] = []
    name = ""
    try:
        aside.mkdir()
        directories: set[Path] = set()
        for number, name in enumerate(order):
            report("restore", 60 + int(number / len(order) * 35), shown(name))
            live = _live(targets[name])
            is_database = name in databases
            if is_database and directories:
                # The renames made durable before the first database: from there on,
                # each step is its own, and the last cannot be followed by a failure.
                await asyncio.to_thread(_fsync_dirs, directories)
                directories = set()
            if not is_database:
                await asyncio.to_thread(_link_aside, live, aside / str(number), kept, name)
            elif name != order[-1] or not is_sqlite(live):
                await asyncio.to_thread(_db_aside, live, aside / f"{number}.db", kept, name)
            # else: not kept at all, SQLite's own transaction is the way back of the last step
            await asyncio.to_thread(_apply, staged[name], targets[name], is_database)
            applied.append(name)
            if not is_database:
                directories.add(live.parent)
        await asyncio.to_thread(_fsync_dirs, directories)
    except BaseException as exc:
        undo = await asyncio.to_thread(_put_back, applied, kept, targets, databases, shown)
        message = exc.message if isinstance(exc, GitReleaseError) else repr(exc)
        hint = (f"the safety backup {safety.id} holds the state from before the restore"
                if safety else None)
        raise RestoreFailed(f"restoring {backup.id} failed at {shown(name)}: {message}; "
                            f"{undo}", hint=hint) from None
    return applied


def _live(path: Path) -> Path:
    if path.is_symlink() and path.resolve().is_file():
        return path.resolve()  # the operator's link (to where secrets live) stays a link
    return path


def _link_aside(live: Path, aside: Path, kept: dict[str, Path | None], name: str) -> None:
    """Keep the live file's content at `aside` without copying it: a second name for the same
    inode, which the swap then unlinks from the live name only."""
    if not live.is_file():
        kept[name] = None
        return
    try:
        os.link(live, aside)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(live, aside)  # another filesystem: a copy, needed only in this process
    kept[name] = aside


def _db_aside(live: Path, aside: Path, kept: dict[str, Path | None], name: str) -> None:
    if live.is_file() and is_sqlite(live):
        snapshot_database(live, aside)
        kept[name] = aside
    else:
        _link_aside(live, aside, kept, name)


def _fsync_dirs(directories: set[Path]) -> None:
    for directory in sorted(directories):
        fsync_dir(directory)


def _versioned(layout: Layout, name: str, tracked: frozenset[str]) -> bool:
    try:
        path = layout.live_path(name)
    except ValueError:
        return False  # refused below, with the reason
    return path.is_relative_to(layout.root) and \
        path.relative_to(layout.root).as_posix() in tracked


def _apply(staged: Path, live: Path, is_database: bool) -> None:
    """One file into place; the caller fsyncs the directories it renamed into, once each."""
    live = _live(live)
    if is_database and live.is_file() and is_sqlite(live):
        restore_database(staged, live)
        return
    live.parent.mkdir(parents=True, exist_ok=True)
    if live.is_dir() and not live.is_symlink():
        raise RestoreFailed(f"{live} is a directory; a file was backed up there")
    if is_database:  # staged without an fsync, to be read through SQLite: not so now
        with staged.open("rb+") as handle:
            os.fsync(handle.fileno())
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
    if is_database:  # databases come last: no later step fsyncs this directory
        fsync_dir(live.parent)


def _put_back(
    applied: list[str], kept: dict[str, Path | None], targets: dict[str, Path],
    databases: set[str], shown: Callable[[str], str] = str,
) -> str:
    """Undo a half-done restore from the copies kept aside; says what it did."""
    if not applied:
        return "nothing had been replaced yet"
    failed = []
    directories = set()
    for name in reversed(applied):
        if name not in kept:
            continue  # the last database: SQLite rolled it back, or it is done
        live = _live(targets[name])
        old = kept[name]
        try:
            if old is None:
                live.unlink(missing_ok=True)  # the restore created it
            elif name in databases and is_sqlite(old) and is_sqlite(live):
                restore_database(old, live)
            else:
                os.replace(old, live)
            directories.add(live.parent)
        except (GitReleaseError, OSError) as exc:
            failed.append(f"{shown(name)} "
                          f"({exc.message if isinstance(exc, GitReleaseError) else exc})")
    try:
        _fsync_dirs(directories)
    except OSError as exc:
        failed.append(f"the directories ({exc})")
    if failed:
        return (f"putting back the {counted(len(applied), 'file')} replaced FAILED for "
                f"{', '.join(failed)}")
    replaced = counted(len(applied), "file")
    return f"the {replaced} already replaced {'was' if len(applied) == 1 else 'were'} put back"
