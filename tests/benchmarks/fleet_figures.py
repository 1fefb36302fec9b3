"""A rollout over a fleet simulated on this machine: the coordinator's overhead.

Each instance is a deployment of the test world with its bot process and its
`gitrelease agent`, all on one real PostgreSQL (pgserver, started here). Ours is the
rollout's wall time, from start to "succeeded"; the baseline is what the waves cannot do
without: for each wave, its slowest install (the engine's own session duration, on its host)
plus `min_healthy_time`. The ratio is the coordinator's overhead (assigning, the agents'
pickup, the reports, the health clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import Figure, Timer, settle

__all__ = ["rollout_overhead"]

REPO_ROOT = Path(__file__).resolve().parents[2]


async def rollout_overhead(bench: Bench) -> list[Figure]:
    import pgserver

    from gitrelease.core.fleet import RolloutOptions
    from gitrelease.index.postgres import PostgresStore
    from gitrelease.manager import ReleaseManager
    from tests.conftest import Bot, _build_template, copy_world

    quick = bench.light_rounds < 10
    count, parallel, healthy = (2, 1, 1.0) if quick else (20, 5, 30.0)
    base = Path(tempfile.mkdtemp(prefix="fleet-", dir=bench.base))
    server = pgserver.get_server(str(base / "pg"), cleanup_mode="stop")
    url = server.get_uri()
    os.environ["GITRELEASE_INDEX_URL"] = url
    (base / "template").mkdir()
    template = _build_template(base / "template")
    bots, agents, worlds = [], [], []
    try:
        for n in range(count):
            world = copy_world(template, base / f"host-{n:02d}")
            name = "canary-1" if n == 0 else f"prod-{n}"
            (world.deploy / "data" / "settings.toml").write_text(
                f'instance_id = "{name}"\ninstance_group = "{"canary" if n == 0 else "prod"}"'
                '\nrestart_method = "none"\nfleet_heartbeat_seconds = 5\n')
            worlds.append((name, world))
            bots.append(Bot(world, "signal"))
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "agent"],
                cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        async with await ReleaseManager.open(worlds[0][1].deploy) as manager:
            for _ in range(600):
                instances, _stale = await manager.fleet_status()
                if sum(1 for i in instances if i.health == "running") == count:
                    break
                await asyncio.sleep(0.1)
            options = RolloutOptions(canary=1, max_parallel=parallel,
                                     min_healthy_seconds=healthy,
                                     healthy_deadline_seconds=600)
            timer = Timer()
            started = await manager.start_rollout("v1.10.0", options, actor="bench")
            ended = await manager.drive_rollout(started.id, actor="bench", poll=0.1)
            ours = timer.elapsed()
        if ended.status != "succeeded":
            raise RuntimeError(f"the rollout did not succeed: {json.dumps(ended.to_dict())}")
        installs: dict[int, list[float]] = {}
        for part in ended.assignments:
            store = await PostgresStore.open(url, part.instance_id)
            try:
                session = await store.get_session(part.detail.split(":")[0])
            finally:
                await store.close()
            assert session is not None and session.completed_at is not None
            took = (session.completed_at - session.started_at).total_seconds()
            installs.setdefault(part.wave, []).append(took)
        baseline = sum(max(times) + healthy for times in installs.values())
    finally:
        os.environ.pop("GITRELEASE_INDEX_URL", None)
        for agent in agents:
            agent.terminate()
        for bot in bots:
            bot.stop()
        for agent in agents:
            agent.wait(timeout=30)
        server.cleanup()
    figure = settle(Figure(f"rollout over {count} instances (coordinator overhead)",
                           "≤ 1.05x", 1.05), [ours], [baseline])
    figure.note = (f"{len(installs)} waves (canary 1, then {parallel} at a time), "
                   f"min_healthy_time {healthy:g} s; baseline: per wave, its slowest install "
                   "(the engine's session) + min_healthy_time")
    return [figure]
