"""The pages a restore's write replaces in a live database, kept aside as they were.

A restore writes only the pages of a live database that differ from the backup's
(`page_writer`); what it keeps aside, to put the database back if the restore is undone, is
those pages as they were, not a copy of the whole file. The writer reads them anyway (it
compares each live page with the staged one), so it streams each one that will be replaced
into this file while it compares, and makes the file durable (temp name, fsync, rename)
before it writes the first page: a kill at any point after that finds it whole.

The file: a 16-byte mark, the page size and the live file's page count before the write (4
bytes each, big-endian), then records of a page number (4 bytes) and the page as it was:
page 1 first, then every page the write replaces or cuts off. With the staged file the write
came from, it is the whole database as it was (`rebuild`): each page the write left alone is
the staged one. Standard library only: the writer, run with ``python -I``, reads it too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["PUT_BACK", "SCHEMA_CHANGES", "KeptPages", "PageKeeper", "is_kept_pages", "marked",
           "put_back_mark", "rebuild"]

MARK = b"gitrelease-undo\n"
_HEADER = len(MARK) + 8
#: A put-back sets the live file's schema cookie this far above the kept one (the restore's
#: write set it one above): far from where the bot's own schema changes (one each) take it,
#: so that a put-back a kill kept from saying so is known as done, whatever was written since.
PUT_BACK = 0x40000000
SCHEMA_CHANGES = 1 << 20  # how many of the bot's own a mark allows for


def put_back_mark(first: bytes) -> int:
    """The schema cookie a put-back gives the live file, from the first page (or header)
    the way back was kept with."""
    return (int.from_bytes(first[40:44], "big") + PUT_BACK) & 0xFFFFFFFF


def marked(cookie: int, mark: int) -> bool:
    """Whether a live schema cookie says a put-back to `mark` was done (the bot's own
    schema changes since, if any, on top)."""
    return (cookie - mark) & 0xFFFFFFFF < SCHEMA_CHANGES


def is_kept_pages(path: Path) -> bool:
    """Whether `path` is such a file (else it is a whole copy of the database, as an older
    gitrelease kept aside, or as the backup API's way still does)."""
    with path.open("rb") as handle:
        return handle.read(len(MARK)) == MARK


class PageKeeper:
    """Writes the file at `path` as the pages come: `keep` each one, then `seal` (durable,
    renamed into place) before any of them is replaced; `discard` if the write is off."""

    def __init__(self, path: Path, page_size: int, pages: int) -> None:
        self.path = path
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
        self._temporary = Path(temporary)
        self._out: BinaryIO = os.fdopen(fd, "wb")
        self._out.write(MARK + page_size.to_bytes(4, "big") + pages.to_bytes(4, "big"))
        self.count = 0

    def keep(self, number: int, page: bytes) -> None:
        self._out.write(number.to_bytes(4, "big"))
        self._out.write(page)
        self.count += 1

    def seal(self) -> None:
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        os.replace(self._temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def discard(self) -> None:
        try:
            self._out.close()
        except OSError:  # what is left to flush fails as the write did: the file goes anyway
            pass
        finally:
            self._temporary.unlink(missing_ok=True)


class KeptPages:
    """The file read back: `size`, `total` (the page count before the write), `first`
    (page 1 as it was), and `page(number)` for each number `in` it."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("rb")
        header = self._handle.read(_HEADER)
        if len(header) < _HEADER or header[:len(MARK)] != MARK:
            self._handle.close()
            raise ValueError(f"{path} is not a file of pages kept aside")
        self.size = int.from_bytes(header[len(MARK):len(MARK) + 4], "big")
        self.total = int.from_bytes(header[len(MARK) + 4:], "big")
        record = 4 + self.size
        length = os.fstat(self._handle.fileno()).st_size - _HEADER
        if self.size < 512 or length % record:
            self._handle.close()
            raise ValueError(f"{path} is cut short")
        self._offsets: dict[int, int] = {}
        for at in range(_HEADER, _HEADER + length, record):
            number = int.from_bytes(os.pread(self._handle.fileno(), 4, at), "big")
            self._offsets[number] = at + 4
        if 1 not in self._offsets:
            self._handle.close()
            raise ValueError(f"{path} holds no first page")
        self.first = self.page(1)

    @property
    def put_back_cookie(self) -> int:
        """The schema cookie a put-back of these pages gives the live file."""
        return put_back_mark(self.first)

    def put_back_in(self, live_first: bytes) -> bool:
        """Whether the live file (its page 1) was put back from these pages already."""
        return marked(int.from_bytes(live_first[40:44], "big"), self.put_back_cookie)

    def __contains__(self, number: int) -> bool:
        return number in self._offsets

    def numbers(self) -> list[int]:
        return sorted(self._offsets)

    def page(self, number: int) -> bytes:
        return os.pread(self._handle.fileno(), self.size, self._offsets[number])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> KeptPages:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def rebuild(kept: Path, staged: Path, target: Path) -> None:
    """The whole database as it was before the write, into the new file `target`: the
    staged file the write came from, with the pages kept aside put back, at its old length."""
    with KeptPages(kept) as pages:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, staged.open("rb") as source:
            shutil.copyfileobj(source, out, 1024 * 1024)
            out.flush()
            out.truncate(pages.total * pages.size)
            for number in pages.numbers():
                if number <= pages.total:
                    page = pages.page(number)
                    if number == 1:  # a rollback-journal file: no -wal or -shm beside it
                        page = page[:18] + b"\x01\x01" + page[20:]
                    os.pwrite(out.fileno(), page, (number - 1) * pages.size)
            out.flush()
            os.fsync(out.fileno())
