"""The runner: build the data, run the chosen figures, print the table (and write JSON)."""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.benchmarks import (
    archive_figures,
    chain_figures,
    fleet_figures,
    git_figures,
    index_figures,
    loop_figures,
    offsite_figures,
    world,
)
from tests.benchmarks.bench import Bench
from tests.benchmarks.harness import Figure, render_table, to_json

FigureRun = Callable[[Bench], Awaitable[list[Figure]]]

# In the order of the table; `--only` takes these names. Each names the worlds it
# needs (attributes of Bench): they are built before the figure's event loop starts.
FIGURES: dict[str, tuple[FigureRun, tuple[str, ...]]] = {
    "tags": (git_figures.newest_tag, ("plain",)),
    "check": (git_figures.check_command, ("plain",)),
    "backup-zstd": (archive_figures.backup_zstd, ("deployment",)),
    "backup-gzip": (archive_figures.backup_gzip, ("deployment",)),
    "verify": (archive_figures.verify, ("deployment",)),
    "restore": (archive_figures.restore, ("deployment",)),
    "snapshot": (archive_figures.snapshot, ("deployment",)),
    "chain": (chain_figures.chain, ("deployment",)),
    "rollback": (git_figures.rollback, ("rollback_deployment",)),
    "memory": (loop_figures.memory, ("deployment", "small_deployment")),
    "lateness": (loop_figures.lateness, ("deployment",)),
    "slash": (loop_figures.slash_ack, ("deployment",)),
    "index": (index_figures.index_queries, ("index_deployment",)),
    "rollout": (fleet_figures.rollout_overhead, ()),
    "offsite": (offsite_figures.upload, ()),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks",
        description="gitrelease against the raw tools it wraps: medians and ratios, one run.")
    parser.add_argument("--quick", action="store_true",
                        help="small data and few rounds: seconds, to keep the runner working")
    parser.add_argument("--only", action="append", choices=sorted(FIGURES), metavar="NAME",
                        help=f"run only this figure (repeatable): {', '.join(FIGURES)}")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="build the data here and keep it (reused by the next run); "
                             "default: a temporary directory, removed afterwards")
    return parser


def _versions() -> dict[str, str]:
    def first_line(*command: str) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError:
            return "unavailable"
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr \
            else "unavailable"

    return {"python": platform.python_version(), "git": first_line("git", "--version"),
            "tar": first_line("tar", "--version"), "zstd": first_line("zstd", "--version"),
            "restic": first_line("restic", "version") if shutil.which("restic")
            else "restic not installed",
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    world.isolate()
    scale = world.QUICK if args.quick else world.FULL
    base = args.workdir or Path(tempfile.mkdtemp(prefix="gitrelease-bench-"))
    base = base / scale.name if args.workdir else base
    base.mkdir(parents=True, exist_ok=True)
    bench = Bench(scale, base, heavy_rounds=1 if args.quick else 3,
                  light_rounds=2 if args.quick else 15)
    chosen = [name for name in FIGURES if not args.only or name in args.only]
    started = time.perf_counter()
    figures: list[Figure] = []
    failed: list[str] = []
    try:
        for name in chosen:
            run, needs = FIGURES[name]
            for world_name in needs:
                getattr(bench, world_name)
            at = time.perf_counter()
            print(f"{name} ...", end=" ", file=sys.stderr, flush=True)
            try:
                figures += asyncio.run(run(bench))
            except Exception:
                failed.append(name)
                print("FAILED", file=sys.stderr)
                traceback.print_exc()
                continue
            print(f"{time.perf_counter() - at:.1f} s", file=sys.stderr, flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    meta = {"command": " ".join(["python -m tests.benchmarks", *(argv or sys.argv[1:])]),
            "scale": scale.name, "data": bench.built, "finished": datetime.now(UTC).isoformat(
                timespec="seconds"), "seconds": round(time.perf_counter() - started, 1),
            **_versions(), "failed": failed}
    print(f"\n{meta['command']}  ({scale.name} data, {meta['seconds']} s; {meta['git']}, "
          f"{meta['tar']}, {meta['zstd']}, {meta['restic']}; {meta['machine']})\n")
    print(render_table(figures))
    if failed:
        print(f"\nFAILED to run: {', '.join(failed)}")
    if args.json is not None:
        args.json.write_text(to_json(figures, meta))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
