"""The benchmark runner keeps working: `python -m tests.benchmarks --quick` runs every figure.

Nothing is asserted about speed (shared CI machines are noisy); the figures are in README.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_quick_benchmarks_run_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "tests.benchmarks", "--quick", "--json",
                             str(out)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ratio" in result.stdout
    assert json.loads(out.read_text())
