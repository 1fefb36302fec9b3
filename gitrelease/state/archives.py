"""Where archives are kept: the `ArchiveStore` seam, and the local backups dir behind it.

An archive's format is `archive`; this is only where the finished files live, how a new one
lands there without ever being seen half-written, and how one is found, read, measured and
deleted again. `LocalArchiveStore` (the folder `Layout.backup_dir`) is the one store today;
`archive_store` is the one place a deployment's store is chosen.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import fsync_dir
from gitrelease.state.sources import Layout

if TYPE_CHECKING:
    from gitrelease.core.models import Backup

__all__ = [
    "ARCHIVE_NAME",
    "ArchiveRefused",
    "ArchiveStore",
    "LocalArchiveStore",
    "PendingArchive",
    "Presence",
    "StoredArchive",
    "archive_store",
    "is_leftover",
    "own_archive",
    "row_refusal",
]

# Only archives named the way gitrelease names them are ever adopted: any other file in the
# backups dir (a dump someone left there) is not read at all, let alone on every command.
# Group 1 is the backup id.
ARCHIVE_NAME = re.compile(r"^(backup_\d{8}_\d{6}(?:_\d+)?)\.tar(?:\.gz|\.zst)?$")


def is_leftover(name: str) -> bool:
    """A work file or dir that an interrupted backup (``.tmp-*``, ``.<archive>.tmp-*``) or
    restore (``.restore-*``) left beside the archives; `upkeep` looks for the same names."""
    return name.startswith((".tmp-", ".restore-")) or (name.startswith(".") and ".tmp-" in name)


class Presence(Enum):
    """What the store can say about the archive a row points at."""

    PRESENT = "present"
    ABSENT = "absent"
    UNREACHABLE = "unreachable"  # where it would be cannot be seen (a disk not mounted)
    FOREIGN = "foreign"  # the row names no archive of the store's (`ArchiveStore.refusal`)


class ArchiveRefused(GitReleaseError):
    """A backup row names something that is not an archive in the backups folder: a path
    outside it, a symbolic link, a directory. An index row is only the index's word (an
    old or crafted one can say anything), so nothing outside the folder is ever unlinked,
    read, verified, uploaded or restored from on its say-so."""

    code = "archive_refused"
    exit_code = 26
    default_hint = ("gitrelease uses only the archives in its backups folder; if that file is "
                    "one of this deployment's archives, move it into the backups folder: the "
                    "next backup command finds it there by name")


@dataclass(frozen=True)
class StoredArchive:
    """An archive the store holds, as its listing shows it."""

    location: str  # what a row's `file_path` holds for it
    name: str  # the file name, e.g. backup_20260101_120000.tar.gz
    backup_id: str  # the id its name carries
    size: int  # bytes as stored
    modified: datetime


class PendingArchive(Protocol):
    """A new archive on its way into the store: written at `path`, then committed."""

    @property
    def path(self) -> Path:
        """A local file that does not exist yet; the writer creates it (mode 0600) and
        fsyncs it before `commit`."""
        ...

    def commit(self) -> None:
        """Make the written file the store's archive, whole or not at all."""
        ...

    def discard(self) -> None:
        """Forget the attempt: nothing of it stays (harmless after `commit`)."""
        ...


class ArchiveStore(Protocol):
    """Where archives are kept, as `BackupService`, the reconcile and a restore use it.

    A location is the string a backup row records as `file_path`. It is the index's word
    only: a location that is not one of the store's own archives (`refusal`) is never
    touched, so a crafted or stale row cannot make gitrelease delete, read or upload a file
    elsewhere (an archive written before `backup_path` changed is moved into the new folder
    by hand, and the reconcile finds it there by name). The methods are synchronous and may
    block: writing, listing, deleting and sweeping are called in a thread; `taken_names`,
    `refusal` and `presence` (a stat each, locally) on the event loop. `reading` is
    asynchronous, so that fetching can wait without blocking it.

    The archive format works on local files, so even a remote store keeps a local `scratch`
    dir. A remote (S3-compatible) store will also need to: name objects by the archive's
    sha256 and upload each once (`commit` will then need the digest `ArchiveWritten` holds);
    upload the manifest and the index record last, so that a listing never shows an archive
    without them; list objects with their size and date (`archives`); fetch an archive to a
    temporary file under `scratch` for a verify, a restore or an adoption and remove it after
    (`reading`); and say UNREACHABLE when the service cannot be asked, so that nothing is
    marked missing because the network is down.
    """

    @property
    def scratch(self) -> Path:
        """A local dir for work files: snapshots being archived, a restore's staging dir.
        Its free space is what a backup needs; leftovers in it are swept by the reconcile."""
        ...

    def location(self, name: str) -> str:
        """Where the archive called `name` is (or will be) kept."""
        ...

    def taken_names(self) -> set[str]:
        """The stem (before ``.tar``) of every entry the store holds, archive or not: a new
        backup id must be none of them."""
        ...

    def begin(self, name: str) -> PendingArchive:
        """Start writing the archive `name`; nothing is visible under it until `commit`."""
        ...

    def archives(self) -> list[StoredArchive]:
        """The archives held, named the way gitrelease names them (`ARCHIVE_NAME`)."""
        ...

    def refusal(self, location: str) -> str | None:
        """Why `location` is not one of the store's archives (None: it is, or would be
        were it there). Every method below that takes a location refuses it likewise."""
        ...

    def presence(self, location: str) -> Presence:
        """Whether the archive at `location` is there, gone, or cannot be looked for;
        FOREIGN for a location the store refuses."""
        ...

    def reading(self, location: str) -> AbstractAsyncContextManager[Path]:
        """The archive at `location` as a local file, for as long as the context lasts. A
        missing one is still handed out: the archive functions say it is missing.
        `ArchiveRefused` for a location the store refuses."""
        ...

    def delete(self, location: str) -> None:
        """Delete the archive at `location`, durably; one already gone is no error.
        `ArchiveRefused` for a location the store refuses: nothing is deleted."""
        ...

    def free_space(self) -> int:
        """Bytes free where `scratch` is."""
        ...

    def sweep_leftovers(self) -> list[str]:
        """Remove what interrupted writes and restores left (`is_leftover`); their names."""
        ...


@dataclass(frozen=True)
class _LocalPending:
    path: Path  # a hidden temporary name beside `final`
    final: Path

    def commit(self) -> None:
        os.replace(self.path, self.final)  # atomic: the archive is there whole, or not at all
        fsync_dir(self.final.parent)  # and the rename survives a power cut

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class LocalArchiveStore:
    """Archives as files in one local folder (`Layout.backup_dir`), created 0700 when needed."""

    directory: Path

    @property
    def scratch(self) -> Path:
        # Beside the archives: the same disk, so its free space is theirs, and a rename
        # of a finished archive never crosses file systems.
        return self.directory

    def location(self, name: str) -> str:
        return str(self.directory / name)

    def taken_names(self) -> set[str]:
        if not self.directory.is_dir():
            return set()
        return {p.name.split(".tar")[0] for p in self.directory.iterdir()}

    def begin(self, name: str) -> PendingArchive:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _LocalPending(self.directory / f".{name}.tmp-{uuid.uuid4().hex[:8]}",
                             self.directory / name)

    def archives(self) -> list[StoredArchive]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.iterdir()):
            match = ARCHIVE_NAME.match(path.name)
            if match is None or path.is_symlink():
                continue
            try:
                status = path.stat()
            except OSError:
                continue  # gone since it was listed
            if stat.S_ISREG(status.st_mode):
                found.append(StoredArchive(
                    str(path), path.name, match.group(1), status.st_size,
                    datetime.fromtimestamp(status.st_mtime, UTC)))
        return found

    def refusal(self, location: str) -> str | None:
        return _refusal(self.directory, location)

    def presence(self, location: str) -> Presence:
        if self.refusal(location) is not None:
            return Presence.FOREIGN
        path = Path(location)
        if path.exists():
            return Presence.PRESENT
        return Presence.ABSENT if path.parent.is_dir() else Presence.UNREACHABLE

    @asynccontextmanager
    async def reading(self, location: str) -> AsyncIterator[Path]:
        yield self._own(location)  # already a local file: nothing to fetch or clean up

    def delete(self, location: str) -> None:
        path = self._own(location)
        path.unlink(missing_ok=True)  # never follows a link (none is let through anyway)
        if path.parent.exists():
            fsync_dir(path.parent)

    def _own(self, location: str) -> Path:
        """`location` as a path, once it is one of this store's archives: the backstop
        behind `own_archive`, for a caller that has no row to name."""
        why = self.refusal(location)
        if why is not None:
            raise ArchiveRefused(f"{location!r} is not an archive in the backups folder "
                                 f"{self.directory} ({why}): it is not touched")
        return Path(location)

    def free_space(self) -> int:
        return shutil.disk_usage(self.directory).free

    def sweep_leftovers(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        # Listed whole first: the directory is not changed while it is being read.
        leftovers = [p for p in self.directory.iterdir() if is_leftover(p.name)]
        for path in leftovers:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return [path.name for path in leftovers]


def _refusal(directory: Path, location: str) -> str | None:
    """Why `location` is not a file of its own in `directory`, or None.

    An empty location (a row with no archive) names nothing, and is no refusal: there is
    nothing to touch. Otherwise it must be an absolute path, with no ``..``, named as
    gitrelease names its archives (`ARCHIVE_NAME`: `backup_path` may be a folder others
    keep files in too, such as /var/backups), whose folder is `directory` (both resolved:
    the backups folder itself may be a link to another disk), and what is there, if
    anything, a regular file: a symbolic link there could point anywhere, and a directory
    is no archive.
    """
    if not location:
        return None
    path = Path(location)
    if not path.is_absolute():
        return "a relative path"
    if ".." in path.parts:
        return "a path through '..'"
    if ARCHIVE_NAME.match(path.name) is None:
        return "not named as a gitrelease archive"
    try:
        # The same folder as written (every row gitrelease writes) needs no resolving.
        if path.parent != directory and path.parent.resolve() != directory.resolve():
            return "outside it"
        status = path.lstat()
    except FileNotFoundError:
        return None  # ours, not there: a missing archive, as the caller will say
    except (OSError, RuntimeError) as exc:  # a link loop, a permission
        return f"it cannot be looked at: {getattr(exc, 'strerror', None) or exc}"
    if stat.S_ISLNK(status.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file"
    return None


def row_refusal(archives: ArchiveStore, backup: Backup) -> str | None:
    """Why the row's `file_path` is not the backup's own archive (None: it is, or would be
    were it there): one the store refuses (`ArchiveStore.refusal`), or the archive of
    another backup, by its name's id. A crafted row naming its neighbour's archive would
    otherwise have `backup delete` or a prune delete that other backup."""
    location = backup.file_path or ""
    why = archives.refusal(location)
    if why is not None or not location:
        return why
    named = ARCHIVE_NAME.match(Path(location).name)
    if named is not None and named.group(1) != backup.id:
        return f"the archive of backup {named.group(1)}"
    return None


def own_archive(archives: ArchiveStore, backup: Backup) -> str:
    """The row's `file_path`, once it is the backup's own archive in the store
    (`row_refusal`); else `ArchiveRefused` naming the backup, before anything is read,
    changed or deleted. Every use of a row's location goes through here (the store refuses
    what is none of its archives again on its own)."""
    location = backup.file_path or ""
    why = row_refusal(archives, backup)
    if why is not None:
        raise ArchiveRefused(
            f"backup {backup.id}: its index row names {location!r}, which is not its archive "
            f"in the backups folder ({why}); nothing was read or deleted")
    return location


def archive_store(layout: Layout) -> ArchiveStore:
    """The store a deployment's archives are kept in: the one place it is chosen."""
    return LocalArchiveStore(layout.backup_dir)
