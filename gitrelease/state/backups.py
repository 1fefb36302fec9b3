"""Backups of the state git does not version: create, list, verify, delete, prune, reconcile.

Each backup is one archive in the backups dir and one row in the index, tied to the tag and
commit it was taken at. The row goes CREATING -> COMPLETED only after the archive is renamed
into place; a failure leaves a FAILED row and no file. Callers hold the operation lock for
anything that writes (see `ReleaseManager`); `reconcile` relies on that to know that no other
process is writing an archive.
"""

from __future__ import annotations

import asyncio
import errno
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gitrelease.core.choices import BACKUP_RANGES, BACKUP_SORTS
from gitrelease.core.errors import (
    BackupFailed,
    GitReleaseError,
    InsufficientDiskSpace,
    InvalidInput,
    VerificationFailed,
)
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.models import Backup, BackupStatus, BackupType, Progress, utcnow
from gitrelease.core.options import options_from
from gitrelease.core.settings import Settings
from gitrelease.index.store import Store
from gitrelease.state import archive
from gitrelease.state.snapshot import integrity_problem, snapshot_database
from gitrelease.state.sources import Layout, Source, collect

__all__ = [
    "BACKUP_RANGES",
    "BackupNotFound",
    "BackupOptions",
    "BackupService",
    "ListFilters",
    "PruneResult",
    "ReleasePoint",
]

MISSING = "the archive is missing"
SORTS = BACKUP_SORTS
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Only archives named the way gitrelease names them are ever adopted: any other file in the
# backups dir (a dump someone left there) is not read at all, let alone on every command.
_ARCHIVE = re.compile(r"^(backup_\d{8}_\d{6}(?:_\d+)?)\.tar(?:\.gz|\.zst)?$")
_SHA40 = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


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


@dataclass(frozen=True)
class BackupOptions:
    compress: bool = True
    backup_name: str | None = None
    description: str | None = None
    include_logs: bool = False
    keep: bool = False
    auto_created: bool = False

    def __post_init__(self) -> None:
        for name in ("compress", "include_logs", "keep", "auto_created"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(name, getattr(self, name), "true or false")
        if self.backup_name is not None and (
                not isinstance(self.backup_name, str) or not _NAME.match(self.backup_name)):
            raise InvalidInput("backup_name", self.backup_name,
                               "1-64 letters, digits, '.', '_' or '-', starting with a letter "
                               "or digit")
        if self.description is not None and (
                not isinstance(self.description, str) or len(self.description) > 500
                or any(ord(c) < 32 and c not in "\t" for c in self.description)):
            raise InvalidInput("description", self.description,
                               "up to 500 characters on one line")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> BackupOptions:
        return options_from(cls, options, {"name": "backup_name"})


@dataclass(frozen=True)
class ListFilters:
    backup_type: BackupType | None = None
    time_range: str = "30d"
    limit: int = 20
    sort_by: str = "date"

    def __post_init__(self) -> None:
        if self.time_range not in BACKUP_RANGES:
            raise InvalidInput("time_range", self.time_range, list(BACKUP_RANGES))
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not (
                1 <= self.limit <= 50):
            raise InvalidInput("limit", self.limit, "an integer from 1 to 50")
        if self.sort_by not in SORTS:
            raise InvalidInput("sort_by", self.sort_by, SORTS)

    @classmethod
    def from_mapping(cls, filters: Mapping[str, Any]) -> ListFilters:
        values = dict(filters)
        kind = values.pop("backup_type", None)
        unknown = set(values) - {"time_range", "limit", "sort_by"}
        if unknown:
            raise InvalidInput("filter", sorted(unknown)[0],
                               ["backup_type", "time_range", "limit", "sort_by"])
        return cls(parse_backup_type(kind) if kind is not None else None, **values)


def parse_backup_type(value: str, *, field: str = "backup_type") -> BackupType:
    try:
        return BackupType(value)
    except ValueError:
        raise InvalidInput(field, value, [t.value for t in BackupType]) from None


@dataclass
class PruneResult:
    dry_run: bool
    deleted: list[Backup] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # backup id -> why it is protected

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "deleted": [b.to_dict() for b in self.deleted],
                "kept": self.kept}


class BackupService:
    def __init__(
        self, layout: Layout, settings: Settings, store: Store, *,
        python: str, gitrelease_version: str,
        tracked_files: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self.layout = layout
        self.settings = settings
        self.store = store
        self.python = python
        self.gitrelease_version = gitrelease_version
        self.tracked_files = tracked_files  # versioned paths: never backed up nor restored

    # -- create ----------------------------------------------------------------------------

    async def create(
        self, backup_type: BackupType, options: BackupOptions, point: ReleasePoint,
        progress: Progress | None = None, *, only: frozenset[str] | None = None,
    ) -> Backup:
        """Take a backup; the caller holds the operation lock. `only`: just these members
        (a restore's safety backup holds the files it replaces, not the others)."""
        sources = await asyncio.to_thread(
            collect, self.layout, self.settings, backup_type, include_logs=options.include_logs,
            tracked=await asyncio.to_thread(self.tracked_files))
        if only is not None:
            sources = [s for s in sources if s.name in only]
        if not sources:
            raise BackupFailed(f"there is nothing to back up for a {backup_type.value} backup",
                               hint="check database_paths and config_paths, or pick another "
                                    "type")
        existing = await self.store.list_backups()
        backup_id = _new_id(existing, self.layout.backup_dir)
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
        final = self.layout.backup_dir / f"{backup_id}{archive.suffix_for(compression)}"
        backup = Backup(
            id=backup_id, name=name, backup_type=backup_type, status=BackupStatus.CREATING,
            file_path=str(final), file_size=None, compressed_size=None, created_at=utcnow(),
            completed_at=None, description=options.description, checksum=None,
            auto_created=options.auto_created, metadata={}, tag=point.tag,
            commit=point.commit, keep=options.keep)
        await self.store.save_backup(backup)
        # A thread cannot be cancelled: on cancellation (Ctrl-C, a cancelled task) it is told
        # to stop and waited for, so no archive lands after the row says FAILED and the lock
        # is not released while it still writes.
        stop = threading.Event()
        writing = asyncio.ensure_future(asyncio.to_thread(
            self._write, backup, sources, compression, final, point, options, progress, stop))
        try:
            written = await asyncio.shield(writing)
        except BaseException as exc:
            stop.set()
            with suppress(BaseException):
                await writing
            backup.status = BackupStatus.FAILED
            backup.problem = (exc.message if isinstance(exc, GitReleaseError)
                              else "cancelled" if isinstance(exc, asyncio.CancelledError)
                              else repr(exc))
            backup.completed_at = utcnow()
            await asyncio.shield(self.store.save_backup(backup))
            raise
        backup.status = BackupStatus.COMPLETED
        backup.completed_at = utcnow()
        backup.file_size = written.raw_size
        backup.compressed_size = written.size
        backup.checksum = written.sha256
        backup.metadata = {"manifest": written.manifest}
        if self.settings.verify_backups:
            backup.verified_at = utcnow()
        await self.store.save_backup(backup)
        return backup

    def _write(
        self, backup: Backup, sources: list[Source], compression: str, final: Path,
        point: ReleasePoint, options: BackupOptions, progress: Progress | None,
        stop: threading.Event,
    ) -> archive.ArchiveWritten:
        self.layout.backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._check_space(sources)
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{backup.id}-", dir=self.layout.backup_dir))
        temporary = self.layout.backup_dir / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        # Work that does not need the archive runs beside it, on the other cores: `pip
        # freeze` (only the manifest, written last, needs it) and each snapshot's check
        # (which must pass before the archive is renamed into place).
        freeze = _PipFreeze(self.python)
        checks = ThreadPoolExecutor(1, thread_name_prefix="snapshot-check")
        try:
            members, checked = self._members(sources, work, progress, checks)
            total = max(1, sum(s.size for s in sources))
            done = 0

            def advance(count: int) -> None:
                nonlocal done
                if stop.is_set():
                    raise BackupFailed("the backup was cancelled; nothing was kept")
                done += count
                if progress is not None:
                    progress("archive", 30 + int(done / total * 60), final.name)

            try:
                written = archive.write_archive(
                    temporary, members, compression=compression,
                    level=(self.settings.zstd_level if compression == "zstd"
                           else self.settings.compression_level), progress=advance,
                    manifest=lambda: self._manifest(backup, point, options, freeze.result()))
                for source, check in checked:
                    problem = check.result()
                    if problem:
                        raise BackupFailed(
                            f"the database {source.name} fails its integrity check "
                            f"({problem}); nothing was kept",
                            hint="repair the database or restore a good backup, then back "
                                 "up again")
                if self.settings.verify_backups:
                    _rehash(temporary, written.sha256)
                if stop.is_set():
                    raise BackupFailed("the backup was cancelled; nothing was kept")
                os.replace(temporary, final)
                fsync_dir(final.parent)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise InsufficientDiskSpace(
                        f"the disk filled up while writing {final.name}; nothing was kept"
                    ) from None
                raise BackupFailed(f"cannot write {final.name}: {exc.strerror or exc}") from None
            if progress is not None:
                progress("archive", 100, "written")
            return written
        finally:
            freeze.stop()
            checks.shutdown(wait=True, cancel_futures=True)
            temporary.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)

    def _members(
        self, sources: list[Source], work: Path, progress: Progress | None,
        checks: ThreadPoolExecutor,
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
                members.append(archive.Member(snapshot, source.name, source.kind, mode))
            else:
                # Config files hold secrets: 0600 in the archive and when restored, whatever
                # mode and umask they were created with.
                mode = 0o600 if source.kind == "config" else None
                members.append(archive.Member(source.path, source.name, source.kind, mode))
        return members, checked

    def _check_space(self, sources: list[Source]) -> None:
        # Worst case: nothing compresses, and each database is written twice (snapshot, tar).
        needed = sum(s.size * (2 if s.kind == "database" else 1) for s in sources)
        # A database's snapshot can be as large as the file and its -wal together.
        needed += sum(_size(Path(f"{s.path}-wal")) for s in sources if s.kind == "database")
        needed += 16 * 1024 * 1024
        free = shutil.disk_usage(self.layout.backup_dir).free
        if free < needed:
            raise InsufficientDiskSpace(
                f"a backup needs up to {needed // 2**20} MiB in {self.layout.backup_dir}, "
                f"{free // 2**20} MiB are free")

    def _manifest(
        self, backup: Backup, point: ReleasePoint, options: BackupOptions,
        pip_freeze: str | None,
    ) -> dict[str, Any]:
        return {
            "format": 1,
            "backup_id": backup.id,
            "name": backup.name,
            "backup_type": backup.backup_type.value,
            "description": backup.description,
            "auto_created": backup.auto_created,
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
        }

    # -- list, verify, delete --------------------------------------------------------------

    async def get(self, id_or_name: str) -> Backup:
        if not isinstance(id_or_name, str) or not id_or_name or len(id_or_name) > 100:
            raise InvalidInput("backup_id", id_or_name, "a backup id or name")
        found = await self.store.get_backup(id_or_name)
        if found is None or found.deleting:
            raise BackupNotFound(f"no backup with id or name {id_or_name!r}")
        return found

    async def list_backups(self, filters: ListFilters) -> list[Backup]:
        backups = [b for b in await self.store.list_backups() if not b.deleting]
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
        (see `archive.verify_archive`). An archive adopted from disk was never checked member
        by member against its own manifest: its first verification is deep, as is one asked
        for with `deep`.
        """
        deep = deep or (backup.verified_at is None and bool(backup.metadata.get("adopted")))
        path = Path(backup.file_path or "")
        try:
            # The manifest (a row per file) is read only when the quick check cannot settle it.
            if deep or backup.checksum is None or not await asyncio.to_thread(
                    archive.checksum_matches, path, backup.checksum):
                await asyncio.to_thread(
                    archive.verify_archive, path, backup.checksum,
                    await self.store.backup_manifest(backup), deep=True)
        except VerificationFailed as exc:
            backup.status = BackupStatus.CORRUPTED
            backup.problem = exc.message
            backup.verified_at = None
            await self.store.save_backup(backup)
            raise
        backup.status = BackupStatus.COMPLETED
        backup.problem = None
        backup.verified_at = utcnow()
        await self.store.save_backup(backup)
        return backup

    async def delete(self, backup: Backup) -> None:
        """Mark the row, delete the file, delete the row: an interruption is reconciled."""
        backup.deleting = True
        await self.store.save_backup(backup)
        if backup.file_path:
            await asyncio.to_thread(_unlink, Path(backup.file_path))
        await self.store.delete_backup(backup.id)

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, current_tag: str | None, *, dry_run: bool) -> PruneResult:
        result = PruneResult(dry_run)
        backups = [b for b in await self.store.list_backups() if not b.deleting]
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
        for backup_id in await self.store.backups_in_use():
            protected.setdefault(backup_id, "needed by an unfinished update")
        cutoff = utcnow() - timedelta(days=self.settings.backup_retention_days)
        # Protected backups count toward max_backups; the oldest others go until it is met.
        excess = len(completed) - self.settings.max_backups
        doomed: list[Backup] = []
        for backup in reversed(completed):
            if backup.id in protected:
                continue
            if excess > 0 or backup.created_at < cutoff:
                doomed.append(backup)
                excess -= 1
        # Failed attempts have no archive and never count; old ones are only clutter.
        doomed += [b for b in backups if b.status is BackupStatus.FAILED and b.created_at < cutoff]
        result.kept = {k: v for k, v in protected.items() if any(b.id == k for b in backups)}
        for backup in sorted(doomed, key=lambda b: b.created_at):
            if not dry_run:
                await self.delete(backup)
            result.deleted.append(backup)
        return result

    # -- reconciliation --------------------------------------------------------------------

    async def reconcile(self) -> list[str]:
        """Make disk and index agree after a crash; the caller holds the operation lock."""
        notes: list[str] = []
        directory = self.layout.backup_dir
        for leftover in await asyncio.to_thread(_leftovers, directory):
            await asyncio.to_thread(_remove, leftover)
            notes.append(f"removed leftover {leftover.name}")
        rows = await self.store.list_backups()
        for backup in rows:
            path = Path(backup.file_path) if backup.file_path else None
            if backup.deleting:
                if path is not None:
                    await asyncio.to_thread(_unlink, path)
                await self.store.delete_backup(backup.id)
                notes.append(f"finished deleting {backup.id}")
            elif backup.status in (BackupStatus.CREATING, BackupStatus.COMPRESSING):
                backup.status = BackupStatus.FAILED
                backup.problem = "interrupted while being written"
                backup.completed_at = utcnow()
                await self.store.save_backup(backup)
                notes.append(f"{backup.id} was interrupted: marked failed")
            elif backup.status is BackupStatus.COMPLETED and (path is None or not path.exists()):
                if path is not None and not path.parent.is_dir():
                    notes.append(f"{path.parent} is not there (a disk not mounted?): "
                                 "nothing marked")
                    continue
                backup.status = BackupStatus.CORRUPTED
                backup.problem = MISSING
                await self.store.save_backup(backup)
                notes.append(f"{backup.id}: archive missing")
            elif backup.status is BackupStatus.CORRUPTED and backup.problem == MISSING \
                    and path is not None and path.exists():
                backup.status = BackupStatus.COMPLETED  # it is back; `verify` will tell
                backup.problem = None
                backup.verified_at = None
                await self.store.save_backup(backup)
                notes.append(f"{backup.id}: archive found again (not verified)")
        known = {Path(b.file_path).name for b in rows if b.file_path}
        for path in await asyncio.to_thread(_archives, directory):
            if path.name not in known:
                adopted = await self._adopt(path)
                notes.append(f"adopted {path.name} as {adopted.id}" if adopted
                             else f"{path.name} is not a readable gitrelease archive: left alone")
        return notes

    async def _adopt(self, path: Path) -> Backup | None:
        """A row for an archive the index does not know, from the archive's own manifest.

        The manifest is the archive's word, so nothing in it is taken on trust: the id must
        be the file's own name, text fields must be plain, a date cannot lie in the future,
        and an adopted archive is never `keep` (an operator marks that again).
        """
        match = _ARCHIVE.match(path.name)
        if match is None:
            return None
        try:
            manifest = await asyncio.to_thread(archive.read_manifest, path)
            checksum = await asyncio.to_thread(archive.sha256_file, path)
            backup_id = match.group(1)
            if manifest.get("backup_id") != backup_id:
                return None
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            created = min(datetime.fromisoformat(manifest["created_at"]).astimezone(UTC),
                          stamp, utcnow())
            name = manifest.get("name")
            if not isinstance(name, str) or not _NAME.match(name) or \
                    await self.store.get_backup(name) is not None:
                name = backup_id
            description = manifest.get("description")
            if not isinstance(description, str) or not description.isprintable():
                description = None
            tag, commit = manifest.get("tag"), manifest.get("commit")
            backup = Backup(
                id=backup_id, name=name,
                backup_type=BackupType(manifest["backup_type"]), status=BackupStatus.COMPLETED,
                file_path=str(path), file_size=sum(int(f["size"]) for f in manifest["files"]),
                compressed_size=path.stat().st_size, created_at=created, completed_at=created,
                description=description[:500] if description else None, checksum=checksum,
                auto_created=bool(manifest.get("auto_created")),
                metadata={"manifest": manifest, "adopted": True},
                tag=tag if isinstance(tag, str) and _NAME.match(tag.replace("/", "-")) else None,
                commit=commit if isinstance(commit, str) and _SHA40.match(commit) else None)
        except (GitReleaseError, KeyError, TypeError, ValueError, OSError):
            return None
        if await self.store.get_backup(backup.id) is not None:
            return None
        await self.store.save_backup(backup)
        return backup


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _new_id(existing: list[Backup], directory: Path) -> str:
    base = f"backup_{utcnow():%Y%m%d_%H%M%S}"
    taken = {b.id for b in existing} | {b.name for b in existing}
    if directory.is_dir():
        taken |= {p.name.split(".tar")[0] for p in directory.iterdir()}
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


class _PipFreeze:
    """`pip freeze` of the deployment's interpreter, started now and read when needed."""

    def __init__(self, python: str) -> None:
        self._process: subprocess.Popen[str] | None = None
        with suppress(OSError, subprocess.SubprocessError):
            self._process = subprocess.Popen(
                [python, "-m", "pip", "freeze", "--all"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)

    def result(self) -> str | None:
        if self._process is None:
            return None
        try:
            out, _ = self._process.communicate(timeout=60)
        except subprocess.SubprocessError:
            self.stop()
            return None
        return out if self._process.returncode == 0 else None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def _rehash(path: Path, expected: str) -> None:
    if archive.sha256_file(path) != expected:
        raise VerificationFailed(f"{path.name} read back differs from what was written")


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
    if path.parent.exists():
        fsync_dir(path.parent)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _leftovers(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir()
            if p.name.startswith((".tmp-", ".restore-")) or
            (p.name.startswith(".") and ".tmp-" in p.name)]


def _archives(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and not p.is_symlink() and _ARCHIVE.match(p.name))
