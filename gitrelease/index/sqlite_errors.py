"""What a SQLite error says about the index: busy, full, unwritable, or broken.

A locked index and a full disk are passing conditions; calling them a broken index (with
the hint to move the file aside, which would lose the recovery journal, the audit and the
schedules) would make a person destroy what is fine. `index_error` tells them apart by
SQLite's result code (Python 3.11's `sqlite_errorcode`) and, for what carries none, by
SQLite's own fixed message; `Guarded` puts every statement of `SQLiteStore` through it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from gitrelease.core.errors import IndexBusy, IndexFull, IndexStoreError
from gitrelease.core.text import size

__all__ = ["Guarded", "index_error"]

_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_FULL = {sqlite3.SQLITE_FULL}
_BROKEN = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_UNWRITABLE = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM,
               sqlite3.SQLITE_IOERR, sqlite3.SQLITE_AUTH}
#: SQLite's messages for the codes above, for an error raised without a code.
_SAID = (("database is locked", _BUSY), ("database table is locked", _BUSY),
         ("database is busy", _BUSY), ("database or disk is full", _FULL),
         ("malformed", _BROKEN), ("not a database", _BROKEN),
         ("readonly database", _UNWRITABLE), ("unable to open", _UNWRITABLE),
         ("disk i/o error", _UNWRITABLE))


def _kind(exc: sqlite3.Error) -> set[int]:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF  # an extended code (SQLITE_IOERR_WRITE) names its primary
        for kind in (_BUSY, _FULL, _BROKEN, _UNWRITABLE):
            if primary in kind:
                return kind
    text = str(exc).lower()
    return next((kind for said, kind in _SAID if said in text), set())


def index_error(exc: sqlite3.Error, path: Path, waited: float) -> IndexStoreError:
    """The error a person is shown for `exc` on the index at `path`; `waited`: the
    seconds gitrelease waits for a busy index before it says so."""
    kind = _kind(exc)
    if kind is _BUSY:
        return IndexBusy(f"the index {path} is busy (another gitrelease or a tool holds it, "
                         f"for longer than {waited:g} s); retry")
    if kind is _FULL:
        try:
            free = f"{size(shutil.disk_usage(path.parent).free)} free"
        except OSError:
            free = "its free space unknown"
        return IndexFull(f"the disk of the index {path} is full ({free}): {exc}")
    if kind is _UNWRITABLE:
        return IndexStoreError(
            f"the index {path} cannot be read or written: {exc}",
            hint=f"check the disk and the permissions of {path.parent}, then retry; "
                 "nothing of the index is lost")
    if kind is _BROKEN:
        return IndexStoreError(
            f"the index {path} is damaged: {exc}",
            hint="move the file aside; gitrelease creates a new index (the archives are "
                 "adopted again; the old sessions, audit and schedules stay in the file)")
    return IndexStoreError(f"the index {path} cannot be used: {exc}",
                           hint="run the command again; if it says the same, report it")


class _Statement:
    """One `execute`, awaited or used as `async with`, its errors said by `index_error`
    (a fetch inside the `async with` too)."""

    def __init__(self, start: Awaitable[Any], fail: Callable[[sqlite3.Error], Exception]
                 ) -> None:
        self._start = start
        self._fail = fail
        self._cursor: Any = None

    def __await__(self) -> Any:
        return self._run().__await__()

    async def _run(self) -> Any:
        try:
            return await self._start
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    async def __aenter__(self) -> Any:
        self._cursor = await self._run()
        return self._cursor

    async def __aexit__(self, kind: Any, exc: BaseException | None, trace: Any) -> None:
        await self._cursor.close()
        if isinstance(exc, sqlite3.Error):
            raise self._fail(exc) from None


class Guarded:
    """The store's connection, every statement's error said as `index_error` says it."""

    def __init__(self, db: Any, path: Path, waited: float) -> None:
        self._db = db
        self.path = path
        self.waited = waited

    def fail(self, exc: sqlite3.Error) -> IndexStoreError:
        return index_error(exc, self.path, self.waited)

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> _Statement:
        return _Statement(self._db.execute(sql, tuple(parameters)), self.fail)

    async def close(self) -> None:
        await self._db.close()

    def __getattr__(self, name: str) -> Any:
        # The rest of aiosqlite's connection (create_function, set_trace_callback), as is.
        return getattr(self._db, name)
