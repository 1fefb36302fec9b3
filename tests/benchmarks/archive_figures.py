"""Figures over the deployment's state: backup, verify, restore, and the database snapshot."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import Figure, Phases, Timer, alternate, median_phases, settle
from tests.benchmarks.world import Deployment

__all__ = ["backup_gzip", "backup_zstd", "bare_sqlite_backup", "open_manager", "restore",
           "snapshot", "verify"]

CHUNK = 1024 * 1024


def _mib(size: float) -> str:
    return f"{size / 2**20:.0f} MiB"


@asynccontextmanager
async def open_manager(deployment: Deployment, **settings: Any) -> AsyncIterator[Any]:
    """A manager over the state deployment with these runtime settings (and no others)."""
    from gitrelease.manager import ReleaseManager

    deployment.write_settings(**settings)
    async with await ReleaseManager.open(deployment.root) as manager:
        yield manager


def _file_list(manager: Any, directory: Path) -> tuple[Path, int]:
    """The files a full backup takes, by the engine's own rules, as a `tar -T` list."""
    from gitrelease.core.models import BackupType
    from gitrelease.state.sources import Layout, collect

    layout = Layout.of(manager.root, manager.data_dir, manager.settings)
    sources = collect(layout, manager.settings, BackupType.FULL, include_logs=False,
                      tracked=manager.repo.tracked_files())
    listing = directory / "files.txt"
    listing.write_text("".join(f"{s.path.relative_to(manager.root)}\n" for s in sources))
    return listing, sum(s.size for s in sources)


def _tool(name: str) -> str | None:
    return None if shutil.which(name) else f"`{name}` is not installed"


async def _backup_figure(
    bench: Bench, title: str, settings: dict[str, Any], compress: list[str], target: str,
    limit: float,
) -> Figure:
    deployment = bench.deployment
    scratch = bench.scratch("backup")
    async with open_manager(deployment, **settings) as manager:
        listing, raw = _file_list(manager, scratch)
        phases: list[dict[str, float]] = []
        sizes: dict[str, int] = {}

        async def ours() -> float:
            steps = Phases()
            timer = Timer()
            backup = await manager.create_backup("full", progress=steps)
            elapsed = timer.elapsed()
            phases.append(steps.durations(timer.started + elapsed))
            sizes["ours"] = backup.compressed_size or 0
            await manager.delete_backup(backup.id, confirm=True)
            return elapsed

        async def baseline() -> float:
            out = scratch / "baseline.tar"
            out.unlink(missing_ok=True)
            timer = Timer()
            subprocess.run(["tar", *compress, "-cf", str(out), "-C", str(deployment.root),
                            "-T", str(listing)], check=True, capture_output=True)
            elapsed = timer.elapsed()
            sizes["baseline"] = out.stat().st_size
            out.unlink()
            return elapsed

        mine, theirs = await alternate(ours, baseline, bench.heavy_rounds)
    figure = settle(Figure(title.format(size=_mib(raw)), target, limit), mine, theirs)
    figure.phases = median_phases(phases)
    figure.note = (f"archive {_mib(sizes['ours'])} (ours) / {_mib(sizes['baseline'])} "
                   f"(baseline); settings {settings}")
    return figure


async def backup_zstd(bench: Bench) -> list[Figure]:
    missing = _tool("zstd")
    title = "zstd backup of the {size} state (compression = zstd)"
    if missing:
        return [Figure(title.format(size="whole"), "≤ 1.3x", 1.3, unavailable=missing)]
    baseline = ["-I", "zstd -3 -T0"]
    # zstd_level defaults to 3, the baseline's level.
    return [await _backup_figure(bench, title, {"compression": "zstd"}, baseline,
                                 "≤ 1.3x", 1.3)]


async def backup_gzip(bench: Bench) -> list[Figure]:
    return [await _backup_figure(bench, "gzip backup of the {size} state (default settings)",
                                 {}, ["-z"], "≤ 1.0x", 1.0)]


async def _one_backup(manager: Any) -> Any:
    return await manager.create_backup("full", {"keep": True})


async def verify(bench: Bench) -> list[Figure]:
    return [await _verify_one(bench, "gzip"), await _verify_one(bench, "zstd")]


async def _verify_one(bench: Bench, compression: str) -> Figure:
    async with open_manager(bench.deployment, compression=compression) as manager:
        backup = await _one_backup(manager)
        archive = Path(backup.file_path)

        async def ours() -> float:
            timer = Timer()
            await manager.verify_backup(backup.id)
            return timer.elapsed()

        async def baseline() -> float:
            timer = Timer()
            await asyncio.to_thread(_sha256, archive)
            return timer.elapsed()

        try:
            mine, theirs = await alternate(ours, baseline, bench.heavy_rounds, warmup=True)
            size = archive.stat().st_size
        finally:
            await manager.delete_backup(backup.id, confirm=True)
    figure = settle(Figure(f"verify a {compression} archive ({_mib(size)})", "≤ 1.1x", 1.1),
                    mine, theirs)
    figure.note = ("verify_backup (the archive's sha256 recorded when it was written; every "
                   "member against the manifest only when that differs, is missing, or the "
                   "archive was adopted) vs sha256 of the file")
    return figure


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def restore(bench: Bench) -> list[Figure]:
    return [await _restore_one(bench, "zstd", ["-I", "zstd"], 1.3),
            await _restore_one(bench, "gzip", ["-z"], 1.1)]


async def _restore_one(bench: Bench, compression: str, unpack: list[str], limit: float) -> Figure:
    title = f"restore a full backup ({compression})"
    missing = _tool("zstd") if compression == "zstd" else None
    if missing:
        return Figure(title, f"≤ {limit}x", limit, unavailable=missing)
    scratch = bench.scratch("restore")
    async with open_manager(bench.deployment, compression=compression) as manager:
        backup = await _one_backup(manager)
        phases: list[dict[str, float]] = []

        async def ours() -> float:
            steps = Phases()
            timer = Timer()
            result = await manager.restore_backup(backup.id, {"confirm": True}, progress=steps)
            elapsed = timer.elapsed()
            phases.append(steps.durations(timer.started + elapsed))
            if result.safety_backup is not None:
                await manager.delete_backup(result.safety_backup.id, confirm=True)
            return elapsed

        async def baseline() -> float:
            target = scratch / "unpacked"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            timer = Timer()
            subprocess.run(["tar", *unpack, "-xf", backup.file_path, "-C", str(target)],
                           check=True, capture_output=True)
            return timer.elapsed()

        try:
            mine, theirs = await alternate(ours, baseline, bench.heavy_rounds)
        finally:
            await manager.delete_backup(backup.id, confirm=True)
    figure = settle(Figure(title, f"≤ {limit}x", limit), mine, theirs)
    figure.phases = median_phases(phases)
    figure.note = (f"restore_backup(confirm=True), compression = {compression}: unpack "
                   "(verifying) beside an uncompressed safety backup of the files replaced, "
                   "then the files, fsynced; the baseline: tar -x only, no fsync")
    return figure


async def snapshot(bench: Bench) -> list[Figure]:
    from gitrelease.state.snapshot import snapshot_database

    live = bench.deployment.data / "app.db"
    scratch = bench.scratch("snapshot")

    async def ours() -> float:
        target = scratch / "ours.db"
        target.unlink(missing_ok=True)
        timer = Timer()
        await asyncio.to_thread(snapshot_database, live, target)
        return timer.elapsed()

    async def baseline() -> float:
        target = scratch / "bare.db"
        target.unlink(missing_ok=True)
        timer = Timer()
        await asyncio.to_thread(bare_sqlite_backup, live, target)
        return timer.elapsed()

    mine, theirs = await alternate(ours, baseline, max(bench.heavy_rounds, 5), warmup=True)
    figure = settle(Figure(f"SQLite snapshot inside a backup ({_mib(live.stat().st_size)} db)",
                           "≤ 1.2x", 1.2), mine, theirs)
    figure.note = ("gitrelease.state.snapshot.snapshot_database vs a bare Connection.backup("
                   "pages=-1); its PRAGMA quick_check runs beside the compression in a backup "
                   "and counts in the backup figures")
    return [figure]


def bare_sqlite_backup(source: Path, target: Path) -> None:
    """The baseline of every database copy: SQLite's backup API, nothing around it."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()
