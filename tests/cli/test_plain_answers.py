"""Plain answers where the CLI used to mislead: a tag on a tree or a blob, a journal with no
session yet, and the lock's holder note a killed operation leaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitrelease.cli.main import main
from tests.conftest import REPO_ROOT, World, git


def _run(world: World, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["--root", str(world.deploy), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


_POINTS_TO = {"tree": "a tree, not a commit", "blob": "a blob, not a commit",
              "annotated blob": "a blob, not a commit", "tag of a tag": "another tag"}


@pytest.mark.parametrize("kind", list(_POINTS_TO))
@pytest.mark.parametrize("command", ["install", "rollback"])
def test_a_tag_on_a_tree_or_blob_is_named_as_such(
    world: World, capsys: pytest.CaptureFixture[str], kind: str, command: str
) -> None:
    annotated = ["tag", "-a", "-m", "not a release"]
    if kind == "tag of a tag":
        git(world.deploy, *annotated, "inner", "v1.10.0")
        obj = git(world.deploy, "rev-parse", "inner")
    else:
        obj = git(world.deploy, "rev-parse",
                  "HEAD^{tree}" if kind == "tree" else "HEAD:.gitignore")
    git(world.deploy, *(annotated if kind != "tree" and kind != "blob" else ["tag"]),
        "v1.3.0", obj)
    before = world.state()
    args = (["install", "--type", "bot", "--no-backup", "--to", "1.3.0"] if command == "install"
            else ["rollback", "1.3.0", "--yes", "--no-backup"])
    code, data = _run(world, *args, capsys=capsys)
    assert code == 4
    message = data["error"]["message"]
    assert f"tag v1.3.0 points to {_POINTS_TO[kind]}" in message, message
    after = world.state()
    assert (after["head"], after["refs"]) == (before["head"], before["refs"])
    assert after["files"][".env"] == before["files"][".env"]


def test_journal_with_no_session_says_so(world: World, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    before = world.state()
    code, data = _run(world, "journal", capsys=capsys)
    assert code == 0
    assert data == {"session": None, "steps": []}
    code = main(["--root", str(world.deploy), "journal"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == "No update session has been recorded yet."
    assert err == ""
    assert world.state() == before


def _killed_holding_the_lock(world: World) -> int:
    """A real install, SIGKILLed while it holds the operation lock; its pid."""
    marker = world.base / "paused"
    process = subprocess.Popen(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "install", "--type",
         "bot", "--no-backup"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "GITRELEASE_PAUSE_AT": "install:checkout",
                                        "GITRELEASE_PAUSE_MARKER": str(marker)})
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return process.pid


def test_status_names_a_dead_holders_lock_note_and_removes_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _killed_holding_the_lock(world)
    note = world.deploy / "data" / "gitrelease.lock.json"
    assert json.loads(note.read_text())["pid"] == pid
    code, data = _run(world, "status", "--no-metrics", capsys=capsys)
    assert code == 0
    assert not note.exists()
    assert any(f"pid {pid}" in w and "no longer running" in w for w in data["warnings"]), \
        data["warnings"]
    code, data = _run(world, "status", "--no-metrics", capsys=capsys)
    assert not any("lock" in w for w in data["warnings"])  # said once, when it was removed


def _flock_holder(data_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the operation lock's flock for `seconds`, writing no note."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
         f"time.sleep({seconds})", str(data_dir / "gitrelease.lock")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_refusal_never_names_a_dead_holder_as_running(world: World) -> None:
    """Another live process holds the flock and has not written its note yet: the note
    left is the dead one's, and the refusal must not call that pid the holder."""
    from gitrelease.core.errors import UpdateInProgress
    from gitrelease.deploy.lock import OperationLock

    pid = _killed_holding_the_lock(world)
    data_dir = world.deploy / "data"
    holder = _flock_holder(data_dir, 60)
    try:
        with pytest.raises(UpdateInProgress) as refused:
            OperationLock(data_dir, "restore", "cli:other").acquire()
    finally:
        holder.kill()
        holder.wait()
    message = refused.value.message
    assert f"pid {pid}" in message and "no longer running" in message, message


def test_a_lock_held_a_moment_with_no_running_holder_is_waited_for(world: World) -> None:
    """`status` takes the flock for a moment to remove a dead holder's note: an operation
    starting just then waits that moment out instead of being refused."""
    from gitrelease.deploy.lock import OperationLock

    _killed_holding_the_lock(world)
    data_dir = world.deploy / "data"
    holder = _flock_holder(data_dir, 0.3)
    try:
        lock = OperationLock(data_dir, "restore", "cli:other").acquire()
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_whose_note_cannot_be_written_is_not_kept(world: World) -> None:
    """Taking the lock and failing to write who holds it lets go of the flock at once: a
    lock left held by a failed acquire would refuse every later operation of the process."""
    import filelock

    from gitrelease.deploy.lock import OperationLock

    data_dir = world.deploy / "data"
    (data_dir / "gitrelease.lock.json").mkdir()  # the note cannot be written over a folder
    with pytest.raises(OSError):
        OperationLock(data_dir, "restore", "cli:other").acquire()
    other = filelock.FileLock(data_dir / "gitrelease.lock", thread_local=False)
    other.acquire(timeout=0)
    other.release()
