"""Client-side encryption of archives before they go offsite, streamed in chunks of AES-GCM.

The storage provider sees only ciphertext and opaque object names: an archive is encrypted
with the deployment's own key (`offsite_key_file`) before upload and decrypted after download,
so a leaked bucket holds no bot tokens or databases. An archive may be several GiB, so both
directions stream file to file, one chunk at a time; memory stays at a few MiB.

The format (version 1), after age's STREAM and Tink's streaming AEAD::

    header  = b"GRENC1\\n"        7 bytes   magic
              version           1 byte    1
              key id            8 bytes   `key_id(key)` as bytes: which key, without the key
              salt             16 bytes   random per file
              nonce prefix      8 bytes   random per file
    chunk i = length            4 bytes   big-endian length of what follows (16..1 MiB + 16)
              ciphertext+tag              AES-256-GCM of up to 1 MiB of plaintext

Each file is sealed under its own key, HKDF-SHA256(key, salt), so nonces never repeat across
files however many are written. Chunk i's nonce is the prefix followed by i (4 bytes
big-endian); its associated data is the whole header, i, and a flag byte that is 1 on the
last chunk only. So a flipped bit, chunks reordered or swapped in from another file, chunks
dropped from the end, or bytes added after it all fail authentication. An empty archive is
one empty, final chunk. Decryption writes to a temporary name and renames only a file whose
every chunk authenticated: unauthenticated plaintext never appears under the target's name.

Nothing here puts key material in a message: keys are named by `key_id` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import atomic_stream, fsync_dir

__all__ = [
    "KEY_BYTES",
    "DecryptionFailed",
    "OffsiteKeyError",
    "decrypt_file",
    "encrypt_file",
    "is_encrypted",
    "key_id",
    "load_key",
    "new_key_file",
    "object_name",
    "record_mac",
]

KEY_BYTES = 32

_MAGIC = b"GRENC1\n"
_VERSION = 1
_KEY_ID_BYTES = 8
_SALT_BYTES = 16
_PREFIX_BYTES = 8
_HEADER = struct.Struct(f">{len(_MAGIC)}sB{_KEY_ID_BYTES}s{_SALT_BYTES}s{_PREFIX_BYTES}s")
_LENGTH = struct.Struct(">I")
_CHUNK = 1024 * 1024  # plaintext bytes per chunk
_TAG = 16
_MAX_CHUNKS = 2**32  # the counter's 4 bytes: 4 PiB, far past any archive
_KEY_FILE_LIMIT = 4096  # a key file is a line; anything larger is the wrong file
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class OffsiteKeyError(GitReleaseError):
    """The offsite key file is missing, unreadable, readable by others, or not a key."""

    code = "offsite_key"
    exit_code = 15
    default_hint = ("offsite_key_file must name a file holding 32 random bytes (64 hex "
                    "characters), readable by its owner only (chmod 600); keep a copy of it "
                    "away from the bot: without it the offsite copies cannot be restored")


class DecryptionFailed(GitReleaseError):
    """An offsite archive did not authenticate: another key, tampered, truncated, reordered,
    or not gitrelease's format. Nothing of it was written."""

    code = "offsite_decrypt"
    exit_code = 15
    default_hint = ("check that offsite_key_file is the key the copy was encrypted with; a "
                    "damaged copy cannot be restored: use another backup")


def load_key(path: Path) -> bytes:
    """The key in `path`: 64 hex characters or base64 (standard or urlsafe), whitespace
    around it allowed, or 32 raw bytes. A file others may read is refused: the key unlocks
    every offsite copy."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise OffsiteKeyError(f"offsite key file {path} does not exist", path=str(path)) from None
    except OSError as exc:
        raise OffsiteKeyError(f"offsite key file {path} cannot be read: {exc.strerror}",
                              path=str(path)) from None
    info = os.fstat(fd)  # the file opened, not whatever the name points at by now
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OffsiteKeyError(f"offsite key file {path} is not a regular file",
                              path=str(path))
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise OffsiteKeyError(
                f"offsite key file {path} may be read by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`",
                hint=f"run `chmod 600 {path}`: offsite_key_file must be readable by its "
                "owner only", path=str(path))
        try:
            data = handle.read(_KEY_FILE_LIMIT + 1)
        except OSError as exc:
            raise OffsiteKeyError(f"offsite key file {path} cannot be read: {exc.strerror}",
                                  path=str(path)) from None
    key = _parse_key(data)
    if key is None:
        # The length only: the content may be a key with a typo, and is never shown.
        raise OffsiteKeyError(
            f"offsite key file {path} does not hold a key ({len(data)} bytes; expected 64 "
            "hex characters, base64 of 32 bytes, or 32 raw bytes)", path=str(path))
    return key


def _parse_key(data: bytes) -> bytes | None:
    # 32 raw bytes that are all printable text are far likelier a 32-character hex string
    # (a 16-byte key) than random bytes: (100/256)**32 is about 1e-13.
    if len(data) == KEY_BYTES and not all(32 <= b < 127 or b in b"\t\n\r" for b in data):
        return data
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    standard = text.replace("-", "+").replace("_", "/")
    standard += "=" * (-len(standard) % 4)
    try:
        key = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def new_key_file(path: Path) -> None:
    """Write a fresh random key to `path` (64 hex characters and a newline, mode 0600).
    An existing file is never replaced: it may be the only key to the copies made so far."""
    if os.path.lexists(path):
        raise OffsiteKeyError(f"offsite key file {path} already exists; it is left as it is",
                              hint="use it, or move it aside first if a new key is meant",
                              path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(KEY_BYTES).encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # unlike a rename, fails if a key appeared meanwhile
        except FileExistsError:
            raise OffsiteKeyError(f"offsite key file {path} already exists; it is left as "
                                  "it is", path=str(path)) from None
        except OSError:  # a filesystem without hard links
            if os.path.lexists(path):
                raise OffsiteKeyError(f"offsite key file {path} already exists",
                                      path=str(path)) from None
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)


def key_id(key: bytes) -> str:
    """A short public name for `key` (16 hex characters), so a message can say which key a
    file needs without saying anything of the key."""
    return hmac.new(key, b"gitrelease key id", hashlib.sha256).hexdigest()[: 2 * _KEY_ID_BYTES]


def object_name(key: bytes, sha256: str) -> str:
    """The offsite name of the archive whose plaintext digest is `sha256`: the same for the
    same archive and key, so a second push uploads nothing, yet not the digest itself, which
    would let the storage confirm a guess of the content."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return hmac.new(key, b"object:" + sha256.encode("ascii"), hashlib.sha256).hexdigest()


def record_mac(key: bytes, record: dict[str, Any]) -> str:
    """The tag that says a backup's offsite record was written with `key` and not changed
    since: HMAC-SHA256 over the record's canonical JSON (every field but the tag itself). A
    record that lacks it, or whose fields were edited (`encrypted` set false, another object
    named), is refused wherever the key is at hand."""
    body = {k: v for k, v in record.items() if k != "mac"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(key, b"record:" + canonical, hashlib.sha256).hexdigest()


def is_encrypted(path: Path) -> bool:
    """Whether `path` starts as an encrypted archive does (its magic; nothing authenticated)."""
    with open(path, "rb") as handle:
        return handle.read(len(_MAGIC)) == _MAGIC


def encrypt_file(key: bytes, source: Path, target: Path) -> None:
    """Encrypt `source` into `target` (mode 0600), one chunk in memory at a time."""
    _check_key(key)
    salt = secrets.token_bytes(_SALT_BYTES)
    prefix = secrets.token_bytes(_PREFIX_BYTES)
    header = _HEADER.pack(_MAGIC, _VERSION, bytes.fromhex(key_id(key)), salt, prefix)
    aead = AESGCM(_file_key(key, salt))

    def write(src: BinaryIO, out: BinaryIO) -> None:
        out.write(header)
        chunk = src.read(_CHUNK)
        index = 0
        while True:
            # One chunk read ahead: only then is it known whether this one is the last.
            following = src.read(_CHUNK) if len(chunk) == _CHUNK else b""
            final = not following
            if index >= _MAX_CHUNKS:
                raise ValueError(f"{source} is too large to encrypt (over 4 PiB)")
            sealed = aead.encrypt(_nonce(prefix, index), chunk, _aad(header, index, final))
            out.write(_LENGTH.pack(len(sealed)))
            out.write(sealed)
            if final:
                return
            chunk, index = following, index + 1

    _stream(source, target, write)


def decrypt_file(key: bytes, source: Path, target: Path) -> None:
    """Decrypt `source` into `target` (mode 0600), or raise DecryptionFailed and write
    nothing: `target` appears only once every chunk authenticated, the last as the last."""
    _check_key(key)

    def write(src: BinaryIO, out: BinaryIO) -> None:
        header = src.read(_HEADER.size)
        salt, prefix = _parse_header(source, header, key)
        aead = AESGCM(_file_key(key, salt))
        record = _read_record(source, src, 0)
        if record is None:
            raise DecryptionFailed(f"{source} is truncated: it holds no chunk")
        index = 0
        while True:
            try:
                following = _read_record(source, src, index + 1)
            except DecryptionFailed:
                if _opens(aead, prefix, header, index, record, final=True):
                    raise _trailing(source) from None
                raise
            final = following is None
            try:
                plain = aead.decrypt(_nonce(prefix, index), record, _aad(header, index, final))
            except InvalidTag:
                raise _why_not(source, aead, prefix, header, index, record, final) from None
            out.write(plain)
            if final:
                return
            record, index = following, index + 1

    _stream(source, target, write)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise OffsiteKeyError(f"an offsite key is {KEY_BYTES} bytes, not "
                              f"{len(key) if isinstance(key, bytes) else type(key).__name__}")


def _file_key(key: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt,
                info=b"gitrelease offsite file key v1").derive(key)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _parse_header(source: Path, header: bytes, key: bytes) -> tuple[bytes, bytes]:
    """The file's salt and nonce prefix, once its header says it is ours, for this key."""
    if header[: len(_MAGIC)] != _MAGIC:
        raise DecryptionFailed(f"{source} is not encrypted (no gitrelease header)",
                               hint="it is not an encrypted offsite archive")
    if len(header) < _HEADER.size:
        raise DecryptionFailed(f"{source} is truncated: its header is incomplete")
    _, version, stored_id, salt, prefix = _HEADER.unpack(header)
    if version != _VERSION:
        raise DecryptionFailed(f"{source} is in encryption format {version}, which this "
                               f"gitrelease does not know (it reads {_VERSION})",
                               hint="upgrade gitrelease to restore it")
    if not hmac.compare_digest(stored_id, bytes.fromhex(key_id(key))):
        raise DecryptionFailed(
            f"{source} was encrypted with another key (id {stored_id.hex()}), "
            f"offsite_key_file is {key_id(key)}",
            hint="set offsite_key_file to the key that encrypted it",
            file_key_id=stored_id.hex(), key_id=key_id(key))
    return salt, prefix


def _read_record(source: Path, src: BinaryIO, index: int) -> bytes | None:
    """Chunk `index` as stored (ciphertext and tag), or None at the end of the file."""
    length = src.read(_LENGTH.size)
    if not length:
        return None
    if len(length) < _LENGTH.size:
        raise DecryptionFailed(f"{source} is truncated in chunk {index}")
    (size,) = _LENGTH.unpack(length)
    if not _TAG <= size <= _CHUNK + _TAG:  # checked before reading: memory stays bounded
        raise DecryptionFailed(f"{source} is damaged: chunk {index} claims {size} bytes")
    record = src.read(size)
    if len(record) < size:
        raise DecryptionFailed(f"{source} is truncated in chunk {index}")
    return record


def _opens(aead: AESGCM, prefix: bytes, header: bytes, index: int, record: bytes,
           *, final: bool) -> bool:
    try:
        aead.decrypt(_nonce(prefix, index), record, _aad(header, index, final))
    except InvalidTag:
        return False
    return True


def _trailing(source: Path) -> DecryptionFailed:
    return DecryptionFailed(f"{source} has data after its final chunk")


def _why_not(source: Path, aead: AESGCM, prefix: bytes, header: bytes, index: int,
             record: bytes, final: bool) -> DecryptionFailed:
    """Name what a chunk that did not authenticate most likely means, for the message only:
    the other value of the final flag tells an appended or truncated file from damage."""
    if _opens(aead, prefix, header, index, record, final=not final):
        if final:
            return DecryptionFailed(f"{source} is truncated: it ends after chunk {index}, "
                                    "before its final chunk")
        return _trailing(source)
    return DecryptionFailed(f"{source} is damaged: chunk {index} does not authenticate "
                            "(tampered, corrupt or out of order)")


def _stream(source: Path, target: Path, write: Callable[[BinaryIO, BinaryIO], None]) -> None:
    """Run `write` from `source` into a temporary file beside `target`, then fsync and rename
    it over `target`; on any failure neither the temporary file nor a new target is left."""
    with open(source, "rb") as src:
        atomic_stream(target, lambda out: write(src, out))
