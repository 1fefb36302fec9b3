"""One backup archive's format: a streamed tar (plain, gzip or zstd) ending in a manifest.

An archive holds the backed-up files under their member names (``root/...`` for files of the
deployment root, ``data/...`` for files of the data dir) and, last, ``manifest.json`` with
each member's size, mode and sha256. Writing is one pass: each file is hashed as it is copied
into the tar, the archive's own sha256 as its bytes reach the disk. A database's page hashes
follow it in a compressed frame of their own, whose offset in the file the manifest records
(``at``): the next backup reads them from there, not through the database before them.
Memory does not grow with the data: files are streamed in chunks, never read whole.

This module writes an archive and opens one for reading; checking one is `verification`,
unpacking one is `unpack`, the compressed streams are `compression`, and where archives are
kept (the backups dir) is `archives`.

Over the ~400-line aim: what the writer records of each member (whole, the base's, a page
delta, page hashes) and what every reader expects of it (`stored_members`) are one format,
kept in one place so that they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from gitrelease.core.errors import BackupFailed, VerificationFailed
from gitrelease.core.pausepoints import pause_point
from gitrelease.state.compression import (
    CHUNK,
    DecodeAhead,
    ParallelGzip,
    compressor,
    decompressor,
    end_frame,
)
from gitrelease.state.pages import HASH_SIZE, DeltaFacts, PageDigest

__all__ = [
    "MANIFEST",
    "ArchiveWritten",
    "Carried",
    "Member",
    "compression_of",
    "open_tar",
    "pages_member",
    "read_manifest",
    "read_member",
    "sha256_file",
    "stored_members",
    "suffix_for",
    "write_archive",
]

MANIFEST = "manifest.json"
_SUFFIXES = {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}


@dataclass(frozen=True)
class Member:
    """One file to archive: where it is read from, the name it gets, what kind it is.

    A database snapshot has its page hashes recorded beside it (`pages`: its page size), for
    the next backup to store only the pages that differ. In an incremental backup a member
    may be `carried` (the same as in the base: recorded in the manifest, not stored) or a
    `delta` (`source` is the file of the pages that differ from the base's snapshot).
    """

    source: Path
    name: str  # "root/.env", "data/app.db"
    kind: str  # "database", "config", "data" or "log"
    mode: int | None = None  # None: the source file's mode
    # More of what the manifest says of it (a database snapshot's header marks, `unchanged`).
    extra: tuple[tuple[str, str], ...] = ()
    pages: int | None = None
    carried: Carried | None = None
    delta: DeltaFacts | None = None


@dataclass(frozen=True)
class Carried:
    """A file that is what the base holds: its size, mode and sha256 as it is now."""

    size: int
    mode: int
    sha256: str


def pages_member(name: str, what: str) -> str:
    """The member holding a database's page `what` ("delta" or "hashes"): under ``pages/``,
    apart from the files, so that ``tar -x`` of an archive never puts a delta in the place
    of the database it belongs to."""
    return f"pages/{name}.{what}"


def stored_members(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every member the archive itself holds, by member name: ``size`` and ``sha256``, the
    file it belongs to (``path``) and what it is (``role``: file, delta or hashes). A file
    the manifest records as the base's is not among them: its bytes are in another archive."""
    members: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("files", []):
        stored = entry.get("stored", "here")
        if stored == "here":
            members[entry["path"]] = {"size": entry["size"], "sha256": entry["sha256"],
                                      "path": entry["path"], "role": "file"}
        elif stored == "delta" and isinstance(entry.get("delta"), dict):
            delta = entry["delta"]
            members[delta["member"]] = {"size": delta["size"], "sha256": delta["sha256"],
                                        "path": entry["path"], "role": "delta"}
        if stored != "base" and isinstance(entry.get("hashes"), dict):
            hashes = entry["hashes"]
            members[hashes["member"]] = {"size": hashes["size"], "sha256": hashes["sha256"],
                                         "path": entry["path"], "role": "hashes"}
    return members


@dataclass(frozen=True)
class ArchiveWritten:
    sha256: str
    size: int  # bytes of the archive on disk
    raw_size: int  # bytes of the files it holds
    manifest: dict[str, Any]


def suffix_for(compression: str) -> str:
    return _SUFFIXES[compression]


def compression_of(path: Path) -> str:
    for compression, suffix in _SUFFIXES.items():
        if path.name.endswith(suffix):
            return compression
    raise VerificationFailed(f"{path.name} is not a gitrelease archive (unknown suffix)")


class _HashingSink(io.RawIOBase):
    """The file an archive is written to, hashing every byte on its way to disk."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._handle.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


class _HashingSource(io.RawIOBase):
    """The archive read back: hashing every byte the decompressor pulls."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self._ahead: DecodeAhead | None = None

    def take_over(self) -> None:
        """The caller reads on itself (hashing the rest of the file): whatever decodes ahead
        of it stops first, so that every byte is still hashed once, in order."""
        if self._ahead is not None:
            self._ahead.stop()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._handle.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0


def _regular_info(name: str, status: os.stat_result, mode: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = status.st_size
    info.mtime = status.st_mtime
    info.mode = mode if mode is not None else stat.S_IMODE(status.st_mode) & 0o777
    info.type = tarfile.REGTYPE
    return info  # uid, gid 0 and no user or group names: TarInfo's defaults


class _TarWriter:
    """A tar stream written straight into `out` in large pieces (tarfile's stream mode would
    cut it into 10 KiB writes, each a call into the compressor)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._offset = 0
        self._buffer = bytearray(CHUNK)

    def _write(self, data: Any) -> None:
        self._out.write(data)
        self._offset += len(data)

    def add(self, info: tarfile.TarInfo, source: IO[bytes], digest: Any,
            progress: Callable[[int], None]) -> None:
        """Header, then exactly `info.size` bytes of `source` (hashed), then the padding."""
        self._write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
        view = memoryview(self._buffer)
        left = info.size
        while left:
            count = source.readinto(view[:min(left, CHUNK)])  # type: ignore[attr-defined]
            if not count:
                raise _Shrank
            digest.update(view[:count])
            self._write(view[:count])
            left -= count
            progress(count)
        self._pad()

    def add_bytes(self, info: tarfile.TarInfo, data: bytes) -> None:
        self._write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
        self._write(data)
        self._pad()

    def _pad(self) -> None:
        remainder = self._offset % tarfile.BLOCKSIZE
        if remainder:
            self._write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder))

    def close(self) -> None:
        """The end-of-archive marker, padded to a whole record as tarfile and GNU tar do."""
        self._write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        remainder = self._offset % tarfile.RECORDSIZE
        if remainder:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - remainder))


class _Shrank(Exception):
    """The file ended before the size it had when its header was written."""


def write_archive(
    path: Path,
    members: Iterable[Member],
    *,
    compression: str,
    level: int,
    manifest: dict[str, Any] | Callable[[], dict[str, Any]],
    progress: Callable[[int], None] = lambda n: None,
) -> ArchiveWritten:
    """Write the archive to `path` (a temporary name the caller renames) and fsync it.

    `manifest` may be a function: it is called only when the last member is written, so
    that what it needs (``pip freeze``) can be gathered while the files are compressed.
    """
    files: list[dict[str, Any]] = []
    skipped: list[str] = []
    raw_size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask: archives hold secrets
    with os.fdopen(fd, "wb") as handle:
        sink = _HashingSink(handle)
        buffered = io.BufferedWriter(sink, buffer_size=CHUNK)
        compressed = compressor(buffered, compression, level)  # type: ignore[arg-type]
        try:
            tar = _TarWriter(compressed)
            for member in members:
                if member.carried is not None:
                    carried = member.carried
                    files.append({"path": member.name, "kind": member.kind,
                                  "size": carried.size, "mode": carried.mode,
                                  "sha256": carried.sha256, "stored": "base",
                                  **dict(member.extra)})
                    raw_size += carried.size
                    continue
                try:
                    source = member.source.open("rb", buffering=0)
                except FileNotFoundError:
                    skipped.append(member.name)  # deleted since it was listed: nothing to keep
                    continue
                except OSError as exc:
                    raise BackupFailed(f"cannot read {member.source}: {exc.strerror}") from None
                with source:
                    status = os.fstat(source.fileno())
                    if not stat.S_ISREG(status.st_mode):
                        raise VerificationFailed(f"{member.source} is not a regular file")
                    stored_as = (pages_member(member.name, "delta") if member.delta
                                 else member.name)
                    info = _regular_info(stored_as, status, member.mode)
                    digest: Any = (PageDigest(member.pages) if member.pages and not member.delta
                                   else hashlib.sha256())
                    try:
                        tar.add(info, source, digest, progress)
                    except _Shrank:
                        raise BackupFailed(f"{member.source} shrank while it was archived; "
                                           "run the backup again") from None
                entry: dict[str, Any] = {"path": member.name, "kind": member.kind,
                                         "size": info.size, "mode": info.mode,
                                         "sha256": digest.hexdigest()}
                hashes = digest.hashes() if isinstance(digest, PageDigest) else None
                if member.delta is not None:
                    delta = member.delta
                    entry.update(size=delta.size, sha256=delta.sha256, stored="delta",
                                 delta={"member": stored_as, "size": info.size,
                                        "sha256": digest.hexdigest(), "pages": delta.changed})
                    hashes = delta.hashes
                if hashes is not None and member.pages:
                    # In a frame of its own, where it starts recorded: the next backup reads
                    # the hashes from there, not through the database before them.
                    end_frame(compressed, compression)
                    buffered.flush()
                    entry.update(page_size=member.pages, page_count=len(hashes) // HASH_SIZE,
                                 hashes={**_add_hashes(tar, member.name, hashes, info.mtime),
                                         "at": sink.size})
                files.append({**entry, **dict(member.extra)})
                raw_size += int(entry["size"])
                pause_point("archive:member-written")
            document = manifest() if callable(manifest) else manifest
            document = {**document, "files": files, "skipped": skipped}
            encoded = json.dumps(document, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(encoded)
            info.mode = 0o600
            info.mtime = int(document.get("created_at_epoch", 0))
            tar.add_bytes(info, encoded)
            tar.close()
            if compressed is not buffered:
                compressed.close()
        finally:
            if isinstance(compressed, ParallelGzip):
                compressed.abort()  # no worker outlives a failed write
        buffered.flush()
        handle.flush()
        os.fsync(handle.fileno())
    return ArchiveWritten(sink.digest.hexdigest(), sink.size, raw_size, document)


def _add_hashes(tar: _TarWriter, name: str, hashes: bytes, mtime: float) -> dict[str, Any]:
    """The page hashes of database `name`, as the member after it; their manifest record."""
    info = tarfile.TarInfo(pages_member(name, "hashes"))
    info.size = len(hashes)
    info.mode = 0o600
    info.mtime = int(mtime)
    tar.add_bytes(info, hashes)
    return {"member": info.name, "size": len(hashes),
            "sha256": hashlib.sha256(hashes).hexdigest()}


@contextmanager
def open_tar(
    path: Path, trouble: str, *, ahead: bool = False,
) -> Iterator[tuple[BinaryIO, _HashingSource, tarfile.TarFile]]:
    """The archive as a tar stream; any way it can be damaged becomes VerificationFailed.

    Yields the raw file (to read on past the last member: trailing bytes count toward the
    archive's sha256), the hashing reader under the decompressor (whose `digest` is that
    sha256 once the file is read to its end; `take_over()` before reading it directly) and
    the tar stream itself. `ahead`: decode in a thread of its own (`DecodeAhead`), for a
    reader that has work of its own per byte (hashing and writing what it unpacks).
    """
    damage = _damage()
    if not path.is_file():
        raise VerificationFailed(f"the archive {path.name} is missing")
    raw = path.open("rb")
    tar: tarfile.TarFile | None = None
    source = _HashingSource(raw)  # type: ignore[arg-type]
    try:
        buffered = io.BufferedReader(source, buffer_size=CHUNK)
        stream = decompressor(buffered, compression_of(path))  # type: ignore[arg-type]
        if ahead and compression_of(path) != "none":
            source._ahead = DecodeAhead(stream)
            stream = io.BufferedReader(source._ahead, buffer_size=CHUNK)  # type: ignore[assignment]
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed below
        yield raw, source, tar
    except damage as exc:
        raise VerificationFailed(f"{path.name} {trouble}: {exc or type(exc).__name__}") from None
    finally:
        source.take_over()  # no decoder thread outlives the archive's file
        with suppress(Exception):  # closing a damaged stream may complain again
            if tar is not None:
                tar.close()
        raw.close()


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest inside an archive (read by streaming through it to the last member)."""
    with open_tar(path, "cannot be read") as (_raw, _source, tar):
        for info in tar:
            if info.name == MANIFEST and info.isreg():
                handle = tar.extractfile(info)
                if handle is not None:
                    return json.loads(handle.read(16 * 1024 * 1024))
    raise VerificationFailed(f"{path.name} has no {MANIFEST}")


def read_member(path: Path, name: str, expected: dict[str, Any]) -> bytes:
    """The bytes of member `name` (a small one: page hashes), checked against the size and
    sha256 `expected` records. Where `expected` records the offset of the frame it starts
    (``at``), it is decoded from there; else (an older archive, or that fails) the archive
    is read only as far as that member."""
    at = expected.get("at")
    if isinstance(at, int) and not isinstance(at, bool) and at >= 0:
        found = _member_at(path, at, name, expected)
        if found is not None:
            return found
    with open_tar(path, "cannot be read") as (_raw, _source, tar):
        for info in tar:
            if info.name == name and info.isreg() and info.size == expected["size"]:
                data = _checked(tar, info, expected)
                if data is None:
                    break
                return data
    raise VerificationFailed(f"{path.name}: {name} is missing or does not match its checksum")


def _checked(tar: tarfile.TarFile, info: tarfile.TarInfo, expected: dict[str, Any]
             ) -> bytes | None:
    """The bytes of member `info`, if it is a file of the size and sha256 `expected`
    records; else None."""
    if not info.isreg() or info.size != expected["size"]:
        return None
    handle = tar.extractfile(info)
    data = handle.read() if handle is not None else b""
    return data if hashlib.sha256(data).hexdigest() == expected["sha256"] else None


def _damage() -> tuple[type[BaseException], ...]:
    """Every way a damaged archive shows when it is read."""
    import zstandard

    return (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError)


def _member_at(path: Path, at: int, name: str, expected: dict[str, Any]) -> bytes | None:
    """Member `name`, decoded from the frame at offset `at` of the file, if it is there and
    matches `expected`; None on anything else (the caller reads from the start)."""
    try:
        with path.open("rb") as raw:
            raw.seek(at)
            stream = decompressor(io.BufferedReader(raw, buffer_size=CHUNK),  # type: ignore[arg-type]
                                  compression_of(path))
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                info = tar.next()
                return None if info is None or info.name != name else \
                    _checked(tar, info, expected)
    except (*_damage(), VerificationFailed):
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()
