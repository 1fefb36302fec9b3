"""A restore leaves alone what already is as backed up: it is neither unpacked, nor kept aside,
nor replaced; what differs in any way (content, size, mode, a pending SQLite file) is.

Real deployments, real archives, real SQLite: the inode of a live file says whether the
restore replaced it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from gitrelease.core.errors import VerificationFailed
from gitrelease.core.models import BackupStatus
from gitrelease.manager import ReleaseManager
from gitrelease.state.unchanged import header_marks, unchanged_files
from tests.conftest import ENV_SECRET, World, guilds
from tests.state.test_backups import members_of

YES = {"confirm": True}


@pytest.fixture(autouse=True)
def _env_as_kept(world: World) -> None:
    """.env as a backup records it and a restore leaves it: 0600 (a config file at another
    mode differs from its backup by that, and is restored to 0600)."""
    (world.deploy / ".env").chmod(0o600)


def _inodes(world: World, *names: str) -> dict[str, int]:
    return {name: (world.deploy / name).stat().st_ino for name in names}


def _json(world: World, count: int) -> list[str]:
    folder = world.deploy / "data" / "json"
    folder.mkdir()
    for n in range(count):
        (folder / f"guild_{n}.json").write_text(f'{{"guild": {n}, "xp": {n * 7}}}\n')
    return [f"data/json/guild_{n}.json" for n in range(count)]


async def test_a_restore_right_after_its_backup_replaces_nothing_and_still_verifies(
        world: World) -> None:
    names = [".env", "data/app.db", *_json(world, 5)]
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        before = _inodes(world, *names)
        result = await manager.restore_backup(backup.id, YES)
        (listed,) = await manager.list_backups({"time_range": "all"})
    assert result.restored == [] and result.safety_backup is None
    assert result.unchanged == len(names)
    assert _inodes(world, *names) == before  # not one of them rewritten
    assert listed.verified_at is not None  # the archive's sha256 was still checked
    assert result.to_dict()["unchanged"] == len(names)


async def test_only_the_files_that_changed_are_replaced_and_kept_aside(world: World) -> None:
    names = _json(world, 6)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        changed = world.deploy / names[2]
        changed.write_text('{"guild": 2, "xp": 0}\n')
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        different = [".env", names[2]]
        before = _inodes(world, *[n for n in names if n not in different], "data/app.db")
        result = await manager.restore_backup(backup.id, YES)
    assert sorted(result.restored) == sorted(different)
    assert result.unchanged == len(before)  # the other JSON files and the database
    assert _inodes(world, *before) == before
    assert changed.read_text() == '{"guild": 2, "xp": 14}\n'
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert result.safety_backup is not None
    held = members_of(Path(result.safety_backup.file_path or ""))
    assert set(held) == {"root/.env", f"data/{names[2].removeprefix('data/')}",
                         "manifest.json"}


async def test_same_bytes_with_another_mode_is_restored(world: World) -> None:
    env, notes = world.deploy / ".env", world.deploy / "data" / "notes.json"
    notes.write_text("{}")
    notes.chmod(0o640)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        env.chmod(0o644)  # a config file is kept and restored at 0600, whatever it was
        notes.chmod(0o600)
        result = await manager.restore_backup(backup.id, YES)
    assert sorted(result.restored) == [".env", "data/notes.json"]
    assert (env.stat().st_mode & 0o777, notes.stat().st_mode & 0o777) == (0o600, 0o640)
    assert env.read_text() == ENV_SECRET and notes.read_text() == "{}"


async def test_a_changed_database_is_restored_and_the_rest_left(world: World) -> None:
    names = _json(world, 3)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("UPDATE guilds SET prefix = 'changed'")
        db.close()
        before = _inodes(world, ".env", *names)
        result = await manager.restore_backup(backup.id, YES)
    assert result.restored == ["data/app.db"]
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert _inodes(world, ".env", *names) == before


async def test_a_damaged_archive_is_still_refused_when_nothing_needs_unpacking(
        world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        path = Path(backup.file_path or "")
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
        before = world.state()
        with pytest.raises(VerificationFailed, match="sha256"):
            await manager.restore_backup(backup.id, YES)
        (listed,) = await manager.list_backups({"time_range": "all"})
    assert listed.status is BackupStatus.CORRUPTED
    assert world.state()["files"] == before["files"]


async def test_a_missing_archive_is_said_even_when_nothing_changed(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        Path(backup.file_path or "").unlink()
        with pytest.raises(VerificationFailed, match="missing"):
            await manager.restore_backup(backup.id, YES)
        (listed,) = await manager.list_backups({"time_range": "all"})
    assert listed.status is BackupStatus.CORRUPTED and listed.problem == "the archive is missing"


def _entry(path: Path) -> dict[str, object]:
    return {"size": path.stat().st_size, "mode": path.stat().st_mode & 0o777,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_what_counts_as_unchanged(tmp_path: Path) -> None:
    plain, db, link = tmp_path / "plain.json", tmp_path / "app.db", tmp_path / "link.json"
    plain.write_text("{}")
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
    connection.close()
    entries = {"plain": _entry(plain), "db": {**_entry(db), "sqlite_header": header_marks(db)},
               "link": _entry(plain),
               "gone": _entry(plain), "dir": _entry(plain)}
    link.symlink_to(plain)  # a link is never unchanged: the restore replaces it
    # (for the operator's own link to a config file it passes the file, `placing.target_of`)
    (tmp_path / "dir").mkdir()
    targets = {"plain": plain, "db": db, "link": link, "gone": tmp_path / "gone",
               "dir": tmp_path / "dir"}
    assert unchanged_files(entries, targets, {"db"}) == {"plain", "db"}
    # A database from before the header marks were recorded is never taken as unchanged.
    older = {**entries, "db": _entry(db)}
    assert unchanged_files(older, targets, {"db"}) == {"plain"}
    # A pending SQLite file beside the database: its bytes do not say what it holds.
    (tmp_path / "app.db-wal").write_bytes(b"\0" * 32)
    assert unchanged_files(entries, targets, {"db"}) == {"plain"}
    (tmp_path / "app.db-wal").write_bytes(b"")
    (tmp_path / "app.db-journal").write_bytes(b"x")
    assert "db" not in unchanged_files(entries, targets, {"db"})
    (tmp_path / "app.db-journal").unlink()
    # A damaged journal-mode byte is not one of the marks a copy sets: SQLite would refuse
    # the file, so it is restored, never taken as the snapshot.
    good = db.read_bytes()
    db.write_bytes(good[:19] + b"\x03" + good[20:])
    assert "db" not in unchanged_files(entries, targets, {"db"})
    db.write_bytes(good)
    # Same size, other bytes; same bytes, other mode.
    plain.write_text("[]")
    assert unchanged_files(entries, targets, {"db"}) == {"db"}
    plain.write_text("{}")
    os.chmod(plain, 0o600 if entries["plain"]["mode"] != 0o600 else 0o644)
    assert unchanged_files(entries, targets, {"db"}) == {"db"}


async def test_a_bots_wal_database_as_backed_up_is_left_and_one_with_pending_commits_is_not(
        world: World) -> None:
    live = world.deploy / "data" / "app.db"
    with sqlite3.connect(live) as db:
        db.execute("PRAGMA journal_mode = WAL")  # as bots on aiosqlite often set it
    db.close()
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        inode = live.stat().st_ino
        same = await manager.restore_backup(backup.id, YES)
        assert same.restored == [] and live.stat().st_ino == inode
        # The bot writes and keeps its connection: the commit is in the -wal, not the file.
        bot = sqlite3.connect(live, isolation_level=None)
        try:
            bot.execute("PRAGMA wal_autocheckpoint = 0")
            bot.execute("INSERT INTO guilds VALUES (3, '#')")
            assert (world.deploy / "data" / "app.db-wal").stat().st_size > 0
            result = await manager.restore_backup(backup.id, YES)
            assert result.restored == ["data/app.db"]
            assert bot.execute("SELECT * FROM guilds ORDER BY id").fetchall() == [
                (1, "!"), (2, "?")]  # the bot's own connection sees the restored rows
        finally:
            bot.close()
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
