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
from typing import Protocol

from gitrelease.core.fsutil import fsync_dir
from gitrelease.state.sources import Layout

__all__ = [
    "ARCHIVE_NAME",
    "ArchiveStore",
    "LocalArchiveStore",
    "PendingArchive",
    "Presence",
    "StoredArchive",
    "archive_store",
    "is_leftover",
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

    A location is the string a backup row records as `file_path`; it may point outside the
    store's own place (an archive written before `backup_path` changed), and the store still
    answers for it. The methods are synchronous and may block: writing, listing, deleting and
    sweeping are called in a thread; `taken_names` and `presence` (a stat each, locally) on
    the event loop. `reading` is asynchronous, so that fetching can wait without blocking it.

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

    def presence(self, location: str) -> Presence:
        """Whether the archive at `location` is there, gone, or cannot be looked for."""
        ...

    def reading(self, location: str) -> AbstractAsyncContextManager[Path]:
        """The archive at `location` as a local file, for as long as the context lasts. A
        missing one is still handed out: the archive functions say it is missing."""
        ...

    def delete(self, location: str) -> None:
        """Delete the archive at `location`, durably; one already gone is no error."""
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

    def presence(self, location: str) -> Presence:
        path = Path(location)
        if path.exists():
            return Presence.PRESENT
        return Presence.ABSENT if path.parent.is_dir() else Presence.UNREACHABLE

    @asynccontextmanager
    async def reading(self, location: str) -> AsyncIterator[Path]:
        yield Path(location)  # already a local file: nothing to fetch or clean up

    def delete(self, location: str) -> None:
        path = Path(location)
        path.unlink(missing_ok=True)
        if path.parent.exists():
            fsync_dir(path.parent)

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


def archive_store(layout: Layout) -> ArchiveStore:
    """The store a deployment's archives are kept in: the one place it is chosen."""
    return LocalArchiveStore(layout.backup_dir)
