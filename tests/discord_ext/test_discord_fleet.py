"""The bot as one of a fleet: with a shared index, the extension reports the bot (running, its
pid) every heartbeat and "stopped" as it unloads, and /update_status shows the fleet to the
owner, never to an administrator."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.discord_ext.harness import body, harness


async def _instances(world: World) -> list:
    async with await ReleaseManager.open(world.deploy) as manager:
        found, _stale = await manager.fleet_status()
    return found


async def test_the_bot_reports_itself_and_the_owner_sees_the_fleet(
        world: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    (world.deploy / "data" / "settings.toml").write_text(
        'instance_id = "prod-eu-1"\ninstance_group = "prod"\n')
    async with harness(world, monkeypatch) as h:
        for _ in range(100):
            found = await _instances(world)
            if found:
                break
            await asyncio.sleep(0.05)
        (me,) = found
        assert (me.id, me.group, me.health, me.pid, me.version) == (
            "prod-eu-1", "prod", "running", os.getpid(), "1.0.0")
        # With it, what Discord says of the bot's session starts, for rollouts to count.
        assert ("GET", "/gateway/bot") in [(r.method, r.path) for r in h.fake.requests]
        assert me.session_starts is not None
        assert (me.session_starts.remaining, me.session_starts.total,
                me.session_starts.max_concurrency, me.session_starts.bot_id) == (
            997, 1000, 1, str(h.fake.bot_user_id))
        assert (world.deploy / "data" / "session_starts.json").stat().st_mode & 0o777 == 0o600

        owner = body(await h.owner("update_status"))
        assert "### Fleet (1)" in owner
        assert "• **prod** `prod-eu-1`: 1.0.0 — ✅ running on " in owner
        admin = body(await h.admin("update_status"))
        assert "### Fleet" not in admin and "prod-eu-1" not in admin
    (gone,) = await _instances(world)
    assert gone.health == "stopped"


async def test_the_bot_installs_its_part_of_a_rollout_itself(
        world: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitrelease.core.fleet import RolloutOptions

    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    (world.deploy / "data" / "settings.toml").write_text('instance_id = "solo"\n')
    async with harness(world, monkeypatch):
        for _ in range(100):
            if await _instances(world):
                break
            await asyncio.sleep(0.05)
        async with await ReleaseManager.open(world.deploy) as manager:
            started = await manager.start_rollout("v1.10.0", RolloutOptions(
                min_healthy_seconds=0.5, healthy_deadline_seconds=60), actor="test")
            ended = await asyncio.wait_for(manager.drive_rollout(
                started.id, actor="test", poll=0.1), timeout=120)
    assert ended.status == "succeeded", ended.to_dict()
    assert world.head() == world.tag_commit("v1.10.0")


async def test_update_fleet_rolls_out_from_discord_watched_by_its_edits(
        world: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    (world.deploy / "data" / "settings.toml").write_text('instance_id = "solo"\n')
    async with harness(world, monkeypatch) as h:
        for _ in range(100):
            if await _instances(world):
                break
            await asyncio.sleep(0.05)
        refused = await h.admin("update_fleet", {"action": "status"})
        assert "Only the bot's owner" in json.dumps(refused.final)
        shown = await h.owner("update_fleet", {"action": "status"})
        assert "### Fleet (1)" in body(shown) and "`solo`: 1.0.0" in body(shown)
        missing = await h.owner("update_fleet", {"action": "rollout"})
        assert missing.ephemeral and "target_version" in json.dumps(missing.final)
        result = await h.owner("update_fleet", {"action": "rollout",
                                                "target_version": "v1.10.0",
                                                "min_healthy_seconds": 0}, timeout=120)
        card = body(result)
        assert "🚀 Fleet Rollout to v1.10.0" in json.dumps(result.final, ensure_ascii=False)
        assert "### Rollout to v1.10.0: ✅ succeeded" in card
        assert "• Wave 0 `solo`: ✅ healthy (from v1.0.0)" in card
        edits = [r for r in result.requests if r.method == "PATCH"]
        assert len(edits) >= 3, "the rollout was not watched by its edits"
        nothing = await h.owner("update_fleet", {"action": "abort"})
        assert "no active rollout" in json.dumps(nothing.final)
    assert world.head() == world.tag_commit("v1.10.0")


async def test_update_fleet_without_a_shared_index_is_one_private_answer(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITRELEASE_INDEX_URL", raising=False)
    async with harness(world, monkeypatch) as h:
        result = await h.owner("update_fleet", {"action": "status"})
        assert result.ephemeral and result.response_type == 4
        assert "there is no fleet" in json.dumps(result.final)
