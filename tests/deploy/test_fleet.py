"""The fleet on a shared PostgreSQL index (a real server): deployments report where they run
and what they are at, `gitrelease fleet status` shows them all, `gitrelease agent` keeps
reporting, a deployment that stops reporting reads stale, and a deployment with its own
SQLite index is told that it has no fleet (creating nothing)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import utcnow
from gitrelease.manager import ReleaseManager
from tests.conftest import REPO_ROOT, World, copy_world


def _settings(world: World, **values: object) -> None:
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    (world.deploy / "data" / "settings.toml").write_text("\n".join(lines) + "\n")


def _cli(world: World, pg_url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("GITRELEASE_INDEX_URL", None)
    if pg_url:
        env["GITRELEASE_INDEX_URL"] = pg_url
    return subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                           *args], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def second(template_world: World, tmp_path: Path) -> World:
    return copy_world(template_world, tmp_path / "second")


async def test_two_deployments_report_and_each_sees_both(
        world: World, second: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    _settings(world, instance_id="canary-1", instance_group="canary", shard_ids=[0])
    _settings(second, instance_id="prod-1", instance_group="prod", shard_ids=[1, 2])
    async with await ReleaseManager.open(second.deploy) as manager:
        # What its bot heard of its session starts (the extension keeps it) goes along.
        await manager.note_session_starts({"total": 1000, "remaining": 996,
                                           "reset_after": 60_000, "max_concurrency": 16},
                                          "4242")
        await manager.report_instance()
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("bot", {"initiated_by": "test"})
        reported = await manager.report_instance()
        assert (reported.id, reported.version, reported.health) == ("canary-1", "1.10.0", "down")
        instances, stale = await manager.fleet_status()
    assert stale == 90.0
    assert [(i.id, i.group, i.shards, i.version) for i in instances] == [
        ("canary-1", "canary", [0], "1.10.0"), ("prod-1", "prod", [1, 2], "1.0.0")]

    status = _cli(second, pg_url, "fleet", "status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)["instances"]
    assert [(i["id"], i["state"], i["tag"]) for i in shown] == [
        ("canary-1", "down", "v1.10.0"), ("prod-1", "down", "v1.0.0")]
    text = _cli(second, pg_url, "fleet", "status").stdout
    assert "canary     canary-1  1.10.0 (v1.10.0)  DOWN  on " in text
    assert ", shards 1,2, 996/1000 session starts left  (reported " in text
    assert shown[1]["session_starts"]["max_concurrency"] == 16
    assert pg_url not in text + status.stdout


async def test_a_deployment_that_stops_reporting_reads_stale(
        world: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    _settings(world, fleet_heartbeat_seconds=5)
    async with await ReleaseManager.open(world.deploy) as manager:
        reported = await manager.report_instance(health="running")
        store = await manager.index()
        reported.heartbeat_at = utcnow() - timedelta(seconds=16)
        await store.save_instance(reported)  # type: ignore[attr-defined]
        instances, stale = await manager.fleet_status()
    assert stale == 15.0
    (instance,) = instances
    assert instance.state(utcnow(), stale) == "stale"
    instance.health = "stopped"  # a clean stop never reads stale
    assert instance.state(utcnow(), stale) == "stopped"


def test_the_agent_reports_once_and_by_the_beat_until_told_to_stop(
        world: World, pg_url: str) -> None:
    _settings(world, instance_id="agent-1", fleet_heartbeat_seconds=5)
    once = _cli(world, pg_url, "agent", "--once", "--json")
    assert once.returncode == 0, once.stderr
    first = json.loads(once.stdout)
    assert (first["id"], first["version"], first["health"]) == ("agent-1", "1.0.0", "down")

    env = {**os.environ, "GITRELEASE_INDEX_URL": pg_url}
    running = subprocess.Popen([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                                "agent"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        beats = []
        for _ in range(150):  # two reports: its first, and one a beat later
            shown = json.loads(_cli(world, pg_url, "fleet", "status", "--json").stdout)
            beats.append(shown["instances"][0]["heartbeat_at"])
            if len(set(beats)) >= 3:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert len(set(beats)) >= 3, beats
    finally:
        running.terminate()
        out, err = running.communicate(timeout=30)
    assert running.returncode == 0, err
    assert "gitrelease agent: agent-1 at 1.0.0" in out


def test_without_a_shared_index_there_is_no_fleet_and_nothing_is_created(
        world: World) -> None:
    index = world.deploy / "data" / "update_manager.db"
    for args in (("fleet", "status"), ("agent", "--once")):
        result = _cli(world, None, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "there is no fleet" in result.stderr and "index_url" in result.stderr
    assert not index.exists()
    bad = _cli(world, None, "fleet", "everything")
    assert bad.returncode == 2 and "invalid ACTION: 'everything'" in bad.stderr


@pytest.mark.parametrize("name, value", [
    ("instance_group", "has space"), ("instance_group", ""), ("instance_id", "a b"),
    ("shard_ids", "zero"), ("fleet_heartbeat_seconds", "1"), ("index_url", "mysql://x"),
])
def test_fleet_settings_refuse_bad_values_and_change_nothing(
        world: World, name: str, value: str) -> None:
    settings = world.deploy / "data" / "settings.toml"
    result = _cli(world, None, "settings", "set", "update", name, value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"invalid update.{name}" in result.stderr
    assert not settings.exists()


def test_an_index_url_is_never_shown(world: World) -> None:
    url = "postgresql://bot:hunter2-secret@db.internal/fleet"
    result = _cli(world, None, "settings", "set", "update", "index_url", url)
    assert result.returncode == 0, result.stderr
    shown = _cli(world, None, "settings", "show", "--json")
    assert "hunter2" not in shown.stdout + shown.stderr + result.stdout + result.stderr


async def test_a_report_to_an_unreachable_server_is_a_clear_error(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", "postgresql://bot:pw-secret@127.0.0.1:1/x")
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(GitReleaseError) as caught:
            await manager.report_instance()
    assert "pw-secret" not in caught.value.message
