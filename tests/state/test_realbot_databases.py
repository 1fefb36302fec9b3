"""Databases wherever a real bot keeps them, honest restores, and a data dir git leaves alone.

On the `realbot` deployment: its SQLite database is ``database/database.db`` (git-ignored, not
under ``data/``), its config is ``.env``, and it has no ``data/`` until gitrelease makes one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from gitrelease.core.errors import BackupFailed, InvalidInput
from gitrelease.core.settings import Settings
from gitrelease.git.repo import GitRepo
from gitrelease.manager import ReleaseManager
from gitrelease.state.databases import MAX_PROBES, find_databases
from gitrelease.state.sources import Layout, would_hold
from gitrelease.state.unpack import UnsafeArchive
from tests.conftest import REPO_ROOT, World, git
from tests.realbot import BOT_TOKEN, DATABASE, users


def gitrelease(deploy: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(deploy), *args],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def members(archive: Path) -> dict[str, bytes]:
    """The archive read with tarfile and the codec alone (zstd, gzip or plain tar)."""
    from tests.state.test_backups import members_of

    return members_of(archive)


def rows_of(data: bytes, tmp_path: Path) -> list[tuple]:
    copy = tmp_path / "copy.db"
    copy.write_bytes(data)
    with sqlite3.connect(copy) as db:
        found = db.execute("SELECT * FROM users ORDER BY id").fetchall()
    db.close()
    copy.unlink()
    return found


def make_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()


# -- what a backup holds -------------------------------------------------------------------


@pytest.mark.parametrize("backup_type", ["full", "database"])
async def test_the_database_outside_data_is_backed_up(
    realbot: World, tmp_path: Path, backup_type: str
) -> None:
    async with await ReleaseManager.open(realbot.deploy) as manager:
        backup = await manager.create_backup(backup_type)
    held = members(Path(backup.file_path or ""))
    assert "root/database/database.db" in held
    assert rows_of(held["root/database/database.db"], tmp_path) == [(1, "ada"), (2, "grace")]
    manifest = json.loads(held["manifest.json"])
    kinds = {f["path"]: f["kind"] for f in manifest["files"]}
    assert kinds["root/database/database.db"] == "database"
    assert ("root/.env" in held) is (backup_type == "full")
    assert backup.warnings == [] and backup.to_dict()["warnings"] == []


async def test_a_restore_brings_the_rows_back_and_says_paths_as_the_operator_knows_them(
    realbot: World,
) -> None:
    async with await ReleaseManager.open(realbot.deploy) as manager:
        backup = await manager.create_backup("full")
    with sqlite3.connect(realbot.deploy / DATABASE) as db:
        db.execute("DELETE FROM users")
        db.execute("INSERT INTO users VALUES (9, 'mallory')")
    db.close()
    out = gitrelease(realbot.deploy, "backup", "restore", backup.id, "--yes", "--type",
                     "database").stdout
    assert users(realbot.deploy) == [(1, "ada"), (2, "grace")]
    assert "Restored 1 file from" in out and "1 files" not in out
    assert "  database/database.db" in out and "root/" not in out
    assert "warning" not in out  # taken at the release that is checked out
    (realbot.deploy / ".env").write_text("TOKEN=rotated\n")
    result = json.loads(gitrelease(realbot.deploy, "--json", "backup", "restore", backup.id,
                                   "--yes").stdout)
    # The database was restored just before: it is left as it is, only .env is put back.
    assert result["restored"] == [".env"] and result["unchanged"] >= 1
    assert result["warnings"] == []
    assert (realbot.deploy / ".env").read_text() == BOT_TOKEN
    (realbot.deploy / ".env").write_text("TOKEN=rotated again\n")
    text = gitrelease(realbot.deploy, "backup", "restore", backup.id, "--yes").stdout
    assert "Restored " in text and "  .env" in text and "root/" not in text
    assert "real-bot-token-value" not in out + text + json.dumps(result)


async def test_check_and_status_list_what_a_backup_would_hold(realbot: World) -> None:
    checked = json.loads(gitrelease(realbot.deploy, "--json", "check").stdout)
    assert checked["backup_holds"]["databases"] == ["database/database.db"]
    assert checked["backup_holds"]["config"] == [".env"]
    status = json.loads(gitrelease(realbot.deploy, "--json", "status").stdout)
    assert status["backup_holds"]["databases"] == ["database/database.db"]
    assert status["backup_holds"]["config"] == [".env"]
    assert status["backup_holds"]["data"] == []  # gitrelease's own files are not the bot's
    text = gitrelease(realbot.deploy, "status").stdout
    assert "a full backup would hold:" in text and "databases: database/database.db" in text
    assert "real-bot-token-value" not in text


async def test_a_bot_with_no_database_is_told_so(realbot: World) -> None:
    (realbot.deploy / DATABASE).unlink()
    async with await ReleaseManager.open(realbot.deploy) as manager:
        backup = await manager.create_backup("full")
    assert any("no SQLite database was found" in w for w in backup.warnings)
    assert backup.to_dict()["warnings"] == backup.warnings
    created = json.loads(gitrelease(realbot.deploy, "--json", "backup", "create").stdout)
    assert any("no SQLite database was found" in w for w in created["warnings"])
    text = gitrelease(realbot.deploy, "backup", "create").stdout
    assert "warning: no SQLite database was found" in text
    before = realbot.state()
    failed = gitrelease(realbot.deploy, "backup", "create", "--type", "database", check=False)
    assert failed.returncode != 0
    assert "nothing to back up" in failed.stderr + failed.stdout
    assert "no SQLite database was found" in failed.stderr + failed.stdout
    after = realbot.state()
    assert after["files"] == before["files"]
    assert json.loads(gitrelease(realbot.deploy, "--json", "check").stdout)[
        "backup_holds"]["databases"] == []


async def test_a_config_backup_that_finds_no_config_says_so(realbot: World) -> None:
    (realbot.deploy / ".env").unlink()
    async with await ReleaseManager.open(realbot.deploy) as manager:
        backup = await manager.create_backup("full")
        assert any("no config file was found" in w for w in backup.warnings)
        with pytest.raises(BackupFailed, match="no config file was found"):
            await manager.create_backup("config")


async def test_virtual_environments_caches_and_the_index_are_not_the_bots(
    realbot: World,
) -> None:
    deploy = realbot.deploy
    (deploy / ".venv").mkdir()
    (deploy / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    make_sqlite(deploy / ".venv" / "lib" / "cache.db")
    (deploy / "env").mkdir()  # a venv by its pyvenv.cfg, whatever its name
    (deploy / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    make_sqlite(deploy / "env" / "share" / "jupyter.sqlite")
    make_sqlite(deploy / "node_modules" / "pkg" / "x.db")
    make_sqlite(deploy / "cogs" / "__pycache__" / "y.db")
    make_sqlite(deploy / "levels")  # no extension: found by its header
    async with await ReleaseManager.open(deploy) as manager:
        await manager.create_backup("config")  # the index exists from here on
        backup = await manager.create_backup("database")
    names = {n for n in members(Path(backup.file_path or ""))
             if n != "manifest.json" and not n.startswith("pages/")}  # not its page hashes
    assert names == {"root/database/database.db", "root/levels"}


# -- the data dir and the bot's git status -------------------------------------------------


def test_the_data_dir_stays_out_of_the_bots_git_status(realbot: World) -> None:
    deploy = realbot.deploy
    assert git(deploy, "status", "--short") == ""
    gitrelease(deploy, "check")
    assert (deploy / "data").is_dir()
    assert (deploy / "data" / ".gitignore").read_text() == "*\n"
    assert git(deploy, "status", "--short") == ""
    created = json.loads(gitrelease(deploy, "--json", "backup", "create").stdout)
    assert git(deploy, "status", "--short") == ""
    held = members(Path(created["file_path"]))
    assert "data/.gitignore" not in held and "root/database/database.db" in held
    assert "database/database.db" in json.loads(gitrelease(deploy, "--json", "check").stdout)[
        "backup_holds"]["databases"]  # the data dir, ignored now, is still looked through


def test_a_data_dir_the_bot_tracks_is_left_alone(world: World) -> None:
    before = git(world.deploy, "status", "--short")
    gitrelease(world.deploy, "check")
    gitrelease(world.deploy, "backup", "create")
    assert not (world.deploy / "data" / ".gitignore").exists()
    assert git(world.deploy, "status", "--short") == before


def test_a_data_dir_the_bot_ignores_itself_gets_no_gitignore(realbot: World) -> None:
    deploy = realbot.deploy
    with (deploy / ".gitignore").open("a") as handle:
        handle.write("data/\n")
    git(deploy, "-c", "user.name=o", "-c", "user.email=o@example.invalid", "commit",
        "--quiet", "-am", "ignore data")
    gitrelease(deploy, "backup", "create")
    assert not (deploy / "data" / ".gitignore").exists()
    assert git(deploy, "status", "--short") == ""


# -- restoring across releases, and archives that lie --------------------------------------


async def test_restoring_a_backup_from_another_release_warns(realbot: World) -> None:
    async with await ReleaseManager.open(realbot.deploy) as manager:
        backup = await manager.create_backup("full")
    git(realbot.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v6.0.0")
    async with await ReleaseManager.open(realbot.deploy) as manager:
        result = await manager.restore_backup(backup.id, {"confirm": True})
    assert result.warnings == [f"backup {backup.id} was taken at 5.0; the code here is "
                               "v6.0.0: its database may not match this code"]
    assert result.to_dict()["warnings"] == result.warnings
    text = gitrelease(realbot.deploy, "backup", "restore", backup.id, "--yes", "--type",
                      "config").stdout
    assert f"warning: backup {backup.id} was taken at 5.0; the code here is v6.0.0: its " \
           "files may not match this code" in text


def _planted(path: Path, backup_id: str, files: dict[str, tuple[str, bytes]]) -> None:
    listed = [{"path": name, "kind": kind, "size": len(data), "mode": 0o644,
               "sha256": hashlib.sha256(data).hexdigest()}
              for name, (kind, data) in files.items()]
    manifest = {"backup_id": backup_id, "backup_type": "full", "name": backup_id,
                "created_at": "2024-01-01T00:00:00+00:00", "files": listed}
    with tarfile.open(path, "w:gz") as tar:
        entries = [(n, d) for n, (_k, d) in files.items()]
        for name, data in [*entries, ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("member", ["root/run.sh", "root/.venv/bin/activate.db",
                                    "root/node_modules/x.db", "root/notes.db"])
async def test_an_archive_cannot_pass_a_script_off_as_a_database(
    realbot: World, member: str
) -> None:
    backups = realbot.deploy / "data" / "backups"
    backups.mkdir(parents=True)
    _planted(backups / "backup_20240101_000000.tar.gz", "backup_20240101_000000",
             {member: ("database", b"#!/bin/sh\necho owned\n")})
    before = realbot.state()
    async with await ReleaseManager.open(realbot.deploy) as manager:
        assert await manager.list_backups({"time_range": "all"})
        with pytest.raises(UnsafeArchive, match=r"is no SQLite file|not a configured"):
            await manager.restore_backup("backup_20240101_000000",
                                         {"confirm": True, "verify_backup": False})
    after = realbot.state()
    assert {k: v for k, v in after["files"].items() if not k.startswith("data/")} == {
        k: v for k, v in before["files"].items() if not k.startswith("data/")}
    assert not (realbot.deploy / member.removeprefix("root/")).exists()


def test_restorable_names_a_found_database_only_where_one_can_be(realbot: World) -> None:
    layout = Layout.of(realbot.deploy, realbot.deploy / "data", Settings())
    settings = Settings()
    make_sqlite(realbot.base / "elsewhere.db")
    (realbot.deploy / "linked.db").symlink_to(realbot.base / "elsewhere.db")
    with pytest.raises(ValueError, match="not a configured"):  # never through a link
        layout.restorable("root/linked.db", settings, frozenset(), "database")
    assert layout.restorable("root/database/database.db", settings, frozenset(),
                             "database") == realbot.deploy / DATABASE
    for member, kind in [("root/database/database.db", None), ("root/database/database.db",
                         "data"), ("root/bot.sh", "database"), ("root/.venv/x.db", "database")]:
        with pytest.raises(ValueError, match="not a configured"):
            layout.restorable(member, settings, frozenset(), kind)
    with pytest.raises(ValueError, match="versioned"):
        layout.restorable("root/database/schema.sql", settings,
                          frozenset({"database/schema.sql"}), "database")


# -- the cost of looking, and bad input ----------------------------------------------------


def test_twenty_thousand_untracked_files_are_not_slow(realbot: World) -> None:
    cache = realbot.deploy / "cache"
    cache.mkdir()
    filler = os.urandom(600)
    for n in range(20_000):
        (cache / f"f{n:05d}").write_bytes(filler)
    make_sqlite(cache / "zz.sqlite3")
    repo = GitRepo(realbot.deploy)
    try:
        started = time.monotonic()
        unversioned = repo.unversioned()
        found = find_databases(realbot.deploy, unversioned, skip=[realbot.deploy / "data"])
        elapsed = time.monotonic() - started
        holds = would_hold(Layout.of(realbot.deploy, realbot.deploy / "data", Settings()),
                           Settings(), tracked=repo.tracked_files(), unversioned=unversioned)
    finally:
        repo.close()
    assert elapsed < 5, elapsed
    assert set(found.databases) == {realbot.deploy / DATABASE, cache / "zz.sqlite3"}
    assert found.incomplete is not None and str(MAX_PROBES) in found.incomplete
    assert "cache/zz.sqlite3" in holds["databases"]


def test_unversioned_refuses_a_path_that_is_no_path_of_the_checkout(realbot: World) -> None:
    repo = GitRepo(realbot.deploy)
    try:
        for bad in ["", "-x", "/etc", ":(glob)*"]:
            with pytest.raises(InvalidInput, match="path"):
                repo.unversioned(bad)
        assert repo.unversioned("database/") == ["database/database.db"]
        assert repo.unversioned("database/", ignored=False) == []
    finally:
        repo.close()
    assert git(realbot.deploy, "status", "--short") == ""
