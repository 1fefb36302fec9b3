"""Client-side encryption of offsite archives, on real files: round trips at the chunk
boundaries, every way a copy can be damaged refused with nothing written, key files in each
accepted spelling, and memory that stays bounded whatever the archive's size."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitrelease.state.offsite_crypt import (
    KEY_BYTES,
    DecryptionFailed,
    OffsiteKeyError,
    decrypt_file,
    encrypt_file,
    is_encrypted,
    key_id,
    load_key,
    new_key_file,
    object_name,
)

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
HEADER = 7 + 1 + 8 + 16 + 8  # magic, version, key id, salt, nonce prefix (the docstring's)
TAG = 16


def _key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _split(data: bytes) -> tuple[bytes, list[bytes]]:
    """An encrypted file as its header and its chunks, each with its length prefix."""
    header, rest, chunks = data[:HEADER], data[HEADER:], []
    while rest:
        size = 4 + int.from_bytes(rest[:4], "big")
        chunks.append(rest[:size])
        rest = rest[size:]
    return header, chunks


def _keyless(exc: BaseException, key: bytes) -> None:
    """No spelling of the key in anything the error says."""
    said = f"{exc} {getattr(exc, 'hint', '')} {getattr(exc, 'details', '')} {exc!r}"
    for spelling in (key.hex(), key.hex().upper(), base64.b64encode(key).decode(),
                     base64.urlsafe_b64encode(key).decode(), repr(key)):
        assert spelling not in said


def _refused(key: bytes, source: Path, target: Path) -> DecryptionFailed:
    """Decrypt, expect a refusal, and check that nothing was left beside the target."""
    before = sorted(target.parent.iterdir())
    with pytest.raises(DecryptionFailed) as caught:
        decrypt_file(key, source, target)
    assert sorted(target.parent.iterdir()) == before  # no target, no temporary file
    _keyless(caught.value, key)
    return caught.value


@pytest.fixture()
def sealed(tmp_path: Path) -> tuple[bytes, Path, bytes]:
    """A key, a three-chunk archive encrypted with it, and the archive's plaintext."""
    key, plain = _key(), os.urandom(2 * MIB + 1000)
    source = _file(tmp_path / "a.tar.zst", plain)
    encrypt_file(key, source, tmp_path / "a.enc")
    return key, tmp_path / "a.enc", plain


@pytest.mark.parametrize("size", [0, 1, MIB, MIB + 1, 5 * MIB + 12345])
def test_round_trip_at_the_chunk_boundaries(tmp_path: Path, size: int) -> None:
    key, plain = _key(), os.urandom(size)
    source = _file(tmp_path / "a.tar.zst", plain)
    encrypt_file(key, source, tmp_path / "a.enc")
    decrypt_file(key, tmp_path / "a.enc", tmp_path / "back.tar.zst")
    assert (tmp_path / "back.tar.zst").read_bytes() == plain
    chunks = max(1, -(-size // MIB))  # an empty archive is one empty chunk
    assert (tmp_path / "a.enc").stat().st_size == HEADER + size + chunks * (4 + TAG)
    for written in ("a.enc", "back.tar.zst"):
        assert stat.S_IMODE((tmp_path / written).stat().st_mode) == 0o600
    assert is_encrypted(tmp_path / "a.enc")
    assert not is_encrypted(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.enc", "a.tar.zst", "back.tar.zst"]


def test_each_encryption_differs_but_the_object_name_does_not(tmp_path: Path) -> None:
    key, other = _key(), _key()
    source = _file(tmp_path / "a.tar.zst", os.urandom(MIB + 7))
    encrypt_file(key, source, tmp_path / "one.enc")
    encrypt_file(key, source, tmp_path / "two.enc")
    one, two = (tmp_path / "one.enc").read_bytes(), (tmp_path / "two.enc").read_bytes()
    assert one[:16] == two[:16]  # magic, version and key id
    assert one[16:HEADER] != two[16:HEADER]  # salt and nonce prefix are new each time
    assert one[HEADER:] != two[HEADER:]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    name = object_name(key, digest)
    assert name == object_name(key, digest)
    assert len(name) == 64 and name != digest
    assert name != object_name(other, digest)
    assert name != object_name(key, hashlib.sha256(b"another archive").hexdigest())
    assert len(key_id(key)) == 16 and key_id(key) != key_id(other)
    assert key_id(key) not in name and key.hex()[:16] != key_id(key)
    with pytest.raises(ValueError):
        object_name(key, "not-a-digest")


def test_another_key_is_named_by_both_ids_and_nothing_is_written(
        sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, _ = sealed
    other = _key()
    error = _refused(other, encrypted, encrypted.parent / "back.tar.zst")
    assert f"encrypted with another key (id {key_id(key)})" in str(error)
    assert f"offsite_key_file is {key_id(other)}" in str(error)
    _keyless(error, key)


def test_a_flipped_byte_is_refused(sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, _ = sealed
    data = bytearray(encrypted.read_bytes())
    data[len(data) // 2] ^= 0x01
    _file(encrypted, bytes(data))
    assert "chunk 1 does not authenticate" in str(
        _refused(key, encrypted, encrypted.parent / "back.tar.zst"))


def test_a_changed_header_is_refused(sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, _ = sealed
    data = bytearray(encrypted.read_bytes())
    data[HEADER - 1] ^= 0x80  # the nonce prefix, part of every chunk's associated data
    _file(encrypted, bytes(data))
    assert "chunk 0 does not authenticate" in str(
        _refused(key, encrypted, encrypted.parent / "back.tar.zst"))


def test_dropping_the_last_chunk_is_refused(sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, _ = sealed
    header, chunks = _split(encrypted.read_bytes())
    assert len(chunks) == 3
    _file(encrypted, header + b"".join(chunks[:-1]))
    assert "is truncated" in str(_refused(key, encrypted, encrypted.parent / "back.tar.zst"))


@pytest.mark.parametrize("cut", [HEADER - 3, HEADER, HEADER + 2, HEADER + 4 + 100])
def test_a_cut_anywhere_is_refused(sealed: tuple[bytes, Path, bytes], cut: int) -> None:
    key, encrypted, _ = sealed
    _file(encrypted, encrypted.read_bytes()[:cut])
    assert "is truncated" in str(_refused(key, encrypted, encrypted.parent / "back.tar.zst"))


def test_reordered_chunks_are_refused(sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, _ = sealed
    header, chunks = _split(encrypted.read_bytes())
    _file(encrypted, header + chunks[1] + chunks[0] + b"".join(chunks[2:]))
    assert "chunk 0 does not authenticate" in str(
        _refused(key, encrypted, encrypted.parent / "back.tar.zst"))


def test_a_chunk_from_another_file_with_the_same_key_is_refused(
        sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, plain = sealed
    encrypt_file(key, _file(encrypted.parent / "b.tar.zst", plain), encrypted.parent / "b.enc")
    header, chunks = _split(encrypted.read_bytes())
    _, theirs = _split((encrypted.parent / "b.enc").read_bytes())
    _file(encrypted, header + chunks[0] + theirs[1] + b"".join(chunks[2:]))
    assert "chunk 1 does not authenticate" in str(
        _refused(key, encrypted, encrypted.parent / "back.tar.zst"))


@pytest.mark.parametrize("extra", ["garbage", "a chunk again"])
def test_bytes_after_the_final_chunk_are_refused(
        sealed: tuple[bytes, Path, bytes], extra: str) -> None:
    key, encrypted, _ = sealed
    data = encrypted.read_bytes()
    data += b"\x00trailing" if extra == "garbage" else _split(data)[1][-1]
    _file(encrypted, data)
    assert "data after its final chunk" in str(
        _refused(key, encrypted, encrypted.parent / "back.tar.zst"))


@pytest.mark.parametrize("content", [b"", b"GR", b"\x28\xb5\x2f\xfd" + b"zstd frame" * 10])
def test_a_file_not_encrypted_is_refused(tmp_path: Path, content: bytes) -> None:
    plain = _file(tmp_path / "a.tar.zst", content)
    assert not is_encrypted(plain)
    assert "is not encrypted" in str(_refused(_key(), plain, tmp_path / "back.tar.zst"))


def test_a_refused_copy_leaves_an_existing_target_as_it_was(
        sealed: tuple[bytes, Path, bytes]) -> None:
    key, encrypted, _ = sealed
    _file(encrypted, encrypted.read_bytes()[:-1])
    target = _file(encrypted.parent / "back.tar.zst", b"the previous restore")
    _refused(key, encrypted, target)
    assert target.read_bytes() == b"the previous restore"


def test_a_missing_source_or_a_short_key_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        encrypt_file(_key(), tmp_path / "missing.tar.zst", tmp_path / "a.enc")
    source = _file(tmp_path / "a.tar.zst", b"x")
    with pytest.raises(OffsiteKeyError, match="32 bytes, not 16"):
        encrypt_file(secrets.token_bytes(16), source, tmp_path / "a.enc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.zst"]


def _key_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("spelling", [
    "hex", "HEX", "base64", "urlsafe base64", "unpadded urlsafe base64", "raw"])
def test_a_key_file_in_each_spelling(tmp_path: Path, spelling: str) -> None:
    key = b"\xfb\xff\xfe" * 10 + b"\xfb\xef"  # its base64 has + and /, its urlsafe - and _
    content = {
        "hex": b"  " + key.hex().encode() + b"\n",
        "HEX": key.hex().upper().encode(),
        "base64": base64.b64encode(key) + b"\r\n",
        "urlsafe base64": b"\t" + base64.urlsafe_b64encode(key) + b"\n",
        "unpadded urlsafe base64": base64.urlsafe_b64encode(key).rstrip(b"="),
        "raw": key,
    }[spelling]
    assert load_key(_key_file(tmp_path / "offsite.key", content)) == key


# Fixed ids: pytest-xdist's workers must collect the same tests, so no random ids.
@pytest.mark.parametrize("content", [
    secrets.token_hex(16).encode(),  # a 16-byte key in hex: 32 bytes of text, not raw
    secrets.token_hex(33).encode(),
    base64.b64encode(secrets.token_bytes(31)),
    b"g" * 64,
    secrets.token_bytes(31),
    secrets.token_bytes(33),
    b"",
    b"\xff" * 5000,
], ids=["hex of 16 bytes", "hex of 33 bytes", "base64 of 31 bytes", "not hex", "31 raw bytes",
        "33 raw bytes", "empty", "5000 bytes"])
def test_a_key_file_that_holds_no_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = _key_file(tmp_path / "offsite.key", content)
    with pytest.raises(OffsiteKeyError, match="does not hold a key") as caught:
        load_key(path)
    said = f"{caught.value} {caught.value.hint}"
    assert content.decode("latin-1") not in said or not content
    assert str(path) in said


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    key = _key()
    for mode in (0o644, 0o640, 0o604, 0o660):
        path = _key_file(tmp_path / "offsite.key", key.hex().encode(), mode)
        with pytest.raises(OffsiteKeyError, match="chmod 600") as caught:
            load_key(path)
        assert f"{mode:04o}" in str(caught.value)
        _keyless(caught.value, key)
    path.chmod(0o600)
    assert load_key(path) == key


def test_a_missing_key_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OffsiteKeyError, match="does not exist") as caught:
        load_key(tmp_path / "offsite.key")
    assert caught.value.code == "offsite_key" and caught.value.exit_code == 15
    assert "offsite_key_file" in caught.value.hint
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(OffsiteKeyError, match="not a regular file"):
        load_key(folder)


def test_a_new_key_file_is_private_and_never_replaces_one(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "offsite.key"
    new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert len(text) == 65 and text.endswith("\n")
    key = load_key(path)
    assert key.hex() == text.strip()
    with pytest.raises(OffsiteKeyError, match="already exists") as caught:
        new_key_file(path)
    _keyless(caught.value, key)
    assert path.read_text() == text
    assert os.listdir(path.parent) == ["offsite.key"]  # no temporary file left
    other = tmp_path / "other.key"
    new_key_file(other)
    assert load_key(other) != key


def test_errors_carry_their_codes() -> None:
    assert (OffsiteKeyError.code, OffsiteKeyError.exit_code) == ("offsite_key", 15)
    assert (DecryptionFailed.code, DecryptionFailed.exit_code) == ("offsite_decrypt", 15)


# The child: encrypt and decrypt the archive, then print its peak memory (KiB) before and
# after, as ru_maxrss and as VmHWM. The assertion is on VmHWM: a child's ru_maxrss starts at
# its parent's peak (Linux carries it over the exec), so under a large pytest process it
# would hide any growth; VmHWM belongs to the child's own address space.
_BOUNDED = """
import re, resource, sys
from pathlib import Path
from gitrelease.state.offsite_crypt import decrypt_file, encrypt_file

def peaks():
    status = Path("/proc/self/status").read_text()
    hwm = int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm

source, encrypted, back, tiny = map(Path, sys.argv[1:])
key = bytes(range(32))
tiny.write_bytes(b"warm")  # first use of OpenSSL's AES-GCM counts in the baseline
encrypt_file(key, tiny, tiny.with_suffix(".enc"))
decrypt_file(key, tiny.with_suffix(".enc"), tiny)
baseline = peaks()
encrypt_file(key, source, encrypted)
decrypt_file(key, encrypted, back)
print(*baseline, *peaks())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and VmHWM are Linux's")
def test_memory_stays_bounded_for_a_large_archive(tmp_path: Path) -> None:
    source = tmp_path / "big.tar.zst"
    block = os.urandom(MIB)
    with open(source, "wb") as out:
        for i in range(64):  # 64 MiB, each MiB different, never all in memory
            out.write(block[i:] + block[:i])
    run = subprocess.run(
        [sys.executable, "-c", _BOUNDED, str(source), str(tmp_path / "big.enc"),
         str(tmp_path / "back.tar.zst"), str(tmp_path / "tiny")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    maxrss_before, hwm_before, maxrss_after, hwm_after = map(int, run.stdout.split())
    limit = 40 * 1024  # KiB; the whole archive in memory would be 64 MiB, twice that to decrypt
    assert hwm_after - hwm_before < limit, f"peak RSS grew by {hwm_after - hwm_before} KiB"
    assert maxrss_after - maxrss_before < limit
    assert filecmp.cmp(source, tmp_path / "back.tar.zst", shallow=False)
