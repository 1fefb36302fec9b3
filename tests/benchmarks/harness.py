"""Measuring: ours and the baseline alternated in one run, medians, ratios, the table.

The machines are shared and noisy, so a figure is never one timing: each side runs several
times, interleaved (ours, baseline, baseline, ours, ...) so that a slow minute hurts both, and
the medians are compared. Absolute times are printed for context only; the ratio is the result.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Figure", "Phases", "Timer", "alternate", "median_phases", "render_table", "rotate",
           "settle", "to_json"]

Run = Callable[[], Awaitable[float]]  # one run; returns the seconds that count


@dataclass
class Figure:
    """One row of the table."""

    name: str
    target: str  # as printed: "≤ 1.5x", "< 20 ms", "≤ 150 MB", "never"
    limit: float | None  # the number the target compares against
    kind: str = "ratio"  # "ratio": ours / baseline; "value": ours alone, in `unit`
    unit: str = "s"  # of ours and baseline: "s", "ms", "MB", "MiB", or "" (yes/no)
    ours: float | None = None  # median
    baseline: float | None = None  # median
    strict: bool = False  # "<" rather than "≤"
    note: str = ""
    unavailable: str = ""  # why the figure could not be measured
    samples: dict[str, list[float]] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # median seconds per step of ours

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        if self.unavailable or self.limit is None:
            return None
        value = self.ratio if self.kind == "ratio" else self.ours
        if value is None:
            return None
        return value < self.limit if self.strict else value <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


class Timer:
    """Seconds since `start()`; a run's own setup and cleanup stay outside it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


async def alternate(
    ours: Run, baseline: Run | None, rounds: int, *, warmup: bool = False
) -> tuple[list[float], list[float]]:
    """Run both `rounds` times, alternating which goes first; returns (ours, baseline)."""
    if warmup:
        await ours()
        if baseline is not None:
            await baseline()
    mine: list[float] = []
    theirs: list[float] = []
    for n in range(rounds):
        order = [(ours, mine), (baseline, theirs)]
        if n % 2:
            order.reverse()
        for run, into in order:
            if run is not None:
                into.append(await run())
    return mine, theirs


async def rotate(runs: list[Run], rounds: int) -> list[list[float]]:
    """Run each of `runs` `rounds` times, the order rotating each round (no run is always
    first or last); returns the samples of each, in the order given."""
    samples: list[list[float]] = [[] for _ in runs]
    for n in range(rounds):
        for k in range(len(runs)):
            index = (n + k) % len(runs)
            samples[index].append(await runs[index]())
    return samples


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def settle(figure: Figure, mine: list[float], theirs: list[float], *, scale: float = 1.0) -> Figure:
    """Fill in the medians (times `scale`, e.g. 1000 for ms) and keep the samples."""
    figure.samples = {"ours": [v * scale for v in mine], "baseline": [v * scale for v in theirs]}
    figure.ours = median(figure.samples["ours"])
    figure.baseline = median(figure.samples["baseline"])
    return figure


# -- output ---------------------------------------------------------------------------------


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "":
        return "yes" if value else "no"
    return f"{value:g} {unit}"


def _row(figure: Figure) -> list[str]:
    met = {True: "met", False: "MISSED", None: "n/a"}[figure.met]
    if figure.unavailable:
        return [figure.name, "—", "—", "—", figure.target, f"n/a: {figure.unavailable}"]
    # A figure judged on its own value shows its baseline for scale, not as a ratio.
    ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None and figure.kind == "ratio" \
        else "—"
    return [figure.name, _amount(figure.ours, figure.unit),
            _amount(figure.baseline, figure.unit), ratio, figure.target, met]


def render_table(figures: list[Figure]) -> str:
    """A Markdown table (readable as it is in a terminal), then the notes and phases."""
    header = ["figure", "ours (median)", "baseline (median)", "ratio", "target", "result"]
    rows = [header] + [_row(f) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for number, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     + " |")
        if number == 0:
            lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    phases = [f"- {f.name}: " + ", ".join(f"{step} {_amount(seconds, 's')}"
                                          for step, seconds in f.phases.items())
              for f in figures if f.phases]
    if notes:
        lines += ["", "Notes:", *notes]
    if phases:
        lines += ["", "Where ours spends its time (median per step):", *phases]
    return "\n".join(lines)


def to_json(figures: list[Figure], meta: dict[str, Any]) -> str:
    return json.dumps({"meta": meta, "figures": [f.to_dict() for f in figures]}, indent=2)


class Phases:
    """A progress callback that times the engine's steps (the time until the next step)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def __call__(self, step: str, _percent: int, _detail: str) -> None:
        if not self.marks or self.marks[-1][0] != step:
            self.marks.append((step, time.perf_counter()))

    def durations(self, end: float) -> dict[str, float]:
        spans: dict[str, float] = {}
        for (step, at), (_next, until) in zip(
                self.marks, [*self.marks[1:], ("end", end)], strict=True):
            spans[step] = spans.get(step, 0.0) + until - at
        return spans


def median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    steps = list(dict.fromkeys(step for run in runs for step in run))
    return {step: statistics.median(run.get(step, 0.0) for run in runs) for step in steps}
