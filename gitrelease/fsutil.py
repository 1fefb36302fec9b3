"""Writing files so that a crash leaves either the old content or the new, never a mix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "dir_size", "dir_sizes", "fsync_dir"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write to a temp name in the same directory, fsync, rename over `path`, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dir_size(path: Path) -> int:
    """Bytes in regular files under `path`, not following symlinks."""
    return dir_sizes(path)[0]


def dir_sizes(path: Path, *inside: Path, skip: Path | None = None) -> tuple[int, ...]:
    """Bytes in regular files under `path`, then under each folder of `inside` that lies
    within it, in one walk (not following symlinks); a folder of `inside` that is elsewhere
    is walked on its own. The folder `skip` is left out of the walk altogether."""
    marks = {os.path.normpath(p): i + 1 for i, p in enumerate(inside)}
    skipped = os.path.normpath(skip) if skip is not None else None
    totals = [0] * (1 + len(inside))
    stack = [(os.path.normpath(path), 0)]
    while stack:
        where, bucket = stack.pop()
        try:
            with os.scandir(where) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.path != skipped:
                            stack.append((entry.path, marks.get(entry.path, bucket)))
                    elif entry.is_file(follow_symlinks=False):
                        size = entry.stat(follow_symlinks=False).st_size
                        totals[0] += size
                        if bucket:
                            totals[bucket] += size
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    root = os.path.normpath(path) + os.sep
    for where, bucket in marks.items():
        if not (where + os.sep).startswith(root):
            totals[bucket] = dir_sizes(Path(where))[0]
    return tuple(totals)
