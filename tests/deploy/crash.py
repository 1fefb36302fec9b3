"""Crashing gitrelease for real: start it in a session of its own, wait for a pause point (or
any sign of progress), then SIGKILL its main pid alone, or its whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def start(deploy: Path, *args: str, pause: str | None = None,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """`gitrelease --root DEPLOY ARGS` in its own process group; with `pause`, it stops at
    that pause point and writes the marker returned."""
    marker = deploy.parent / f"paused-{time.monotonic_ns()}"
    extra = {"GITRELEASE_PAUSE_AT": pause, "GITRELEASE_PAUSE_MARKER": str(marker)} \
        if pause else {}
    process = subprocess.Popen(
        [PY, "-m", "gitrelease", "--root", str(deploy), *args], cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, **extra, **(env or {})})
    return process, marker


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes],
             what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"gitrelease ended before {what}"
        assert time.monotonic() < deadline, f"gitrelease never reached {what}"
        time.sleep(0.02)


def kill(process: subprocess.Popen[bytes], how: str) -> None:
    """SIGKILL the main pid ("pid") or the whole process group ("group"), and reap it."""
    if how == "group":
        os.killpg(process.pid, signal.SIGKILL)
    else:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def kill_at(deploy: Path, point: str, *args: str, how: str = "pid") -> None:
    process, marker = start(deploy, *args, pause=point)
    wait_for(marker.exists, process, point)
    kill(process, how)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z"


def gitrelease(deploy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "gitrelease", "--root", str(deploy), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
