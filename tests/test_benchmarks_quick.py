"""The benchmark runner keeps working: `python -m tests.benchmarks --quick` runs every figure.

Nothing is asserted about speed (shared CI machines are noisy); the figures are in README.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

CHAIN_ROWS = ("bytes kept after", "a daily backup", "restore of the chain's newest",
              "restore vs restic restore")


def _quick(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "tests.benchmarks", "--quick", "--json",
                             str(out), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ratio" in result.stdout
    return json.loads(out.read_text())


def _chain_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for figure in report["figures"]:
        for start in CHAIN_ROWS:
            if figure["name"].startswith(start):
                rows[start] = figure
    assert sorted(rows) == sorted(CHAIN_ROWS), [f["name"] for f in report["figures"]]
    return rows


def test_quick_benchmarks_run_every_figure(tmp_path: Path) -> None:
    report = _quick(tmp_path)
    assert not report["meta"]["failed"]
    rows = _chain_rows(report)
    assert rows["restore of the chain's newest"]["ours"] > 0
    if shutil.which("restic"):  # the restic rows are measured where it is installed
        assert all(rows[name]["baseline"] > 0 for name in CHAIN_ROWS)


def test_chain_figure_says_so_without_restic(tmp_path: Path) -> None:
    """Where `restic` is not on PATH its rows say so, and ours are still measured."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for entry in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if entry.name != "restic" and not (tools / entry.name).exists() \
                    and os.access(entry, os.X_OK):
                (tools / entry.name).symlink_to(entry)
    report = _quick(tmp_path, "--only", "chain", env={**os.environ, "PATH": str(tools)})
    rows = _chain_rows(report)
    assert report["meta"]["restic"] == "restic not installed"
    for name in ("bytes kept after", "a daily backup", "restore vs restic restore"):
        assert rows[name]["unavailable"] == "restic not installed"
        assert rows[name]["met"] is None
    measured = rows["restore of the chain's newest"]
    assert measured["unavailable"] == "" and measured["ours"] > 0 and measured["baseline"] > 0
