"""The fast paths of backup, verify, restore and rollback keep every guarantee of the slow ones.

Real SQLite files, real tar archives read back by the system's own gzip and tar, real git
repositories: no mocks.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from gitrelease.core.errors import BackupFailed, VerificationFailed
from gitrelease.core.models import BackupStatus, BackupType
from gitrelease.manager import ReleaseManager
from gitrelease.state import archive, verification
from gitrelease.state.snapshot import integrity_problem, snapshot_database
from tests.conftest import ENV_SECRET, World, guilds
from tests.state.test_backups import members_of, rows

YES = {"confirm": True}


def _corrupt_a_table_page(db: Path) -> None:
    """Garbage in the middle of a b-tree page: the file still opens, its pages do not parse."""
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE filler (n INTEGER, pad TEXT)")
        connection.executemany("INSERT INTO filler VALUES (?, ?)",
                               [(n, "x" * 200) for n in range(2000)])
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    with db.open("r+b") as handle:
        handle.seek(page_size * 5 + 8)  # past page 5's header, into its cell pointers
        handle.write(os.urandom(64))


# -- snapshot -------------------------------------------------------------------------------


def test_snapshot_is_checked_apart_and_quick_check_finds_damage(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    with sqlite3.connect(good) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
        connection.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    connection.close()
    snapshot = tmp_path / "snapshot.db"
    snapshot_database(good, snapshot)
    assert snapshot.stat().st_mode & 0o777 == 0o600
    assert integrity_problem(snapshot) is None
    assert integrity_problem(snapshot, thorough=True) is None
    assert rows(snapshot, "PRAGMA journal_mode") == [("delete",)]

    bad = tmp_path / "bad.db"
    shutil.copy(good, bad)
    _corrupt_a_table_page(bad)
    copied = tmp_path / "bad-snapshot.db"
    snapshot_database(bad, copied)  # SQLite copies pages as they are
    assert integrity_problem(copied) is not None


async def test_a_damaged_database_never_makes_a_completed_backup(world: World) -> None:
    _corrupt_a_table_page(world.deploy / "data" / "app.db")
    backups = world.deploy / "data" / "backups"
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(BackupFailed) as caught:
            await manager.create_backup("full")
        (failed,) = await manager.list_backups({"time_range": "all"})
    assert "data/app.db fails its integrity check" in caught.value.message
    assert failed.status is BackupStatus.FAILED
    assert [p.name for p in backups.iterdir()] == []  # no archive, no leftovers


async def test_a_damaged_live_database_can_be_restored_over_and_is_kept_as_it_was(
        world: World) -> None:
    """The reason to restore is often a damaged database: its safety backup keeps it as it
    is (saying so) rather than refusing, which would refuse the restore with it."""
    live = world.deploy / "data" / "app.db"
    async with await ReleaseManager.open(world.deploy) as manager:
        good = await manager.create_backup("full")
        _corrupt_a_table_page(live)
        damaged = hashlib.sha256(live.read_bytes()).hexdigest()
        result = await manager.restore_backup(good.id, YES)
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert rows(live, "PRAGMA integrity_check") == [("ok",)]
    safety = result.safety_backup
    assert safety is not None and safety.status is BackupStatus.COMPLETED
    assert any("integrity check" in w for w in safety.warnings), safety.warnings
    assert any(safety.id in w and "kept as it was" in w for w in result.warnings)
    kept = members_of(Path(safety.file_path or ""))["data/app.db"]
    copy = world.base / "kept.db"
    copy.write_bytes(kept)
    assert integrity_problem(copy) is not None  # the damage, kept for whoever looks into it
    assert damaged  # (the live file was damaged before the restore)


# -- the archive ----------------------------------------------------------------------------


def test_parallel_gzip_is_one_gzip_file_for_the_system_tools(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * archive.CHUNK + 12345) + b"text " * 500_000)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    path = tmp_path / "a.tar.gz"
    written = archive.write_archive(
        path, [archive.Member(big, "data/big.bin", "data"),
               archive.Member(empty, "data/empty.txt", "data")],
        compression="gzip", level=6, manifest=lambda: {"backup_id": "a", "late": True})
    assert hashlib.sha256(path.read_bytes()).hexdigest() == written.sha256
    assert written.manifest["late"] is True  # the manifest function ran, at the end
    subprocess.run(["gzip", "-t", str(path)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(path), "-C", str(out)], check=True)
    assert (out / "data" / "big.bin").read_bytes() == big.read_bytes()
    assert (out / "data" / "empty.txt").read_bytes() == b""
    assert json.loads((out / "manifest.json").read_text())["files"][0]["size"] == \
        big.stat().st_size


def test_an_empty_gzip_archive_is_still_gzip(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    archive.write_archive(path, [], compression="gzip", level=6, manifest={})
    subprocess.run(["gzip", "-t", str(path)], check=True)
    assert archive.read_manifest(path)["files"] == []


def test_verify_trusts_the_recorded_sum_and_deep_reads_every_member(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_bytes(b"A" * 5000)
    path = tmp_path / "a.tar.zst"
    written = archive.write_archive(path, [archive.Member(source, "data/file.txt", "data")],
                                    compression="zstd", level=3, manifest={})
    verification.verify_archive(path, written.sha256, written.manifest)
    verification.verify_archive(path, written.sha256, written.manifest, deep=True)
    # A manifest that disagrees with the members: only the deep check reads the members.
    wrong = {**written.manifest, "files": [{**written.manifest["files"][0], "sha256": "0" * 64}]}
    verification.verify_archive(path, written.sha256, wrong)
    with pytest.raises(VerificationFailed, match="does not match its checksum"):
        verification.verify_archive(path, written.sha256, wrong, deep=True)
    # A changed byte: the sum differs, and the deep pass then names what is damaged.
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed):
        verification.verify_archive(path, written.sha256, written.manifest)


async def test_an_adopted_archive_is_verified_member_by_member_first(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        store = await manager.index()
        await store.delete_backup(backup.id)
        (adopted,) = await manager.list_backups({"time_range": "all"})
        assert adopted.metadata.get("adopted") and adopted.verified_at is None
        # Its sum is what adoption read from the file: its members are checked as well.
        verified = await manager.verify_backup(adopted.id)
    assert verified.verified_at is not None


# -- restore --------------------------------------------------------------------------------


async def test_the_safety_backup_holds_only_what_the_restore_replaces(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("UPDATE guilds SET prefix = 'changed'")
        db.close()
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        result = await manager.restore_backup(backup.id, {**YES, "restore_type": "database"})
    safety = result.safety_backup
    assert safety is not None and safety.backup_type is BackupType.DATABASE
    assert safety.file_path is not None and safety.file_path.endswith(".tar")  # uncompressed
    held = members_of(Path(safety.file_path))
    assert set(held) == {"data/app.db", "manifest.json"}
    restored = world.base / "safety.db"
    restored.write_bytes(held["data/app.db"])
    assert rows(restored, "SELECT DISTINCT prefix FROM guilds") == [("changed",)]
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"
    assert backup.verified_at is not None or result.backup.verified_at is not None


async def test_a_failed_restore_puts_an_earlier_database_back_from_its_copy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitrelease.deploy import restore as restore_module
    from gitrelease.state import placing

    second = world.deploy / "data" / "second.db"
    with sqlite3.connect(second) as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES ('then')")
    db.close()
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        with sqlite3.connect(second) as db:
            db.execute("UPDATE t SET v = 'now'")
        db.close()
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("UPDATE guilds SET prefix = 'now'")
        db.close()
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        real_apply = placing._apply

        def fail_at_the_last_database(staged: Path, target: placing.Target, is_database: bool,
                *rest: object) -> None:
            live = target.path
            if live.name == "second.db":
                raise OSError(errno.EIO, "Input/output error")
            real_apply(staged, target, is_database, *rest)

        monkeypatch.setattr(placing, "_apply", fail_at_the_last_database)
        with pytest.raises(restore_module.RestoreFailed) as caught:
            await manager.restore_backup(backup.id, YES)
        monkeypatch.undo()
    assert "failed at data/second.db" in caught.value.message
    assert "were put back" in caught.value.message
    assert rows(world.deploy / "data" / "app.db", "SELECT DISTINCT prefix FROM guilds") == [
        ("now",)]  # restored first, then put back from the copy taken just before
    assert rows(second, "SELECT v FROM t") == [("now",)]
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"
    assert rows(world.deploy / "data" / "app.db", "PRAGMA integrity_check") == [("ok",)]
    leftovers = [p.name for p in (world.deploy / "data" / "backups").iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []


async def test_a_restore_creating_a_file_removes_it_again_on_failure(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitrelease.deploy import restore as restore_module
    from gitrelease.state import placing

    extra = world.deploy / "data" / "notes.json"
    extra.write_text("{}")
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        extra.unlink()
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:  # restored, and fails
            db.execute("UPDATE guilds SET prefix = 'now'")
        db.close()
        real_apply = placing._apply

        def fail_at_the_database(staged: Path, target: placing.Target, is_database: bool,
                *rest: object) -> None:
            if is_database:
                raise OSError(errno.EIO, "Input/output error")
            real_apply(staged, target, is_database, *rest)

        monkeypatch.setattr(placing, "_apply", fail_at_the_database)
        with pytest.raises(restore_module.RestoreFailed):
            await manager.restore_backup(backup.id, YES)
        monkeypatch.undo()
    assert not extra.exists()
    assert (world.deploy / ".env").read_text() == ENV_SECRET


async def test_a_damaged_archive_is_marked_by_the_restore_that_found_it(world: World) -> None:
    (world.deploy / "data" / "blob.bin").write_bytes(os.urandom(200_000))
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        path = Path(backup.file_path or "")
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF  # near the end: in the manifest or the padding, past the files
        path.write_bytes(bytes(data))
        before = world.state()
        with pytest.raises(VerificationFailed):
            await manager.restore_backup(backup.id, YES)
        (listed,) = await manager.list_backups({"time_range": "all"})
    assert listed.status is BackupStatus.CORRUPTED
    after = world.state()
    for name in (".env", "data/app.db", "data/blob.bin"):
        assert after["files"][name] == before["files"][name]


# -- rollback -------------------------------------------------------------------------------


async def test_rollback_without_a_backup_takes_no_safety_backup(world: World) -> None:
    from tests.deploy.test_rollback import installed_then_changed

    await installed_then_changed(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        before = {b.id for b in await manager.list_backups({"time_range": "all"})}
        await manager.rollback_to_version("previous", {**YES, "create_backup": False})
        after = {b.id for b in await manager.list_backups({"time_range": "all"})}
    assert after == before
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert (world.deploy / ".env").read_text() == ENV_SECRET
