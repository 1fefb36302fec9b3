"""Whether anything needs putting in order: the cheap look before a reconcile.

A list or a status may follow a crash, or a lost index that the archives can rebuild
(`Installer.finish_interrupted`, `reconcile.reconcile`). That work reads every backup row
and stats every archive; this answers "is there any?" from indexed SQL and one listing of
the backups dir, so that the work runs only when there is some. It looks for exactly what
the reconcile acts on (tests/state/test_upkeep.py holds the two together):

- sessions left unfinished, rows left half-written or half-deleted;
- leftovers of an interrupted write in the backups dir;
- an archive there that the index does not know (a lost index is rebuilt this way);
- a completed backup whose archive has gone, or a missing one that is back.

It reads the local backups dir itself (directory stamps make a clean answer free to repeat),
with the names `archives` gives: a store elsewhere would need a look of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitrelease.index.store import BackupFiles, Store
from gitrelease.state.archives import ARCHIVE_NAME, is_leftover

__all__ = ["UpkeepWatch", "pending_work"]

# A directory whose timestamp is this recent may change again within the same tick of the
# file system's clock: its listing is not remembered (git's "racily clean" rule).
_SETTLED_NS = 2_000_000_000


async def pending_work(store: Store, backup_dir: Path) -> str | None:
    """Why a reconcile is needed now, or None when the index and the disk agree."""
    return (await _look(store, str(backup_dir))).reason


class UpkeepWatch:
    """`pending_work` that remembers a clean answer for as long as nothing it looked at has
    changed: the index (its change stamp) and each directory listed (its inode and times).
    A long-lived manager (the bot's) then answers from one query and one stat per call.
    One watch per open index: a stamp means nothing to another connection."""

    def __init__(self) -> None:
        self._clean: tuple[object, ...] | None = None
        self._dirs: tuple[str, ...] = ()

    async def pending(self, store: Store, backup_dir: Path) -> str | None:
        directory = str(backup_dir)
        dirs = self._dirs if self._dirs[:1] == (directory,) else (directory,)
        # Stamped before looking: whatever changes during the look changes the stamp too.
        before = (directory, await store.change_stamp(),
                  *await asyncio.to_thread(_stamps, dirs))
        if before == self._clean:
            return None
        self._clean = None
        look = await _look(store, directory)
        self._dirs = tuple(look.dirs) or (directory,)
        if look.reason is None and look.rememberable and self._dirs == dirs and \
                all(stamp is not None for stamp in before[2:]):
            self._clean = before
        return look.reason


def _stamps(dirs: Sequence[str]) -> list[tuple[int, int, int, int] | str | None]:
    """Each directory's identity and mtime; "absent" if it is not there, None if it
    changed too recently to be trusted."""
    now = time.time_ns()
    stamps: list[tuple[int, int, int, int] | str | None] = []
    for directory in dirs:
        try:
            found = os.stat(directory or ".")
        except (FileNotFoundError, NotADirectoryError):
            stamps.append("absent")
            continue
        except OSError:
            stamps.append(None)
            continue
        # An entry added, removed or renamed moves the mtime; the ctime is in the stamp too,
        # in case someone set the mtime back.
        settled = now - found.st_mtime_ns > _SETTLED_NS
        stamps.append((found.st_dev, found.st_ino, found.st_mtime_ns, found.st_ctime_ns)
                      if settled else None)
    return stamps


@dataclass
class _Look:
    reason: str | None
    dirs: list[str]  # every directory listed, the backups dir first
    rememberable: bool  # no symbolic link was seen (a link's target can change unseen)


async def _look(store: Store, backup_dir: str) -> _Look:
    if await store.unfinished_sessions():
        return _Look("an update session was left unfinished", [], False)
    if await store.backups_unsettled():
        return _Look("a backup was left half-written or half-deleted", [], False)
    files = await store.backup_files()
    try:
        return await asyncio.to_thread(_disagreement, backup_dir, files)
    except OSError as exc:
        return _Look(f"the backups dir cannot be read ({exc.strerror or exc})", [], False)


def _disagreement(backup_dir: str, files: BackupFiles) -> _Look:
    listings: dict[str, _Listing | None] = {}

    def listing(directory: str) -> _Listing | None:
        if directory not in listings:
            listings[directory] = _Listing.of(directory)
        return listings[directory]

    def look(reason: str | None) -> _Look:
        return _Look(reason, list(listings), not any(
            found.has_links for found in listings.values() if found is not None))

    here = listing(backup_dir) or _Listing(backup_dir, {})
    for name in here.entries:
        if is_leftover(name):
            return look(f"a leftover {name} is in the backups dir")
    # Set arithmetic on whole paths settles the usual case; only paths it leaves over (none,
    # unless something changed or a row points elsewhere) are looked at one by one.
    unknown = here.paths() - set(files.paths)
    if unknown:
        known = {os.path.basename(path) for path in files.paths}
        for path in unknown:
            name = os.path.basename(path)
            if name not in known and ARCHIVE_NAME.match(name) and \
                    here.entries[name].is_file(follow_symlinks=False):
                return look(f"the archive {name} is not in the index")
    # A backups dir that is not there (a disk not mounted) is left alone by the reconcile,
    # and so is a row naming a file elsewhere or a link (`ArchiveStore.refusal`).
    found = listing(backup_dir)
    ours = [os.path.split(path) for path in set(files.completed) - here.present_paths()]
    for directory, name in ours:
        if found is not None and directory == backup_dir and not found.exists(name) and \
                not found.is_link(name):
            return look(f"the archive {name} has gone")
    for directory, name in map(os.path.split, files.missing):
        if found is not None and directory == backup_dir and found.exists(name) and \
                not found.is_link(name):
            return look(f"the missing archive {name} is back")
    return look(None)


class _Listing:
    """One directory's entries, as one `os.scandir` saw them."""

    def __init__(self, directory: str, entries: dict[str, os.DirEntry[str]]) -> None:
        self.directory = directory
        self.entries = entries
        self.has_links = any(entry.is_symlink() for entry in entries.values())

    @classmethod
    def of(cls, directory: str) -> _Listing | None:
        """None when there is no such directory."""
        try:
            with os.scandir(directory or ".") as found:
                return cls(directory, {entry.name: entry for entry in found})
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, name: str) -> bool:
        """As `Path.exists` says: a symbolic link exists when what it points to does."""
        entry = self.entries.get(name)
        return entry is not None and (not entry.is_symlink() or os.path.exists(entry.path))

    def is_link(self, name: str) -> bool:
        entry = self.entries.get(name)
        return entry is not None and entry.is_symlink()

    def paths(self) -> set[str]:
        prefix = self._prefix()
        return {prefix + name for name in self.entries}

    def present_paths(self) -> set[str]:
        prefix = self._prefix()
        return {prefix + name for name in self.entries if self.exists(name)}

    def _prefix(self) -> str:
        # What os.path.join(directory, name) gives, without a call per name.
        if not self.directory or self.directory.endswith(os.sep):
            return self.directory
        return self.directory + os.sep
