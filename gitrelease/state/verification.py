"""Whether an archive is what was written: its sha256, else every member against the manifest.

The quick check is one read of the file against the sha256 recorded when it was written; the
deep check decompresses every member and compares it with the manifest, naming the first
damaged one. Unpacking verifies as it goes (`unpack`); this is the check on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gitrelease.core.errors import VerificationFailed
from gitrelease.state.archive import MANIFEST, open_tar, sha256_file, stored_members
from gitrelease.state.compression import CHUNK

__all__ = ["checksum_matches", "verify_archive"]


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


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _verify_members(path: Path, checksum: str | None, manifest: dict[str, Any]) -> None:
    expected = stored_members(manifest)  # not the files an incremental has in its base
    seen: set[str] = set()
    with open_tar(path, "is damaged") as (raw, source, tar):
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
