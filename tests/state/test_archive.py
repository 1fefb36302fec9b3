"""Archive safety: a corpus of malicious archives never writes outside the staging dir."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from gitrelease.core.errors import GitReleaseError, VerificationFailed
from gitrelease.core.models import Backup, BackupStatus, BackupType, utcnow
from gitrelease.manager import ReleaseManager
from gitrelease.state import archive, unpack, verification
from tests.conftest import World

PAYLOAD = b"owned\n"


def regular(name: str, data: bytes = PAYLOAD, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def corpus(outside: Path) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    """Archives whose members try to escape; `outside` is a path beyond the staging dir."""
    return {
        "dotdot": [regular(f"data/../../../{outside.name}")],
        "absolute": [regular(str(outside))],
        "symlink to root": [special("data/link", tarfile.SYMTYPE, "/")],
        "symlink then file through it": [
            special("data/escape", tarfile.SYMTYPE, str(outside.parent)),
            regular(f"data/escape/{outside.name}"),
        ],
        "hardlink out": [special("data/hard", tarfile.LNKTYPE, str(outside))],
        "device": [special("data/dev", tarfile.CHRTYPE)],
        "fifo": [special("data/fifo", tarfile.FIFOTYPE)],
        "setuid": [regular("data/suid", mode=0o4755)],
        "not in manifest": [regular("data/stowaway")],
        "bigger than manifest": [regular("data/big", PAYLOAD * 1000)],
    }


def build(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], listed: list[dict]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        manifest = json.dumps({"files": listed}).encode()
        info = tarfile.TarInfo(archive.MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))


def listing_for(members: list[tuple[tarfile.TarInfo, bytes]], case: str) -> list[dict]:
    """A manifest that lists every member as the attacker would, so only the filter stands."""
    listed = []
    for info, data in members:
        if case == "not in manifest":
            continue
        size = len(PAYLOAD) if case == "bigger than manifest" else len(data)
        listed.append({"path": info.name, "kind": "data", "size": size, "mode": 0o644,
                       "sha256": hashlib.sha256(data).hexdigest()})
    return listed


@pytest.mark.parametrize("case", list(corpus(Path("/x"))))
def test_extract_refuses_and_writes_nothing_outside(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside-target"
    staging = tmp_path / "stage" / "inner"
    staging.mkdir(parents=True)
    members = corpus(outside)[case]
    path = tmp_path / "evil.tar.gz"
    build(path, members, listing_for(members, case))
    with pytest.raises(GitReleaseError):
        unpack.extract_safely(path, staging, json.loads(
            json.dumps({"files": listing_for(members, case)})))
    assert not outside.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz", "stage"]
    for staged in staging.rglob("*"):
        assert not staged.is_symlink()
        assert staged.is_dir() or staged.stat().st_mode & 0o7000 == 0


async def test_malicious_archive_restored_without_verify_touches_nothing(
    world: World, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-target"
    backups_dir = world.deploy / "data" / "backups"
    backups_dir.mkdir(parents=True)
    async with await ReleaseManager.open(world.deploy) as manager:
        store = await manager.index()
        before = world.state()
        for number, (case, members) in enumerate(corpus(outside).items()):
            path = backups_dir / f"evil_{number}.tar.gz"
            listed = listing_for(members, case)
            build(path, members, listed)
            await store.save_backup(Backup(
                id=f"evil_{number}", name=f"evil_{number}", backup_type=BackupType.FULL,
                status=BackupStatus.COMPLETED, file_path=str(path), file_size=0,
                compressed_size=path.stat().st_size, created_at=utcnow(),
                completed_at=utcnow(), description=case, checksum=None, auto_created=False,
                metadata={"manifest": {"files": listed}}))
            with pytest.raises(GitReleaseError):
                await manager.restore_backup(f"evil_{number}", {"confirm": True,
                                                                "verify_backup": False})
            assert not outside.exists(), case
    after = world.state()
    assert after["head"] == before["head"]
    runtime = ("data/backups/", "data/gitrelease.lock")  # the archives, and the lock taken
    live = {k: v for k, v in after["files"].items() if not k.startswith(runtime)}
    assert live == {k: v for k, v in before["files"].items() if not k.startswith(runtime)}
    assert not any(p.name.startswith(".restore-") for p in backups_dir.iterdir())


def make_archive(tmp_path: Path, compression: str) -> archive.ArchiveWritten:
    source = tmp_path / "file.txt"
    source.write_bytes(b"hello" * 1000)
    path = tmp_path / f"a{archive.suffix_for(compression)}"
    return archive.write_archive(path, [archive.Member(source, "data/file.txt", "data")],
                                 compression=compression, level=3, manifest={"backup_id": "a"})


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_and_manifest(tmp_path: Path, compression: str) -> None:
    written = make_archive(tmp_path, compression)
    path = tmp_path / f"a{archive.suffix_for(compression)}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == written.sha256
    assert path.stat().st_size == written.size
    manifest = archive.read_manifest(path)
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"hello" * 1000).hexdigest()
    verification.verify_archive(path, written.sha256, manifest)
    staged = unpack.extract_safely(path, tmp_path / "out", manifest)
    assert staged["data/file.txt"].read_bytes() == b"hello" * 1000


def test_verify_names_the_damaged_member(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_bytes(b"A" * 5000)
    path = tmp_path / "a.tar"
    written = archive.write_archive(path, [archive.Member(source, "data/file.txt", "data")],
                                    compression="none", level=1, manifest={})
    data = bytearray(path.read_bytes())
    data[data.index(b"A" * 100) + 10] = ord("B")  # inside the member's content
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed) as caught:
        verification.verify_archive(path, None, written.manifest)
    assert "data/file.txt does not match its checksum" in caught.value.message


def _collect_holding_the_executors_lock(box: list[object]) -> bool:
    """Drop the one reference to the stream in `box` while concurrent.futures' global lock
    is held, as a collection inside another executor's submit does; True if that returned."""
    import gc
    import threading
    from concurrent.futures import thread as futures_thread

    def collect() -> None:
        with futures_thread._global_shutdown_lock:
            box.clear()
            gc.collect()

    worker = threading.Thread(target=collect, daemon=True)
    worker.start()
    worker.join(timeout=10)
    return not worker.is_alive()


@pytest.mark.parametrize("aborted", [False, True], ids=["abandoned", "aborted"])
def test_a_gzip_stream_collected_unclosed_writes_nothing_and_never_waits(aborted: bool) -> None:
    """A write that failed half-way leaves its stream to the garbage collector, which may
    run inside another thread pool's submit (holding the executors' global lock): the
    stream must not flush then (a submit would wait on that lock for ever: a hung backup)."""
    from gitrelease.state.compression import ParallelGzip

    sink = io.BytesIO()
    box: list[object] = [ParallelGzip(sink, 6, workers=2)]
    box[0].write(b"x" * 1000)  # type: ignore[attr-defined]  # under a block: buffered
    if aborted:
        box[0].abort()  # type: ignore[attr-defined]
    assert _collect_holding_the_executors_lock(box), "collecting the stream hung"
    assert sink.getvalue() == b""  # nothing of an abandoned write reaches the archive


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_unpacking_decodes_ahead_and_gives_the_same_bytes_or_the_same_refusal(
        tmp_path: Path, compression: str) -> None:
    """The decoder runs in a thread of its own while members are hashed and written: the
    staged files are the archive's, a subset verifies the whole file all the same, damage in
    the middle is refused as damage, and no decoder thread is left behind."""
    import os
    import threading

    files = {f"data/{n}.bin": os.urandom(300_000) + bytes(700_000) for n in range(6)}
    members = []
    for name, data in files.items():
        (tmp_path / name.replace("/", "_")).write_bytes(data)
        members.append(archive.Member(tmp_path / name.replace("/", "_"), name, "data"))
    path = tmp_path / f"a{archive.suffix_for(compression)}"
    written = archive.write_archive(path, members, compression=compression, level=3,
                                    manifest={})
    before = threading.active_count()
    staged = unpack.extract_safely(path, tmp_path / "all", written.manifest,
                                   checksum=written.sha256, durable=set())
    assert {n: p.read_bytes() for n, p in staged.items()} == files
    some = unpack.extract_safely(path, tmp_path / "some", written.manifest,
                                 wanted={"data/1.bin"}, checksum=written.sha256)
    assert some["data/1.bin"].read_bytes() == files["data/1.bin"]
    with pytest.raises(VerificationFailed, match="sha256 does not match"):
        unpack.extract_safely(path, tmp_path / "wrong", written.manifest,
                              wanted={"data/1.bin"}, checksum="0" * 64)
    damaged = bytearray(path.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = os.urandom(64)
    path.write_bytes(bytes(damaged))
    with pytest.raises(VerificationFailed):
        unpack.extract_safely(path, tmp_path / "damaged", written.manifest,
                              checksum=written.sha256)
    assert threading.active_count() == before
