"""The extension and offsite copies (moto's S3 server on loopback): a backup left queued is
uploaded by the bot once it has loaded, and /backup_list says where each backup is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gitrelease.core.models import OffsiteState
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.discord_ext.harness import _described, harness
from tests.s3 import S3Server, object_keys, offsite_settings


async def test_the_bot_uploads_what_was_left_queued_and_the_list_says_where(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="manual",
                     key=tmp_path / "offsite.key")
    async with await ReleaseManager.open(world.deploy) as manager:
        left = await manager.create_backup("full", {"backup_name": "left_queued"})
        here = await manager.create_backup("database", {"backup_name": "only_here"})
        # As a process that was stopped between its backup and the upload leaves it.
        await (await manager.deployment.index()).set_offsite(left.id, OffsiteState.QUEUED)
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key")
    async with harness(world, monkeypatch) as h:
        h.fake.background.add("_offsite_uploads")
        for _ in range(200):
            if len(object_keys(s3_server, s3_bucket)) == 2:
                break
            await asyncio.sleep(0.05)
        assert object_keys(s3_server, s3_bucket)[0] == f"bot/backups/{left.id}.json"
        listed = _described(await h.admin("backup_list", {"time_range": "all"}))
    lines = listed.splitlines()
    at = next(n for n, line in enumerate(lines) if "left_queued" in line)
    assert "💾 here · ☁️ offsite" in "\n".join(lines[at:at + 3])
    at = next(n for n, line in enumerate(lines) if here.name in line)
    assert "💾 here" in "\n".join(lines[at:at + 3]) and "offsite" not in "\n".join(
        lines[at:at + 3])
