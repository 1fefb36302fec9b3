"""Rollouts over a fleet simulated on one machine: each "host" is a deployment of its own with
its bot process and its `gitrelease agent` process, all sharing one bare origin's releases
and one real PostgreSQL server. The coordinator runs here, as `gitrelease fleet rollout`
would run it."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitrelease.core.fleet import Rollout, RolloutOptions
from gitrelease.core.models import utcnow
from gitrelease.deploy.sessions import save_session_starts
from gitrelease.index.postgres_fleet import RolloutConflict
from gitrelease.manager import ReleaseManager
from tests.conftest import REPO_ROOT, Bot, World, copy_world

FAILING_CHECK = json.dumps(["python3", "-c", "raise SystemExit(3)"])
FAST = RolloutOptions(canary=1, max_parallel=2, min_healthy_seconds=0.5,
                      healthy_deadline_seconds=60)


@dataclass
class Host:
    name: str
    world: World
    bot: Bot
    agent: subprocess.Popen[str]

    def head(self) -> str:
        return self.world.head()


class Fleet:
    def __init__(self, template: World, base: Path, pg_url: str) -> None:
        self.template, self.base, self.pg_url = template, base, pg_url
        self.hosts: list[Host] = []

    def add(self, name: str, group: str, *, failing: bool = False, shards: tuple[int, ...] = (),
            session_starts: dict | None = None, restarts: Path | None = None,
            at: str | None = None) -> Host:
        """A host: its deployment, bot and agent. `session_starts`: what the bot heard from
        Discord (as the extension keeps it); `restarts`: the bot is restarted by a command
        that writes the moment to that file; `at`: a release installed on it first."""
        world = copy_world(self.template, self.base / name)
        settings: dict = {"instance_id": name, "instance_group": group,
                          "restart_method": "none", "fleet_heartbeat_seconds": 5,
                          "shard_ids": list(shards)}
        if restarts is not None:
            settings |= {"restart_method": "command", "restart_command": [
                sys.executable, "-c", "import sys, time; open(sys.argv[1], 'a').write("
                "f'{sys.argv[2]} {time.time()}\\n')", str(restarts), name]}
        lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        if failing:
            lines.append(f"health_check_command = {FAILING_CHECK}")
        (world.deploy / "data" / "settings.toml").write_text("\n".join(lines) + "\n")
        if session_starts is not None:
            save_session_starts(world.deploy / "data", session_starts, "4242")
        if at is not None:
            moved = subprocess.run(
                [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "install",
                 "--type", "bot", "--to", at], cwd=REPO_ROOT, capture_output=True, text=True,
                env={**os.environ, "GITRELEASE_INDEX_URL": self.pg_url}, timeout=120)
            assert moved.returncode == 0, moved.stdout + moved.stderr
        bot = Bot(world, "signal")  # the bot's process: alive, its pid file written
        agent = subprocess.Popen(
            [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "agent"],
            cwd=REPO_ROOT, env={**os.environ, "GITRELEASE_INDEX_URL": self.pg_url},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        host = Host(name, world, bot, agent)
        self.hosts.append(host)
        return host

    async def ready(self) -> None:
        """Every agent has reported its bot running."""
        for _ in range(300):
            async with await ReleaseManager.open(self.hosts[0].world.deploy) as manager:
                instances, _stale = await manager.fleet_status()
            if sorted(i.id for i in instances if i.health == "running") == \
                    sorted(h.name for h in self.hosts):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the agents did not all report: {instances}")

    async def roll_out(self, target: str, options: RolloutOptions = FAST) -> tuple:
        async with await ReleaseManager.open(self.hosts[0].world.deploy) as manager:
            started = await manager.start_rollout(target, options, actor="test")
            ended = await asyncio.wait_for(
                manager.drive_rollout(started.id, actor="test", poll=0.1), timeout=240)
            (rollout, trail), *_ = await manager.rollouts(1)
        assert rollout.id == ended.id
        return ended, trail

    def stop(self) -> None:
        """Stop the bots, and the agents still running (each must end cleanly on SIGTERM;
        those a test killed are gone already)."""
        alive = [host for host in self.hosts if host.agent.poll() is None]
        for host in self.hosts:
            if host in alive:
                host.agent.terminate()
            host.bot.stop()
        for host in alive:
            _out, err = host.agent.communicate(timeout=30)
            assert host.agent.returncode == 0, f"{host.name}'s agent: {err}"


@pytest.fixture
def fleet(template_world: World, tmp_path: Path, pg_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    made = Fleet(template_world, tmp_path, pg_url)
    try:
        yield made
    finally:
        made.stop()


def _states(rollout: object) -> dict[str, str]:
    return {a.instance_id: a.state for a in rollout.assignments}  # type: ignore[attr-defined]


def _actions(trail: list[dict]) -> list[tuple[str, str]]:
    return [(e["action"], e["detail"].split(":")[0]) for e in trail]


DISCORD = {"total": 1000, "remaining": 900, "reset_after": 3_600_000, "max_concurrency": 1}


async def test_the_canary_goes_first_then_the_rest_and_all_run_the_release(
        fleet: Fleet, tmp_path: Path) -> None:
    restarts = tmp_path / "restarts.log"
    canary = fleet.add("canary-1", "canary", shards=(0,), session_starts=DISCORD,
                       restarts=restarts)
    prods = [fleet.add(f"prod-{n}", "prod", shards=(n,), session_starts=DISCORD,
                       restarts=restarts) for n in (1, 2)]
    await fleet.ready()
    ended, trail = await fleet.roll_out("v1.10.0")
    assert ended.status == "succeeded", (ended.to_dict(), trail)
    assert _states(ended) == {"canary-1": "healthy", "prod-1": "healthy", "prod-2": "healthy"}
    target = canary.world.tag_commit("v1.10.0")
    assert [h.head() for h in (canary, *prods)] == [target] * 3
    # The prods were assigned only once the canary had stayed healthy.
    order = [(action, detail) for action, detail in _actions(trail)
             if action in ("assigned", "healthy")]
    assert order.index(("healthy", "canary-1")) < order.index(("assigned", "prod-1"))
    assert [a.wave for a in ended.assignments] == [0, 1, 1]
    # The bot's session starts were counted: a restart and a rollback of three shards.
    started = next(e["detail"] for e in trail if e["action"] == "started")
    assert "bot 4242: 6 of 900 session starts needed" in started
    # The bots restarted one login per 5 s (max_concurrency 1), the two prods of one wave
    # included: the later one waited for its turn.
    at = dict(line.split() for line in restarts.read_text().splitlines())
    assert sorted(at) == ["canary-1", "prod-1", "prod-2"]
    moments = sorted(float(t) for t in at.values())
    assert all(b - a >= 4.9 for a, b in itertools.pairwise(moments)), moments
    assert "restart waits" in [a for a, _d in _actions(trail)]


async def test_a_failing_canary_rolls_itself_back_and_nothing_else_moves(
        fleet: Fleet) -> None:
    canary = fleet.add("canary-1", "canary", failing=True)
    prods = [fleet.add("prod-1", "prod"), fleet.add("prod-2", "prod")]
    await fleet.ready()
    before = [h.head() for h in (canary, *prods)]
    ended, trail = await fleet.roll_out("v1.10.0")
    assert ended.status == "failed" and "canary-1 failed" in (ended.reason or "")
    assert _states(ended) == {"canary-1": "failed", "prod-1": "skipped", "prod-2": "skipped"}
    assert [h.head() for h in (canary, *prods)] == before  # the canary undid its own install
    assert ("assigned", "prod-1") not in _actions(trail)


async def test_with_auto_revert_the_moved_instances_go_back(fleet: Fleet) -> None:
    canary = fleet.add("canary-1", "canary")
    failing = fleet.add("prod-1", "prod", failing=True)
    await fleet.ready()
    start = canary.head()
    ended, trail = await fleet.roll_out("v1.10.0", RolloutOptions(
        canary=1, max_parallel=1, min_healthy_seconds=0.5, healthy_deadline_seconds=60,
        auto_revert=True))
    assert ended.status == "reverted", (ended.to_dict(), trail)
    assert _states(ended) == {"canary-1": "reverted", "prod-1": "failed"}
    assert canary.head() == start and failing.head() == start
    assert ("reverted", "rbk_") in [(a, d[:4]) for a, d in _actions(trail)]


async def test_a_revert_goes_to_the_last_version_the_whole_fleet_ran_healthy(
        fleet: Fleet) -> None:
    """The fleet last ran healthy on v1.0.0 (a rollout that succeeded); the canary has been
    moved to v1.9.0 by hand since. A failed rollout with auto_revert takes it to v1.0.0,
    not to the v1.9.0 it happened to run."""
    canary = fleet.add("canary-1", "canary", at="v1.9.0")
    failing = fleet.add("prod-1", "prod", failing=True)
    async with await ReleaseManager.open(canary.world.deploy) as manager:
        store = await manager.deployment.index()
        done = Rollout("rol_earlier", "v1.0.0", "succeeded", FAST, "test", utcnow())
        await store.create_rollout(done)  # type: ignore[attr-defined]
    await fleet.ready()
    ended, trail = await fleet.roll_out("v1.10.0", RolloutOptions(
        canary=1, max_parallel=1, min_healthy_seconds=0.5, healthy_deadline_seconds=60,
        auto_revert=True))
    assert ended.status == "reverted", (ended.to_dict(), trail)
    assert _states(ended) == {"canary-1": "reverted", "prod-1": "failed"}
    assert canary.head() == failing.head() == canary.world.tag_commit("v1.0.0")
    started = next(e["detail"] for e in trail if e["action"] == "started")
    assert "a revert goes to v1.0.0, the last version the whole fleet ran healthy" in started
    assert [a.revert_to for a in ended.assignments] == ["v1.0.0", "v1.0.0"]
    assert ended.assignments[0].baseline == "v1.9.0"


async def test_one_rollout_at_a_time_and_a_new_coordinator_carries_it_on(
        fleet: Fleet) -> None:
    hosts = [fleet.add("canary-1", "canary"), fleet.add("prod-1", "prod")]
    await fleet.ready()
    async with await ReleaseManager.open(hosts[0].world.deploy) as manager:
        started = await manager.start_rollout("v1.10.0", RolloutOptions(
            canary=1, max_parallel=1, min_healthy_seconds=0.5, healthy_deadline_seconds=60),
            actor="first")
        with pytest.raises(RolloutConflict):
            await manager.start_rollout("v1.9.0", FAST, actor="second")
        # The first coordinator dies as soon as it has assigned the canary...
        first = asyncio.ensure_future(manager.drive_rollout(started.id, actor="first",
                                                            poll=0.1))
        for _ in range(200):
            (rollout, _trail), *_ = await manager.rollouts(1)
            if _states(rollout)["canary-1"] != "pending":
                break
            await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    # ...and another process, on another host, carries it on from the index.
    async with await ReleaseManager.open(hosts[1].world.deploy) as other:
        ended = await asyncio.wait_for(other.drive_rollout(started.id, actor="second",
                                                           poll=0.1), timeout=240)
        (_rollout, trail), *_ = await other.rollouts(1)
    assert ended.status == "succeeded"
    assigned = [d for a, d in _actions(trail) if a == "assigned"]
    assert sorted(assigned) == ["canary-1", "prod-1"]  # no wave was assigned twice
    # Each coordinator took it on under an epoch of its own; the first's ended with it.
    taken = [(e["actor"], e["detail"].split(" on ")[0]) for e in trail
             if e["action"] == "coordinating"]
    assert taken == [("first", "epoch 1"), ("second", "epoch 2")]
    assert (ended.epoch, ended.coordinator.split("@")[0]) == (2, "second")


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                           "fleet", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


BAD_ROLLOUTS = [
    (("rollout",), "--to"),
    (("rollout", "--to", "v1.10.0", "--canary", "0"), "--canary"),
    (("rollout", "--to", "v1.10.0", "--canary", "1.5"), "--canary"),
    (("rollout", "--to", "v1.10.0", "--max-parallel", "many"), "--max-parallel"),
    (("rollout", "--to", "v1.10.0", "--min-healthy-time", "-1"), "--min-healthy-time"),
    (("rollout", "--to", "v1.10.0", "--healthy-deadline", "0"), "--healthy-deadline"),
    (("rollout", "--to", "v1.10.0", "--canary-group", "no such"), "--canary-group"),
    (("rollout", "--to", "v9.9.9"), "no release"),
    (("abort",), "no active rollout"),
    (("pause",), "no running rollout"),
    (("promote",), "no paused rollout"),
    (("abort", "--why", "x" * 501), "--why"),
]


def test_bad_rollout_input_is_refused_and_starts_nothing(
        world: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    (world.deploy / "data" / "settings.toml").write_text('instance_id = "only"\n')
    head = world.head()
    agent = subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                            "agent", "--once"], cwd=REPO_ROOT, capture_output=True,
                           text=True, env=dict(os.environ), timeout=120)
    assert agent.returncode == 0, agent.stderr
    for args, named in BAD_ROLLOUTS:
        result = _cli(world, *args)
        assert result.returncode != 0 and named in result.stderr, \
            (args, result.stdout + result.stderr)
    # A bot with one session start left could restart, but not roll back: refused.
    save_session_starts(world.deploy / "data", {
        "total": 1000, "remaining": 1, "reset_after": 600_000, "max_concurrency": 1}, "4242")
    bot = Bot(world, "signal")
    try:
        agent = subprocess.run([sys.executable, "-m", "gitrelease", "--root",
                                str(world.deploy), "agent", "--once"], cwd=REPO_ROOT,
                               capture_output=True, text=True, env=dict(os.environ),
                               timeout=120)
        assert agent.returncode == 0, agent.stderr
        refused = _cli(world, "rollout", "--to", "v1.10.0")
    finally:
        bot.stop()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "bot 4242 has 1 session starts left (of 1000 a day, until " in refused.stderr
    assert "rolling back the 1 shard(s) of only needs 2" in refused.stderr
    listed = json.loads(_cli(world, "rollouts", "--json").stdout)
    assert listed["rollouts"] == [] and world.head() == head


async def test_paused_after_the_canary_until_promoted(fleet: Fleet) -> None:
    hosts = [fleet.add("canary-1", "canary"), fleet.add("prod-1", "prod")]
    await fleet.ready()
    options = RolloutOptions(canary=1, max_parallel=1, min_healthy_seconds=0.5,
                             healthy_deadline_seconds=60, pause_after_canary=True)
    async with await ReleaseManager.open(hosts[0].world.deploy) as manager:
        started = await manager.start_rollout("v1.10.0", options, actor="test")
        driving = asyncio.ensure_future(manager.drive_rollout(started.id, actor="test",
                                                              poll=0.1))
        for _ in range(600):
            (rollout, _trail), *_ = await manager.rollouts(1)
            if rollout.status == "paused":
                break
            await asyncio.sleep(0.05)
        assert rollout.status == "paused" and "fleet promote" in (rollout.reason or "")
        assert _states(rollout) == {"canary-1": "healthy", "prod-1": "pending"}
        await asyncio.sleep(1.5)  # paused: nothing new is assigned
        (rollout, _trail), *_ = await manager.rollouts(1)
        assert _states(rollout)["prod-1"] == "pending"
        promoted = _cli(hosts[1].world, "promote", "--why", "canary looks good")
        assert promoted.returncode == 0, promoted.stderr
        ended = await asyncio.wait_for(driving, timeout=240)
        (_rollout, trail), *_ = await manager.rollouts(1)
    assert ended.status == "succeeded"
    assert ("promoted", "canary looks good") in _actions(trail)
    assert hosts[1].head() == hosts[1].world.tag_commit("v1.10.0")


async def test_an_instance_whose_agent_is_gone_fails_the_wave_at_its_deadline(
        fleet: Fleet) -> None:
    canary = fleet.add("canary-1", "canary")
    await fleet.ready()
    canary.agent.kill()  # its last report is fresh: it is in the rollout, and never acts
    canary.agent.wait()
    ended, _trail = await fleet.roll_out("v1.10.0", RolloutOptions(
        canary=1, min_healthy_seconds=0.5, healthy_deadline_seconds=2))
    assert ended.status == "failed" and "not healthy within 2 s" in (ended.reason or "")
    assert canary.head() == canary.world.tag_commit("v1.0.0")


async def test_an_agent_killed_mid_install_is_settled_by_the_next_and_the_wave_fails(
        fleet: Fleet, pg_url: str) -> None:
    canary = fleet.add("canary-1", "canary")
    await fleet.ready()
    canary.agent.terminate()
    canary.agent.communicate(timeout=30)
    marker = canary.world.base / "paused-archive-member-written"
    dying = subprocess.Popen(
        [sys.executable, "-m", "gitrelease", "--root", str(canary.world.deploy), "agent"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "GITRELEASE_INDEX_URL": pg_url,
             "GITRELEASE_PAUSE_AT": "archive:member-written",
             "GITRELEASE_PAUSE_MARKER": str(marker)})
    async with await ReleaseManager.open(canary.world.deploy) as manager:
        started = await manager.start_rollout("v1.10.0", RolloutOptions(
            canary=1, min_healthy_seconds=0.5, healthy_deadline_seconds=120), actor="test")
        driving = asyncio.ensure_future(manager.drive_rollout(started.id, actor="test",
                                                              poll=0.1))
        for _ in range(600):  # the agent is in its install's pre-update backup
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), "the agent never started the install"
        dying.kill()
        dying.wait()
        canary.agent = subprocess.Popen(  # the agent's service starts it again
            [sys.executable, "-m", "gitrelease", "--root", str(canary.world.deploy), "agent"],
            cwd=REPO_ROOT, env={**os.environ, "GITRELEASE_INDEX_URL": pg_url},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ended = await asyncio.wait_for(driving, timeout=240)
        (_rollout, trail), *_ = await manager.rollouts(1)
    assert ended.status == "failed", (ended.to_dict(), trail)
    assert "the agent was interrupted; recovery left the checkout at 1.0.0" in \
        (ended.reason or "")
    assert canary.head() == canary.world.tag_commit("v1.0.0")
    assert ("settled", "the agent was interrupted; recovery left the checkout at 1.0.0") \
        in _actions(trail)


async def test_the_index_going_away_starts_nothing_and_the_rollout_resumes_after(
        template_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server of this test's own, stopped mid-rollout and started again on its data."""
    import pgserver

    from gitrelease.core.errors import IndexStoreError

    folder = tmp_path / "pg"
    server = pgserver.get_server(str(folder), cleanup_mode="stop")
    url = server.get_uri()
    monkeypatch.setenv("GITRELEASE_INDEX_URL", url)
    fleet = Fleet(template_world, tmp_path / "hosts", url)
    try:
        canary, prod = fleet.add("canary-1", "canary"), fleet.add("prod-1", "prod")
        await fleet.ready()
        async with await ReleaseManager.open(canary.world.deploy) as manager:
            started = await manager.start_rollout("v1.10.0", RolloutOptions(
                canary=1, min_healthy_seconds=0.5, healthy_deadline_seconds=120,
                pause_after_canary=True), actor="test")
            with pytest.raises(IndexStoreError):  # the coordinator stops when it goes
                async def until_paused() -> None:
                    while True:
                        (rollout, _trail), *_ = await manager.rollouts(1)
                        if rollout.status == "paused":
                            server.cleanup()  # the server goes away
                        await asyncio.sleep(0.1)
                await asyncio.wait_for(asyncio.gather(
                    manager.drive_rollout(started.id, actor="test", poll=0.1),
                    until_paused()), timeout=240)
        await asyncio.sleep(2.5)  # the agents look, fail, and carry on
        assert all(h.agent.poll() is None for h in fleet.hosts), "an agent died"
        assert prod.head() == prod.world.tag_commit("v1.0.0")  # nothing new started
        server = pgserver.get_server(str(folder), cleanup_mode="stop")  # back, same data
        assert _cli(prod.world, "promote").returncode == 0
        resumed = _cli(prod.world, "resume", "--json")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "succeeded"
        assert prod.head() == prod.world.tag_commit("v1.10.0")
    finally:
        fleet.stop()
        server.cleanup()
