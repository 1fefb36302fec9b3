"""A journalled process group is stopped after a crash only while it is still the one that
was recorded: after a reboot or a container restart its id may be any process's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitrelease.core.tether import Group, stop
from tests.deploy import crash

PY = sys.executable
_LEADER = ("import subprocess, sys; "
           "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
           "print(p.pid, flush=True)")
MARK = "GITRELEASE_TETHER"
Orphaned = Callable[[str | None], tuple[int, int]]


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.fixture
def orphaned() -> Iterator[Orphaned]:
    """A group whose leader has ended while its one member goes on (as a group's id would
    look once given to another process after a reboot), its member carrying the mark given
    in its environment: the group's id and the member's pid."""
    members: list[int] = []

    def make(mark: str | None) -> tuple[int, int]:
        env = {k: v for k, v in os.environ.items() if k != MARK}
        if mark is not None:
            env[MARK] = mark
        leader = subprocess.Popen([PY, "-c", _LEADER], start_new_session=True, env=env,
                                  stdout=subprocess.PIPE, text=True)
        assert leader.stdout is not None
        member = int(leader.stdout.readline())
        leader.wait()
        members.append(member)
        return leader.pid, member

    yield make
    for member in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def test_a_group_without_the_recorded_mark_is_left_alone(orphaned: Orphaned) -> None:
    # Noted by an older gitrelease (no mark): its leader gone, nothing tells the group from
    # another one given the same id, so it is left alone.
    pgid, member = orphaned(None)
    assert stop(Group.parse(f"pgid={pgid} started=12345")) is None
    assert crash.alive(member)
    # Noted with a mark this group's members do not carry: not the recorded group.
    pgid, member = orphaned("someone-else")
    assert stop(Group.parse(f"pgid={pgid} started=12345 boot={_boot_id()} mark=ours")) is None
    assert crash.alive(member)


def test_a_group_recorded_before_a_reboot_is_left_alone(orphaned: Orphaned) -> None:
    pgid, member = orphaned("ours")
    other_boot = "00000000-0000-0000-0000-000000000000"
    assert stop(Group.parse(f"pgid={pgid} started=12345 boot={other_boot} mark=ours")) is None
    assert crash.alive(member)


def test_a_group_whose_members_carry_the_mark_is_stopped(orphaned: Orphaned) -> None:
    pgid, member = orphaned("ours")
    assert stop(Group.parse(f"pgid={pgid} started=12345 boot={_boot_id()} mark=ours")) is None
    assert not crash.alive(member)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_tethered_child_killed_by_a_signal_is_seen_so_by_its_starter(
        tmp_path: Path, sig: signal.Signals) -> None:
    """The helper ends by the child's own signal, so its starter reads the same status as
    without it (SIGKILL, which has no handler to reset, too)."""
    from gitrelease.core.tether import Tethered

    child = Tethered([PY, "-c", f"import os; os.kill(os.getpid(), {int(sig)})"],
                     cwd=tmp_path, env=dict(os.environ), stderr=subprocess.PIPE)
    try:
        assert child.release() is None
        _out, err = child.process.communicate(timeout=30)
    finally:
        child.close()
    assert child.process.returncode == -sig, err
    assert b"Errno" not in err
