"""Figures over a large index: `/backup_list` with filters and `/update_status` analytics.

Their target is an absolute time; the bare SQL a careful hand would write is shown as the
baseline for scale, not judged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

from tests.benchmarks.archive_figures import open_manager
from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import Figure, Timer, alternate, median, settle

__all__ = ["index_queries"]

FILTERS = {"backup_type": "full", "time_range": "30d", "limit": 20, "sort_by": "date"}


async def index_queries(bench: Bench) -> list[Figure]:
    from gitrelease.core.models import utcnow
    from gitrelease.deploy.host import disk_usage
    from gitrelease.index import INDEX_NAME

    deployment = bench.index_deployment
    raw = sqlite3.connect(deployment.data / INDEX_NAME)
    since = (utcnow() - timedelta(days=30)).isoformat(timespec="microseconds")
    rows = bench.scale.backups
    figures = []
    async with open_manager(deployment) as manager:
        listed: list[int] = []

        async def list_ours() -> float:
            timer = Timer()
            backups = await manager.list_backups(FILTERS)
            elapsed = timer.elapsed()
            listed.append(len(backups))
            return elapsed

        async def list_bare() -> float:
            timer = Timer()
            raw.execute("SELECT * FROM backups WHERE backup_type = ? AND created_at >= ? "
                        "AND deleting = 0 ORDER BY created_at DESC LIMIT 20",
                        ("full", since)).fetchall()
            return timer.elapsed()

        mine, theirs = await alternate(list_ours, list_bare, bench.light_rounds * 2,
                                       warmup=True)
        figure = settle(Figure(f"/backup_list with filters over {rows:,} backups", "< 20 ms",
                               20, kind="value", unit="ms", strict=True), mine, theirs,
                        scale=1000)
        figure.note = (f"list_backups({FILTERS}) on an open manager, {max(listed)} rows back; "
                       "baseline: the same query as one SQL statement")
        figures.append(figure)

        async def status_ours() -> float:
            timer = Timer()
            await manager.get_update_status("30d", show_history=True)
            return timer.elapsed()

        async def status_bare() -> float:
            timer = Timer()
            raw.execute("SELECT update_type, status, COUNT(*), "
                        "AVG(julianday(completed_at) - julianday(started_at)) "
                        "FROM update_sessions WHERE started_at >= ? "
                        "GROUP BY update_type, status", (since,)).fetchall()
            raw.execute("SELECT * FROM update_sessions ORDER BY started_at DESC LIMIT 10"
                        ).fetchall()
            return timer.elapsed()

        mine, theirs = await alternate(status_ours, status_bare, bench.light_rounds * 2,
                                       warmup=True)
        figure = settle(Figure(f"/update_status analytics over {bench.scale.sessions:,} "
                               f"sessions", "< 20 ms", 20, kind="value", unit="ms",
                               strict=True), mine, theirs, scale=1000)
        # Where the time goes: the same call without host metrics, and the walk of the data
        # dir alone (the backup folder left out: the archives' sizes come from the index).
        quiet: list[float] = []
        walks: list[float] = []
        for _ in range(bench.light_rounds):
            timer = Timer()
            await manager.get_update_status("30d", show_history=True, show_metrics=False)
            quiet.append(timer.elapsed())
            timer = Timer()
            await asyncio.to_thread(disk_usage, manager.root, manager.data_dir,
                                    skip=manager.data_dir / "backups")
            walks.append(timer.elapsed())
        figure.note = ("get_update_status('30d', show_history=True) on an open manager, "
                       "a repository of 3 tags; baseline: the analytics as two SQL statements; "
                       f"without host metrics {(median(quiet) or 0) * 1000:.1f} ms, "
                       f"system.disk_usage alone {(median(walks) or 0) * 1000:.1f} ms")
        figures.append(figure)
    raw.close()
    return figures
