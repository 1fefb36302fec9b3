"""Backups under hostile archives, cancellation, odd layouts and files that come and go."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from gitrelease.core.errors import GitReleaseError, InvalidSetting
from gitrelease.core.models import BackupStatus
from gitrelease.manager import ReleaseManager
from tests.conftest import ENV_SECRET, World, git


def planted(path: Path, backup_id: str, files: dict[str, bytes], **fields: object) -> None:
    """A well-formed archive whose manifest says whatever an attacker likes."""
    listed = [{"path": name, "kind": "data", "size": len(data), "mode": 0o644,
               "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()]
    manifest = {"backup_id": backup_id, "backup_type": "full", "name": backup_id,
                "created_at": "2024-01-01T00:00:00+00:00", "files": listed, **fields}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [*files.items(), ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("member", [
    "root/.git/hooks/post-checkout", "data/update_manager.db", "data/gitrelease.lock",
    "data/backups/backup_20240101_000001.tar.gz", "root/unconfigured.txt",
    "data/update_logs/../../.git/config",
])
async def test_planted_archive_cannot_write_where_backups_never_do(
    world: World, member: str
) -> None:
    backups = world.deploy / "data" / "backups"
    backups.mkdir(parents=True)
    async with await ReleaseManager.open(world.deploy) as manager:
        real = await manager.create_backup("config")
    real_bytes = Path(real.file_path or "").read_bytes()
    planted(backups / "backup_20240101_000000.tar.gz", "backup_20240101_000000",
            {member: b"#!/bin/sh\necho owned\n"})
    before = world.state()
    async with await ReleaseManager.open(world.deploy) as manager:
        (adopted,) = [b for b in await manager.list_backups({"time_range": "all"})
                      if b.id == "backup_20240101_000000"]
        assert adopted.metadata.get("adopted") is True
        with pytest.raises(GitReleaseError):
            await manager.restore_backup(adopted.id, {"confirm": True, "verify_backup": False})
    after = world.state()
    assert after["head"] == before["head"]
    assert {k: v for k, v in after["files"].items() if not k.startswith("data/backups/")} == {
        k: v for k, v in before["files"].items() if not k.startswith("data/backups/")}
    assert not (world.deploy / ".git" / "hooks" / "post-checkout").exists()
    assert Path(real.file_path or "").read_bytes() == real_bytes


async def test_planted_versioned_file_is_never_restored(world: World) -> None:
    backups = world.deploy / "data" / "backups"
    backups.mkdir(parents=True)
    planted(backups / "backup_20240101_000000.tar.gz", "backup_20240101_000000",
            {"data/notes.json": b"{}", "root/bot.py": b"import os; os.system('evil')\n"})
    original = (world.deploy / "bot.py").read_bytes()
    async with await ReleaseManager.open(world.deploy) as manager:
        result = await manager.restore_backup("backup_20240101_000000", {"confirm": True})
    assert result.restored == ["data/notes.json"]  # git owns bot.py: it is left alone
    assert (world.deploy / "bot.py").read_bytes() == original


async def test_planted_text_and_dates_are_not_trusted(world: World) -> None:
    backups = world.deploy / "data" / "backups"
    backups.mkdir(parents=True)
    planted(backups / "backup_20991231_000000.tar.gz", "backup_20991231_000000",
            {"data/x.json": b"{}"}, name="n\n FAKE LINE", description="\x1b[2J wiped",
            created_at="2099-12-31T00:00:00+00:00", keep=True)
    planted(backups / "other.tar.gz", "other", {"data/y.json": b"{}"})
    async with await ReleaseManager.open(world.deploy) as manager:
        listed = await manager.list_backups({"time_range": "all"})
    (adopted,) = listed
    assert adopted.name == adopted.id and adopted.description is None
    assert not adopted.keep
    assert adopted.created_at.year < 2099


@pytest.mark.parametrize("chained", [False, True], ids=["full", "incremental"])
async def test_cancelling_a_backup_leaves_no_archive_and_waits_for_the_writer(
    world: World, monkeypatch: pytest.MonkeyPatch, chained: bool
) -> None:
    if chained:  # the cancelled one is taken on a base: its database as pages, and so on
        async with await ReleaseManager.open(world.deploy) as manager:
            base = await manager.create_backup("full", {"backup_name": "base"})
    (world.deploy / "data" / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    marker = world.base / "paused"
    monkeypatch.setenv("GITRELEASE_PAUSE_AT", "archive:member-written")
    monkeypatch.setenv("GITRELEASE_PAUSE_MARKER", str(marker))
    monkeypatch.setenv("GITRELEASE_PAUSE_SECONDS", "1")
    async with await ReleaseManager.open(world.deploy) as manager:
        task = asyncio.ensure_future(manager.create_backup("full", {"backup_name": "c"}))
        deadline = time.time() + 30
        while not marker.exists() and time.time() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.delenv("GITRELEASE_PAUSE_AT")
        (failed,) = [b for b in await manager.list_backups({"time_range": "all"})
                     if b.name != "base"]
        again = await manager.create_backup("config", {"backup_name": "c"})  # lock is free
    assert failed.status is BackupStatus.FAILED and failed.problem == "cancelled"
    assert again.name == "c"  # the failed attempt gave its name up
    names = sorted(p.name for p in (world.deploy / "data" / "backups").iterdir())
    kept = [Path(again.file_path or "").name] + ([Path(base.file_path or "").name]
                                                if chained else [])
    assert names == sorted(kept)


async def test_a_file_deleted_during_the_backup_is_skipped(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = world.deploy / "data" / "files"
    files.mkdir()
    for n in range(3):
        (files / f"f{n}.json").write_text("{}")
    marker = world.base / "paused"
    monkeypatch.setenv("GITRELEASE_PAUSE_AT", "archive:member-written")
    monkeypatch.setenv("GITRELEASE_PAUSE_MARKER", str(marker))
    monkeypatch.setenv("GITRELEASE_PAUSE_SECONDS", "1")

    async def remove_when_paused() -> None:
        while not marker.exists():
            await asyncio.sleep(0.01)
        (files / "f2.json").unlink()

    async with await ReleaseManager.open(world.deploy) as manager:
        remover = asyncio.ensure_future(remove_when_paused())
        backup = await manager.create_backup("data_only")
        await remover
    manifest = backup.metadata["manifest"]
    assert manifest["skipped"] == ["data/files/f2.json"]
    assert backup.status is BackupStatus.COMPLETED


async def test_backup_path_may_not_be_the_data_dir(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text('backup_path = "data"\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(InvalidSetting):
            await manager.create_backup("full")


async def test_data_dir_outside_the_root_keeps_its_backups(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "state"
    elsewhere.mkdir()
    (elsewhere / "app.db").write_bytes((world.deploy / "data" / "app.db").read_bytes())
    monkeypatch.setenv("GITRELEASE_DATA_DIR", str(elsewhere))
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("database")
    assert Path(backup.file_path or "").parent == elsewhere / "backups"
    assert not (world.deploy / "data" / "backups").exists()


async def test_a_symlinked_env_is_backed_up_and_restored_through_the_link(
    world: World, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(ENV_SECRET)
    (world.deploy / ".env").unlink()
    (world.deploy / ".env").symlink_to(secrets)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("config")
        secrets.write_text("DISCORD_TOKEN=rotated\n")
        await manager.restore_backup(backup.id, {"confirm": True})
    assert (world.deploy / ".env").is_symlink()
    assert secrets.read_text() == ENV_SECRET
    git(world.deploy, "status")


@pytest.mark.parametrize("where", ["outside", "in the root"])
async def test_update_logs_outside_the_data_dir_are_archived_and_restored_there(
    world: World, tmp_path: Path, where: str
) -> None:
    """An update_logs_path outside the data dir (absolute, elsewhere; or in the root) is
    archived under its own prefix, ``logs/``, and restored to that folder."""
    logs = tmp_path / "var-log-bot" if where == "outside" else world.deploy / "logs"
    logs.mkdir()
    (logs / "old.log").write_text("update log\n")
    setting = str(logs) if where == "outside" else "logs/"
    (world.deploy / "data" / "settings.toml").write_text(f'update_logs_path = "{setting}"\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full", {"include_logs": True})
        names = {f["path"] for f in backup.metadata["manifest"]["files"]}
        assert "logs/old.log" in names
        (logs / "old.log").write_text("rotated\n")
        result = await manager.restore_backup(backup.id, {"confirm": True})
    assert (logs / "old.log").read_text() == "update log\n"
    shown = str(logs / "old.log") if where == "outside" else "logs/old.log"
    assert shown in result.restored
