"""SQLite databases, copied only through SQLite itself.

A raw file copy of a live database can tear a page or miss transactions still in its
``-wal`` file. The online backup API copies a consistent snapshot (everything committed
before it started, WAL included) while other processes go on writing, and restoring through
it keeps open connections of the bot valid: they see the restored data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gitrelease.errors import InsufficientDiskSpace, VerificationFailed

__all__ = ["integrity_problem", "is_sqlite", "restore_database", "snapshot_database"]

_MAGIC = b"SQLite format 3\x00"
_BUSY_MS = 30_000
_SQLITE_FULL = 13


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    connection = sqlite3.connect(uri, uri=True, timeout=_BUSY_MS / 1000,
                                 isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
    return connection


def _copy(source: Path, target: Path, *, new_file: bool, what: str) -> None:
    """One backup-API step (one read transaction, one consistent view), then a check."""
    src = _connect(source, readonly=True)
    try:
        dst = sqlite3.connect(target, isolation_level=None) if new_file else _connect(target)
        try:
            src.backup(dst, pages=-1)
            if new_file:
                dst.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        finally:
            dst.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            raise InsufficientDiskSpace(f"cannot {what}: the disk is full") from None
        raise VerificationFailed(f"cannot {what}: {exc}") from None
    finally:
        src.close()
    problem = integrity_problem(target)
    if problem:
        raise VerificationFailed(f"{what}: the result fails its integrity check: {problem}")


def snapshot_database(source: Path, target: Path) -> None:
    """Copy a consistent snapshot of `source` into a new file `target` (mode 0600)."""
    target.touch(mode=0o600, exist_ok=False)
    _copy(source, target, new_file=True, what=f"snapshot the database {source}")


def integrity_problem(path: Path) -> str | None:
    """None if `PRAGMA integrity_check` passes, else its first complaint."""
    try:
        connection = _connect(path, readonly=True)
        try:
            row = connection.execute("PRAGMA integrity_check").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if row and row[0] == "ok" else str(row[0] if row else "no answer")


def restore_database(snapshot: Path, live: Path) -> None:
    """Write `snapshot` into the live database through SQLite, as one transaction."""
    _copy(snapshot, live, new_file=False, what=f"restore the database {live}")
