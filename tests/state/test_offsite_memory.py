"""An offsite upload's memory is bounded: an archive several times larger than the 150 MiB
limit goes to a real S3-protocol server (moto's, on loopback) in 8 MiB parts, encrypted on
the way, and the process that pushes it peaks under the limit. The push runs in a process of
its own, so that its peak is its own (`tests.s3.PUSH_CHILD`).

512 MiB here: moto holds a completed upload twice in memory while it joins the parts, so a
2 GiB archive costs the suite a minute and 4.5 GiB of the server's RAM. The benchmark runner
pushes the issue's 2 GiB (`python -m tests.benchmarks --only offsite`, figure "peak memory of
an offsite upload")."""

from __future__ import annotations

import os
from pathlib import Path

from gitrelease.state.offsite_crypt import new_key_file
from tests.s3 import S3Server, push_in_child

SIZE = 512 * 1024**2
BLOCK = 64 * 1024**2
LIMIT_MIB = 150


def _big_archive(path: Path) -> Path:
    """Bytes that are not all zeros (a random 64 MiB block, repeated): written in seconds."""
    block = os.urandom(BLOCK)
    with path.open("wb") as f:
        for _ in range(SIZE // BLOCK):
            f.write(block)
    return path


def test_a_large_archive_goes_offsite_encrypted_in_parts_within_150_mib(
        s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    archive = _big_archive(tmp_path / "bkp_big.tar.zst")
    key = tmp_path / "offsite.key"
    new_key_file(key)
    client = s3_server.client()
    try:
        pushed = push_in_child(s3_bucket, s3_server.endpoint, archive, key)
        assert pushed["size"] == SIZE
        peak = pushed["peak_mib"] if pushed["peak_mib"] is not None else pushed["ru_maxrss_mib"]
        assert isinstance(peak, float) and peak <= LIMIT_MIB, f"the push peaked at {peak} MiB"
        head = client.head_object(  # type: ignore[attr-defined]
            Bucket=s3_bucket, Key=f"bots/objects/{pushed['object']}")
        assert head["ContentLength"] > SIZE  # sealed: each 1 MiB chunk carries its tag
        assert head["ETag"].strip('"').endswith(f"-{SIZE // (8 * 1024**2) + 1}")  # in parts
    finally:
        archive.unlink(missing_ok=True)
        # moto keeps what it is sent (in memory and temporary files): let it go.
        listed = client.list_objects_v2(Bucket=s3_bucket)  # type: ignore[attr-defined]
        for item in listed.get("Contents", []):
            client.delete_object(Bucket=s3_bucket, Key=item["Key"])  # type: ignore[attr-defined]
