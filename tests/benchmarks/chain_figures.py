"""A chain of daily backups (issue 21) beside restic (issue 19), on the same states.

Eleven backups through the normal path (default settings: once backups are incremental, one
chain, `full_every` being 14): a first one, then ten days, each a day's changes
(`change_state`, untimed and flushed) and a backup. restic backs up the same files after the
same changes, into a local repository. Then what a restore of the chain's newest costs: against
a full backup of the same state (`full=True`), and against `restic restore` of it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.archive_figures import file_list, open_manager, timed_restore
from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import (
    Figure,
    Phases,
    Timer,
    median,
    median_phases,
    rotate,
    settle,
)
from tests.benchmarks.world import QUICK, Deployment, change_state

__all__ = ["chain"]

DAYS = 10  # daily backups after the first: a chain of 11, shorter than full_every's 14
QUICK_DAYS = 3  # the quick run only keeps the figure working
NO_RESTIC = "restic not installed"


def _mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def _tree_size(folder: Path) -> int:
    """Bytes of every file under `folder` (apparent sizes, as the archives' are counted)."""
    return sum((Path(top) / name).stat().st_size
               for top, _dirs, names in os.walk(folder) for name in names)


@dataclass
class Restic:
    """restic over a local repository, as an operator runs it: one process per command, its
    cache in the scratch folder, the password from a file."""

    repo: Path
    root: Path  # the deployment: the listed paths are relative to it
    listing: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, scratch: Path, root: Path, listing: Path) -> Restic:
        password = scratch / "restic-password"
        password.write_text("benchmark-password\n")
        env = {**os.environ, "RESTIC_PASSWORD_FILE": str(password),
               "RESTIC_CACHE_DIR": str(scratch / "restic-cache")}
        env.pop("RESTIC_REPOSITORY", None)
        env.pop("RESTIC_PASSWORD", None)
        restic = cls(scratch / "restic-repo", root, listing, env)
        restic.run("init")  # restic 0.14's default ("stable") format: version 2, compressed
        return restic

    def run(self, *args: str) -> None:
        result = subprocess.run(["restic", "--repo", str(self.repo), "--quiet", *args],
                                cwd=self.root, env=self.env, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"restic {args[0]} failed: {result.stderr.strip()[-2000:]}")

    def backup(self) -> float:
        timer = Timer()
        self.run("backup", "--host", "bench", "--files-from", str(self.listing))
        return timer.elapsed()

    def restore(self, target: Path) -> float:
        timer = Timer()
        self.run("restore", "latest", "--target", str(target))
        return timer.elapsed()

    def start(self) -> float:
        """A command that only opens the repository (its key's scrypt): restic's start."""
        timer = Timer()
        self.run("cat", "config")
        return timer.elapsed()


@dataclass
class Days:
    """What the backups of the first state and the days after it gave."""

    taken: list[Any] = field(default_factory=list)  # our backups, oldest first
    ours: list[float] = field(default_factory=list)  # the daily ones' seconds
    theirs: list[float] = field(default_factory=list)
    first: dict[str, float] = field(default_factory=dict)
    phases: list[dict[str, float]] = field(default_factory=list)


async def _flushed(deployment: Deployment, day: int) -> None:
    await asyncio.to_thread(change_state, deployment, day)
    await asyncio.to_thread(os.sync)  # the change's own writes are not the backup's


async def _backups(manager: Any, deployment: Deployment, restic: Restic | None,
                   days: int, into: Days) -> None:
    """The first backup, then `days` days of changes, each backed up by both (alternating
    which goes first; everything flushed before each)."""

    async def ours() -> float:
        steps = Phases()
        timer = Timer()
        backup = await manager.create_backup("full", progress=steps)
        elapsed = timer.elapsed()
        into.phases.append(steps.durations(timer.started + elapsed))
        into.taken.append(backup)
        return elapsed

    async def theirs() -> float:
        assert restic is not None
        return await asyncio.to_thread(restic.backup)

    sides = [("ours", ours, into.ours)] + ([("restic", theirs, into.theirs)] if restic else [])
    for day in range(days + 1):
        if day:
            await _flushed(deployment, day)
        for who, run, samples in sides if day % 2 == 0 else sides[::-1]:
            await asyncio.to_thread(os.sync)
            seconds = await run()
            if day:
                samples.append(seconds)
            else:
                into.first[who] = seconds
    into.phases.pop(0)  # the daily ones' steps only


async def chain(bench: Bench) -> list[Figure]:
    deployment = bench.deployment
    scratch = bench.scratch("chain")
    days = QUICK_DAYS if bench.scale is QUICK else DAYS
    got = Days()
    full = None
    async with open_manager(deployment) as manager:  # default settings
        listing, raw = file_list(manager, scratch)
        restic = Restic.create(scratch, deployment.root, listing) \
            if shutil.which("restic") else None
        try:
            await _backups(manager, deployment, restic, days, got)
            newest = got.taken[-1]
            full = await manager.create_backup("full", {"full": True})  # the same state
            restores = await _restores(bench, manager, deployment, restic, newest, full,
                                       scratch, first_day=days + 1)
            start = await asyncio.to_thread(restic.start) if restic else None
            kept = {"ours": sum(Path(b.file_path).stat().st_size for b in got.taken),
                    "restic": _tree_size(restic.repo) if restic else 0,
                    "cache": _tree_size(scratch / "restic-cache") if restic else 0}
        finally:
            await _put_back(manager, got.taken, full)
            shutil.rmtree(scratch, ignore_errors=True)
    return _figures(raw, days, got, full, kept, restores, start)


async def _restores(bench: Bench, manager: Any, deployment: Deployment,
                    restic: Restic | None, newest: Any, full: Any, scratch: Path, *,
                    first_day: int) -> dict[str, Any]:
    """Each of ours after a day's changes (untimed, flushed), restic's into an empty folder."""
    day = iter(range(first_day, first_day + 10_000))
    phases: list[dict[str, float]] = []
    syncs: list[float] = []

    async def of_chain() -> float:
        await _flushed(deployment, next(day))
        return await timed_restore(manager, newest, phases)

    async def of_full() -> float:
        await _flushed(deployment, next(day))
        return await timed_restore(manager, full, [])

    async def of_restic() -> float:
        assert restic is not None
        target = scratch / "restic-restored"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        await asyncio.to_thread(os.sync)
        seconds = await asyncio.to_thread(restic.restore, target)
        timer = Timer()
        await asyncio.to_thread(os.sync)
        syncs.append(timer.elapsed())
        return seconds

    runs = [of_chain, of_full] + ([of_restic] if restic else [])
    chained, fulls, *restics = await rotate(runs, bench.heavy_rounds)
    return {"chain": chained, "full": fulls, "restic": restics[0] if restics else [],
            "phases": median_phases(phases), "sync": median(syncs)}


async def _put_back(manager: Any, taken: list[Any], full: Any) -> None:
    """The state as it was before the figure (the first backup restored), and every backup
    it took deleted, the newest first (a base outlives what it is the base of)."""
    if taken:
        back = await manager.restore_backup(taken[0].id, {"confirm": True})
        if back.safety_backup is not None:
            await manager.delete_backup(back.safety_backup.id, confirm=True)
    for backup in ([full] if full is not None else []) + taken[::-1]:
        await manager.delete_backup(backup.id, confirm=True)


def _figures(raw: int, days: int, got: Days, full: Any, kept: dict[str, int],
             restores: dict[str, Any], start: float | None) -> list[Figure]:
    count = days + 1
    newest = got.taken[-1]
    bases = sum(1 for b in got.taken[1:] if b.base_id)
    chain_note = (f"{bases} of the {days} daily backups stored only what changed (had a base); "
                  f"the newest's restore reads {len(newest.chain)} other archive(s)")
    restic_start = f"; restic's start (opening the repository) alone: {start:.2f} s" \
        if start is not None else ""

    name = (f"bytes kept after {count} backups of the {_mib(raw)} state "
            f"(a first, then {days} days' changes), vs restic's repository")
    bytes_kept = Figure(name, "≤ 1.5x", 1.5, unit="MiB")
    ours_mib = kept["ours"] / 2**20
    if kept["restic"]:
        settle(bytes_kept, [ours_mib], [kept["restic"] / 2**20])
    else:
        bytes_kept.unavailable = NO_RESTIC
    bytes_kept.note = (f"ours: the {count} archives' sizes on disk ({_mib(kept['ours'])}; one "
                       f"full backup of the last state: {_mib(full.compressed_size or 0)}); "
                       "restic: its repository's files (a local repo, restic's default "
                       "format)" + (f", its cache beside it ({_mib(kept['cache'])}) not "
                                    "counted" if kept["cache"] else "") + "; " + chain_note)

    daily = Figure(f"a daily backup (median of {days}), vs `restic backup` (incremental)",
                   "≤ 1.2x", 1.2)
    if got.theirs:
        settle(daily, got.ours, got.theirs)
    else:
        daily.unavailable = NO_RESTIC
    daily.phases = median_phases(got.phases)
    daily.note = (f"create_backup(\"full\") at default settings after 1% of the rows, 1% of "
                  f"the JSON files and .env changed, ours {median(got.ours) or 0:.2f} s"
                  f"; restic backup --files-from the engine's file list, its last snapshot as "
                  f"parent; first backups: ours {got.first['ours']:.2f} s"
                  + (f", restic {got.first['restic']:.2f} s" if 'restic' in got.first else "")
                  + restic_start)

    of_full = settle(Figure(f"restore of the chain's newest ({count} backups) after a day's "
                            "changes, vs of a full backup of the same state", "≤ 1.3x", 1.3),
                     restores["chain"], restores["full"])
    of_full.phases = restores["phases"]
    of_full.note = (f"restore_backup(confirm=True) of the newest of the chain vs of a backup "
                    f"taken with full=True right after it; {chain_note}")

    vs_restic = Figure("restore vs restic restore (the same state, latest snapshot, into an "
                       "empty folder)", "≤ 1.0x", 1.0)
    if restores["restic"]:
        settle(vs_restic, restores["chain"], restores["restic"])
        vs_restic.note = ("the chain's newest restored in place (what changed, durably, a "
                          "safety backup kept) vs restic restore latest --target an empty "
                          f"folder (no fsync; a sync after it took {restores['sync']:.2f} s)"
                          + restic_start)
    else:
        vs_restic.unavailable = NO_RESTIC
    return [bytes_kept, daily, of_full, vs_restic]
