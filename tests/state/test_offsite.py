"""Offsite copies on a real S3-protocol server (moto's, on loopback) through the real boto3:
named by content and written once, the record last, a fetch checked against the digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gitrelease.state.offsite import OffsiteError, S3Offsite, parse_offsite_url
from tests.s3 import S3Server


def _archive(path: Path, size: int, seed: bytes = b"x") -> Path:
    path.write_bytes(hashlib.sha256(seed).digest() * (size // 32) + b"!" * (size % 32))
    return path


def _keys(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_backup_goes_offsite_and_comes_back_whole(
        s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite = S3Offsite(f"s3://{s3_bucket}/bots/prod", s3_server.endpoint)
    archive = _archive(tmp_path / "bkp_1.tar.zst", 20 * 1024 * 1024 + 5)  # three parts
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    copy = offsite.push("bkp_1", archive, {"name": "before v2", "version": "1.0.0"})
    assert (copy.sha256, copy.size) == (digest, archive.stat().st_size)
    assert _keys(s3_server, s3_bucket) == ["bots/prod/backups/bkp_1.json",
                                           f"bots/prod/objects/{digest}"]
    (listed,) = offsite.copies()
    assert (listed.backup_id, listed.record["name"], listed.sha256) == (
        "bkp_1", "before v2", digest)
    fetched = offsite.fetch("bkp_1", tmp_path / "back.tar.zst")
    assert fetched.sha256 == digest
    assert (tmp_path / "back.tar.zst").read_bytes() == archive.read_bytes()
    assert (tmp_path / "back.tar.zst").stat().st_mode & 0o777 == 0o600


def test_the_same_archive_is_uploaded_once(
        s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite = S3Offsite(f"s3://{s3_bucket}", s3_server.endpoint)
    archive = _archive(tmp_path / "a.tar", 1000)
    offsite.push("bkp_1", archive, {})
    client = s3_server.client()
    first = client.head_object(Bucket=s3_bucket,  # type: ignore[attr-defined]
                               Key=f"objects/{hashlib.sha256(archive.read_bytes()).hexdigest()}")
    offsite.push("bkp_1", archive, {})  # again: nothing new is written
    offsite.push("bkp_2", archive, {})  # another backup of the same bytes: its record only
    again = client.head_object(Bucket=s3_bucket,  # type: ignore[attr-defined]
                               Key=f"objects/{hashlib.sha256(archive.read_bytes()).hexdigest()}")
    assert first["LastModified"] == again["LastModified"] and first["ETag"] == again["ETag"]
    assert [c.backup_id for c in offsite.copies()] == ["bkp_1", "bkp_2"]
    # Deleting one backup keeps the archive the other still names.
    offsite.delete("bkp_1")
    assert len(_keys(s3_server, s3_bucket)) == 2
    offsite.delete("bkp_2")
    assert _keys(s3_server, s3_bucket) == []


def test_a_tampered_copy_is_refused_and_nothing_is_written(
        s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite = S3Offsite(f"s3://{s3_bucket}/p", s3_server.endpoint)
    archive = _archive(tmp_path / "a.tar", 4096)
    copy = offsite.push("bkp_1", archive, {})
    body = bytearray(archive.read_bytes())
    body[100] ^= 0xFF
    s3_server.client().put_object(  # type: ignore[attr-defined]
        Bucket=s3_bucket, Key=f"p/objects/{copy.sha256}", Body=bytes(body))
    with pytest.raises(OffsiteError, match="not what was uploaded"):
        offsite.fetch("bkp_1", tmp_path / "back.tar")
    assert sorted(os.listdir(tmp_path)) == ["a.tar"]


def test_a_missing_bucket_is_a_clear_error_without_credentials(
        s3_server: S3Server, tmp_path: Path) -> None:
    offsite = S3Offsite("s3://no-such-bucket-here/p", s3_server.endpoint)
    with pytest.raises(OffsiteError) as raised:
        offsite.push("bkp_1", _archive(tmp_path / "a.tar", 10), {})
    assert "s3://no-such-bucket-here/p" in raised.value.message
    assert "NoSuchBucket" in raised.value.message or "404" in raised.value.message
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in raised.value.message and secret not in raised.value.hint
    # A bucket that is there but holds no such backup: said so, nothing written.
    empty = "gitrelease-empty-bucket"
    s3_server.client().create_bucket(Bucket=empty)  # type: ignore[attr-defined]
    with pytest.raises(OffsiteError, match="holds no backup bkp_1"):
        S3Offsite(f"s3://{empty}", s3_server.endpoint).fetch("bkp_1", tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("url", "named"), [
    ("bucket/prefix", "s3://bucket/prefix"), ("s3://", "bucket name"),
    ("s3://UPPER/x", "bucket name"), ("s3://ok-bucket/../up", "prefix"),
    ("s3://ok-bucket/a b", "prefix"), ("s3://a/x", "bucket name"),
])
def test_a_bad_url_is_refused(url: str, named: str) -> None:
    with pytest.raises(OffsiteError, match=named):
        parse_offsite_url(url)


def test_a_bad_endpoint_is_refused() -> None:
    with pytest.raises(OffsiteError, match="offsite_endpoint"):
        S3Offsite("s3://ok-bucket", "ftp://host")


def test_a_server_killed_mid_upload_leaves_no_backup_offsite_and_a_push_again_completes(
        s3_server: S3Server, tmp_path: Path) -> None:
    """The server of this test's own goes away during a multipart upload: the push fails
    clearly, the local archive is untouched, no record says there is a backup offsite; once
    a server is there again the same push completes."""
    import threading

    from tests.s3 import start_s3

    own = start_s3()
    archive = _archive(tmp_path / "big.tar", 48 * 1024 * 1024, seed=b"big")
    before = hashlib.sha256(archive.read_bytes()).hexdigest()
    try:
        own.client().create_bucket(Bucket="mid-upload")  # type: ignore[attr-defined]
        offsite = S3Offsite("s3://mid-upload/p", own.endpoint)
        parts: list[int] = []

        def second_part_kills_the_server(**_kwargs: object) -> None:
            with lock:
                parts.append(1)
                if len(parts) == 2:
                    own.process.kill()
                    own.process.wait()

        lock = threading.Lock()
        offsite._client.meta.events.register("before-send.s3.UploadPart",
                                             second_part_kills_the_server)
        with pytest.raises(OffsiteError, match="could not upload bkp_1 on s3://mid-upload/p"):
            offsite.push("bkp_1", archive, {})
        assert len(parts) >= 2  # it was in the middle of the parts
    finally:
        own.process.kill()
        own.process.wait()
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == before
    # The storage comes back (moto's keeps nothing: a new one, its bucket made again).
    back = start_s3()
    try:
        back.client().create_bucket(Bucket="mid-upload")  # type: ignore[attr-defined]
        offsite = S3Offsite("s3://mid-upload/p", back.endpoint)
        assert offsite.copies() == []
        offsite.push("bkp_1", archive, {})
        (copy,) = offsite.copies()
        assert copy.sha256 == before
    finally:
        back.process.kill()
        back.process.wait()
