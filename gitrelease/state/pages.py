"""A SQLite snapshot as pages: their hashes, the pages that differ from a base, and rebuilding.

An incremental backup stores a database as the pages whose hash differs from its base's
snapshot (`examine`), and every backup of a database records the hash of each of its pages
(16 bytes of its sha256, in page order) so that the next one can compare without reading the
base's pages. A restore rebuilds the snapshot from the base's pages and each later delta, in
order (`Assembly`), then checks the whole file against the sha256 the manifest recorded for it:
a page hash that collided, a delta applied out of order or a damaged base all end there.

A delta file is a run of records, each a page number (4 bytes, big-endian, from 0) and that
page's bytes: readable with nothing but this description.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitrelease.core.errors import VerificationFailed
from gitrelease.state.compression import CHUNK

__all__ = ["HASH_SIZE", "Assembly", "DeltaFacts", "PageDigest", "examine", "page_size_of"]

HASH_SIZE = 16  # bytes of each page's sha256 kept: a collision still fails the whole sha256
_NUMBER = struct.Struct(">I")
_MAX_PAGES = 2**32 - 2  # SQLite's own limit on a database's pages


def page_size_of(header: bytes) -> int | None:
    """The page size a SQLite header records (None: not a SQLite header)."""
    if len(header) < 18 or not header.startswith(b"SQLite format 3\0"):
        return None
    size = int.from_bytes(header[16:18], "big")
    size = 65536 if size == 1 else size
    return size if size >= 512 and size & (size - 1) == 0 else None


class PageDigest:
    """A sha256 of a whole file that also keeps the hash of each `page_size` page of it, for
    bytes given in any pieces (the archive writer's chunks)."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.whole = hashlib.sha256()
        self._hashes = bytearray()
        self._partial = bytearray()

    def update(self, data: bytes | memoryview) -> None:
        self.whole.update(data)
        view = memoryview(data)
        size = self.page_size
        if self._partial:
            take = min(size - len(self._partial), len(view))
            self._partial += view[:take]
            view = view[take:]
            if len(self._partial) == size:
                self._hashes += hashlib.sha256(self._partial).digest()[:HASH_SIZE]
                self._partial.clear()
        whole = len(view) - len(view) % size
        for at in range(0, whole, size):
            self._hashes += hashlib.sha256(view[at:at + size]).digest()[:HASH_SIZE]
        self._partial += view[whole:]

    def hexdigest(self) -> str:
        return self.whole.hexdigest()

    def hashes(self) -> bytes:
        """The page hashes; a file that is not whole pages has its tail hashed as a page."""
        tail = hashlib.sha256(self._partial).digest()[:HASH_SIZE] if self._partial else b""
        return bytes(self._hashes) + tail


@dataclass(frozen=True)
class DeltaFacts:
    """What `examine` found of a snapshot against its base."""

    sha256: str  # of the whole snapshot
    size: int
    page_size: int
    page_count: int
    hashes: bytes  # every page's, for the next backup
    changed: int  # pages written to the delta


def examine(snapshot: Path, base_hashes: bytes, page_size: int, delta: Path) -> DeltaFacts:
    """Read `snapshot` once: hash it whole and page by page, and write to `delta` each page
    whose hash is not the base's at the same number (pages past the base's end included).
    The caller has checked that the snapshot's page size is the base's `page_size`."""
    whole = hashlib.sha256()
    hashes = bytearray()
    changed = 0
    fd = os.open(delta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    buffer = bytearray(max(page_size, CHUNK - CHUNK % page_size))
    view = memoryview(buffer)
    with os.fdopen(fd, "wb") as out, snapshot.open("rb", buffering=0) as source:
        number = 0
        while count := source.readinto(buffer):
            if count % page_size:  # the end of a file that is not whole pages
                raise VerificationFailed(f"{snapshot.name} is not whole {page_size}-byte pages")
            whole.update(view[:count])
            for at in range(0, count, page_size):
                page = view[at:at + page_size]
                own = hashlib.sha256(page).digest()[:HASH_SIZE]
                hashes += own
                if own != base_hashes[number * HASH_SIZE:(number + 1) * HASH_SIZE]:
                    out.write(_NUMBER.pack(number))  # past the base's end too: b"" differs
                    out.write(page)
                    changed += 1
                number += 1
        out.flush()
        os.fsync(out.fileno())
    size = number * page_size
    return DeltaFacts(whole.hexdigest(), size, page_size, number, bytes(hashes), changed)


class Assembly:
    """A database snapshot put together from its chain, the newest backup first: each delta
    writes the pages no newer one had, and last the whole snapshot the chain began with fills
    in the rest. Each page is written once, whatever the chain's length: a chain whose days
    rewrite the same pages costs one delta's writes, not one per day.

    Each part is read from a stream (`delta`, `whole`), so nothing of a delta is staged on
    its own. A record that is not whole, or names a page past its own snapshot's end, is
    damage: VerificationFailed, naming `shown`.
    """

    def __init__(self, target: Path, page_size: int, page_count: int, shown: str) -> None:
        if not (512 <= page_size <= 65536 and page_size & (page_size - 1) == 0) or \
                not 0 <= page_count <= _MAX_PAGES:
            raise VerificationFailed(f"the pages of {shown} are recorded wrongly (page size "
                                     f"{page_size}, {page_count} pages)")
        self.path = target
        self.page_size = page_size
        self.page_count = page_count
        self.shown = shown
        self._written = bytearray(page_count)  # 1: the page is the newest snapshot's already
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._out = os.fdopen(fd, "r+b")

    def delta(self, count: int) -> Callable[[IO[bytes]], None]:
        """A reader of one delta file, of a snapshot of `count` pages: newer ones first."""
        def read(source: IO[bytes]) -> None:
            record = _NUMBER.size + self.page_size
            size = max(record, CHUNK - CHUNK % record)
            while chunk := _read_full(source, size):
                if len(chunk) % record:
                    raise VerificationFailed(f"the page delta of {self.shown} is cut off")
                view = memoryview(chunk)
                for at in range(0, len(view), record):
                    (number,) = _NUMBER.unpack_from(view, at)
                    if number >= count:
                        raise VerificationFailed(
                            f"the page delta of {self.shown} names page {number} of {count}")
                    self._put(number, view[at + _NUMBER.size:at + record])
        return read

    def whole(self, source: IO[bytes]) -> None:
        """The snapshot the chain began with, read last: every page not written yet."""
        page = self.page_size
        size = max(page, CHUNK - CHUNK % page)
        first = 0  # the number of the chunk's first page
        while chunk := _read_full(source, size):
            view = memoryview(chunk)
            count = min(-(-len(view) // page), max(0, self.page_count - first))
            # Each run of pages not written yet goes in one write.
            written = self._written
            start = written.find(0, first, first + count)
            while start != -1:
                end = written.find(1, start, first + count)
                end = first + count if end == -1 else end
                written[start:end] = b"\1" * (end - start)
                self._out.seek(start * page)
                self._out.write(view[(start - first) * page:(end - first) * page])
                start = written.find(0, end, first + count)
            first += len(view) // page

    def _put(self, number: int, page: memoryview) -> None:
        if number >= self.page_count or self._written[number]:
            return  # past the newest's end, or a newer part had it
        self._written[number] = 1
        self._out.seek(number * self.page_size)
        self._out.write(page)

    def close(self) -> None:
        """Cut to the newest snapshot's length; the file stays for the restore to read."""
        if self._out.closed:
            return
        with self._out:
            self._out.truncate(self.page_count * self.page_size)


def _read_full(source: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes, fewer only at the end (a stream may return short reads)."""
    parts = []
    left = size
    while left and (data := source.read(left)):
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
