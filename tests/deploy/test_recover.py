"""Disaster recovery: a whole deployment deleted, then brought back on a "new host" with
nothing but its origin, its offsite copies (moto's S3 server on loopback, the real boto3) and
the key file; refused plainly, with nothing written, when it cannot be done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitrelease.manager import ReleaseManager
from tests.conftest import ENV_SECRET, REPO_ROOT, World, git, guilds
from tests.s3 import S3Server, offsite_settings


def _recover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitrelease", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)


async def _lost_host(world: World, server: S3Server, bucket: str, key: Path) -> dict:
    """The deployment at v1.1.0 with a newer row, backed up offsite; then the host is gone."""
    offsite_settings(world.deploy, server, bucket, mode="after_backup", key=key)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("bot", {"to_version": "1.1.0", "backup_before": False})
        older = await manager.create_backup("full", {"backup_name": "older"})
        import sqlite3

        with sqlite3.connect(world.deploy / "data" / "app.db") as db:
            db.execute("INSERT INTO guilds VALUES (3, '$')")
        db.close()
        newest = await manager.create_backup("full", {"backup_name": "newest"})
        await manager.create_backup("database", {"backup_name": "db_only"})  # not full
    assert older.location == newest.location == "both"
    gone = {"rows": guilds(world.deploy), "commit": git(world.deploy, "rev-parse", "HEAD"),
            "newest": newest.id, "older": older.id}
    shutil.rmtree(world.deploy)
    return gone


async def test_a_deleted_deployment_comes_back_from_its_origin_and_offsite_copies(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "offsite.key"
    key.parent.mkdir()
    gone = await _lost_host(world, s3_server, s3_bucket, key)
    new_host = tmp_path / "new-host" / "bot"
    done = _recover("--json", "recover", "--origin", str(world.origin), "--offsite",
                    f"s3://{s3_bucket}/bot", "--endpoint", s3_server.endpoint,
                    "--key-file", str(key), str(new_host))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["backup_id"] == gone["newest"] and report["tag"] == "v1.1.0"
    assert git(new_host, "rev-parse", "HEAD") == gone["commit"]
    assert guilds(new_host) == gone["rows"] and len(gone["rows"]) == 3
    assert (new_host / ".env").read_text() == ENV_SECRET
    assert (new_host / ".env").stat().st_mode & 0o777 == 0o600
    assert {".env", "data/app.db"} <= set(report["restored"])
    # The recovered deployment knows its backups: the one it came from is here and offsite,
    # and so is the one before it, which it was taken on (its chain, fetched with it).
    async with await ReleaseManager.open(new_host) as manager:
        known = {b.id: b for b in await manager.list_backups({"time_range": "all"})}
    newest = known[gone["newest"]]
    assert set(known) == {newest.id, *(link["id"] for link in newest.chain)}
    assert newest.base_id == gone["older"]
    assert newest.location == "both"
    assert any(gone["older"] in note for note in report["notes"])
    assert ENV_SECRET.strip() not in done.stdout + done.stderr


@pytest.mark.parametrize("case", ["no key", "another key", "not empty", "bad origin",
                                  "no such backup", "empty bucket"])
async def test_a_recovery_that_cannot_be_done_is_refused_and_writes_nothing(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path, case: str) -> None:
    key = tmp_path / "keys" / "offsite.key"
    key.parent.mkdir()
    if case == "empty bucket":
        from gitrelease.state.offsite_crypt import new_key_file

        new_key_file(key)
    else:
        await _lost_host(world, s3_server, s3_bucket, key)
    new_host = tmp_path / "new-host"
    args = ["recover", "--origin", str(world.origin), "--offsite", f"s3://{s3_bucket}/bot",
            "--endpoint", s3_server.endpoint, "--key-file", str(key), str(new_host / "bot")]
    expected = {"no key": "give its key with --key-file", "another key": "encrypted with key",
                "not empty": "not empty", "bad origin": "invalid --origin",
                "no such backup": "no such backup", "empty bucket": "no completed full"}[case]
    if case == "no key":
        args.remove("--key-file")
        args.remove(str(key))
    elif case == "another key":
        other = tmp_path / "keys" / "other.key"
        from gitrelease.state.offsite_crypt import new_key_file

        new_key_file(other)
        args[args.index(str(key))] = str(other)
    elif case == "not empty":
        (new_host / "bot").mkdir(parents=True)
        (new_host / "bot" / "notes.txt").write_text("mine\n")
    elif case == "bad origin":
        args[args.index(str(world.origin))] = "ext::sh -c touch% /tmp/pwned"
    elif case == "no such backup":
        args[1:1] = ["--backup", "bkp_missing"]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    refused = _recover(*args)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert expected in refused.stderr, refused.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


async def test_a_chain_encrypted_with_another_key_is_refused_before_anything_is_written(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """The newest backup's key is given, but its base was sealed with the key before: the
    recovery says which backup needs which key, and clones nothing."""
    first, second = tmp_path / "keys" / "first.key", tmp_path / "keys" / "second.key"
    first.parent.mkdir()
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup", key=first)
    async with await ReleaseManager.open(world.deploy) as manager:
        base = await manager.create_backup("full")
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup", key=second)
    import sqlite3

    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (5, 'later')")
    db.close()
    async with await ReleaseManager.open(world.deploy) as manager:
        newest = await manager.create_backup("full")
    assert newest.base_id == base.id and newest.location == "both"
    new_host = tmp_path / "new-host"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    refused = _recover("--json", "recover", "--origin", str(world.origin), "--offsite",
                       f"s3://{s3_bucket}/bot", "--endpoint", s3_server.endpoint,
                       "--key-file", str(second), str(new_host / "bot"))
    assert refused.returncode != 0
    message = json.loads(refused.stdout)["error"]["message"]
    assert base.id in message and "encrypted with key" in message, message
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
