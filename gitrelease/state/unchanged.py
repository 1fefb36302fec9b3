"""Which live files already are what a backup holds, so that a restore leaves them alone.

The manifest records every member's size, mode and sha256. A live file that is a regular file
with that size and those permission bits, and whose bytes hash to that sha256, is the backed-up
file: restoring it would unpack it, keep a copy of it aside and replace it with itself. A
restore right after a backup then touches almost nothing, and a rollback only what the update
changed.

A database is archived as a snapshot SQLite's backup API wrote, which differs from the live
file it copied in its header's bookkeeping only: the journal mode bytes (WAL or not), the file
change counter, the schema cookie, the version-valid-for number and the SQLite version
(`HEADER_MARKS`). The manifest records the snapshot's values there (`header_marks`), and the
live file is hashed with them in their place: a database whose every page is the snapshot's
counts as unchanged. It counts only when SQLite has nothing pending beside it: a non-empty
``-wal`` holds commits the main file does not show yet, and a ``-journal`` may be a hot
rollback journal; either way its bytes do not say what its content is, so it is restored. An
archive without the marks never has an unchanged database.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gitrelease.state.archive import sha256_file
from gitrelease.state.compression import CHUNK

__all__ = ["HEADER_MARKS", "header_marks", "unchanged_files"]

_SIDE_FILES = ("-wal", "-journal")
#: (offset, length) in a SQLite header of what a backup-API copy sets for itself: the write
#: and read format versions (2 in WAL mode, 1 otherwise), the file change counter, the schema
#: cookie (which the backup API bumps, so other connections reload the schema), the
#: version-valid-for number and the version of the SQLite library that wrote it last. Every
#: other byte of the file is the pages' own.
HEADER_MARKS = ((18, 2), (24, 4), (40, 4), (92, 4), (96, 4))
_HEADER = 100


def header_marks(path: Path) -> str:
    """The bytes at `HEADER_MARKS` of the SQLite file at `path`, as hex (for the manifest)."""
    with path.open("rb") as handle:
        header = handle.read(_HEADER)
    return "".join(header[at:at + size].hex() for at, size in HEADER_MARKS)


def unchanged_files(
    entries: Mapping[str, Mapping[str, Any]], targets: Mapping[str, Path],
    databases: Iterable[str] = (), *, workers: int | None = None,
) -> set[str]:
    """The member names whose live file (at `targets[name]`) already matches its manifest
    entry. Files are compared by size and mode first (an lstat each), and only those that
    pass are hashed, the largest first, on `workers` threads (hashlib lets go of the GIL)."""
    databases = set(databases)
    candidates: list[tuple[int, str, Path]] = []
    for name, entry in entries.items():
        path = targets[name]
        if _same_shape(path, entry, name in databases):
            candidates.append((int(entry["size"]), name, path))
    if not candidates:
        return set()
    candidates.sort(reverse=True)

    def same(item: tuple[int, str, Path]) -> str | None:
        _size, name, path = item
        entry = entries[name]
        try:
            digest = (_sqlite_sha256(path, str(entry["sqlite_header"])) if name in databases
                      else sha256_file(path))
            return name if digest == entry["sha256"] else None
        except (OSError, ValueError):
            return None  # gone or unreadable since: restored, which says why if it fails

    count = min(len(candidates), workers or min(4, os.cpu_count() or 1))
    if count == 1:
        return {name for name in map(same, candidates) if name is not None}
    with ThreadPoolExecutor(count, thread_name_prefix="unchanged") as pool:
        return {name for name in pool.map(same, candidates) if name is not None}


def _same_shape(path: Path, entry: Mapping[str, Any], is_database: bool) -> bool:
    """Size and permission bits as recorded, a regular file (never a link: the restore
    replaces one, and passes the file of the operator's own link it writes through), and for
    a database no SQLite file pending beside."""
    try:
        status = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(status.st_mode) or status.st_size != int(entry["size"]):
        return False
    if stat.S_IMODE(status.st_mode) & 0o777 != stat.S_IMODE(int(entry["mode"])) & 0o777:
        return False
    if is_database:
        if not isinstance(entry.get("sqlite_header"), str):
            return False  # written before the marks were recorded: not comparable
        for suffix in _SIDE_FILES:
            try:
                if os.stat(f"{path}{suffix}").st_size > 0:
                    return False
            except FileNotFoundError:
                continue
            except OSError:
                return False
    return True


def _sqlite_sha256(path: Path, marks: str) -> str:
    """The sha256 the live database would have with the snapshot's `marks` in its header."""
    recorded = bytes.fromhex(marks)
    if len(recorded) != sum(size for _at, size in HEADER_MARKS):
        raise ValueError("marks of another layout")
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        header = bytearray(handle.read(_HEADER))
        if len(header) < _HEADER or header[18] not in (1, 2) or header[19] not in (1, 2):
            # Not marks a copy sets: a damaged header, which SQLite would refuse.
            raise ValueError("not a SQLite header this compares")
        offset = 0
        for at, size in HEADER_MARKS:
            header[at:at + size] = recorded[offset:offset + size]
            offset += size
        digest.update(header)
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()
