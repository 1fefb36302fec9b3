"""Putting a restore's staged files into place, never through a link it was not told of.

A backup names what a restore replaces (``data/notes.json``); what is at that name now may be
a symbolic link put there since, to a file outside the deployment or to another of its files.
A link at a target is replaced itself: the link is kept aside (and put back if the restore
fails), never what it points at, which is left as it was. The one link followed is the
operator's link to a config file that the backup itself read through, to the same file
(`Target.follow`; the manifest records it as ``link``). A link above a target (a folder)
refuses the restore, naming it (`LinkedTarget`): the renames walk the folders down from the
data dir or the root without following one, so a link put there while the restore runs
refuses too. A database is written through SQLite only where its name is a regular SQLite
file; SQLite would follow a link, so a link there is replaced like any other file.

`replace` keeps aside all it will replace and journals that (`restore_journal`), then swaps
the files in; if a step fails, it puts back what it had replaced, and if the process is
killed, the next start does (`restore_undo`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitrelease.core.errors import GitReleaseError, InsufficientDiskSpace
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.models import Backup, Progress
from gitrelease.core.pausepoints import pause_point
from gitrelease.core.text import counted
from gitrelease.state.restore_journal import WRITTEN, JournalStep, RestoreJournal
from gitrelease.state.snapshot import is_sqlite, put_back_database, restore_database
from gitrelease.state.space import is_disk_full

__all__ = ["LinkedTarget", "RestoreFailed", "Target", "place", "remove_target", "replace",
           "target_of"]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)


class RestoreFailed(GitReleaseError):
    code = "restore_failed"
    exit_code = 18


class LinkedTarget(RestoreFailed):
    """A folder on the way to a file the restore would write is a symbolic link."""

    code = "linked_target"
    default_hint = ("a restore never writes through a symbolic link: put the folder itself "
                    "there (or remove the link), then restore again")


@dataclass(frozen=True)
class Target:
    """Where one member goes: its live name, below `base` (the data dir or the root)."""

    name: str
    path: Path
    base: Path
    follow: Path | None = None  # the operator's link's file, written through
    link: str | None = None  # what the link at `path` points to, when it is replaced itself

    @property
    def live(self) -> Path:
        """The file whose content is compared, kept aside and replaced."""
        return self.follow or self.path


def target_of(name: str, path: Path, base: Path, entry: Mapping[str, Any]) -> Target:
    """What is at `path` now, and so how it is replaced (see the module's docstring)."""
    try:
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return Target(name, path, base)
        pointed = os.readlink(path)
    except OSError:
        return Target(name, path, base)  # not there (yet): created
    real = os.path.realpath(path)
    recorded = entry.get("link")
    if entry.get("kind") == "config" and isinstance(recorded, str) and real == recorded \
            and os.path.isfile(real):
        return Target(name, path, base, follow=Path(real))
    return Target(name, path, base, link=pointed)


def _open_parent(target: Target, shown: str, *, create: bool) -> tuple[int, str]:
    """The folder the target's name is in, opened by walking down from its base without
    following a link (created as needed), and the name in it."""
    if target.follow is not None:  # the operator's file, where the operator keeps it
        return os.open(target.follow.parent, os.O_RDONLY | os.O_DIRECTORY), target.follow.name
    parts = target.path.relative_to(target.base).parts
    fd = os.open(target.base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(parts[:-1]):
            try:
                inner = os.open(part, _DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, dir_fd=fd)
                inner = os.open(part, _DIRECTORY, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                folder = target.base.joinpath(*parts[:depth + 1])
                what = "a symbolic link" if folder.is_symlink() else "no folder"
                raise LinkedTarget(f"{folder} is {what}; restoring {shown} would write "
                                   "through it") from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def place(source: Path, target: Target, shown: str) -> None:
    """Rename `source` (a staged file, or one kept aside) to the target's name, replacing
    what is there: a link itself, never what it points at. A source on another filesystem
    is copied to a temporary name there first (then renamed: the old file or the new)."""
    directory, name = _open_parent(target, shown, create=True)
    try:
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode):
                raise RestoreFailed(f"{target.live} is a directory; a file was backed up there")
        except FileNotFoundError:
            pass
        try:
            os.replace(source, name, dst_dir_fd=directory)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _copy_in(source, directory, name)
    finally:
        os.close(directory)


def _copy_in(source: Path, directory: int, name: str) -> None:
    temporary = f".{name}.tmp-restore"
    with suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=directory)
    if source.is_symlink():
        os.symlink(os.readlink(source), temporary, dir_fd=directory)
    else:
        mode = stat.S_IMODE(source.stat().st_mode)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=directory)
        try:
            with source.open("rb") as reading, os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(reading, out)
                out.flush()
                os.fchmod(fd, mode)
                os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)


def _through_sqlite(target: Target, shown: str) -> bool:
    """Whether the live database is written through SQLite: a regular SQLite file at the
    name itself, reached through no link (SQLite would follow one)."""
    if target.link is not None or target.follow is not None:
        return False
    try:
        directory, name = _open_parent(target, shown, create=False)
    except FileNotFoundError:
        return False
    try:
        status = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    finally:
        os.close(directory)
    return stat.S_ISREG(status.st_mode) and is_sqlite(target.path)


def _link_aside(live: Path, aside: Path) -> Path | None:
    """Keep what is at `live` at `aside` without copying it: a second name for the same
    inode (a link: a copy of the link itself), which the swap then unlinks from the live
    name only. None: nothing there to keep. On another filesystem, a copy, fsynced: the
    journal counts on it after a crash."""
    try:
        status = os.lstat(live)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(status.st_mode):
        os.symlink(os.readlink(live), aside)
        return aside
    if not stat.S_ISREG(status.st_mode):
        return None
    try:
        os.link(live, aside, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(live, aside)
        _fsync_file(aside)
    return aside


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _apply(staged: Path, target: Target, is_database: bool, kept: Path | None,
           shown: str = "") -> None:
    """One file into place; the caller fsyncs the directories it renamed into, once each.
    `kept`: the database is written through SQLite (`_through_sqlite`), its way back kept
    there first."""
    if kept is not None:
        pause_point("restore:database")
        _fsync_file(staged)  # its way back needs it too (unpacking made it durable: cheap)
        restore_database(staged, target.path, kept)
        pause_point("restore:database:written")
        return
    if is_database:  # durable before it is renamed in (a chain's rebuilt file is not yet)
        _fsync_file(staged)
    place(staged, target, shown or target.name)
    if is_database:  # databases come last: no later step fsyncs this directory
        fsync_dir(target.live.parent)


def _keep_aside(
    order: list[str], targets: dict[str, Target], databases: set[str], aside: Path,
    shown: Callable[[str], str],
) -> tuple[dict[str, Path | None], set[str]]:
    """Everything about to be replaced, kept aside before the first swap: each file by a
    hard link. A database written through SQLite is kept by its write: the pages it
    replaces, at the name given here (`restore_database`). Returns name -> where it is kept
    (None: nothing there) and the databases written through SQLite."""
    kept: dict[str, Path | None] = {}
    through: set[str] = set()
    for number, name in enumerate(order):
        target = targets[name]
        if name in databases and _through_sqlite(target, shown(name)):
            through.add(name)
            kept[name] = aside / f"{number}.kept"
        else:
            kept[name] = _link_aside(target.live, aside / str(number))
    fsync_dir(aside)
    return kept, through


def _journal(
    backup: Backup, safety: Backup | None, order: list[str], targets: dict[str, Target],
    kept: dict[str, Path | None], through: set[str], staging: Path,
    shown: Callable[[str], str], digests: Mapping[str, str], staged: dict[str, Path],
) -> RestoreJournal:
    steps = []
    for name in order:
        target, old = targets[name], kept[name]
        steps.append(JournalStep(
            name, str(target.path), str(target.base), shown(name),
            None if old is None else old.relative_to(staging).as_posix(), name in through,
            None if target.follow is None else str(target.follow), target.link,
            digests.get(name),
            _inside(staged[name], staging) if name in through else None))
    return RestoreJournal(backup.id, safety.id if safety else None, str(staging), steps)


def _inside(path: Path, staging: Path) -> str:
    """`path`'s name in the staging dir (unpacking names it by the dir's real path)."""
    real = staging.resolve()
    return path.relative_to(staging if path.is_relative_to(staging) else real).as_posix()


async def replace(
    backup: Backup, staged: dict[str, Path], targets: dict[str, Target], databases: set[str],
    aside: Path, safety: Backup | None, report: Progress, shown: Callable[[str], str],
    journal_path: Path, digests: Mapping[str, str] | None = None,
) -> list[str]:
    """Swap the staged files in: plain files first, then the databases, each one
    transaction in SQLite. Before the first swap, everything replaced is kept aside (a hard
    link per file; a database's write keeps the pages it replaces before it writes one) and
    a journal of it written at `journal_path` (see
    `restore_journal`): a process killed half-way is undone at the next start. On any
    failure here, what was replaced is put back, and the error says so (a disk that filled
    up, as such); the journal stays only if that putting back failed."""
    order = sorted(n for n in staged if n not in databases) + sorted(n for n in staged
                                                                     if n in databases)
    staging = aside.parent
    kept: dict[str, Path | None] = {}  # replaced name -> its old content aside, or None
    applied: list[str] = []
    through: set[str] = set()  # databases written through SQLite
    journal: RestoreJournal | None = None
    name = ""
    try:
        aside.mkdir()
        kept, through = await asyncio.to_thread(_keep_aside, order, targets, databases,
                                                aside, shown)
        journal = _journal(backup, safety, order, targets, kept, through, staging, shown,
                           digests or {}, staged)
        await asyncio.to_thread(journal.save, journal_path)
        directories: set[Path] = set()
        for number, name in enumerate(order):
            report("restore", 60 + int(number / len(order) * 35), shown(name))
            target = targets[name]
            is_database = name in databases
            if is_database and directories:
                # The renames made durable before the first database's write.
                await asyncio.to_thread(_fsync_dirs, directories)
                directories = set()
            if name in through:  # journalled before its write begins
                journal.writing.append(name)
                await asyncio.to_thread(journal.save, journal_path)
                # Put back too if its write fails: it may fail after its commit (its writer
                # killed before it answered), and putting back one never written is a no-op.
                applied.append(name)
            await asyncio.to_thread(_apply, staged[name], target, is_database,
                                    kept[name] if name in through else None, shown(name))
            if name not in through:
                applied.append(name)
            if not is_database:
                directories.add(target.live.parent)
                pause_point("restore:placed")
        await asyncio.to_thread(_fsync_dirs, directories)
        journal.phase = WRITTEN
        await asyncio.to_thread(journal.save, journal_path)
        pause_point("restore:written")
    except BaseException as exc:
        undo, whole = await asyncio.to_thread(_put_back, applied, kept, targets, through,
                                              shown, staged, digests or {})
        if journal is not None and whole:  # nothing is left for the next start to undo
            with suppress(OSError):
                journal_path.unlink()
        message = exc.message if isinstance(exc, GitReleaseError) else (
            exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc))
        hint = (f"the safety backup {safety.id} holds the state from before the restore"
                if safety else None)
        if is_disk_full(exc):
            raise InsufficientDiskSpace(
                f"disk full while restoring {shown(name)} from {backup.id} ({message}); "
                f"{undo}", hint="free some disk space, then restore again"
                + (f"; {hint}" if hint else "")) from None
        if isinstance(exc, LinkedTarget):
            raise LinkedTarget(f"{exc.message}; {undo}") from None
        raise RestoreFailed(f"restoring {backup.id} failed at {shown(name)}: {message}; "
                            f"{undo}", hint=hint) from None
    return applied


def _fsync_dirs(directories: set[Path]) -> None:
    for directory in sorted(directories):
        fsync_dir(directory)


def _put_back(
    applied: list[str], kept: dict[str, Path | None], targets: dict[str, Target],
    through: set[str], shown: Callable[[str], str] = str,
    staged: Mapping[str, Path] | None = None, digests: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """Undo a half-done restore from what was kept aside; says what it did, and whether
    all of it was put back."""
    if not applied:
        return "nothing had been replaced yet", True
    failed = []
    directories = set()
    for name in reversed(applied):
        target = targets[name]
        old = kept[name]
        try:
            if old is None:
                remove_target(target, shown(name))  # the restore created it
            elif name in through:
                put_back_database(old, (staged or {}).get(name, old), target.path,
                                  (digests or {}).get(name))
            else:
                place(old, target, shown(name))
            directories.add(target.live.parent)
        except (GitReleaseError, OSError) as exc:
            failed.append(f"{shown(name)} "
                          f"({exc.message if isinstance(exc, GitReleaseError) else exc})")
    try:
        _fsync_dirs(directories)
    except OSError as exc:
        failed.append(f"the directories ({exc})")
    if failed:
        return (f"putting back the {counted(len(applied), 'file')} replaced FAILED for "
                f"{', '.join(failed)}; it is tried again at the next start"), False
    replaced = counted(len(applied), "file")
    return (f"the {replaced} already replaced {'was' if len(applied) == 1 else 'were'} "
            "put back"), True


def remove_target(target: Target, shown: str) -> None:
    """Unlink what is at the target's name (a file the restore created), never through a
    link above it."""
    directory, name = _open_parent(target, shown, create=False)
    try:
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        pass
    finally:
        os.close(directory)
