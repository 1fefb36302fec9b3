"""Figures over the release repository: the newest tag, `check` as a whole process, rollback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.benchmarks.archive_figures import bare_sqlite_backup
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
from tests.benchmarks.world import change_state, git

__all__ = ["check_command", "newest_tag", "rollback"]


def _tag_listing(root: Path) -> tuple[str, ...]:
    """The arguments of the one `git for-each-ref` that `GitRepo.list_tags` runs, recorded
    from the engine itself so that the baseline asks git for exactly the same fields."""
    from gitrelease.git.repo import GitRepo

    calls: list[tuple[str, ...]] = []

    class Recording(GitRepo):
        def run(self, *args: str, timeout: float | None = None) -> str:
            calls.append(args)
            return super().run(*args, timeout=timeout)

    repo = Recording(root)
    try:
        repo.list_tags()
    finally:
        repo.close()
    if len(calls) != 1 or calls[0][0] != "for-each-ref":
        raise RuntimeError(f"list_tags ran {calls!r}, not one for-each-ref")
    return calls[0]


async def newest_tag(bench: Bench) -> list[Figure]:
    from gitrelease.git.repo import GitRepo
    from gitrelease.git.versions import Channel, TagPattern, select_releases

    root = bench.plain.root
    listing = _tag_listing(root)
    repo = GitRepo(root)
    pattern = TagPattern.parse("v*")
    found: set[str] = set()

    async def ours() -> float:
        timer = Timer()
        releases, _ignored = select_releases(repo.list_tags(), pattern, Channel.STABLE)
        elapsed = timer.elapsed()
        found.add(releases[-1].tag)
        return elapsed

    async def baseline() -> float:
        timer = Timer()
        subprocess.run(["git", *listing], cwd=root, check=True, capture_output=True)
        return timer.elapsed()

    try:
        mine, theirs = await alternate(ours, baseline, bench.light_rounds * 2, warmup=True)
    finally:
        repo.close()
    figure = Figure(f"newest release tag among {bench.scale.tags:,} (in-process)", "≤ 1.5x",
                    1.5)
    if found != {bench.tag(0)}:
        figure.note = f"WRONG ANSWER: found {sorted(found)}, expected {bench.tag(0)}"
        figure.limit = 0.0
    return [settle(figure, mine, theirs)]


def _gitrelease() -> list[str]:
    script = Path(sys.executable).with_name("gitrelease")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gitrelease"]


def _imports_discord(root: Path) -> tuple[bool, float]:
    """Whether `check` imports discord, and how long its imports take (from -X importtime)."""
    command = _gitrelease()
    if command[0] != sys.executable:
        command = [sys.executable, *command]
    result = subprocess.run([command[0], "-X", "importtime", *command[1:], "--json", "check",
                             "--type", "bot"], cwd=root, capture_output=True, text=True,
                            check=False)
    modules = []  # (name indented by depth, cumulative microseconds)
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            modules.append((parts[2][1:], int(parts[1])))
    top = sum(cumulative for name, cumulative in modules if not name.startswith(" "))
    return any(name.strip().split(".")[0] == "discord" for name, _ in modules), top / 1e6


def _git_processes(root: Path, commands: list[list[str]], env: dict[str, str]) -> int:
    """How many git processes running `commands` starts (git's own trace2 events)."""
    trace = root.parent / "trace2.json"
    trace.unlink(missing_ok=True)
    for command in commands:
        subprocess.run(command, cwd=root, capture_output=True, check=False,
                       env={**env, "GIT_TRACE2_EVENT": str(trace)})
    events = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    trace.unlink()
    return sum(1 for e in events if e.get("event") == "version")


def _installed_python(bench: Bench) -> dict[str, str]:
    """The environment of both sides: bytecode cached (in the work dir) as an installed
    package has it, even where PYTHONDONTWRITEBYTECODE is set, as in some shells and CI."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(bench.base / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


async def check_command(bench: Bench) -> list[Figure]:
    root = bench.plain.root
    listing = _tag_listing(root)
    env = _installed_python(bench)
    command = [*_gitrelease(), "--json", "check", "--type", "bot"]
    baseline_commands = [["git", "fetch", "--quiet"], ["git", *listing],
                         [sys.executable, "-c", "import git, packaging"]]
    answers: list[dict] = []

    async def ours() -> float:
        timer = Timer()
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                check=False)
        elapsed = timer.elapsed()
        answers.append(json.loads(result.stdout))
        return elapsed

    async def baseline() -> float:
        timer = Timer()
        for step in baseline_commands:
            subprocess.run(step, cwd=root, env=env, check=True, capture_output=True)
        return timer.elapsed()

    mine, theirs = await alternate(ours, baseline, bench.light_rounds, warmup=True)
    figure = settle(Figure("`gitrelease --json check --type bot`, whole process", "≤ 1.3x",
                           1.3), mine, theirs)
    newest = sorted({str((a.get("bot") or {}).get("tag")) for a in answers})
    processes = _git_processes(root, [command], env)
    theirs_processes = _git_processes(root, baseline_commands, env)
    discord, import_seconds = _imports_discord(root)
    figure.note = (f"answered {newest}; starts {processes} git processes (the baseline "
                   f"{theirs_processes}); its imports take ~{import_seconds * 1000:.0f} ms "
                   "(-X importtime); bytecode cached on both sides")
    never = Figure("`check` imports discord", "never", 0.5, kind="value", unit="",
                   ours=float(discord), note="python -X importtime of the same command")
    return [figure, never]


async def rollback(bench: Bench) -> list[Figure]:
    """Back to an older release whose backup holds the database and .env, after the update
    and a day of use changed them (`change_state`, untimed before each run)."""
    from gitrelease.manager import ReleaseManager

    deployment = bench.rollback_deployment
    root, live = deployment.root, deployment.data / "app.db"
    newer, older = bench.tag(bench.scale.behind), bench.tag(bench.scale.behind + 5)
    older_commit = git(root, "rev-parse", f"{older}^{{commit}}")
    snapshot = bench.base / "rollback-snapshot.db"
    aside = bench.scratch("rollback-aside")
    days = iter(range(1, 10_000))
    deployment.checkout(older)
    async with await ReleaseManager.open(root) as manager:
        kept = await manager.create_backup("full", {"backup_name": "at_older", "keep": True})
        await asyncio.to_thread(bare_sqlite_backup, live, snapshot)
        phases: list[dict[str, float]] = []

        async def at_newer() -> None:
            deployment.checkout(newer)
            await asyncio.to_thread(change_state, deployment, next(days))
            await asyncio.to_thread(os.sync)

        def ours(**options: bool) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                await at_newer()
                steps = Phases()
                timer = Timer()
                await manager.rollback_to_version(older.removeprefix("v"),
                                                  {"confirm": True, **options}, progress=steps)
                elapsed = timer.elapsed()
                if not options:
                    phases.append(steps.durations(timer.started + elapsed))
                for backup in await manager.list_backups({"time_range": "all", "limit": 50}):
                    if backup.id != kept.id:
                        await manager.delete_backup(backup.id, confirm=True)
                return elapsed
            return run

        async def baseline(careful: bool) -> float:
            await at_newer()
            for old in aside.iterdir():
                old.unlink()
            timer = Timer()
            subprocess.run(["git", "checkout", "--quiet", "--detach", older_commit], cwd=root,
                           check=True, capture_output=True)
            if careful:
                subprocess.run(["cp", "-a", "--", str(live), str(aside)], check=True)
            await asyncio.to_thread(bare_sqlite_backup, snapshot, live)
            if careful:
                subprocess.run(["sync"], check=True)
            return timer.elapsed()

        async def fair() -> float:
            return await baseline(True)

        async def bare() -> float:
            return await baseline(False)

        try:
            default, unsafe, fairs, bares = await rotate(
                [ours(), ours(create_backup=False), fair, bare], bench.heavy_rounds)
        finally:
            await manager.delete_backup(kept.id, confirm=True)
            snapshot.unlink(missing_ok=True)
            deployment.checkout(newer)
    size = live.stat().st_size / 2**20
    title = f"rollback to the release before the update ({size:.0f} MiB db and .env)"
    with_fair = settle(Figure(f"{title}, with its default backup, vs fair", "≤ 1.2x", 1.2),
                       default, fairs)
    with_fair.phases = median_phases(phases)
    with_fair.note = ("rollback_to_version(confirm=True), default settings: a pre-rollback "
                      "backup, the checkout, then what changed is restored; fair: git checkout "
                      "--detach + cp -a of the live db aside + Connection.backup + sync")
    with_bare = settle(Figure(f"{title}, with its default backup, vs bare", "≤ 2x", 2.0),
                       default, bares)
    with_bare.note = "the same rollback; bare: git checkout --detach + Connection.backup"
    no_backup = settle(Figure(f"{title}, create_backup=False, vs bare", "≤ 1.5x", 1.5),
                       unsafe, bares)
    no_backup.note = ("rollback_to_version(create_backup=False): its restore takes no safety "
                      "backup either; bare as above")
    return [with_fair, with_bare, no_backup]
