"""`gitrelease backup delete` and `backup list` on a chain of real incremental backups: a base
is not deleted while a backup needs it (and nothing changes), and a listing says what a
restore of each backup reads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gitrelease.cli.main import main
from gitrelease.core.models import Backup, BackupStatus
from gitrelease.core.text import size
from gitrelease.manager import ReleaseManager
from tests.conftest import World


def cli(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["--root", str(world.deploy), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def text(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["--root", str(world.deploy), *args]) == 0
    return capsys.readouterr().out


def a_chain(world: World, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Three config backups: a full one, then two each on the one before it."""
    (world.deploy / "data" / "settings.toml").write_text("auto_cleanup = false\n")
    made = []
    for _ in range(3):
        code, backup = cli(world, capsys, "backup", "create", "--type", "config")
        assert code == 0
        made.append(backup)
    assert [b["base"] for b in made] == [None, made[0]["id"], made[1]["id"]]
    assert made[2]["chain"] == [made[0]["id"], made[1]["id"]]
    return made


def on_disk(world: World, made: list[dict[str, Any]]) -> dict[str, Any]:
    """The archives (each file's sha256) and the index's backup rows and manifests."""
    folder = Path(made[0]["file_path"]).parent
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
             if p.is_file()}
    connection = sqlite3.connect(world.deploy / "data" / "update_manager.db")
    try:
        rows = connection.execute("SELECT * FROM backups ORDER BY id").fetchall()
        manifests = connection.execute(
            "SELECT * FROM backup_manifests ORDER BY backup_id").fetchall()
    finally:
        connection.close()
    return {"files": files, "rows": rows, "manifests": manifests}


def test_a_base_is_not_deleted_while_a_backup_needs_it(
    world: World, capsys: pytest.CaptureFixture[str],
) -> None:
    full, middle, newest = a_chain(world, capsys)
    before = on_disk(world, [full])
    assert len(before["files"]) == 3 and len(before["rows"]) == 3

    code, refused = cli(world, capsys, "backup", "delete", full["id"], "--yes")
    assert code == 27
    error = refused["error"]
    assert error["code"] == "backup_is_base"
    assert f"{full['id']} is the base of {newest['id']}, {middle['id']}" in error["message"]
    assert error["hint"].startswith(f"delete {newest['id']}, {middle['id']} first (newest "
                                    "first")
    assert on_disk(world, [full]) == before

    assert main(["--root", str(world.deploy), "backup", "delete", middle["id"], "--yes"]) == 27
    said = capsys.readouterr().err
    assert f"{middle['id']} is the base of {newest['id']}:" in said
    assert f"delete {newest['id']} first" in said
    assert on_disk(world, [full]) == before

    for backup in (newest, middle):  # newest first, as the hint says
        code, deleted = cli(world, capsys, "backup", "delete", backup["id"], "--yes")
        assert code == 0 and deleted["id"] == backup["id"]
        assert not Path(backup["file_path"]).exists()

    # A failed attempt on it holds no archive and needs nothing: it does not keep it.
    asyncio.run(_failed_attempt_on(world, full["id"]))
    code, deleted = cli(world, capsys, "backup", "delete", full["id"], "--yes")
    assert code == 0 and deleted["id"] == full["id"]
    assert not Path(full["file_path"]).exists()


async def _failed_attempt_on(world: World, base_id: str) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        store = await manager.index()
        base = await manager.get_backup(base_id)
        failed = Backup(
            id="backup_19990101_000000", name="backup_19990101_000000",
            backup_type=base.backup_type, status=BackupStatus.FAILED, file_path=None,
            file_size=None, compressed_size=None, created_at=base.created_at,
            completed_at=base.created_at, description=None, checksum=None,
            auto_created=False, problem="cancelled",
            metadata={"manifest": {"base": base_id,
                                   "chain": [{"id": base_id, "sha256": base.checksum}]}})
        await store.save_backup(failed)


def test_the_list_says_each_backups_base_and_what_a_restore_reads(
    world: World, capsys: pytest.CaptureFixture[str],
) -> None:
    full, middle, newest = a_chain(world, capsys)
    code, listed = cli(world, capsys, "backup", "list", "--range", "all")
    assert code == 0
    by_id = {b["id"]: b for b in listed}
    own = {i: b["compressed_size"] for i, b in by_id.items()}
    assert by_id[full["id"]]["chain_size"] == own[full["id"]]
    assert by_id[middle["id"]]["chain_size"] == own[full["id"]] + own[middle["id"]]
    assert by_id[newest["id"]]["chain_size"] == sum(own.values())

    out = text(world, capsys, "backup", "list", "--range", "all")
    lines = out.splitlines()

    def under(backup: dict[str, Any]) -> str:
        """The line below its title ("2. backup_... - 2026-..."): what it is, its sizes."""
        return lines[next(n for n, line in enumerate(lines)
                          if f". {backup['id']} - " in line) + 1]

    assert under(newest) == (
        f"  config backup of v1.0.0, incremental on {middle['id']}: own "
        f"{size(own[newest['id']])}, restore reads {size(sum(own.values()))}")
    assert under(full) == (f"  config backup of v1.0.0, {size(full['file_size'])} -> "
                           f"{size(own[full['id']])}, full")
    assert lines[-1] == f"Total backups: 3 (stored: {size(sum(own.values()))})"

    # `backup verify` shows one backup whole: its base, its chain, what a restore reads.
    shown = text(world, capsys, "backup", "verify", newest["id"])
    assert f"restore reads {size(sum(own.values()))}" in shown
    assert f"  base: {middle['id']}\n" in shown
    assert f"  chain: {full['id']} -> {middle['id']} -> this one (what a restore reads)" \
        in shown


def test_a_chain_missing_a_backup_says_so(
    world: World, capsys: pytest.CaptureFixture[str],
) -> None:
    full, middle, newest = a_chain(world, capsys)
    asyncio.run(_lose(world, full["id"]))  # its row and its archive, as a lost disk would
    Path(full["file_path"]).unlink()
    code, listed = cli(world, capsys, "backup", "list", "--range", "all")
    assert code == 0
    assert [b["id"] for b in listed] == [newest["id"], middle["id"]]
    assert [b["chain_size"] for b in listed] == [None, None]
    out = text(world, capsys, "backup", "list", "--range", "all")
    assert out.count("restore reads ? (part of its chain is not in the index)") == 2


async def _lose(world: World, backup_id: str) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        await (await manager.index()).delete_backup(backup_id)
