"""Backup archives: streamed tar (plain, gzip or zstd) with a manifest, verified, unpacked safely.

An archive holds the backed-up files under their member names (``root/...`` for files of the
deployment root, ``data/...`` for files of the data dir) and, last, ``manifest.json`` with
each member's size, mode and sha256. Writing is one pass: each file is hashed as it is copied
into the tar, the archive's own sha256 as its bytes reach the disk. Memory does not grow with
the data: files are streamed in chunks, never read whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from gitrelease.core.errors import BackupFailed, GitReleaseError, VerificationFailed
from gitrelease.core.pausepoints import pause_point

__all__ = [
    "MANIFEST",
    "ArchiveWritten",
    "Member",
    "UnpackFailed",
    "UnsafeArchive",
    "extract_safely",
    "read_manifest",
    "sha256_file",
    "suffix_for",
    "verify_archive",
    "write_archive",
]

MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
_GZIP_BLOCK = CHUNK  # compressed apart, a 1 MiB block loses ~0.1% against one stream
_SUFFIXES = {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}


class UnsafeArchive(GitReleaseError):
    """An archive member that could write outside the staging dir, or is not in the manifest."""

    code = "unsafe_archive"
    exit_code = 16
    default_hint = "this archive was not written by gitrelease as it is; do not restore it"


@dataclass(frozen=True)
class Member:
    """One file to archive: where it is read from, the name it gets, what kind it is."""

    source: Path
    name: str  # "root/.env", "data/app.db"
    kind: str  # "database", "config", "data" or "log"
    mode: int | None = None  # None: the source file's mode


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

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._handle.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0


class _ParallelGzip(io.RawIOBase):
    """gzip the way pigz writes it: the stream cut into blocks, each compressed on a core of its
    own into a gzip member; members one after another are one gzip file (RFC 1952, 2.2), which
    gzip, tar -z and Python read as they read any other. zlib lets go of the GIL while it
    works, so the blocks really are compressed side by side, and the event loop keeps its turn.
    Memory is bounded: at most `workers + 1` blocks are in flight."""

    def __init__(self, sink: IO[bytes], level: int, workers: int | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._sink = sink
        self._level = level
        self._workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._members = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= _GZIP_BLOCK:
            self._submit(bytes(self._buffer[:_GZIP_BLOCK]))
            del self._buffer[:_GZIP_BLOCK]
        return len(memoryview(data))

    def _submit(self, block: bytes) -> None:
        self._pending.append(self._pool.submit(gzip.compress, block, self._level, mtime=0))
        self._members += 1
        while len(self._pending) > self._workers:
            self._sink.write(self._pending.popleft().result())

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._buffer or not self._members:  # an empty stream is still one member
                self._submit(bytes(self._buffer))
                self._buffer.clear()
            while self._pending:
                self._sink.write(self._pending.popleft().result())
        finally:
            self.abort()
            super().close()

    def abort(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


def _compressor(sink: IO[bytes], compression: str, level: int) -> IO[bytes]:
    if compression == "gzip":
        return _ParallelGzip(sink, level)  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        # threads=-1: one worker per core, as `zstd -T0` does.
        return zstandard.ZstdCompressor(level=level, threads=-1).stream_writer(
            sink, closefd=False, write_size=CHUNK)
    return sink


def _decompressor(source: IO[bytes], compression: str) -> IO[bytes]:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            source, read_across_frames=True, closefd=False, read_size=CHUNK)
    return source


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
        compressed = _compressor(buffered, compression, level)  # type: ignore[arg-type]
        try:
            tar = _TarWriter(compressed)
            for member in members:
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
                    info = _regular_info(member.name, status, member.mode)
                    digest = hashlib.sha256()
                    try:
                        tar.add(info, source, digest, progress)
                    except _Shrank:
                        raise BackupFailed(f"{member.source} shrank while it was archived; "
                                           "run the backup again") from None
                files.append({"path": member.name, "kind": member.kind, "size": info.size,
                              "mode": info.mode, "sha256": digest.hexdigest()})
                raw_size += info.size
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
            if isinstance(compressed, _ParallelGzip):
                compressed.abort()  # no worker outlives a failed write
        buffered.flush()
        handle.flush()
        os.fsync(handle.fileno())
    return ArchiveWritten(sink.digest.hexdigest(), sink.size, raw_size, document)


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


@contextmanager
def _reading(
    path: Path, trouble: str
) -> Iterator[tuple[BinaryIO, _HashingSource, tarfile.TarFile]]:
    """The archive as a tar stream; any way it can be damaged becomes VerificationFailed."""
    import zstandard

    damage = (tarfile.TarError, OSError, EOFError, ValueError, zlib.error,
              zstandard.ZstdError)
    if not path.is_file():
        raise VerificationFailed(f"the archive {path.name} is missing")
    raw = path.open("rb")
    tar: tarfile.TarFile | None = None
    try:
        source = _HashingSource(raw)  # type: ignore[arg-type]
        buffered = io.BufferedReader(source, buffer_size=CHUNK)
        stream = _decompressor(buffered, compression_of(path))  # type: ignore[arg-type]
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed below
        yield raw, source, tar
    except damage as exc:
        raise VerificationFailed(f"{path.name} {trouble}: {exc or type(exc).__name__}") from None
    finally:
        with suppress(Exception):  # closing a damaged stream may complain again
            if tar is not None:
                tar.close()
        raw.close()


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest inside an archive (read by streaming through it to the last member)."""
    with _reading(path, "cannot be read") as (_raw, _source, tar):
        for info in tar:
            if info.name == MANIFEST and info.isreg():
                handle = tar.extractfile(info)
                if handle is not None:
                    return json.loads(handle.read(16 * 1024 * 1024))
    raise VerificationFailed(f"{path.name} has no {MANIFEST}")


def verify_archive(
    path: Path, checksum: str | None, manifest: dict[str, Any], *, deep: bool = False
) -> None:
    """Raise VerificationFailed naming the first problem: archive hash, a member, or the list.

    With the archive's sha256 from when it was written, one read of the file settles it: the
    same bytes are the same members, each hashed against the manifest as it was written. Only
    when that sum is missing, when the file differs (to name the damaged member), or `deep`,
    is every member decompressed and checked against the manifest.
    """
    if checksum is not None and not deep and checksum_matches(path, checksum):
        return
    _verify_members(path, checksum, manifest)


def checksum_matches(path: Path, checksum: str) -> bool:
    """Whether the archive's sha256 is `checksum`: the quick check, one read of the file.
    A missing or unreadable archive is a VerificationFailed, not a mismatch."""
    if not path.is_file():
        raise VerificationFailed(f"the archive {path.name} is missing")
    try:
        return sha256_file(path) == checksum
    except OSError as exc:
        raise VerificationFailed(f"{path.name} cannot be read: {exc.strerror}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def _verify_members(path: Path, checksum: str | None, manifest: dict[str, Any]) -> None:
    expected = {f["path"]: f for f in manifest.get("files", [])}
    seen: set[str] = set()
    with _reading(path, "is damaged") as (raw, source, tar):
        for info in tar:
            if info.name == MANIFEST:
                continue
            entry = expected.get(info.name)
            if entry is None or not info.isreg():
                raise VerificationFailed(f"{path.name}: unexpected member {info.name!r}")
            digest = hashlib.sha256()
            handle = tar.extractfile(info)
            assert handle is not None  # noqa: S101 - a regular member always has data
            for chunk in _chunks(handle):
                digest.update(chunk)
            if info.size != entry["size"] or digest.hexdigest() != entry["sha256"]:
                raise VerificationFailed(f"{path.name}: {info.name} does not match its checksum")
            seen.add(info.name)
        while raw.read(CHUNK):  # trailing bytes count toward the archive's checksum too
            pass
    missing = sorted(set(expected) - seen)
    if missing:
        raise VerificationFailed(f"{path.name}: {missing[0]} is missing from the archive")
    if checksum is not None and source.digest.hexdigest() != checksum:
        raise VerificationFailed(f"{path.name}: the archive's sha256 does not match the index")


class UnpackFailed(GitReleaseError):
    """The staged copy could not be written (the disk, not the archive)."""

    code = "unpack_failed"
    exit_code = 18


def extract_safely(
    path: Path, staging: Path, manifest: dict[str, Any], *, wanted: set[str] | None = None,
    checksum: str | None = None, durable: set[str] | None = None,
) -> dict[str, Path]:
    """Unpack regular files listed in the manifest into `staging`; nothing lands outside it.

    Members pass tarfile's ``data`` filter (no absolute paths, ``..``, links out, devices,
    setuid bits) and must be regular files named in the manifest with the size it records;
    anything else refuses the whole archive. Each member is checked against the manifest's
    sha256 as it is written. With `checksum` (the archive's sha256 when it was written), the
    whole file is hashed in the same pass and must match: this is the verification, done
    while unpacking rather than in a pass of its own; and as the file is then known to be what
    gitrelease wrote, reading stops after the last member wanted (the rest is only hashed).
    Members named in `durable` (default: all) are fsynced; the others are read back through
    SQLite and need not be. Returns member name -> staged path.
    """
    expected = {f["path"]: f for f in manifest.get("files", [])}
    budget = sum(int(f["size"]) for f in expected.values())
    staged: dict[str, Path] = {}
    base = staging.resolve()
    goal = set(expected) if wanted is None else wanted
    with _reading(path, "cannot be unpacked") as (_raw, source, tar):
        for count, info in enumerate(tar, start=1):
            if count > len(expected) + 1:
                raise UnsafeArchive(f"{path.name} holds more members than its manifest lists")
            if info.name == MANIFEST:
                continue
            try:
                safe = tarfile.data_filter(info, str(base))
            except tarfile.FilterError as exc:
                raise UnsafeArchive(f"{path.name}: refused member {info.name!r}: {exc}") from None
            if safe.name != info.name or info.mode & 0o7000:
                # The filter had to rewrite it (a leading "/", special bits): gitrelease
                # never writes such members, so the archive is not what it claims to be.
                raise UnsafeArchive(f"{path.name}: refused member {info.name!r}")
            entry = expected.get(info.name)
            if entry is None or not safe.isreg() or safe.size != entry["size"]:
                raise UnsafeArchive(
                    f"{path.name}: member {info.name!r} is not a file listed in the manifest")
            budget -= safe.size
            if budget < 0:
                raise UnsafeArchive(f"{path.name} holds more data than its manifest lists")
            if info.name not in goal:
                continue
            target = (base / PurePosixPath(safe.name)).resolve()
            if not target.is_relative_to(base):
                raise UnsafeArchive(f"{path.name}: member {info.name!r} leaves the staging dir")
            handle = tar.extractfile(safe)
            assert handle is not None  # noqa: S101 - a regular member always has data
            digest = _stage(handle, target, durable is None or info.name in durable)
            if digest != entry["sha256"]:
                raise VerificationFailed(f"{path.name}: {info.name} does not match its checksum")
            os.chmod(target, stat.S_IMODE(int(entry["mode"])) & 0o777)
            staged[info.name] = target
            if checksum is not None and len(staged) == len(goal):
                break
        if checksum is not None:
            while source.read(CHUNK):  # the rest of the file, hashed, not unpacked
                pass
    missing = goal - set(staged)
    if missing:
        raise VerificationFailed(f"{path.name}: {sorted(missing)[0]} is missing from the archive")
    if checksum is not None and source.digest.hexdigest() != checksum:
        raise VerificationFailed(f"{path.name}: the archive's sha256 does not match the index")
    return staged


def _stage(handle: IO[bytes], target: Path, durable: bool) -> str:
    """Write one member to `target`, returning its sha256; the disk's errors are not the
    archive's, so they come out as UnpackFailed, never as damage."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o600)
    except OSError as exc:
        raise UnpackFailed(f"cannot stage {target.name}: {exc.strerror}") from None
    with os.fdopen(fd, "wb", buffering=0) as out:
        while count := handle.readinto(view):  # type: ignore[attr-defined]
            digest.update(view[:count])
            try:
                written = 0
                while written < count:
                    written += out.write(view[written:count])
            except OSError as exc:
                raise UnpackFailed(f"cannot stage {target.name}: {exc.strerror}") from None
        if durable:
            try:
                os.fsync(out.fileno())
            except OSError as exc:
                raise UnpackFailed(f"cannot stage {target.name}: {exc.strerror}") from None
    return digest.hexdigest()
