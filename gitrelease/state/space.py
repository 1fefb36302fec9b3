"""The room a backup or a restore needs, by filesystem, so it can refuse before it writes.

A restore that finds the disk full half-way has to undo itself on that full disk; one that
finds it full at the start has changed nothing. So a restore adds up, from the manifest's
sizes and the live files, what it will write where (`restore_needs`): the staged copies and
its safety backup beside the archives; a copy aside of each database (what its journal puts
back after a crash, `restore_journal`); and next to each live database SQLite's rollback
journal (the pages it overwrites) and any growth. Files that cross filesystems are counted
as the copies they become. The figures are upper bounds, never exact: a restore refused here
could perhaps have fitted; one let through can still meet a disk another process fills, and
then undoes itself (`placing`).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitrelease.core.errors import InsufficientDiskSpace

__all__ = ["MARGIN", "Need", "backup_needs", "check_space", "is_disk_full", "restore_needs"]

#: What a backup keeps free beyond its files: the manifest, the index's rows, SQLite's own.
MARGIN = 16 * 1024 * 1024
#: The index's rows and journal for what a restore records (its audit, the safety backup).
_INDEX = 1024 * 1024


def backup_needs(sources: Iterable[Any]) -> int:
    """Bytes a backup of `sources` (each with `.path`, `.kind`, `.size`) may write beside the
    archives: nothing compresses, and each database is written twice (snapshot, tar), its
    snapshot as large as the file and its -wal together."""
    sources = list(sources)
    needed = sum(s.size * (2 if s.kind == "database" else 1) for s in sources)
    needed += sum(_size(Path(f"{s.path}-wal")) for s in sources if s.kind == "database")
    return needed + MARGIN


@dataclass
class Need:
    """What will be written on one filesystem (`where`: a folder on it)."""

    where: Path
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def restore_needs(
    entries: Mapping[str, Mapping[str, Any]], lives: Mapping[str, Path],
    databases: set[str], *, scratch: Path, data_dir: Path, safety: bool,
) -> list[Need]:
    """What a restore of `entries` (member -> manifest entry) over the files at `lives`
    writes, by filesystem. `safety`: it takes a safety backup of the files it replaces."""
    needs: dict[int, Need] = {}

    def add(where: Path, what: str, size: int) -> None:
        if size > 0:
            need = needs.setdefault(_device(where), Need(where))
            need.parts[what] = need.parts.get(what, 0) + size

    staging = _device(scratch)
    add(scratch, "staged files", sum(int(e["size"]) for e in entries.values()))
    replaced = {name: _size(path) for name, path in lives.items()}
    if safety and any(replaced.values()):
        add(scratch, "safety backup", sum(
            size * (2 if name in databases else 1) + (
                _size(Path(f"{lives[name]}-wal")) if name in databases else 0)
            for name, size in replaced.items()) + MARGIN)
    for name, live in lives.items():
        new, old = int(entries[name]["size"]), replaced[name]
        if name in databases:
            add(scratch, "databases kept aside", old)
            add(live.parent, "database journals", old + max(0, new - old))
        elif _device(live.parent) != staging:
            add(scratch, "files kept aside", old)  # a copy: no hard link across disks
            add(live.parent, "files copied in", new)
    add(data_dir, "the index", _INDEX)
    return list(needs.values())


def check_space(needs: Iterable[Need], action: str) -> None:
    """Refuse, naming what is needed where and what is free there, if any filesystem has
    less free than its `Need`."""
    for need in needs:
        free = shutil.disk_usage(_existing(need.where)).free
        if free < need.total:
            parts = ", ".join(f"{what} {_mib(size)}" for what, size in need.parts.items())
            raise InsufficientDiskSpace(
                f"{action} needs {_mib(need.total)} on the disk of {need.where} ({parts}); "
                f"{_mib(free)} are free there; nothing was changed",
                hint="free some disk space there (or restore one type at a time, --type), "
                     "then try again")


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is a disk (or a quota) running out, however it came: an OSError, our
    own refusal, or SQLite's "database or disk is full" (the index, a database written)."""
    if isinstance(error, InsufficientDiskSpace):
        return True
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
            "disk is full" in str(error)
    return False


def _mib(size: int) -> str:
    return f"{math.ceil(size / 2**20 * 10) / 10:g} MiB"


def _existing(path: Path) -> Path:
    """`path`, or its nearest folder that exists (what a restore creates is not there yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _device(path: Path) -> int:
    try:
        return os.stat(_existing(path)).st_dev
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return -1
        raise


def _size(path: Path) -> int:
    """A regular file's size (0: none, or not a regular file; a link is not followed)."""
    try:
        status = os.lstat(path)
    except OSError:
        return 0
    return status.st_size if not os.path.islink(path) and os.path.isfile(path) else 0
