"""What a kill -9 left behind, found and settled by the next start: a release command still
running, a checkout cut off half-way, a hot SQLite journal, and a status that must show the
state after the settling, not before it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, World, kill_at

PY = sys.executable


def gitrelease(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "gitrelease", "--root", str(world.deploy), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_status_right_after_a_crash_shows_the_settled_version(world: World) -> None:
    # Killed once the checkout to 1.10.0 is done: the next start rolls back to 1.0.0, and the
    # status that ran that recovery says 1.0.0, not the 1.10.0 it found before.
    kill_at(world.deploy, "install:checkout:done", "install", "--type", "bot")
    shown = gitrelease(world, "--json", "status", "--no-metrics")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert world.head() == world.tag_commit("v1.0.0")
    assert info["commit"] == world.tag_commit("v1.0.0")
    assert info["version"] == "1.0.0", info
