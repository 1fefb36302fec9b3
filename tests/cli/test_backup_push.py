"""`gitrelease backup push ID`: a backup copied to S3-compatible storage (moto's server on
loopback, the real boto3), its archive by digest and its record last; refused plainly, with
nothing written anywhere, when offsite copies are off or the backup is not known."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitrelease.manager import ReleaseManager
from gitrelease.state.offsite import S3Offsite
from gitrelease.state.offsite_crypt import object_name
from tests.conftest import REPO_ROOT, World
from tests.s3 import S3Server, object_keys, offsite_settings


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                           *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def _offsite(world: World, server: S3Server, bucket: str, mode: str = "manual") -> bytes:
    key = offsite_settings(world.deploy, server, bucket, mode=mode,
                           key=world.base / "offsite.key")
    assert key is not None
    return key


_objects = object_keys


def test_a_backup_is_pushed_and_fetched_back_as_it_is_kept_here(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    key = _offsite(world, s3_server, s3_bucket)
    created = _cli(world, "--json", "backup", "create", "--name", "before_move")
    assert created.returncode == 0, created.stderr
    backup = json.loads(created.stdout)
    pushed = _cli(world, "backup", "push", "before_move")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert pushed.stdout.startswith(f"Pushed {backup['id']} offsite: ")
    assert "encrypted" in pushed.stdout  # a full backup holds .env: it leaves only encrypted
    assert _objects(s3_server, s3_bucket) == [
        f"bot/backups/{backup['id']}.json",
        f"bot/objects/{object_name(key, backup['checksum'])}"]
    again = _cli(world, "--json", "backup", "push", backup["id"])  # nothing new
    assert again.returncode == 0 and json.loads(again.stdout)["sha256"] == backup["checksum"]
    copy = S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint).fetch(
        backup["id"], tmp_path / "fetched", key=key)
    assert copy.record["name"] == "before_move" and "file_path" not in copy.record
    local = world.deploy / "data" / "backups"
    (archive,) = [p for p in local.iterdir() if p.name.startswith(backup["id"])]
    assert (tmp_path / "fetched").read_bytes() == archive.read_bytes()
    assert [e.outcome for e in asyncio.run(_audit(world)) if e.action == "backup_push"] == [
        "completed", "completed"]


async def _audit(world: World) -> list:
    async with await ReleaseManager.open(world.deploy) as manager:
        return await (await manager.deployment.index()).audit_entries()


@pytest.mark.parametrize(("settings", "backup_id", "named"), [
    ("off", "latest", "offsite copies are off"),
    ("manual", "no_such_backup", "no_such_backup"),
])
def test_a_push_that_cannot_be_done_is_refused_and_writes_nothing(
        world: World, s3_server: S3Server, s3_bucket: str, settings: str, backup_id: str,
        named: str) -> None:
    _offsite(world, s3_server, s3_bucket, settings)
    created = _cli(world, "--json", "backup", "create", "--name", "latest")
    assert created.returncode == 0, created.stderr
    before = sorted(p.name for p in (world.deploy / "data" / "backups").iterdir())
    refused = _cli(world, "backup", "push", backup_id)
    assert refused.returncode != 0 and named in refused.stderr, refused.stderr
    assert _objects(s3_server, s3_bucket) == []
    assert sorted(p.name for p in (world.deploy / "data" / "backups").iterdir()) == before


@pytest.mark.parametrize(("key", "value"), [
    ("offsite", "always"), ("offsite", "AFTER_BACKUP"), ("offsite_url", "ftp://bucket/x"),
    ("offsite_key_file", "relative/offsite.key"), ("offsite_max_backups", "0"),
    ("offsite_retention_days", "-3"), ("offsite_max_backups", "many"),
    ("offsite_url", "s3://A/x"),
    ("offsite_url", "s3://bucket/../x"), ("offsite_endpoint", "localhost:9000"),
])
def test_bad_offsite_settings_are_refused_and_change_nothing(
        world: World, key: str, value: str) -> None:
    settings = world.deploy / "data" / "settings.toml"
    before = settings.read_bytes() if settings.exists() else None
    refused = _cli(world, "settings", "set", "backup", key, value)
    assert refused.returncode != 0 and key in refused.stderr, refused.stdout + refused.stderr
    assert (settings.read_bytes() if settings.exists() else None) == before
