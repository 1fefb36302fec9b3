"""Backups against real files, real SQLite and real tar archives."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
import zstandard

from gitrelease.core.errors import InsufficientDiskSpace, InvalidInput, VerificationFailed
from gitrelease.core.models import BackupStatus, utcnow
from gitrelease.manager import ReleaseManager
from gitrelease.state import archive
from gitrelease.state.backups import BackupNotFound
from tests.conftest import ENV_SECRET, World, git

REPO_ROOT = Path(__file__).resolve().parents[2]


def members_of(path: Path) -> dict[str, bytes]:
    """The archive read back with nothing of gitrelease's: tarfile and the codec alone."""
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        result = connection.execute(sql).fetchall()
    connection.close()
    return result


def write_settings(world: World, text: str) -> None:
    (world.deploy / "data" / "settings.toml").write_text(textwrap.dedent(text))


async def manager_for(world: World) -> ReleaseManager:
    return await ReleaseManager.open(world.deploy)


@pytest.fixture
def data_files(world: World) -> World:
    files = world.deploy / "data" / "files"
    files.mkdir()
    for n in range(5):
        (files / f"user{n}.json").write_text(json.dumps({"user": n}))
    (world.deploy / "data" / "bot.log").write_text("log line\n")
    logs = world.deploy / "data" / "update_logs"
    logs.mkdir()
    (logs / "old.log").write_text("update log\n")
    return world


# -- create --------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_full_backup_holds_databases_config_and_data(
    data_files: World, compression: str
) -> None:
    world = data_files
    write_settings(world, f'compression = "{compression}"\n')
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("full", {"backup_name": "pre_v2",
                                                      "description": "before v2"})
    path = Path(backup.file_path or "")
    assert path.name == f"{backup.id}{'.tar.gz' if compression == 'gzip' else '.tar.zst'}"
    assert backup.status is BackupStatus.COMPLETED and backup.verified_at is not None
    assert backup.tag == "v1.0.0" and backup.commit == world.head()
    assert backup.compressed_size == path.stat().st_size
    members = members_of(path)
    assert set(members) == {"manifest.json", "data/app.db", "root/.env", "data/settings.toml",
                            "data/files/user0.json", "data/files/user1.json",
                            "data/files/user2.json", "data/files/user3.json",
                            "data/files/user4.json",
                            # each page's hash, for the next backup to store only what differs
                            "pages/data/app.db.hashes"}
    assert members["root/.env"] == ENV_SECRET.encode()
    manifest = json.loads(members["manifest.json"])
    assert manifest["backup_id"] == backup.id and manifest["tag"] == "v1.0.0"
    assert manifest["commit"] == world.head() and manifest["version"] == "1.0.0"
    assert "pytest" in (manifest["pip_freeze"] or "")
    by_path = {f["path"]: f for f in manifest["files"]}
    assert by_path["data/app.db"]["kind"] == "database"
    assert by_path["root/.env"]["kind"] == "config" and by_path["root/.env"]["mode"] == 0o600
    assert backup.file_size == sum(f["size"] for f in manifest["files"])
    assert not any(name.startswith("data/update_manager.db") for name in members)


async def test_types_and_logs(data_files: World) -> None:
    world = data_files
    async with await manager_for(world) as manager:
        database = await manager.create_backup("database")
        config = await manager.create_backup("config", {"compress": False})
        data = await manager.create_backup("data_only", {"include_logs": True})
    assert set(members_of(Path(database.file_path or ""))) == {"manifest.json", "data/app.db",
                                                               "pages/data/app.db.hashes"}
    assert Path(config.file_path or "").name.endswith(".tar")
    assert set(members_of(Path(config.file_path or ""))) == {"manifest.json", "root/.env"}
    assert {"data/bot.log", "data/update_logs/old.log", "data/files/user0.json"} <= set(
        members_of(Path(data.file_path or "")))


async def test_archive_is_private_whatever_the_umask(world: World) -> None:
    old = os.umask(0)
    try:
        async with await manager_for(world) as manager:
            backup = await manager.create_backup("config")
    finally:
        os.umask(old)
    assert Path(backup.file_path or "").stat().st_mode & 0o777 == 0o600


async def test_snapshot_keeps_rows_still_only_in_the_wal(world: World) -> None:
    live = world.deploy / "data" / "wal.db"
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("CREATE TABLE t (n INTEGER)")
    writer.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(500)])
    try:
        assert (world.deploy / "data" / "wal.db-wal").stat().st_size > 0
        async with await manager_for(world) as manager:
            backup = await manager.create_backup("database")
        snapshot = world.base / "snapshot.db"
        snapshot.write_bytes(members_of(Path(backup.file_path or ""))["data/wal.db"])
        assert rows(snapshot, "SELECT COUNT(*) FROM t") == [(500,)]
        assert rows(snapshot, "PRAGMA integrity_check") == [("ok",)]
        assert "data/wal.db-wal" not in members_of(Path(backup.file_path or ""))
    finally:
        writer.close()


WRITER = """
import sqlite3, sys, time, random
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode = WAL")
db.execute("CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)")
print("ready", flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    x = random.randint(1, 1000)
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO ledger (amount, pad) VALUES (?, randomblob(2000))", (x,))
    db.execute("INSERT INTO ledger (amount, pad) VALUES (?, randomblob(2000))", (-x,))
    db.execute("COMMIT")
"""


async def test_snapshot_under_a_live_writer_process(world: World) -> None:
    live = world.deploy / "data" / "ledger.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live), "20"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        committed_before = rows(live, "SELECT COUNT(*) FROM ledger")[0][0]
        assert committed_before > 0
        async with await manager_for(world) as manager:
            backup = await manager.create_backup("database")
        assert writer.poll() is None  # the writer never stopped
    finally:
        writer.kill()
        writer.wait()
    snapshot = world.base / "ledger-snapshot.db"
    snapshot.write_bytes(members_of(Path(backup.file_path or ""))["data/ledger.db"])
    assert rows(snapshot, "PRAGMA integrity_check") == [("ok",)]
    (count, total), = rows(snapshot, "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger")
    assert total == 0  # every transaction is whole
    assert count >= committed_before  # and none committed before the snapshot is missing


async def test_memory_does_not_grow_with_the_data(world: World) -> None:
    import tracemalloc

    big = world.deploy / "data" / "blob.bin"
    with big.open("wb") as handle:
        for _ in range(40):
            handle.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        async with await manager_for(world) as manager:
            await manager.create_backup("data_only")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes for a 40 MiB file"


async def test_refuses_when_the_disk_is_too_small(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as real_shutil

    from gitrelease.state import archives

    usage = real_shutil.disk_usage(world.base)
    monkeypatch.setattr(archives.shutil, "disk_usage",
                        lambda path: usage._replace(free=1024))
    async with await manager_for(world) as manager:
        with pytest.raises(InsufficientDiskSpace):
            await manager.create_backup("full")
        listed = await manager.list_backups({"time_range": "all"})
    assert [b.status for b in listed] == [BackupStatus.FAILED]
    assert [p.name for p in (world.deploy / "data" / "backups").iterdir()] == []


async def test_injected_enospc_leaves_nothing_behind(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (world.deploy / "data" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    real_write = archive._HashingSink.write

    def failing(self: archive._HashingSink, data: bytes) -> int:
        if self.size > 1024 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(archive._HashingSink, "write", failing)
    async with await manager_for(world) as manager:
        with pytest.raises(InsufficientDiskSpace) as caught:
            await manager.create_backup("full", {"compress": False})
        (failed,) = await manager.list_backups({"time_range": "all"})
    assert "disk filled up" in caught.value.message
    assert failed.status is BackupStatus.FAILED and "disk filled up" in (failed.problem or "")
    assert list((world.deploy / "data" / "backups").iterdir()) == []


async def test_kill_9_while_writing_leaves_no_completed_backup(world: World) -> None:
    (world.deploy / "data" / "blob.bin").write_bytes(os.urandom(1024 * 1024))
    marker = world.base / "paused"
    process = subprocess.Popen(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "backup", "create"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "GITRELEASE_PAUSE_AT": "archive:member-written",
             "GITRELEASE_PAUSE_MARKER": str(marker)})
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the backup never reached its pause point"
    backups_dir = world.deploy / "data" / "backups"
    assert any(".tmp" in p.name for p in backups_dir.iterdir())  # caught mid-write
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    index = world.deploy / "data" / "update_manager.db"
    assert rows(index, "SELECT status FROM backups") == [("creating",)]
    async with await manager_for(world) as manager:
        listed = await manager.list_backups({"time_range": "all"})
    assert [b.status for b in listed] == [BackupStatus.FAILED]
    assert listed[0].problem == "interrupted while being written"
    assert list(backups_dir.iterdir()) == []


# -- list, verify ---------------------------------------------------------------------------


async def test_list_filters_sorts_and_finds_by_name(world: World) -> None:
    async with await manager_for(world) as manager:
        small = await manager.create_backup("config", {"backup_name": "zeta"})
        (world.deploy / "data" / "blob.bin").write_bytes(os.urandom(200_000))
        big = await manager.create_backup("full", {"backup_name": "alpha"})
        by_date = await manager.list_backups({"time_range": "all"})
        by_size = await manager.list_backups({"time_range": "all", "sort_by": "size"})
        by_name = await manager.list_backups({"time_range": "all", "sort_by": "name"})
        only_config = await manager.list_backups({"backup_type": "config"})
        limited = await manager.list_backups({"limit": 1})
        verified = await manager.verify_backup("zeta")
    assert [b.id for b in by_date] == [big.id, small.id]
    assert [b.name for b in by_size] == ["alpha", "zeta"]
    assert [b.name for b in by_name] == ["alpha", "zeta"]
    assert [b.id for b in only_config] == [small.id]
    assert len(limited) == 1
    assert verified.id == small.id and verified.to_dict()["verified"] is True


@pytest.mark.parametrize("filters", [
    {"time_range": "1y"}, {"limit": 0}, {"limit": 51}, {"limit": "5"}, {"limit": True},
    {"sort_by": "age"}, {"backup_type": "everything"}, {"colour": "red"},
])
async def test_bad_list_filters(world: World, filters: dict[str, object]) -> None:
    before = world.state()
    async with await manager_for(world) as manager:
        with pytest.raises(InvalidInput):
            await manager.list_backups(filters)
    assert world.state() == before


def corrupt(path: Path, how: str) -> None:
    if how == "empty":
        path.write_bytes(b"")
    elif how == "header":
        path.write_bytes(b"XXXX" + path.read_bytes()[4:])
    elif how == "byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("how", ["byte", "truncated", "missing", "empty", "header"])
async def test_damaged_archive_fails_verify_and_restore_touches_nothing(
    world: World, how: str, compression: str
) -> None:
    (world.deploy / "data" / "blob.bin").write_bytes(os.urandom(300_000))
    if compression != "none":
        write_settings(world, f'compression = "{compression}"\n')
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("full", {"compress": compression != "none"})
        corrupt(Path(backup.file_path or ""), how)
        (world.deploy / ".env").write_text("DISCORD_TOKEN=new\n")
        before = world.state()
        with pytest.raises(VerificationFailed) as caught:
            await manager.verify_backup(backup.id)
        with pytest.raises(VerificationFailed):
            await manager.restore_backup(backup.id, {"confirm": True})
        (listed,) = [b for b in await manager.list_backups({"time_range": "all"})
                     if b.id == backup.id]
    assert listed.status is BackupStatus.CORRUPTED
    assert listed.problem == caught.value.message
    after = world.state()
    for name in (".env", "data/app.db", "data/blob.bin"):
        assert after["files"][name] == before["files"][name]
    assert len([b for b in await _all(world)]) == 1  # no safety backup was even taken


async def _all(world: World) -> list:
    async with await manager_for(world) as manager:
        return await manager.list_backups({"time_range": "all"})


async def test_unknown_backup_id(world: World) -> None:
    before = world.state()
    async with await manager_for(world) as manager:
        with pytest.raises(BackupNotFound):
            await manager.verify_backup("backup_19990101_000000")
        with pytest.raises(BackupNotFound):
            await manager.restore_backup("nope", {"confirm": True})
        with pytest.raises(BackupNotFound):
            await manager.delete_backup("nope", confirm=True)
    assert world.state() == before


# -- restore -------------------------------------------------------------------------------


async def test_restore_brings_back_database_and_env_while_a_connection_is_open(
    data_files: World,
) -> None:
    world = data_files
    live = world.deploy / "data" / "app.db"
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("full")
        bot = sqlite3.connect(live)  # the bot keeps its connection open throughout
        try:
            bot.execute("INSERT INTO guilds VALUES (3, '$')")
            bot.execute("UPDATE guilds SET prefix = 'changed'")
            bot.commit()
            (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
            (world.deploy / "data" / "files" / "user0.json").write_text("{}")
            old = os.umask(0)
            try:
                result = await manager.restore_backup(backup.id, {"confirm": True})
            finally:
                os.umask(old)
            assert bot.execute("SELECT * FROM guilds ORDER BY id").fetchall() == [
                (1, "!"), (2, "?")]
        finally:
            bot.close()
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert (world.deploy / ".env").stat().st_mode & 0o777 == 0o600
    assert json.loads((world.deploy / "data" / "files" / "user0.json").read_text()) == {
        "user": 0}
    assert result.safety_backup is not None and result.safety_backup.auto_created
    assert ".env" in result.restored and "data/app.db" in result.restored
    safety = members_of(Path(result.safety_backup.file_path or ""))
    assert safety["root/.env"] == b"DISCORD_TOKEN=rotated\n"
    assert rows(live, "PRAGMA integrity_check") == [("ok",)]


async def test_restore_of_one_type_leaves_the_others(world: World) -> None:
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("full")
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("DELETE FROM guilds")
        db.close()
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        result = await manager.restore_backup(backup.name, {"confirm": True,
                                                            "restore_type": "database"})
    assert result.restored == ["data/app.db"]
    assert rows(world.deploy / "data" / "app.db", "SELECT COUNT(*) FROM guilds") == [(2,)]
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"


@pytest.mark.parametrize("options", [
    {}, {"confirm": False}, {"confirm": "yes"}, {"confirm": 1},
    {"confirm": True, "restore_type": "everything"},
    {"confirm": True, "verify_backup": "no"}, {"confirm": True, "colour": "red"},
])
async def test_bad_restore_options_change_nothing(world: World, options: dict) -> None:
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("full")
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        before = world.state()
        with pytest.raises(InvalidInput):
            await manager.restore_backup(backup.id, options)
    assert world.state() == before


async def test_failure_half_way_puts_back_what_was_replaced(
    data_files: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = data_files
    from gitrelease.deploy import restore as restore_module
    from gitrelease.state import placing

    async with await manager_for(world) as manager:
        backup = await manager.create_backup("full")
        members = [f["path"] for f in backup.metadata["manifest"]["files"]]
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("UPDATE guilds SET prefix = 'changed'")
        db.close()
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        for n in range(5):
            (world.deploy / "data" / "files" / f"user{n}.json").write_text("changed")
        real_apply = placing._apply
        # Files are swapped in first, databases last: everything before it is replaced,
        # then it fails.
        last = "data/app.db"
        assert sorted(members)[-1] != last
        calls: list[str] = []

        def apply_then_fail(staged: Path, target: placing.Target, is_database: bool,
                *rest: object) -> None:
            live = target.path
            calls.append(live.name)
            if len(calls) == len(members):
                raise OSError(errno.EIO, "Input/output error")
            real_apply(staged, target, is_database, *rest)

        monkeypatch.setattr(placing, "_apply", apply_then_fail)
        with pytest.raises(restore_module.RestoreFailed) as caught:
            await manager.restore_backup(backup.id, {"confirm": True})
        monkeypatch.undo()
    assert f"failed at {last}" in caught.value.message
    assert "were put back" in caught.value.message
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"
    assert rows(world.deploy / "data" / "app.db", "SELECT DISTINCT prefix FROM guilds") == [
        ("changed",)]
    for n in range(5):
        assert (world.deploy / "data" / "files" / f"user{n}.json").read_text() == "changed"


# -- retention, delete, reconcile ------------------------------------------------------------


async def test_retention_keeps_protected_backups(world: World) -> None:
    write_settings(world, "max_backups = 2\nauto_cleanup = false\n")
    async with await manager_for(world) as manager:
        # Full backups, none the base of another: chains are tests/state/test_chain_retention.py
        full = {"full": True}
        kept = await manager.create_backup("config", {"keep": True})
        first = await manager.create_backup("config", full)
        second = await manager.create_backup("config", full)
        newest = await manager.create_backup("config", full)
        store = await manager.index()
        second.created_at = utcnow() - timedelta(days=1)
        await store.save_backup(second)
        dry = await manager.prune_backups(dry_run=True)
        assert {b.id for b in dry.deleted} == {first.id, second.id}
        assert len(await manager.list_backups({"time_range": "all"})) == 4
        result = await manager.prune_backups()
        remaining = {b.id for b in await manager.list_backups({"time_range": "all"})}
    assert {b.id for b in result.deleted} == {first.id, second.id}
    assert remaining == {kept.id, newest.id}
    assert result.kept[kept.id] == "marked keep"
    assert result.kept[newest.id] == "newest completed backup"
    assert not Path(first.file_path or "").exists()


async def test_retention_days_and_newest_of_the_deployed_tag(world: World) -> None:
    write_settings(world, "backup_retention_days = 30\nauto_cleanup = false\n"
                          "require_backup_before_update = false\n")
    async with await manager_for(world) as manager:
        store = await manager.index()
        of_tag = await manager.create_backup("config")  # at v1.0.0
        await manager.install_updates("bot", {"backup_before": False})
        too_old = await manager.create_backup("config", {"full": True})  # at v1.10.0
        newest = await manager.create_backup("config", {"full": True})
        for backup, days in ((of_tag, 40), (too_old, 50)):
            backup.created_at = utcnow() - timedelta(days=days)
            await store.save_backup(backup)
        git(world.deploy, "checkout", "--quiet", "v1.0.0")  # the operator went back
        result = await manager.prune_backups()
    assert [b.id for b in result.deleted] == [too_old.id]
    assert result.kept[of_tag.id] == "newest backup of the deployed tag v1.0.0"
    assert result.kept[newest.id] == "newest completed backup"


async def test_auto_cleanup_prunes_after_create(world: World) -> None:
    write_settings(world, "max_backups = 1\n")
    async with await manager_for(world) as manager:
        for _ in range(3):
            await manager.create_backup("config", {"full": True})  # none another's base
        listed = await manager.list_backups({"time_range": "all"})
    assert len(listed) == 1


async def test_delete_needs_confirmation(world: World) -> None:
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("config")
        with pytest.raises(InvalidInput):
            await manager.delete_backup(backup.id)
        assert Path(backup.file_path or "").exists()
        await manager.delete_backup(backup.id, confirm=True)
        assert await manager.list_backups({"time_range": "all"}) == []
    assert not Path(backup.file_path or "").exists()


async def test_interrupted_delete_is_finished_by_reconciliation(world: World) -> None:
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("config")
        store = await manager.index()
        backup.deleting = True  # the mark was written, then the process died
        await store.save_backup(backup)
        assert await manager.list_backups({"time_range": "all"}) == []
    assert not Path(backup.file_path or "").exists()


async def test_lost_index_is_rebuilt_from_the_archives(world: World) -> None:
    async with await manager_for(world) as manager:
        first = await manager.create_backup("full", {"backup_name": "before", "keep": True})
        second = await manager.create_backup("config", {"description": "two"})
    for suffix in ("", "-wal", "-shm"):
        (world.deploy / "data" / f"update_manager.db{suffix}").unlink(missing_ok=True)
    async with await manager_for(world) as manager:
        listed = {b.id: b for b in await manager.list_backups({"time_range": "all"})}
        assert set(listed) == {first.id, second.id}
        assert listed[first.id].name == "before"
        assert not listed[first.id].keep  # an archive's own word is not trusted for that
        assert listed[first.id].checksum == first.checksum
        assert listed[second.id].description == "two"
        assert listed[first.id].tag == "v1.0.0"
        restored = await manager.restore_backup("before", {"confirm": True})
    assert ".env" in restored.restored


async def test_missing_archive_is_marked_at_reconciliation(world: World) -> None:
    async with await manager_for(world) as manager:
        backup = await manager.create_backup("config")
        Path(backup.file_path or "").unlink()
        (listed,) = await manager.list_backups({"time_range": "all"})
    assert listed.status is BackupStatus.CORRUPTED
    assert listed.problem == "the archive is missing"
