"""An offsite copy against the bare upload it wraps, on a real S3-protocol server.

moto's standalone server (tests/s3.py), started here on loopback, is the storage. Ours is
`S3Offsite.push` of a fresh backup each round (the archive's sha256, the upload lock, the
look for an object of that name, the multipart upload, the record); the baseline is what
``aws s3 cp`` does: boto3's `upload_file` of the same file in the same 8 MiB parts with 4
threads. Each round's object is deleted after its timing, so every round uploads for real.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import Figure, Timer, alternate, settle

__all__ = ["upload"]

BLOCK = 64 * 1024 * 1024


def _random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for at in range(0, size, BLOCK):
            f.write(os.urandom(min(BLOCK, size - at)))
    return path


def _empty(client: Any, bucket: str) -> None:
    """Delete everything in the bucket (a round's object and record): the next uploads too."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])


async def upload(bench: Bench) -> list[Figure]:
    from boto3.s3.transfer import TransferConfig

    from gitrelease.state.archive import sha256_file
    from gitrelease.state.offsite import PART_SIZE, S3Offsite
    from tests.s3 import start_s3

    # Any credentials do for moto; boto3's chain must find some, as it finds an operator's.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing-key-id")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    quick = bench.light_rounds < 10
    size = BLOCK if quick else 1024**3
    shown = f"{size // 2**20} MiB" if size < 1024**3 else f"{size // 1024**3} GiB"
    base = Path(tempfile.mkdtemp(prefix="offsite-", dir=bench.base))
    archive = await asyncio.to_thread(_random_file, base / "bkp.tar.zst", size)
    warmup = await asyncio.to_thread(_random_file, base / "warmup.tar.zst", 2 * PART_SIZE)
    timer = Timer()
    await asyncio.to_thread(sha256_file, archive)
    digest_seconds = timer.elapsed()
    server = start_s3()
    try:
        client: Any = server.client()
        bucket = f"gitrelease-bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        offsite = S3Offsite(f"s3://{bucket}/bots", server.endpoint)
        plain = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                               max_concurrency=4)
        # A small multipart upload by each side first (untimed): both clients' connections
        # and threads, and the server's multipart path, are warm when the timing starts.
        await asyncio.to_thread(offsite.push, "bkp_warmup", warmup, {})
        await asyncio.to_thread(client.upload_file, str(warmup), bucket, "plain/warmup",
                                Config=plain)
        await asyncio.to_thread(_empty, client, bucket)
        numbers = itertools.count(1)

        key = os.urandom(32)
        sealed = False  # the first pass plain, the second encrypted as config is

        async def ours() -> float:
            backup_id = f"bkp_{next(numbers)}"
            timer = Timer()
            copy = await asyncio.to_thread(offsite.push, backup_id, archive,
                                           {"name": "bench"}, key=key if sealed else None)
            elapsed = timer.elapsed()
            if copy.size != size:
                raise RuntimeError(f"pushed {copy.size} bytes of {size}")
            await asyncio.to_thread(_empty, client, bucket)
            return elapsed

        async def baseline() -> float:
            timer = Timer()
            await asyncio.to_thread(client.upload_file, str(archive), bucket,
                                    "plain/bkp.tar.zst", Config=plain)
            elapsed = timer.elapsed()
            await asyncio.to_thread(_empty, client, bucket)
            return elapsed

        mine, theirs = await alternate(ours, baseline, bench.heavy_rounds)
        sealed = True
        mine_sealed, theirs_sealed = await alternate(ours, baseline, bench.heavy_rounds)
        memory = await asyncio.to_thread(_peak, server, client, bucket, base,
                                         BLOCK * 4 if quick else 2 * 1024**3)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
    figure = settle(Figure(f"offsite upload of a {shown} archive", "≤ 1.2x", 1.2),
                    mine, theirs)
    rounds = f"{bench.heavy_rounds} round" + ("s" if bench.heavy_rounds != 1 else "")
    figure.note = (f"moto's S3 server on loopback, {rounds}, each object "
                   "deleted after its timing; ours: S3Offsite.push, which also reads the "
                   f"archive for its sha256 (alone {digest_seconds * 1000:.0f} ms here), takes "
                   "and drops the upload lock (put, list, delete), looks for the object "
                   "(head) and writes the record (put); baseline: boto3 upload_file, 8 MiB "
                   "parts, 4 threads (what aws s3 cp does)")
    encrypted = settle(Figure(f"offsite upload of a {shown} archive, encrypted", "—", None),
                       mine_sealed, theirs_sealed)
    encrypted.note = ("the same, with offsite_key_file set (what a backup holding config "
                      "needs): the archive is sealed with AES-256-GCM into a file beside it "
                      "first, then uploaded; the baseline uploads it in the clear")
    peak_mib, pushed = memory
    peak = Figure("peak memory of an offsite upload", "≤ 150 MB", 150, kind="value",
                  unit="MB", ours=peak_mib)
    peak.samples = {"ours": [peak_mib]}
    peak.note = (f"a {pushed // 2**20} MiB archive, encrypted and pushed by S3Offsite in a "
                 "process of its own (VmHWM)")
    return [figure, encrypted, peak]


def _peak(server: Any, client: Any, bucket: str, base: Path, size: int) -> tuple[float, int]:
    """Peak memory (MiB) of a push of `size` bytes, encrypted, in a process of its own."""
    from gitrelease.state.offsite_crypt import new_key_file
    from tests.s3 import push_in_child

    archive = _random_file(base / "big.tar.zst", size)
    key_file = base / "offsite.key"
    if not key_file.exists():
        new_key_file(key_file)
    try:
        pushed = push_in_child(bucket, server.endpoint, archive, key_file)
    finally:
        archive.unlink(missing_ok=True)
        _empty(client, bucket)
    return float(pushed["peak_mib"] or pushed["ru_maxrss_mib"]), size  # type: ignore[arg-type]
