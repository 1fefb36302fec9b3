"""Writing a database file into a live database, only the pages that differ, through SQLite.

Run as a script by `snapshot` (``python -I page_writer.py write SOURCE LIVE [KEPT]``, and
``put-back KEPT STAGED LIVE``), never imported by gitrelease. SQLite's backup API writes
every page of the live file, and its journal holds every page again: 1.4 s for a 266 MiB
database that a day of a bot's use changed one page in six of. Here, in one write
transaction of the live database, every page is read through SQLite's ``sqlite_dbpage``
table (the WAL and the bot's last commit included), compared with the same page of SOURCE (a
consistent file no one writes: a restore's staged snapshot, or a copy kept aside), and only
the pages that differ are written (and so journalled), the file grown or cut to SOURCE's
length in the same transaction. As the backup API does, the header keeps the live file's
journal-mode bytes and gets a schema cookie above the live one, so every connection of the
bot reads the schema again; the change counter is SQLite's to set at the commit. A kill at
any point leaves SQLite's journal of the transaction, which the next open rolls back: the
old file, whole.

With KEPT, each live page the write replaces or cuts off is kept there as it was
(`page_undo`), durable before the first page is written: what a restore keeps aside to be
undone, instead of a copy of the whole file. ``put-back`` undoes such a write: if the live
file is still what the write left (every page the staged one's), the kept pages go back in
the same way; if it is already as before (the write never committed), nothing is written;
if it is neither (written since), it exits 5 and the caller writes the whole file as it was
(`page_undo.rebuild`), with ``write SOURCE LIVE --cookie N``. A put-back sets the schema
cookie `page_undo.PUT_BACK` above the kept one, so that one already done is left as it is.

Why a process of its own: ``sqlite_dbpage`` is compiled into sqlean.py's SQLite, not into
Python's, and two SQLite libraries in one process do not see each other's POSIX locks (a
bot's connection in the same process could read a half-written page). Its starter tethers it
(`core.tether`): it dies with its starter.

Exit status: 0 done (one line of JSON on stdout: pages, written, and for a put-back its
state: "restored" put back, or "before" left); 3 this cannot be done here (sqlean.py
missing or built without ``sqlite_dbpage``, another page size or reserved space,
auto_vacuum, a WAL file that would shrink): nothing was written, and the caller uses the
backup API; 4 the disk is full; 5 (put-back) the live file was written since; 1 any other
SQLite error (on stderr). Nothing of the transaction is committed unless it exits 0.
"""

import errno
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_BUSY_MS = 30_000
_CHUNK = 256  # pages per statement batch; the pause point comes after the first
_UNAVAILABLE = 3
_FULL = 4
_WRITTEN_SINCE = 5
_SQLITE_FULL = 13
_PENDING_BYTE = 0x40000000
_TRUNCATE = (3, 48)  # sqlite_dbpage cuts a file (a NULL page) from 3.48 on
_INSERT = "INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, ?)"


class _Refused(Exception):
    """This write cannot be done here; nothing was written (exit 3, or 5)."""

    def __init__(self, why: str, code: int = _UNAVAILABLE) -> None:
        super().__init__(why)
        self.code = code


def _page_size(header: bytes) -> int:
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _page_one(source: bytes, live: bytes, cookie: int | None = None) -> bytes:
    """SOURCE's first page with the live file's read/write versions (WAL or not: the live
    file's journal mode stays) and a schema cookie one above the live one's (or `cookie`)."""
    if cookie is None:
        cookie = int.from_bytes(live[40:44], "big") + 1
    cookie &= 0xFFFFFFFF
    return (source[:18] + live[18:20] + source[20:40] + cookie.to_bytes(4, "big")
            + source[44:])


class _Staged:
    """A database file no one writes, page by page: read in order, as the live pages come."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("rb")
        self.size = _page_size(os.pread(self._handle.fileno(), 100, 0))
        self.first = os.pread(self._handle.fileno(), self.size, 0)
        self.total = os.fstat(self._handle.fileno()).st_size // self.size
        self._next = 2
        self._handle.seek(self.size)

    def page(self, number: int) -> bytes:
        if number != self._next:
            self._handle.seek((number - 1) * self.size)
        self._next = number + 1
        return self._handle.read(self.size)

    def at(self, number: int) -> bytes:
        """A page out of order (the pages to write, after the comparison)."""
        return os.pread(self._handle.fileno(), self.size, (number - 1) * self.size)

    def close(self) -> None:
        self._handle.close()


def main(argv: list[str]) -> int:
    try:
        import sqlean  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"sqlean.py is not installed ({exc})", file=sys.stderr)
        return _UNAVAILABLE
    if sqlean.sqlite_version_info < _TRUNCATE:
        print(f"its SQLite {sqlean.sqlite_version} cannot cut a file", file=sys.stderr)
        return _UNAVAILABLE
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from gitrelease.core.pausepoints import pause_point
    from gitrelease.state import page_undo

    how, *paths = argv
    cookie = None
    if how == "write" and len(paths) == 4 and paths[2] == "--cookie" and paths[3].isdigit():
        cookie, paths = int(paths[3]), paths[:2]
    if how not in ("write", "put-back") or len(paths) not in ((2, 3) if how == "write" else (3,)):
        print(f"usage: page_writer.py write SOURCE LIVE [KEPT | --cookie N] | put-back KEPT "
              f"STAGED LIVE (not {argv!r})", file=sys.stderr)
        return 2
    if how == "write":
        source, live, kept = Path(paths[0]), Path(paths[1]), paths[2:]
    else:
        kept, source, live = paths[:1], Path(paths[1]), Path(paths[2])
    staged = _Staged(source)

    def work(connection: Any) -> dict[str, Any]:
        if how == "write":
            keeper = None if not kept else lambda size, pages: page_undo.PageKeeper(
                Path(kept[0]), size, pages)
            return _differing(connection, staged, pause_point, keeper, cookie)
        with page_undo.KeptPages(Path(kept[0])) as pages:
            return _putting_back(connection, staged, pages, pause_point)

    try:
        return _transaction(sqlean, live, work)
    finally:
        staged.close()


def _transaction(sqlean: Any, live: Path, work: Callable[[Any], dict[str, Any]]) -> int:
    """`work` in one write transaction of the live file, committed if it returns."""
    connection = _connect(sqlean, live)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            answer = work(connection)
        except BaseException:
            if connection.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    except _Refused as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except OSError as exc:  # the file of the pages kept aside
        print(f"cannot keep the pages it replaces: {exc}", file=sys.stderr)
        return _FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 1
    except ValueError as exc:  # that file is not one
        print(str(exc), file=sys.stderr)
        return 1
    except sqlean.Error as exc:
        if "no such table: sqlite_dbpage" in str(exc):
            print(f"its SQLite has no sqlite_dbpage ({exc})", file=sys.stderr)
            return _UNAVAILABLE
        print(str(exc), file=sys.stderr)
        return _FULL if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL else 1
    finally:
        connection.close()
    if answer.pop("cut", 0):
        _trim(sqlean, live)
    print(json.dumps(answer))
    return 0


def _connect(sqlean: Any, live: Path) -> Any:
    """The live file, read-write, never created, waiting out the bot's locks."""
    return sqlean.connect(f"{live.resolve().as_uri()}?mode=rw", uri=True,
                          isolation_level=None, timeout=_BUSY_MS / 1000)


def _trim(sqlean: Any, live: Path) -> None:
    """Give back the pages past the end a shrunk file keeps on disk in a rollback-journal
    database (SQLite reads only as many as its header counts; a WAL checkpoint trims by
    itself). A fresh connection (the writer's view of its b-trees is stale), holding the
    write lock, so that no writer grows the file meanwhile; a failure only leaves them."""
    connection = _connect(sqlean, live)
    try:
        connection.execute("BEGIN IMMEDIATE")
        size, pages = (connection.execute(f"PRAGMA {name}").fetchone()[0]
                       for name in ("page_size", "page_count"))
        one = connection.execute("SELECT data FROM sqlite_dbpage WHERE pgno = 1").fetchone()[0]
        if one[18] == 1 and int.from_bytes(one[28:32], "big") == pages \
                and live.stat().st_size > pages * size:
            os.truncate(live, pages * size)  # by name: no descriptor of ours to close
        connection.execute("COMMIT")
    except (sqlean.Error, OSError) as exc:
        print(f"the file's end is left as it was: {exc}", file=sys.stderr)
    finally:
        connection.close()


def _live(connection: Any) -> tuple[int, int, bytes]:
    """The live file's page size, page count and first page, as this transaction sees them."""
    size = connection.execute("PRAGMA page_size").fetchone()[0]
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    one = connection.execute("SELECT data FROM sqlite_dbpage WHERE pgno = 1").fetchone()[0]
    return size, pages, one


def _refusal(size: int, first: bytes, total: int, live: tuple[int, int, bytes]) -> str | None:
    """Why pages of `size` (`first` the first one's, `total` of them) cannot be written
    into the live file here; None: they can."""
    live_size, live_pages, live_one = live
    if size != live_size or first[20] != live_one[20]:
        return (f"page size {size} (reserved {first[20]}) where the live file has "
                f"{live_size} ({live_one[20]})")
    if _vacuumed(first) or _vacuumed(live_one):
        # Its commit moves pages by the b-tree layer's count of them, which pages written
        # here do not update.
        return "auto_vacuum is on"
    if live_pages > total and live_one[18] == 2:
        return "a WAL database would shrink"  # a WAL commit keeps the old length
    return None


def _differing(connection: Any, source: _Staged, pause_point: Callable[[str], None],
               keeper: Callable[[int, int], Any] | None = None,
               cookie: int | None = None) -> dict[str, int]:
    """Inside the write transaction: every differing page of SOURCE written, each replaced
    one kept first by `keeper`'s file when there is one; page 1 with `cookie` if given."""
    live = _live(connection)
    why = _refusal(source.size, source.first, source.total, live)
    if why is not None:
        raise _Refused(why)
    _size, live_pages, live_one = live
    locking = _PENDING_BYTE // source.size + 1  # SQLite never writes the page its locks are on
    kept = None if keeper is None else keeper(source.size, live_pages)
    try:
        if kept is not None:
            kept.keep(1, live_one)
        changed: list[int] = []
        rows = connection.execute("SELECT pgno, data FROM sqlite_dbpage WHERE pgno > 1")
        for number, data in rows:
            if number == locking:
                continue
            if number > source.total:
                if kept is None:
                    break
                kept.keep(number, data)  # cut off by the write
            elif source.page(number) != data:
                changed.append(number)
                if kept is not None:
                    kept.keep(number, data)
        rows.close()
        changed += (n for n in range(max(live_pages, 1) + 1, source.total + 1) if n != locking)
        first = _page_one(source.first, live_one, cookie)
        if not changed and live_pages == source.total \
                and _bookkeeping(first) == _bookkeeping(live_one):
            if kept is not None:
                kept.discard()
            return {"pages": source.total, "written": 0}
        if kept is not None:
            kept.seal()  # durable before the first page is written
    except BaseException:
        if kept is not None:
            kept.discard()
        raise
    _write(connection, ((n, source.at(n)) for n in changed), first, live_pages, source.total,
           pause_point)
    return {"pages": source.total, "written": len(changed) + 1,
            "cut": int(live_pages > source.total)}


def _putting_back(connection: Any, staged: _Staged, kept: Any,
                  pause_point: Callable[[str], None]) -> dict[str, Any]:
    """Inside the write transaction: the pages kept aside put back, if the live file is
    still what the write left; nothing if it is as it was before; else `_Refused` (5)."""
    live = _live(connection)
    live_size, live_pages, live_one = live
    if kept.put_back_in(live_one):  # first: whatever the bot did since (a VACUUM, say)
        # Its schema cookie is the one a put-back gives (and the bot's schema changes since,
        # if any): put back already, by a process killed before it could say so.
        return {"pages": live_pages, "written": 0, "state": "put back"}
    if live_size != kept.size or staged.size != kept.size:
        raise _Refused(f"page size {live_size} where {kept.size} was kept", _WRITTEN_SINCE)
    locking = _PENDING_BYTE // kept.size + 1
    written = live_pages == staged.total and _bookkeeping(live_one) == _bookkeeping(
        staged.first)
    before = live_pages == kept.total and _bookkeeping(live_one) == _bookkeeping(kept.first)
    rows = connection.execute("SELECT pgno, data FROM sqlite_dbpage WHERE pgno > 1")
    for number, data in rows:
        if not (written or before):
            break
        if number == locking:
            continue
        page = staged.page(number) if number <= staged.total else None
        written = written and data == page
        if before:
            before = data == (kept.page(number) if number in kept else
                              page if number <= kept.total else None)
    rows.close()
    if before:
        return {"pages": live_pages, "written": 0, "state": "before"}
    if not written:
        raise _Refused("the live file was written since the restore", _WRITTEN_SINCE)
    why = _refusal(kept.size, kept.first, kept.total, live)
    if why is not None:
        raise _Refused(why)
    numbers = [n for n in kept.numbers() if 1 < n <= kept.total]
    _write(connection, ((n, kept.page(n)) for n in numbers),
           _page_one(kept.first, live_one, kept.put_back_cookie), live_pages,
           kept.total, pause_point)
    return {"pages": kept.total, "written": len(numbers) + 1, "state": "restored",
            "cut": int(live_pages > kept.total)}


def _write(connection: Any, pages: Iterator[tuple[int, bytes]], first: bytes, live_pages: int,
           total: int, pause_point: Callable[[str], None]) -> None:
    """`pages` (each number and its bytes), then page 1 last, with the cut to `total` pages
    (if the file shrinks) in the same statement. Once the schema cookie has moved on, the
    next statement would read the schema again through SQLite's b-tree layer, whose view of
    these pages is stale; COMMIT does not. The cut comes after every page (sqlite_dbpage
    makes it at the commit, and a page written after it calls it off)."""
    batch: list[tuple[int, bytes]] = []
    paused = False
    for item in pages:
        batch.append(item)
        if len(batch) == _CHUNK:
            connection.executemany(_INSERT, batch)
            batch = []
            if not paused:
                pause_point("sqlite:restore-writing")
                paused = True
    if batch:
        connection.executemany(_INSERT, batch)
    if batch and not paused:
        pause_point("sqlite:restore-writing")
        paused = True
    if live_pages > total:
        connection.execute(f"{_INSERT}, (?, NULL)", (1, first, total + 1))
    else:
        connection.execute(_INSERT, (1, first))
    if not paused:
        pause_point("sqlite:restore-writing")


def _vacuumed(page: bytes) -> bool:
    """Whether page 1 says auto_vacuum (full or incremental) is on: a largest root page."""
    return page[52:56] != b"\0\0\0\0"


def _bookkeeping(page: bytes) -> bytes:
    """Page 1 without what every commit or restore moves on: the journal-mode bytes (the
    live file's stay), the change counter, the schema cookie, the version-valid-for number
    and the SQLite version."""
    return page[:18] + page[20:24] + page[28:40] + page[44:92] + page[100:]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
