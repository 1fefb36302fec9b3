"""The backup service: a backup's life in the index and the archive store.

Each backup is one archive in the store (`archives`; the backups dir today) and one row in
the index, tied to the tag and commit it was taken at. The row goes CREATING -> COMPLETED
only after the archive is committed into the store; a failure leaves a FAILED row and no
archive. Callers hold the operation lock for anything that writes (see `ReleaseManager`).

Here: create (gathering the sources, snapshots and the manifest, then writing in a thread),
get, list, verify and delete. A backup taken on a base stores only what changed since it
(`incremental` chooses the base and plans each member; `pages` the database deltas; a
restore reads the chain in `chain_restore`). What callers pass is `backup_options`; which
backups a prune deletes is `retention`; putting things in order after a crash is
`reconcile`; the archive format is `archive`.

Over the ~400-line aim: a backup's creation is one pipeline (gather, snapshot, write beside
the checks, commit) whose steps share its cancellation and its failure rules.
"""

from __future__ import annotations

import asyncio
import errno
import os
import platform
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitrelease.core.choices import BACKUP_RANGES
from gitrelease.core.errors import (
    BackupFailed,
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
    OffsiteState,
    Progress,
    utcnow,
)
from gitrelease.core.settings import Settings
from gitrelease.index.store import Store
from gitrelease.state import archive
from gitrelease.state.archives import (
    ArchiveStore,
    archive_store,
    own_archive,
    row_refusal,
)
from gitrelease.state.backup_options import BackupOptions, ListFilters
from gitrelease.state.chain_rows import fill_chain_sizes, refuse_if_needed, with_chain_sizes
from gitrelease.state.freeze import PipFreeze
from gitrelease.state.incremental import (
    Base,
    Chain,
    ChainBroken,
    against_base,
    choose_base,
    holder,
    load_chain,
    read_base,
)
from gitrelease.state.pages import page_size_of
from gitrelease.state.reconcile import reconcile
from gitrelease.state.retention import PruneResult, choose_doomed, deletion_order
from gitrelease.state.snapshot import integrity_problem, snapshot_database
from gitrelease.state.sources import Gathered, Layout, Source, gather
from gitrelease.state.space import backup_needs
from gitrelease.state.unchanged import header_marks
from gitrelease.state.verification import checksum_matches, verify_archive

__all__ = ["BackupNotFound", "BackupService", "ReleasePoint"]


class BackupNotFound(GitReleaseError):
    code = "backup_not_found"
    exit_code = 17
    default_hint = "`gitrelease backup list` shows the backups there are"


@dataclass(frozen=True)
class ReleasePoint:
    """The release the deployment is at when a backup is taken."""

    tag: str | None
    commit: str
    version: str


class BackupService:
    """The backups of one deployment: its rows in the index, its archives in `archives`."""

    def __init__(
        self, layout: Layout, settings: Settings, store: Store, *,
        python: str, gitrelease_version: str,
        tracked_files: Callable[[], frozenset[str]] = frozenset,
        archives: ArchiveStore | None = None,
        unversioned: Callable[[], list[str]] | None = None,
    ) -> None:
        self.layout = layout
        self.settings = settings
        self.store = store
        self.archives = archives if archives is not None else archive_store(layout)
        self.python = python
        self.gitrelease_version = gitrelease_version
        self.tracked_files = tracked_files  # versioned paths: never backed up nor restored
        # What git does not version (`GitRepo.unversioned`): where the bot's databases are
        # looked for outside the data dir; None walks the checkout instead.
        self.unversioned = unversioned

    # -- create ----------------------------------------------------------------------------

    async def create(
        self, backup_type: BackupType, options: BackupOptions, point: ReleasePoint,
        progress: Progress | None = None, *, only: frozenset[str] | None = None,
    ) -> Backup:
        """Take a backup; the caller holds the operation lock. `only`: just these members
        (a restore's safety backup holds the files it replaces, not the others)."""
        gathered = await asyncio.to_thread(self._gather, backup_type, options.include_logs)
        sources = gathered.sources
        if only is not None:
            sources = [s for s in sources if s.name in only]
        if not sources:
            found = "; ".join(gathered.warnings) if only is None else ""
            raise BackupFailed(f"there is nothing to back up for a {backup_type.value} backup"
                               + (f": {found}" if found else ""),
                               hint="check database_paths and config_paths, or pick another "
                                    "type")
        existing = await self.store.list_backups()
        backup_id = _new_id(existing, self.archives.taken_names())
        name = options.backup_name or backup_id
        for other in existing:
            if other.name == name and other.status is BackupStatus.FAILED and other.id != name:
                other.name = other.id  # a failed attempt does not keep its name from a retry
                await self.store.save_backup(other)
            elif options.backup_name is not None and name in (other.name, other.id):
                raise InvalidInput("backup_name", name, "a name no other backup has",
                                   reason="already used")
        compression = (self.settings.compression if options.compress
                       and self.settings.compression_enabled else "none")
        file_name = f"{backup_id}{archive.suffix_for(compression)}"
        backup = Backup(
            id=backup_id, name=name, backup_type=backup_type, status=BackupStatus.CREATING,
            file_path=self.archives.location(file_name), file_size=None, compressed_size=None,
            created_at=utcnow(), completed_at=None, description=options.description,
            checksum=None, auto_created=options.auto_created,
            metadata={"origin": options.origin.value}, tag=point.tag,
            commit=point.commit, keep=options.keep,
            warnings=list(gathered.warnings) if only is None else [])
        await self.store.save_backup(backup)
        # A thread cannot be cancelled: on cancellation (Ctrl-C, a cancelled task) it is told
        # to stop and waited for, so no archive lands after the row says FAILED and the lock
        # is not released while it still writes.
        stop = threading.Event()
        damaged: list[str] = []  # a safety backup keeps a damaged database, saying so
        readings = AsyncExitStack()
        writing: asyncio.Future[archive.ArchiveWritten] | None = None
        try:
            chain = await self._base_chain(existing, backup_type, options, only, readings)
            writing = asyncio.ensure_future(asyncio.to_thread(
                self._write, backup, sources, compression, file_name, point, options,
                progress, stop, damaged, chain))
            written = await asyncio.shield(writing)
        except BaseException as exc:
            stop.set()
            with suppress(BaseException):
                if writing is not None:
                    await writing
            backup.status = BackupStatus.FAILED
            backup.problem = (exc.message if isinstance(exc, GitReleaseError)
                              else "cancelled" if isinstance(exc, asyncio.CancelledError)
                              else repr(exc))
            backup.completed_at = utcnow()
            try:
                await asyncio.shield(self.store.save_backup(backup))
            except Exception as trouble:  # a full disk is often why: the error stays this one
                _also(exc, f"the index could not mark {backup.id} failed ({trouble}); the "
                           "next operation does")
            raise
        finally:
            await readings.aclose()
        backup.status = BackupStatus.COMPLETED
        backup.warnings += damaged
        backup.completed_at = utcnow()
        backup.file_size = written.raw_size
        backup.compressed_size = written.size
        backup.checksum = written.sha256
        backup.metadata = {"manifest": written.manifest, "origin": options.origin.value}
        if self.settings.verify_backups:
            backup.verified_at = utcnow()
        await self.store.save_backup(backup)
        if self.settings.offsite == "after_backup" and self.settings.offsite_url:
            backup.offsite = OffsiteState.QUEUED  # uploaded once the operation is over
            await self.store.set_offsite(backup.id, OffsiteState.QUEUED)
        with_chain_sizes([backup], existing)  # what a restore of it reads, as listed
        return backup

    async def _base_chain(
        self, existing: list[Backup], backup_type: BackupType, options: BackupOptions,
        only: frozenset[str] | None, readings: AsyncExitStack,
    ) -> tuple[Chain, dict[str, Path]] | None:
        """The chain a new backup is taken on (`incremental`), and its archives held open for
        reading; None: a full backup (asked for, a partial or safety one, or no base)."""
        if options.full or only is not None or options.origin is BackupOrigin.SAFETY:
            return None
        # A chain is pruned whole: never longer than max_backups, so retention can keep to it.
        base = choose_base(existing, backup_type,
                           min(self.settings.full_every, self.settings.max_backups))
        if base is None:
            return None
        try:
            chain = await load_chain(self.store, base)
            paths = {link.backup.id: await readings.enter_async_context(
                self.archives.reading(own_archive(self.archives, link.backup)))
                for link in chain.links}
        except GitReleaseError:
            return None  # its chain is not whole: this one starts a new one
        return chain, paths

    def _gather(self, backup_type: BackupType, include_logs: bool) -> Gathered:
        """The sources (in a thread: git and the disk block)."""
        unversioned = self.unversioned() if self.unversioned is not None else None
        return gather(self.layout, self.settings, backup_type, include_logs=include_logs,
                      tracked=self.tracked_files(), unversioned=unversioned)

    def _write(
        self, backup: Backup, sources: list[Source], compression: str, file_name: str,
        point: ReleasePoint, options: BackupOptions, progress: Progress | None,
        stop: threading.Event, damaged: list[str],
        chain: tuple[Chain, dict[str, Path]] | None = None,
    ) -> archive.ArchiveWritten:
        """Write the archive and commit it into the store (in a thread: it blocks)."""
        pending = self.archives.begin(file_name)
        self._check_space(sources)
        base = None
        if chain is not None:
            try:
                base = read_base(*chain)
            except VerificationFailed as exc:  # its base cannot be read: a full one instead
                damaged.append(f"taken full: its base {chain[0].newest.backup.id} could not "
                               f"be read ({exc.message})")
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{backup.id}-", dir=self.archives.scratch))
        # Work that does not need the archive runs beside it, on the other cores: `pip
        # freeze` (only the manifest, written last, needs it) and each snapshot's check
        # (which must pass before the archive is committed into the store).
        freeze = PipFreeze(self.python)
        checks = ThreadPoolExecutor(1, thread_name_prefix="snapshot-check")
        try:
            # A restore's safety backup is never a base: no page hashes for it.
            members, checked = self._members(sources, work, progress, checks, base,
                                             pages=options.origin is not BackupOrigin.SAFETY)
            total = max(1, sum(s.size for s in sources))
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                if stop.is_set():
                    raise BackupFailed("the backup was cancelled; nothing was kept")
                done += count
                if progress is not None:
                    progress("archive", 30 + int(done / total * 60), file_name)

            try:
                written = archive.write_archive(
                    pending.path, members, compression=compression,
                    level=(self.settings.zstd_level if compression == "zstd"
                           else self.settings.compression_level), progress=advance,
                    manifest=lambda: self._manifest(backup, point, options, freeze.result(),
                                                    base))
                for source, check in checked:
                    problem = check.result()
                    if problem and options.origin in (BackupOrigin.SAFETY,
                                                      BackupOrigin.PRE_ROLLBACK):
                        # The state before a restore or a rollback, as it is: often it is
                        # meant to replace just this damage, and refusing would refuse that.
                        damaged.append(f"the database {source.name} failed its integrity "
                                       f"check ({problem.splitlines()[0]}); kept as it was")
                    elif problem:
                        raise BackupFailed(
                            f"the database {source.name} fails its integrity check "
                            f"({problem}); nothing was kept",
                            hint="repair the database or restore a good backup, then back "
                                 "up again")
                if self.settings.verify_backups:
                    _rehash(pending.path, written.sha256)
                if stop.is_set():
                    raise BackupFailed("the backup was cancelled; nothing was kept")
                pending.commit()
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise InsufficientDiskSpace(
                        f"the disk filled up while writing {file_name}; nothing was kept"
                    ) from None
                raise BackupFailed(f"cannot write {file_name}: {exc.strerror or exc}") from None
            if progress is not None:
                progress("archive", 100, "written")
            return written
        finally:
            freeze.stop()
            checks.shutdown(wait=True, cancel_futures=True)
            pending.discard()
            shutil.rmtree(work, ignore_errors=True)

    def _members(
        self, sources: list[Source], work: Path, progress: Progress | None,
        checks: ThreadPoolExecutor, base: Base | None = None, *, pages: bool = True,
    ) -> tuple[list[archive.Member], list[tuple[Source, Future[str | None]]]]:
        members = []
        checked = []
        for number, source in enumerate(sources):
            if source.kind == "database":
                if progress is not None:
                    progress("snapshot", int(number / max(1, len(sources)) * 30), source.name)
                snapshot = work / f"{number}.db"
                snapshot_database(source.path, snapshot)
                checked.append((source, checks.submit(integrity_problem, snapshot)))
                mode = source.path.stat().st_mode & 0o777
                marks = (("sqlite_header", header_marks(snapshot)),)
                with snapshot.open("rb") as handle:
                    page_size = page_size_of(handle.read(100))
                members.append(archive.Member(snapshot, source.name, source.kind, mode, marks,
                                              pages=page_size if pages else None))
            else:
                # Config files hold secrets: 0600 in the archive and when restored, whatever
                # mode and umask they were created with.
                mode = 0o600 if source.kind == "config" else None
                # The operator's link to a config file: where it pointed, which is the one
                # link a restore writes through (`placing.target_of`).
                linked = (("link", os.path.realpath(source.path)),) \
                    if source.kind == "config" and source.path.is_symlink() else ()
                members.append(archive.Member(source.path, source.name, source.kind, mode,
                                              linked))
            if base is not None:
                members[-1] = against_base(members[-1], base, work)
        return members, checked

    def _check_space(self, sources: list[Source]) -> None:
        needed = backup_needs(sources)  # the worst case: nothing compresses
        free = self.archives.free_space()
        if free < needed:
            raise InsufficientDiskSpace(
                f"a backup needs up to {needed // 2**20} MiB in {self.archives.scratch} "
                f"(nothing compressed, each database snapshot written twice), "
                f"{free // 2**20} MiB are free",
                hint="free space on that disk, move backup_path to a larger one, or back "
                     "up less (--type database or config)")

    def _manifest(
        self, backup: Backup, point: ReleasePoint, options: BackupOptions,
        pip_freeze: str | None, base: Base | None = None,
    ) -> dict[str, Any]:
        # Format 2: files may be the base's or pages of it (`archive.stored_members`).
        chained = {} if base is None else {"format": 2, "base": base.backup.id,
                                           "chain": base.chain.record()}
        return {
            "format": 1,
            "backup_id": backup.id,
            "name": backup.name,
            "backup_type": backup.backup_type.value,
            "description": backup.description,
            "auto_created": backup.auto_created,
            "origin": options.origin.value,
            "keep": backup.keep,
            "include_logs": options.include_logs,
            "tag": point.tag,
            "commit": point.commit,
            "version": point.version,
            "python_version": platform.python_version(),
            "pip_freeze": pip_freeze,
            "gitrelease_version": self.gitrelease_version,
            "created_at": backup.created_at.isoformat(),
            "created_at_epoch": int(backup.created_at.timestamp()),
            **chained,
        }

    # -- list, verify, delete --------------------------------------------------------------

    async def get(self, id_or_name: str) -> Backup:
        if not isinstance(id_or_name, str) or not id_or_name or len(id_or_name) > 100:
            raise InvalidInput("backup_id", id_or_name, "a backup id or name")
        found = await self.store.get_backup(id_or_name)
        if found is None or found.deleting:
            raise BackupNotFound(f"no backup with id or name {id_or_name!r}")
        return (await fill_chain_sizes(self.store, [found]))[0]

    async def list_backups(self, filters: ListFilters) -> list[Backup]:
        rows = await self.store.list_backups()
        backups = with_chain_sizes([b for b in rows if not b.deleting], rows)
        window = BACKUP_RANGES[filters.time_range]
        if window is not None:
            since = utcnow() - window
            backups = [b for b in backups if b.created_at >= since]
        if filters.backup_type is not None:
            backups = [b for b in backups if b.backup_type is filters.backup_type]
        keys = {
            "date": lambda b: b.created_at,
            "size": lambda b: b.compressed_size or 0,
            "name": lambda b: b.name.lower(),
            "type": lambda b: (b.backup_type.value, b.created_at),
        }
        backups.sort(key=keys[filters.sort_by], reverse=filters.sort_by in ("date", "size"))
        return backups[: filters.limit]

    async def verify(self, backup: Backup, *, deep: bool = False) -> Backup:
        """Re-read the archive; a mismatch marks it CORRUPTED naming the file.

        The archive's sha256 recorded when it was written settles it in one read of the file
        (see `verification.verify_archive`). An archive adopted from disk was never checked
        member by member against its own manifest: its first verification is deep, as is one
        asked for with `deep`.
        """
        await self._verify_own(backup, deep=deep)
        if backup.chain:
            await self._verify_chain(backup)
        return backup

    async def _verify_chain(self, backup: Backup) -> None:
        """Each backup of `backup`'s chain is there, the archive it was, and whole (one read
        of each); else `ChainBroken` naming the one that broke it. The broken one is marked
        by its own check; `backup` itself is whole and stays as it is (restorable again
        once that one is: fetched back from offsite, say); what needs its chain whole (a
        prune's newest, a new backup's base) looks at the chain's rows."""
        chain = await load_chain(self.store, backup)
        for name in chain.newest.files:  # each file resolves to an archive that holds it
            try:
                holder(chain, name)
            except VerificationFailed as exc:
                raise ChainBroken(exc.message) from None
        for link in chain.links[:-1]:
            try:
                await self._verify_own(link.backup)
            except VerificationFailed as exc:
                raise ChainBroken(f"backup {backup.id} needs {link.backup.id}, which fails "
                                  f"its check: {exc.message}", broken=link.backup.id,
                                  cause=exc.message) from None

    async def _verify_own(self, backup: Backup, *, deep: bool = False) -> None:
        """The backup's own archive, as `verify` says."""
        deep = deep or (backup.verified_at is None and bool(backup.metadata.get("adopted")))
        try:
            async with self.archives.reading(own_archive(self.archives, backup)) as path:
                # The manifest (a row per file) is read only when the quick check cannot
                # settle it.
                if deep or backup.checksum is None or not await asyncio.to_thread(
                        checksum_matches, path, backup.checksum):
                    await asyncio.to_thread(
                        verify_archive, path, backup.checksum,
                        await self.store.backup_manifest(backup), deep=True)
        except VerificationFailed as exc:
            await self.mark_corrupted(backup, exc.message)
            raise
        backup.status = BackupStatus.COMPLETED
        backup.problem = None
        backup.verified_at = utcnow()
        await self.store.save_backup(backup)

    async def mark_corrupted(self, backup: Backup, problem: str) -> None:
        """The row says the backup cannot be restored from as it is, and why."""
        backup.status = BackupStatus.CORRUPTED
        backup.problem = problem
        backup.verified_at = None
        await self.store.save_backup(backup)

    async def delete(self, backup: Backup) -> None:
        """Mark the row, delete the file, delete the row: an interruption is reconciled.
        Refused before anything changes: a row naming no archive of the store's, and a
        backup another one's chain needs (`BaseInUse`: those go first)."""
        own_archive(self.archives, backup)
        refuse_if_needed(backup, await self.store.list_backups())
        await self._delete(backup)

    async def _delete(self, backup: Backup) -> None:
        """`delete` without asking the other rows: a prune deletes whole chains, those that
        need a base before it."""
        location = own_archive(self.archives, backup)
        backup.deleting = True
        await self.store.save_backup(backup)
        if location:
            await asyncio.to_thread(self.archives.delete, location)
        await self.store.delete_backup(backup.id)

    # -- retention and reconciliation (the rules are in their own modules) -------------------

    async def prune(self, current_tag: str | None, *, dry_run: bool) -> PruneResult:
        """Delete what `retention.choose_doomed` picks (nothing with `dry_run`)."""
        backups = [b for b in await self.store.list_backups() if not b.deleting]
        doomed, kept = choose_doomed(backups, await self.store.backups_in_use(), current_tag,
                                     self.settings, held=self._refused)
        result = PruneResult(dry_run, kept=kept)
        # Those that need a base go before it: an interruption leaves no backup without one.
        for backup in deletion_order(doomed):
            if not dry_run:
                if backup.offsite is OffsiteState.UPLOADED and backup.file_path:
                    await self._keep_offsite_only(backup)
                else:
                    await self._delete(backup)
            result.deleted.append(backup)
        return result

    def _refused(self, backup: Backup) -> str | None:
        """Why a row the limits would delete is kept, and said: it names something that is
        not an archive of the store's, never a reason to delete elsewhere."""
        why = row_refusal(self.archives, backup) if backup.file_path else None
        return None if why is None else (f"its row names {backup.file_path!r}, not an "
                                         f"archive in the backups folder ({why})")

    async def _keep_offsite_only(self, backup: Backup) -> None:
        """Pruned here, but copied offsite: the archive goes, the row stays (the backup is
        listed as offsite, and a restore or rollback fetches it back) until the offsite
        retention deletes the copy. The row says so before the file goes."""
        location = own_archive(self.archives, backup)
        await self.mark_corrupted(backup, ARCHIVE_MISSING)
        await asyncio.to_thread(self.archives.delete, location)

    async def reconcile(self) -> list[str]:
        """Make the store and the index agree after a crash (see `reconcile`); the caller
        holds the operation lock."""
        return await reconcile(self.store, self.archives)


def _also(error: BaseException, trouble: str) -> None:
    """Say `trouble` with `error` (met while handling it) without taking its place."""
    if isinstance(error, GitReleaseError):
        error.also(trouble)
    else:
        error.add_note(trouble)


def _new_id(existing: list[Backup], taken_names: set[str]) -> str:
    base = f"backup_{utcnow():%Y%m%d_%H%M%S}"
    taken = {b.id for b in existing} | {b.name for b in existing} | taken_names
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _rehash(path: Path, expected: str) -> None:
    if archive.sha256_file(path) != expected:
        raise VerificationFailed(f"{path.name} read back differs from what was written")
