"""Figures about living beside a bot: peak memory, event-loop lateness, slash-command answers."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.archive_figures import open_manager
from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import Figure
from tests.benchmarks.world import Deployment

__all__ = ["lateness", "memory", "slash_ack"]

REPO_ROOT = Path(__file__).resolve().parents[2]
TICK = 0.010


def _child(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    result = subprocess.run([sys.executable, "-m", "tests.benchmarks.child", *args],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _peaks(deployment: Deployment, compression: str) -> dict[str, float]:
    """Peak RSS (MiB) of a backup and of a restore of it, each in a process of its own."""
    deployment.write_settings(compression=compression)
    root = str(deployment.root)
    made = _child("backup", root)
    try:
        restored = _child("restore", root, made["backup_id"])
    finally:
        asyncio.run(_delete(deployment, made["backup_id"]))
    return {"backup": made["peak_mib"], "restore": restored["peak_mib"]}


async def _delete(deployment: Deployment, backup_id: str) -> None:
    async with open_manager(deployment) as manager:
        await manager.delete_backup(backup_id, confirm=True)


async def memory(bench: Bench) -> list[Figure]:
    large, small = bench.deployment, bench.small_deployment
    one_size = small.root == large.root  # the quick run: its data is the small data
    idle = _child("idle", str(large.root))["peak_mib"]
    figures = []
    for compression in ("zstd", "gzip"):
        big = await asyncio.to_thread(_peaks, large, compression)
        little = big if one_size else await asyncio.to_thread(_peaks, small, compression)
        for operation in ("backup", "restore"):
            figure = Figure(f"peak memory of a {operation} ({compression})", "≤ 150 MB", 150,
                            kind="value", unit="MB", ours=big[operation])
            figure.samples = {"ours": [big[operation]], "small_data": [little[operation]]}
            sizes = f"{bench.scale.name} data {big[operation]:.0f} MiB" + (
                "" if one_size else f", quick data {little[operation]:.0f} MiB")
            figure.note = (f"{sizes}; a process that only opens the manager peaks at "
                           f"{idle:.0f} MiB")
            figures.append(figure)
    large.write_settings()
    return figures


async def _ticking(until: asyncio.Future[Any]) -> list[float]:
    """How late each 10 ms tick woke up, until `until` is done."""
    late: list[float] = []
    while not until.done():
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        late.append(time.perf_counter() - started - TICK)
    return late


async def lateness(bench: Bench) -> list[Figure]:
    figures = []
    for compression in ("gzip", "zstd"):
        worst: list[float] = []
        ticks: list[float] = []
        async with open_manager(bench.deployment, compression=compression) as manager:
            for _round in range(bench.heavy_rounds):
                backup = asyncio.ensure_future(manager.create_backup("full"))
                late = await _ticking(backup)
                done = await backup
                await manager.delete_backup(done.id, confirm=True)
                worst.append(max(late) * 1000)
                ticks += late
        figure = Figure(f"worst event-loop lateness during a {compression} backup", "< 50 ms",
                        50, kind="value", unit="ms", strict=True, ours=max(worst))
        figure.samples = {"ours": worst}
        over = sum(1 for t in ticks if t > 0.050)
        figure.note = (f"a 10 ms ticker in the same loop, {len(ticks)} ticks over "
                       f"{bench.heavy_rounds} backups; median lateness "
                       f"{statistics.median(ticks) * 1000:.1f} ms, {over} ticks later than 50 ms")
        figures.append(figure)
    bench.deployment.write_settings()
    return figures


async def slash_ack(bench: Bench) -> list[Figure]:
    title = "slash-command acknowledgement while a backup runs (p99)"
    try:
        from tests.discord_stub import FakeDiscord, slash, start_bot, stop_bot
    except ImportError as exc:
        return [Figure(title, "p99 < 100 ms", 100, kind="value", unit="ms", strict=True,
                       unavailable=f"harness not available ({exc})")]
    from gitrelease_discord.update_manager import UpdateManager

    deployment = bench.deployment
    deployment.write_settings()
    samples: list[float] = []
    async with FakeDiscord() as fake:
        async def setup(bot: Any) -> None:
            await bot.add_cog(UpdateManager(bot, root=deployment.root))

        bot = await start_bot(fake, setup=setup)
        who = {"user_id": fake.owner_id, "guild_id": fake.guild_id}
        try:
            backup = await slash(bot, "backup_create", {"backup_name": "slash_bench"},
                                 wait=False, **who)
            running = asyncio.ensure_future(backup.wait(timeout=3600))
            commands = [("backup_list", {"time_range": "all"}),
                        ("update_status", {"show_history": True})]
            while not running.done():
                name, options = commands[len(samples) % len(commands)]
                answer = await slash(bot, name, options, wait=False, **who)
                samples.append(await answer.acked(timeout=60) * 1000)
                await answer.wait(timeout=60)
                await asyncio.sleep(0.02)
            await running
            errors = backup.errors
        finally:
            await stop_bot(bot)
    async with open_manager(deployment) as manager:
        await manager.delete_backup("slash_bench", confirm=True)
    if errors:
        raise RuntimeError(f"/backup_create failed: {errors!r}")
    p99 = statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else max(samples)
    figure = Figure(title, "p99 < 100 ms", 100, kind="value", unit="ms", strict=True, ours=p99)
    figure.samples = {"ours": samples}
    figure.note = (f"{len(samples)} /backup_list and /update_status sent one after another "
                   f"during /backup_create (tests/discord_stub.py, the real cog); median "
                   f"{statistics.median(samples):.1f} ms, worst {max(samples):.1f} ms")
    return [figure]
