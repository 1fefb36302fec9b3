"""A restore against a hostile deployment and hostile archives: links at and above its
targets, crafted modes and member names. It never writes through a link it did not take the
backup through, never leaves a secret readable by others, and refuses what it cannot place,
naming the path, with nothing changed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
from pathlib import Path

import pytest

from gitrelease.core.errors import GitReleaseError
from gitrelease.manager import ReleaseManager
from tests.conftest import ENV_SECRET, World

YES = {"confirm": True}
PRECIOUS = b"the operator's own file, outside the deployment\n"


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        found = connection.execute("SELECT * FROM guilds ORDER BY id").fetchall()
    connection.close()
    return found


def make_db(path: Path, prefix: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE guilds (id INTEGER PRIMARY KEY, prefix TEXT)")
        connection.execute("INSERT INTO guilds VALUES (1, ?)", (prefix,))
    connection.close()


def planted(path: Path, backup_id: str, files: dict[str, tuple[bytes, str, int]]) -> None:
    """A well-formed archive whose manifest says what an attacker likes: name -> (bytes,
    kind, mode), the tar member written with that mode too."""
    listed = [{"path": name, "kind": kind, "size": len(data), "mode": mode,
               "sha256": hashlib.sha256(data).hexdigest()}
              for name, (data, kind, mode) in files.items()]
    manifest = {"backup_id": backup_id, "backup_type": "full", "name": backup_id,
                "created_at": "2024-01-01T00:00:00+00:00", "files": listed}
    with tarfile.open(path, "w:gz") as tar:
        for name, (data, _kind, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        encoded = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(encoded)
        tar.addfile(info, io.BytesIO(encoded))


def live_files(state: dict[str, object]) -> dict[str, str]:
    """The deployment's files, without the archives and the operation lock."""
    files = state["files"]
    assert isinstance(files, dict)
    return {k: v for k, v in files.items()
            if not k.startswith(("data/backups/", "data/gitrelease.lock"))}


# -- a link at a file the restore replaces -------------------------------------------------


@pytest.mark.parametrize("points", ["outside", "inside"])
async def test_a_link_at_a_data_file_is_replaced_never_written_through(
    world: World, tmp_path: Path, points: str
) -> None:
    """data/notes.json replaced by a link after the backup: the link itself is replaced by
    the backed-up file, and what it points at (outside the deployment, or another file of
    it) is left exactly as it was."""
    notes = world.deploy / "data" / "notes.json"
    notes.write_text('{"backed": "up"}')
    other = world.deploy / "data" / "other.json"
    other.write_text('{"other": 1}')
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("data_only")
        victim = tmp_path / "victim.txt" if points == "outside" else other
        if points == "outside":
            victim.write_bytes(PRECIOUS)
        before = victim.read_bytes()
        notes.unlink()
        notes.symlink_to(victim)
        result = await manager.restore_backup(backup.id, YES)
    assert victim.read_bytes() == before
    assert not notes.is_symlink() and notes.read_text() == '{"backed": "up"}'
    assert "data/notes.json" in result.restored
    assert any("data/notes.json" in w and "link" in w for w in result.warnings)


async def test_a_link_with_the_backed_up_bytes_is_not_unchanged(
    world: World, tmp_path: Path
) -> None:
    """A link to a file with the very bytes and mode backed up is still a link the backup
    did not hold: replaced, never called unchanged and left pointing outside."""
    notes = world.deploy / "data" / "notes.json"
    notes.write_text("same")
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("data_only")
        twin = tmp_path / "twin.json"
        twin.write_text("same")
        os.chmod(twin, notes.stat().st_mode & 0o777)
        notes.unlink()
        notes.symlink_to(twin)
        result = await manager.restore_backup(backup.id, YES)
    assert not notes.is_symlink() and notes.read_text() == "same"
    assert "data/notes.json" in result.restored


async def test_a_linked_database_is_not_written_through(world: World, tmp_path: Path) -> None:
    """data/app.db replaced by a link to another SQLite file: SQLite never writes the
    restored pages into that file; the link is replaced by the backed-up database."""
    live = world.deploy / "data" / "app.db"
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("database")
        elsewhere = tmp_path / "elsewhere.db"
        make_db(elsewhere, "theirs")
        live.unlink()
        live.symlink_to(elsewhere)
        result = await manager.restore_backup(backup.id, YES)
    assert rows(elsewhere) == [(1, "theirs")]
    assert not live.is_symlink() and rows(live) == [(1, "!"), (2, "?")]
    assert "data/app.db" in result.restored


async def test_a_failed_restore_puts_the_link_back(world: World, tmp_path: Path) -> None:
    """The link is kept aside like any replaced file: a restore that fails after replacing
    it puts the link itself back, still pointing where it did."""
    notes = world.deploy / "data" / "notes.json"
    notes.write_text("{}")
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        victim = tmp_path / "victim.txt"
        victim.write_bytes(PRECIOUS)
        notes.unlink()
        notes.symlink_to(victim)
        # The database, replaced last, is now a directory: the restore fails there.
        (world.deploy / "data" / "app.db").unlink()
        (world.deploy / "data" / "app.db").mkdir()
        with pytest.raises(GitReleaseError, match=r"app\.db") as caught:
            await manager.restore_backup(backup.id, YES)
    assert "were put back" in caught.value.message
    assert notes.is_symlink() and notes.readlink() == victim
    assert victim.read_bytes() == PRECIOUS
    assert (world.deploy / ".env").read_text() == ENV_SECRET


# -- the operator's own link to a config file ------------------------------------------------


async def test_a_config_link_moved_after_the_backup_is_not_followed(
    world: World, tmp_path: Path
) -> None:
    """The backup read .env through a link to the secrets file: a restore writes through
    that same link. A link that now points somewhere else is not the operator's link the
    backup knew: it is replaced, and its new target left alone."""
    secrets = tmp_path / "secrets.env"
    secrets.write_text(ENV_SECRET)
    env = world.deploy / ".env"
    env.unlink()
    env.symlink_to(secrets)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("config")
        victim = tmp_path / "victim.txt"
        victim.write_bytes(PRECIOUS)
        env.unlink()
        env.symlink_to(victim)
        result = await manager.restore_backup(backup.id, YES)
    assert victim.read_bytes() == PRECIOUS
    assert not env.is_symlink() and env.read_text() == ENV_SECRET
    assert env.stat().st_mode & 0o777 == 0o600
    assert any(".env" in w and "link" in w for w in result.warnings)


# -- links above a target ------------------------------------------------------------------


def _folder_made_a_link(folder: Path, outside: Path, name: str) -> Path:
    """`folder` (holding only `name`) replaced by a link to `outside`, where a precious
    file of that name waits to be written through."""
    outside.mkdir()
    (outside / name).write_bytes(PRECIOUS)
    (folder / name).unlink()
    folder.rmdir()
    folder.symlink_to(outside)
    return outside


async def test_a_linked_folder_in_the_data_dir_is_refused_naming_it(
    world: World, tmp_path: Path
) -> None:
    files = world.deploy / "data" / "files"
    files.mkdir()
    (files / "user0.json").write_text('{"user": 0}')
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("data_only")
        outside = _folder_made_a_link(files, tmp_path / "outside", "user0.json")
        before = world.state()
        with pytest.raises(GitReleaseError) as caught:
            await manager.restore_backup(backup.id, YES)
    assert "data/files" in caught.value.message and "link" in caught.value.message
    assert "not written by gitrelease" not in caught.value.hint  # the archive is fine
    assert (outside / "user0.json").read_bytes() == PRECIOUS
    assert live_files(world.state()) == live_files(before)


async def test_a_linked_folder_above_a_config_file_is_refused(
    world: World, tmp_path: Path
) -> None:
    conf = world.deploy / "conf"
    conf.mkdir()
    (conf / "bot.toml").write_text("a = 1\n")
    (world.deploy / "data" / "settings.toml").write_text('config_paths = ["conf/bot.toml"]\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("config")
        outside = _folder_made_a_link(conf, tmp_path / "etc", "bot.toml")
        with pytest.raises(GitReleaseError) as caught:
            await manager.restore_backup(backup.id, YES)
    assert "conf" in caught.value.message and "link" in caught.value.message
    assert (outside / "bot.toml").read_bytes() == PRECIOUS


async def test_a_data_dir_that_is_a_link_is_where_the_data_lives(
    world: World, tmp_path: Path
) -> None:
    """`data` a link to another disk is the operator's layout (backups read through it):
    a restore writes there, and its safety backup holds what it replaced."""
    real = tmp_path / "srv"
    (world.deploy / "data").rename(real)
    (world.deploy / "data").symlink_to(real)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("database")
        with sqlite3.connect(real / "app.db") as db:
            db.execute("DELETE FROM guilds")
        db.close()
        result = await manager.restore_backup(backup.id, YES)
    assert rows(real / "app.db") == [(1, "!"), (2, "?")]
    assert result.safety_backup is not None


# -- crafted manifests ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["config", "data"])
async def test_restored_config_files_are_private_whatever_the_archive_says(
    world: World, kind: str
) -> None:
    """A manifest (and tar header) giving .env and settings.toml mode 0644, or calling them
    data: restored 0600 all the same."""
    backups = world.deploy / "data" / "backups"
    backups.mkdir(parents=True)
    planted(backups / "backup_20240101_000000.tar.gz", "backup_20240101_000000", {
        "root/.env": (b"DISCORD_TOKEN=planted\n", kind, 0o644),
        "data/settings.toml": (b"auto_cleanup = false\n", kind, 0o666),
        "data/notes.json": (b"{}", "data", 0o640)})
    old = os.umask(0)
    try:
        async with await ReleaseManager.open(world.deploy) as manager:
            await manager.restore_backup("backup_20240101_000000",
                                         {**YES, "restore_type": "all"})
    finally:
        os.umask(old)
    assert (world.deploy / ".env").stat().st_mode & 0o777 == 0o600
    assert (world.deploy / "data" / "settings.toml").stat().st_mode & 0o777 == 0o600
    assert (world.deploy / "data" / "notes.json").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("member", [
    "root//etc/cron.d/owned", "data//tmp/owned", "/data/owned", "data/./../owned",
    "root/../owned", "data/files/../../../owned", "owned", "root/", "data\\..\\owned",
])
async def test_crafted_member_names_are_refused_with_nothing_changed(
    world: World, member: str
) -> None:
    backups = world.deploy / "data" / "backups"
    backups.mkdir(parents=True)
    planted(backups / "backup_20240101_000000.tar.gz", "backup_20240101_000000",
            {member: (b"owned\n", "data", 0o644)})
    before = world.state()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(GitReleaseError):
            await manager.restore_backup("backup_20240101_000000",
                                         {**YES, "verify_backup": False})
    assert live_files(world.state()) == live_files(before)
    assert not any(p.name == "owned" for p in world.base.rglob("owned"))
