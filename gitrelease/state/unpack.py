"""Unpacking an archive into a staging dir, safely: nothing lands outside it, all verified.

Only regular files the manifest lists, with the sizes it records, are written; anything else
refuses the whole archive (`UnsafeArchive`). Each member is checked against its sha256 as it
is written, and with the archive's own sha256 the whole file is verified in the same pass.
A restore (`gitrelease.deploy.restore`) then moves the staged files into place.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from gitrelease.core.errors import GitReleaseError, InsufficientDiskSpace, VerificationFailed
from gitrelease.core.fsutil import make_durable
from gitrelease.core.pausepoints import pause_point
from gitrelease.state.archive import MANIFEST, open_tar, stored_members
from gitrelease.state.compression import CHUNK

__all__ = ["UnpackFailed", "UnsafeArchive", "extract_safely"]


class UnsafeArchive(GitReleaseError):
    """An archive member that could write outside the staging dir, or is not in the manifest."""

    code = "unsafe_archive"
    exit_code = 16
    default_hint = "this archive was not written by gitrelease as it is; do not restore it"


class UnpackFailed(GitReleaseError):
    """The staged copy could not be written (the disk, not the archive)."""

    code = "unpack_failed"
    exit_code = 18


def extract_safely(
    path: Path, staging: Path, manifest: dict[str, Any], *, wanted: set[str] | None = None,
    checksum: str | None = None, durable: set[str] | None = None,
    shown: Callable[[str], str] = str, private: frozenset[str] = frozenset(),
    consume: Mapping[str, Callable[[IO[bytes]], None]] | None = None,
) -> dict[str, Path]:
    """Unpack regular files listed in the manifest into `staging`; nothing lands outside it.

    Members pass tarfile's ``data`` filter (no absolute paths, ``..``, links out, devices,
    setuid bits) and must be regular files named in the manifest with the size it records;
    anything else refuses the whole archive. Each member is checked against the manifest's
    sha256 as it is written. With `checksum` (the archive's sha256 when it was written), the
    whole file is hashed in the same pass and must match: this is the verification, done
    while unpacking rather than in a pass of its own; and as the file is then known to be what
    gitrelease wrote, reading stops after the last member wanted (the rest is only hashed).
    Members named in `durable` (default: all) are on disk when this returns (one syncfs for
    them all where the system has it, else an fsync each); the others are read back through
    SQLite and need not be. `shown` names a member as the operator knows it (``.env``, not
    ``root/.env``) where a message is about the file, not about the archive's make-up.
    Members in `private` (the config files) are staged 0600 whatever the manifest says.
    A disk that fills up is `InsufficientDiskSpace`, never damage. Members in `consume` are
    not staged: each is handed as a stream to its reader (a chain's page delta, written
    straight into the database it rebuilds), and checked against its sha256 all the same.
    Returns member name -> staged path (of the staged ones).
    """
    consume = consume or {}
    expected = stored_members(manifest)  # a file of an incremental may be in its base's
    files = {f["path"]: f for f in manifest.get("files", [])}
    budget = sum(int(f["size"]) for f in expected.values())
    staged: dict[str, Path] = {}
    base = staging.resolve()
    goal = (set(expected) if wanted is None else set(wanted)) | set(consume)
    consumed: set[str] = set()
    written: list[Path] = []
    modes: dict[Path, int] = {}  # set once the files are durable (a 0o200 file reads back)
    with open_tar(path, "cannot be unpacked", ahead=True) as (_raw, source, tar):
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
            if info.name in consume:
                handle = tar.extractfile(safe)
                assert handle is not None  # noqa: S101 - a regular member always has data
                reader = _Hashing(handle)
                consume[info.name](reader)  # type: ignore[arg-type]
                while reader.read(CHUNK):
                    pass
                if reader.digest.hexdigest() != entry["sha256"]:
                    raise VerificationFailed(
                        f"{path.name}: {shown(info.name)} does not match its checksum")
                consumed.add(info.name)
                if checksum is not None and len(staged) + len(consumed) == len(goal):
                    break
                continue
            target = (base / PurePosixPath(safe.name)).resolve()
            if not target.is_relative_to(base):
                raise UnsafeArchive(f"{path.name}: member {info.name!r} leaves the staging dir")
            handle = tar.extractfile(safe)
            assert handle is not None  # noqa: S101 - a regular member always has data
            digest = _stage(handle, target, shown(info.name))
            if durable is None or info.name in durable:
                written.append(target)
            if digest != entry["sha256"]:
                raise VerificationFailed(
                    f"{path.name}: {shown(info.name)} does not match its checksum")
            modes[target] = 0o600 if info.name in private or entry["role"] != "file" else \
                stat.S_IMODE(int(files[entry["path"]]["mode"])) & 0o777
            staged[info.name] = target
            pause_point("restore:staged")
            if checksum is not None and len(staged) + len(consumed) == len(goal):
                break
        if checksum is not None:
            source.take_over()
            while source.read(CHUNK):  # the rest of the file, hashed, not unpacked
                pass
    missing = goal - set(staged) - consumed
    if missing:
        raise VerificationFailed(
            f"{path.name}: {shown(sorted(missing)[0])} is missing from the archive")
    if checksum is not None and source.digest.hexdigest() != checksum:
        raise VerificationFailed(f"{path.name}: the archive's sha256 does not match the index")
    try:
        make_durable(base, written)
        for target, mode in modes.items():
            os.chmod(target, mode)
    except OSError as exc:
        raise _disk_error(exc, f"{path.name}'s files", staging) from None
    return staged


class _Hashing:
    """A member's stream, hashed as its reader reads it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        return data


def _disk_error(exc: OSError, what: str, where: Path) -> GitReleaseError:
    """The disk's error staging `what`: a full one said as such, naming where."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientDiskSpace(
            f"disk full while unpacking {what} into {where}; nothing live was changed",
            hint="free some disk space there, then restore again")
    return UnpackFailed(f"cannot stage {what}: {exc.strerror}")


def _stage(handle: IO[bytes], target: Path, shown: str) -> str:
    """Write one member to `target`, returning its sha256; the disk's errors are not the
    archive's, so they come out as UnpackFailed (or a full disk), never as damage."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o600)
    except OSError as exc:
        raise _disk_error(exc, shown, target.parent) from None
    with os.fdopen(fd, "wb", buffering=0) as out:
        while count := handle.readinto(view):  # type: ignore[attr-defined]
            digest.update(view[:count])
            try:
                written = 0
                while written < count:
                    written += out.write(view[written:count])
            except OSError as exc:
                raise _disk_error(exc, shown, target.parent) from None
    return digest.hexdigest()
