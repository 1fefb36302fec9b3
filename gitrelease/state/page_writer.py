"""Writing a database file into a live database, only the pages that differ, through SQLite.

Run as a script by `snapshot.restore_database` (``python -I page_writer.py SOURCE LIVE``),
never imported by gitrelease. SQLite's backup API writes every page of the live file, and
its journal holds every page again: 1.4 s for a 266 MiB database that a day of a bot's use
changed one page in six of. Here, in one write transaction of the live database, every page
is read through SQLite's ``sqlite_dbpage`` table (the WAL and the bot's last commit
included), compared with the same page of SOURCE (a consistent file no one writes: a
restore's staged snapshot, or a copy kept aside), and only the pages that differ are written
(and so journalled), the file grown or cut to SOURCE's length in the same transaction. As
the backup API does, the header keeps the live file's journal-mode bytes and gets a schema
cookie above the live one, so every connection of the bot reads the schema again; the
change counter is SQLite's to set at the commit. A kill at any point leaves SQLite's journal
of the transaction, which the next open rolls back: the old file, whole.

Why a process of its own: ``sqlite_dbpage`` is compiled into sqlean.py's SQLite, not into
Python's, and two SQLite libraries in one process do not see each other's POSIX locks (a
bot's connection in the same process could read a half-written page). Its starter tethers it
(`core.tether`): it dies with its starter.

Exit status: 0 written (one line of JSON on stdout: pages, written); 3 this cannot be done
here (sqlean.py missing, another page size or reserved space, auto_vacuum, a WAL file
that would shrink): nothing was written, and the
caller uses the backup API; 4 the disk is full; 1 any other SQLite error (on stderr). Nothing
of the transaction is committed unless it exits 0.
"""

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
_SQLITE_FULL = 13
_PENDING_BYTE = 0x40000000
_TRUNCATE = (3, 48)  # sqlite_dbpage cuts a file (a NULL page) from 3.48 on


def _unavailable(why: str) -> int:
    print(why, file=sys.stderr)
    return _UNAVAILABLE


def _page_size(header: bytes) -> int:
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _page_one(source: bytes, live: bytes) -> bytes:
    """SOURCE's first page with the live file's read/write versions (WAL or not: the live
    file's journal mode stays) and a schema cookie one above the live one's."""
    cookie = (int.from_bytes(live[40:44], "big") + 1) & 0xFFFFFFFF
    return (source[:18] + live[18:20] + source[20:40] + cookie.to_bytes(4, "big")
            + source[44:])


def write(source: Path, live: Path) -> int:
    try:
        import sqlean  # type: ignore[import-not-found]
    except ImportError as exc:
        return _unavailable(f"sqlean.py is not installed ({exc})")
    if sqlean.sqlite_version_info < _TRUNCATE:
        return _unavailable(f"its SQLite {sqlean.sqlite_version} cannot cut a file")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from gitrelease.core.pausepoints import pause_point

    connection = _connect(sqlean, live)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            answer = _differing(connection, source, pause_point)
        except BaseException:
            if connection.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                connection.execute("ROLLBACK")
            raise
        if answer is None:
            connection.execute("ROLLBACK")
            return _UNAVAILABLE
        connection.execute("COMMIT")
    except sqlean.Error as exc:
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


def _differing(connection: Any, source: Path, pause_point: Callable[[str], None]
               ) -> dict[str, int] | None:
    """Inside the write transaction: every differing page of SOURCE written; None (nothing
    written) when the two files' page layouts differ."""
    live_size = connection.execute("PRAGMA page_size").fetchone()[0]
    live_pages = connection.execute("PRAGMA page_count").fetchone()[0]
    live_one = connection.execute("SELECT data FROM sqlite_dbpage WHERE pgno = 1").fetchone()[0]
    with source.open("rb") as reading:
        size = _page_size(os.pread(reading.fileno(), 100, 0))
        first = os.pread(reading.fileno(), size, 0)
        total = os.fstat(reading.fileno()).st_size // size
        if size != live_size or first[20] != live_one[20]:
            print(f"page size {size} (reserved {first[20]}) where the live file has "
                  f"{live_size} ({live_one[20]})", file=sys.stderr)
            return None
        if _vacuumed(first) or _vacuumed(live_one):
            # Its commit moves pages by the b-tree layer's count of them, which pages
            # written here do not update.
            print("auto_vacuum is on", file=sys.stderr)
            return None
        if live_pages > total and live_one[18] == 2:
            # A WAL commit keeps the old length: the cut never reaches the file.
            print("a WAL database would shrink", file=sys.stderr)
            return None
        reading.seek(size)
        changed: list[int] = []
        rows = connection.execute("SELECT pgno, data FROM sqlite_dbpage WHERE pgno > 1")
        for number, data in rows:
            if number > total:
                break
            if reading.read(size) != data:
                changed.append(number)
        rows.close()
        changed += range(max(live_pages, 1) + 1, total + 1)  # SOURCE is longer: added
        locking = _PENDING_BYTE // size + 1  # SQLite never writes the page its locks are on
        changed = [number for number in changed if number != locking]
        first = _page_one(first, live_one)
        if not changed and live_pages == total and _bookkeeping(first) == _bookkeeping(live_one):
            return {"pages": total, "written": 0}

        def pages(numbers: list[int]) -> Iterator[tuple[int, bytes]]:
            for number in numbers:
                yield number, os.pread(reading.fileno(), size, (number - 1) * size)

        insert = "INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, ?)"
        for start in range(0, len(changed), _CHUNK):
            connection.executemany(insert, pages(changed[start:start + _CHUNK]))
            if not start:
                pause_point("sqlite:restore-writing")
        # Page 1 last, with the cut (if the file shrinks) in the same statement. Once the
        # schema cookie has moved on, the next statement would read the schema again
        # through SQLite's b-tree layer, whose view of these pages is stale; COMMIT does
        # not. The cut comes after every page (sqlite_dbpage makes it at the commit, and a
        # page written after it calls it off).
        if live_pages > total:
            connection.execute(f"{insert}, (?, NULL)", (1, first, total + 1))
        else:
            connection.execute(insert, (1, first))
        if not changed:
            pause_point("sqlite:restore-writing")
    return {"pages": total, "written": len(changed) + 1, "cut": int(live_pages > total)}


def _vacuumed(page: bytes) -> bool:
    """Whether page 1 says auto_vacuum (full or incremental) is on: a largest root page."""
    return page[52:56] != b"\0\0\0\0"


def _bookkeeping(page: bytes) -> bytes:
    """Page 1 without what every commit or restore moves on: the change counter, the
    schema cookie, the version-valid-for number and the SQLite version."""
    return page[:24] + page[28:40] + page[44:92] + page[100:]


if __name__ == "__main__":
    sys.exit(write(Path(sys.argv[1]), Path(sys.argv[2])))
