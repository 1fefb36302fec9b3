"""Restoring a backup: verify, unpack into staging, take a safety backup, then replace.

Nothing live is touched until the archive has been verified (unless asked not to) and
unpacked safely into a staging dir next to the backups. Databases are written through
SQLite's backup API into the live file, so the bot's open connections stay valid and see the
restored data; other files are swapped in with an atomic rename, keeping their recorded
modes (config files 0600, whatever the archive says). A link at a target is replaced, never
written through, and a link above one refuses the restore (`placing`). If a step fails
half-way, what was already replaced is put back from the copies kept aside, and files the
restore created are removed again; if the process is killed half-way, its journal has the
next start do the same (`restore_recovery`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitrelease.core.errors import (
    GitReleaseError,
    InsufficientDiskSpace,
    InvalidInput,
    VerificationFailed,
)
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
from gitrelease.state.archive import sha256_file
from gitrelease.state.archives import own_archive
from gitrelease.state.backup_options import BackupOptions
from gitrelease.state.backups import BackupService, ReleasePoint
from gitrelease.state.chain_restore import stage_chain
from gitrelease.state.incremental import ChainBroken, load_chain
from gitrelease.state.placing import LinkedTarget, RestoreFailed, Target, replace, target_of
from gitrelease.state.restore_journal import journal_of, needs_settling
from gitrelease.state.snapshot import is_sqlite
from gitrelease.state.sources import Layout, LinkInTheWay
from gitrelease.state.space import check_space, is_disk_full, restore_needs
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
    # An incremental backup's chain is whole, or it is refused here, naming the backup that
    # broke it, before anything is read or changed.
    chain = await load_chain(service.store, backup, manifest) if backup.chain else None
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
        targets = {name: target_of(name, layout.restorable(
            name, service.settings, tracked, e.get("kind")), layout.base_of(name), e)
            for name, e in entries.items()}
    except LinkInTheWay as exc:
        link = exc.link.relative_to(layout.root) if exc.link.is_relative_to(layout.root) \
            else exc.link
        raise LinkedTarget(f"{link} is a symbolic link; restoring {backup.id} would write "
                           "through it; nothing was changed") from None
    except ValueError as exc:
        raise UnsafeArchive(f"backup {backup.id}: {exc}") from None
    # Config files hold secrets: 0600 when restored, whatever the archive says of them.
    private = frozenset(name for name, e in entries.items()
                        if e.get("kind") == "config" or layout.is_config(name, service.settings))
    entries = {name: {**e, "mode": 0o600} if name in private else e
               for name, e in entries.items()}
    databases = {name for name, e in entries.items() if e["kind"] == "database"}
    result = RestoreResult(backup, options.restore_type, None,
                           warnings=_other_release(backup, point, bool(databases)))
    # What already is as backed up is neither unpacked, nor kept aside, nor replaced.
    report("compare", 5, backup.id)
    same = await asyncio.to_thread(unchanged_files, entries, {
        name: target.live for name, target in targets.items()}, databases)
    result.unchanged = len(same)
    entries = {name: e for name, e in entries.items() if name not in same}
    targets = {name: targets[name] for name in entries}
    databases -= same
    result.warnings += [
        f"{layout.shown(name)} was a symbolic link (to {t.link!r}): the link is replaced by "
        "the backed-up file, and what it pointed to is left as it was"
        for name, t in sorted(targets.items()) if t.link is not None]
    verify = options.verify_backup and backup.checksum is not None
    if not entries:
        if verify:  # the archive still answers for what the operator restored from
            report("verify", 50, backup.id)
            await _verify_whole(service, backup)
        report("done", 100, backup.id)
        return result
    # What it will write, where: a disk too full to take it refuses here, with nothing
    # changed, rather than half-way on a disk it then has to undo itself on.
    await asyncio.to_thread(check_space, restore_needs(
        entries, {name: t.live for name, t in targets.items()}, databases,
        scratch=service.archives.scratch, data_dir=layout.data_dir,
        safety=safety_backup is None and take_safety), f"restoring {backup.id}")
    # The staging dir is beside the archives (a backup_path just set may not exist yet): a
    # leftover of a crash is settled by its journal or swept by the reconcile.
    service.archives.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{backup.id}-",
                                    dir=service.archives.scratch))
    journal = journal_of(layout.data_dir, staging)
    try:
        # Unpacking (which verifies, by the archive's sha256 and each member's) and the
        # safety backup (of what is live now) are independent: they run side by side, and
        # nothing live is touched until both are done.
        report("unpack", 10, backup.id)
        async with AsyncExitStack() as readings:
            links = chain.links if chain is not None else ()
            paths = {link.backup.id: await readings.enter_async_context(
                service.archives.reading(own_archive(service.archives, link.backup)))
                for link in links}
            source = paths[backup.id] if chain is not None else \
                await readings.enter_async_context(
                    service.archives.reading(own_archive(service.archives, backup)))
            unpacking = asyncio.ensure_future(asyncio.to_thread(
                extract_safely, source, staging, manifest, wanted=set(entries),
                checksum=backup.checksum if verify else None,
                durable=set(entries), shown=layout.shown, private=private)
                if chain is None else asyncio.to_thread(
                stage_chain, chain, paths, staging, entries,
                {link.backup.id: {"files": list(link.files.values())} for link in links},
                verify=verify, durable=set(entries), shown=layout.shown,
                private=private))
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
            try:
                await service.store.save_backup(backup)
            except Exception as exc:
                problem: BaseException = exc if not is_disk_full(exc) else InsufficientDiskSpace(
                    f"disk full while recording in the index that {backup.id} was verified; "
                    "nothing live was changed", hint="free some disk space, then restore "
                    "again")
                await _drop(service, safety, problem)
                raise problem from None
        report("restore", 60, backup.id)
        result.restored = [layout.shown(name) for name in await replace(
            backup, staged, targets, databases, staging / "aside", result.safety_backup, report,
            layout.shown, journal, {name: str(e["sha256"]) for name, e in entries.items()})]
        report("done", 100, backup.id)
        return result
    finally:
        # Unless its journal still needs it: a restore not put back whole is settled by the
        # next start from the copies kept there (`restore_recovery`).
        await asyncio.to_thread(_clean_up, staging, journal)


def _clean_up(staging: Path, journal: Path) -> None:
    """The staging dir and the journal gone, unless the journal still needs settling. The
    journal first: a staging dir left without one is swept as a leftover."""
    if needs_settling(journal):
        return
    journal.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


async def _verify_whole(service: BackupService, backup: Backup) -> None:
    """The archive's sha256 against the index, when nothing of it needs unpacking; a mismatch
    marks it corrupted, as a verify pass would."""
    async with service.archives.reading(own_archive(service.archives, backup)) as source:
        if not source.is_file():
            await service.mark_corrupted(backup, ARCHIVE_MISSING)
            raise VerificationFailed(f"the archive {source.name} is missing")
        try:
            digest = await asyncio.to_thread(sha256_file, source)
        except OSError as exc:
            raise VerificationFailed(f"the archive of {backup.id} cannot be read: "
                                     f"{exc.strerror}") from None
    if digest != backup.checksum:
        problem = f"{source.name}: the archive's sha256 does not match the index"
        await service.mark_corrupted(backup, problem)
        raise VerificationFailed(problem)
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
    if problem is not unpacking.exception() and is_disk_full(problem):
        problem = InsufficientDiskSpace(
            f"disk full while taking the safety backup before restoring {backup.id} "
            f"({problem.message if isinstance(problem, GitReleaseError) else problem}); "
            "nothing live was changed", hint="free some disk space, then restore again")
    await _drop(service, safety, problem)
    broken = problem.details.get("broken") if isinstance(problem, ChainBroken) else None
    if broken is not None:
        # A backup of its chain is damaged: that one is marked, as its verify would; this
        # one is whole, and restorable again once that one is (fetched back, say).
        row = await service.store.get_backup(str(broken))
        if row is not None and row.id == broken:
            await service.mark_corrupted(row, str(problem.details.get("cause")
                                                  or problem.message))
    elif isinstance(unpacking.exception(), VerificationFailed):
        # What a separate verify pass would have said, and marked.
        await service.mark_corrupted(backup, problem.message
                                     if isinstance(problem, GitReleaseError) else str(problem))
    raise problem


async def _drop(service: BackupService, safety: asyncio.Future[Backup | None] | None,
                problem: BaseException | None = None) -> None:
    """Delete the safety backup of a restore that is not going ahead. Failing to (the index
    on a full disk) never takes the place of `problem`, the restore's own error: it is said
    with it, and the backup stays, a good one."""
    if safety is not None and safety.done() and not safety.cancelled() \
            and safety.exception() is None and safety.result() is not None:
        kept: Backup = safety.result()  # type: ignore[assignment]
        try:
            await service.delete(kept)
        except Exception as trouble:
            if problem is None:
                raise
            if isinstance(problem, GitReleaseError):
                problem.also(f"the safety backup {kept.id} could not be deleted: {trouble}")
            else:
                problem.add_note(f"the safety backup {kept.id} could not be deleted: {trouble}")


async def _safety_backup(
    service: BackupService, backup: Backup, options: RestoreOptions,
    entries: dict[str, dict[str, Any]], targets: dict[str, Target], point: ReleasePoint,
) -> Backup | None:
    """A backup of the live files the restore replaces (none of the others: what it does not
    touch needs no way back), uncompressed: it is there to be restored from, and soon. A
    link the restore replaces is not followed here either: the link is kept aside (and put
    back if the restore fails), what it points to is never touched."""
    replaced = frozenset(name for name, target in targets.items()
                         if os.path.isfile(target.live) and not os.path.islink(target.live))
    if not replaced:
        return None
    kind = _SAFETY_TYPES.get(options.restore_type, BackupType.FULL)
    return await service.create(
        kind, BackupOptions(compress=False, auto_created=True, origin=BackupOrigin.SAFETY,
                            include_logs=any(e["kind"] == "log" for e in entries.values()),
                            description=f"taken before restoring {backup.id}"),
        point, only=replaced)


def _versioned(layout: Layout, name: str, tracked: frozenset[str]) -> bool:
    try:
        path = layout.live_path(name)
    except ValueError:
        return False  # refused below, with the reason
    return path.is_relative_to(layout.root) and \
        path.relative_to(layout.root).as_posix() in tracked
