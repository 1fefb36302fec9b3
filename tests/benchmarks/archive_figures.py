"""Figures over the deployment's state: backup, verify, restore, and the database snapshot."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import (
    Figure,
    Phases,
    Timer,
    alternate,
    median_phases,
    rotate,
    settle,
)
from tests.benchmarks.world import Deployment, change_state

__all__ = ["backup_gzip", "backup_zstd", "bare_sqlite_backup", "file_list", "open_manager",
           "restore", "snapshot", "timed_restore", "verify"]

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


def file_list(manager: Any, directory: Path) -> tuple[Path, int]:
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
    limit: float, *, fair: tuple[str, float] | None = None,
) -> list[Figure]:
    """Ours against `tar` with `compress` of the same files; with `fair` (its target and
    limit), also against a consistent snapshot first (`sqlite3 db ".backup snap"`), then the
    same tar over the snapshot in the database's place."""
    deployment = bench.deployment
    scratch = bench.scratch("backup")
    async with open_manager(deployment, **settings) as manager:
        listing, raw = file_list(manager, scratch)
        live = deployment.data / "app.db"
        snap = scratch / "snap.db"
        database = f"{live.relative_to(deployment.root)}\n"
        snapped = scratch / "snapped.txt"
        snapped.write_text(listing.read_text().replace(database, "") + f"{snap}\n")
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

        def tar(files: Path) -> float:
            out = scratch / "baseline.tar"
            out.unlink(missing_ok=True)
            timer = Timer()
            if files is snapped:
                _run("sqlite3", str(live), f".backup '{snap}'")
            _run("tar", *compress, "-cf", str(out), "-C", str(deployment.root), "-T",
                 str(files))
            elapsed = timer.elapsed()
            sizes["baseline"] = out.stat().st_size
            out.unlink()
            snap.unlink(missing_ok=True)
            return elapsed

        async def bare() -> float:
            return await asyncio.to_thread(tar, listing)

        async def fairer() -> float:
            return await asyncio.to_thread(tar, snapped)

        runs = [ours, bare] + ([fairer] if fair and shutil.which("sqlite3") else [])
        mine, bares, *fairs = await rotate(runs, bench.heavy_rounds)
    figure = settle(Figure(title.format(size=_mib(raw)), target, limit), mine, bares)
    figure.phases = median_phases(phases)
    figure.note = (f"archive {_mib(sizes['ours'])} (ours) / {_mib(sizes['baseline'])} "
                   f"(baseline); settings {settings or 'the defaults'}; baseline: tar "
                   f"{' '.join(compress)} of the live files")
    figures = [figure]
    if fair:
        name = title.format(size=_mib(raw)) + " vs fair"
        if not fairs:
            figures.append(Figure(name, fair[0], fair[1], unavailable=_tool("sqlite3") or ""))
        else:
            with_fair = settle(Figure(name, fair[0], fair[1]), mine, fairs[0])
            with_fair.note = ("the same backup; fair: sqlite3 db \".backup snap.db\" (a "
                              f"consistent snapshot), then tar {' '.join(compress)} over it")
            figures.append(with_fair)
    return figures


async def backup_zstd(bench: Bench) -> list[Figure]:
    missing = _tool("zstd")
    title = "backup of the {size} state, default settings (zstd)"
    if missing:
        return [Figure(title.format(size="whole"), "≤ 1.6x", 1.6, unavailable=missing)]
    # The default compression is zstd at zstd_level 3, the baseline's level.
    return await _backup_figure(bench, title, {}, ["-I", "zstd -3 -T0"], "≤ 1.6x", 1.6,
                                fair=("≤ 1.2x", 1.2))


async def backup_gzip(bench: Bench) -> list[Figure]:
    return await _backup_figure(bench, "gzip backup of the {size} state (compression = gzip)",
                                {"compression": "gzip"}, ["-z"], "≤ 1.0x", 1.0)


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
    figures: list[Figure] = []
    for compression, unpack, bare_limit in (("zstd", ["-I", "zstd"], 3.0),
                                            ("gzip", ["-z"], 1.5)):
        figures += await _restore_changed(bench, compression, unpack, bare_limit)
    figures.append(await _restore_unchanged(bench))
    return figures


def _fresh(*folders: Path) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)


def _run(*command: str, cwd: Path | None = None) -> None:
    subprocess.run(command, check=True, capture_output=True, cwd=cwd)


async def timed_restore(manager: Any, backup: Any, phases: list[dict[str, float]]) -> float:
    """One restore of `backup`, timed, its steps kept in `phases`; its safety backup then
    deleted (untimed)."""
    steps = Phases()
    timer = Timer()
    result = await manager.restore_backup(backup.id, {"confirm": True}, progress=steps)
    elapsed = timer.elapsed()
    phases.append(steps.durations(timer.started + elapsed))
    if result.safety_backup is not None:
        await manager.delete_backup(result.safety_backup.id, confirm=True)
    return elapsed


async def _restore_changed(bench: Bench, compression: str, unpack: list[str],
                           bare_limit: float) -> list[Figure]:
    """A full backup restored after a day of the bot's use changed 1% of its database rows,
    1% of its JSON files and .env (`change_state`, untimed before each run, and flushed)."""
    title = f"restore after a day's changes ({compression})"
    missing = _tool("zstd") if compression == "zstd" else None
    if missing:
        return [Figure(f"{title} vs {what}", "—", None, unavailable=missing)
                for what in ("fair", "bare")]
    deployment = bench.deployment
    scratch = bench.scratch(f"restore-{compression}")
    days = iter(range(1, 10_000))
    async with open_manager(deployment, compression=compression) as manager:
        backup = await _one_backup(manager)
        archive = backup.file_path or ""
        phases: list[dict[str, float]] = []

        async def changed() -> list[Path]:
            files = await asyncio.to_thread(change_state, deployment, next(days))
            await asyncio.to_thread(os.sync)  # the change's own writes are not the restore's
            return files

        async def ours() -> float:
            await changed()
            return await timed_restore(manager, backup, phases)

        async def fair() -> float:
            files = await changed()
            aside, target = scratch / "aside", scratch / "unpacked"
            _fresh(aside, target)
            timer = Timer()
            _run("cp", "-a", "--", *map(str, files), str(aside))
            _run("tar", *unpack, "-xf", archive, "-C", str(target))
            _run("sync")
            return timer.elapsed()

        async def bare() -> float:
            target = scratch / "unpacked"
            _fresh(target)
            timer = Timer()
            _run("tar", *unpack, "-xf", archive, "-C", str(target))
            return timer.elapsed()

        try:
            mine, fairs, bares = await rotate([ours, fair, bare], bench.heavy_rounds)
        finally:
            back = await manager.restore_backup(backup.id, {"confirm": True})  # as it was
            if back.safety_backup is not None:
                await manager.delete_backup(back.safety_backup.id, confirm=True)
            await manager.delete_backup(backup.id, confirm=True)
            shutil.rmtree(scratch, ignore_errors=True)
    with_fair = settle(Figure(f"{title} vs fair", "≤ 1.2x", 1.2), mine, fairs)
    with_fair.phases = median_phases(phases)
    with_fair.note = (f"restore_backup(confirm=True), compression = {compression}, after 1% "
                      "of the rows, 1% of the JSON files and .env changed: compares, unpacks "
                      "what changed (verifying), keeps a safety backup of it, puts it in "
                      "place durably; fair: cp -a of the changed files aside + tar -x + sync")
    with_bare = settle(Figure(f"{title} vs bare", f"≤ {bare_limit}x", bare_limit), mine,
                       bares)
    with_bare.note = "the same restore; bare: tar -x into an empty folder, no fsync"
    return [with_fair, with_bare]


async def _restore_unchanged(bench: Bench) -> Figure:
    """A restore right after the backup: every live file already is what it holds."""
    title = "restore right after a backup (nothing changed, zstd)"
    missing = _tool("zstd")
    if missing:
        return Figure(title, "≤ 1.0x", 1.0, unavailable=missing)
    scratch = bench.scratch("restore-same")
    async with open_manager(bench.deployment, compression="zstd") as manager:
        backup = await _one_backup(manager)
        phases: list[dict[str, float]] = []

        async def ours() -> float:
            return await timed_restore(manager, backup, phases)

        async def bare() -> float:
            target = scratch / "unpacked"
            _fresh(target)
            timer = Timer()
            _run("tar", "-I", "zstd", "-xf", backup.file_path or "", "-C", str(target))
            return timer.elapsed()

        try:
            mine, theirs = await alternate(ours, bare, bench.heavy_rounds)
        finally:
            await manager.delete_backup(backup.id, confirm=True)
            shutil.rmtree(scratch, ignore_errors=True)
    figure = settle(Figure(title, "≤ 1.0x", 1.0), mine, theirs)
    figure.phases = median_phases(phases)
    figure.note = ("restore_backup(confirm=True) of the backup just taken: each live file "
                   "compared with the manifest (size, mode, sha256), the archive's sha256 "
                   "verified, nothing replaced; bare: tar -x into an empty folder")
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
