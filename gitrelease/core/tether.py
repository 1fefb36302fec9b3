"""Children that die with the process that started them, and are stopped after a crash.

A release's migration started by an install that is then killed must not go on writing
while the next start rolls the database back. So a child that changes the deployment (the
release's commands, the checkout's git) is started through a small helper
(`tether_helper`): the helper leads a process group of its own and kills that group the
moment the pipe from its starter closes, which the kernel does however the starter dies
(kill -9 of its pid or of its whole group alike). `PR_SET_PDEATHSIG` would need a
``preexec_fn``, unsafe in a process with threads, and fires on the death of the forking
thread rather than of the process.

The helper holds the command back until told to go, so its starter first writes the group
into the journal (`Tethered.group`): whatever happens, the record exists before any work.
After a crash, recovery calls `stop` on each recorded group before it restores anything: the
second line, should the helper itself have been stopped or killed. Process ids repeat after a
reboot or a container restart (and a start time counted from boot does not tell), so the
record holds the boot's id and a mark put in the child's environment (`MARK`): a group is
stopped only in the boot it was recorded in, and only if a process in it carries the mark.
Where the system has no ``/proc`` (not Linux), a group cannot be told from a reused pid and
`stop` leaves it alone; the helper is then the only line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["MARK", "Group", "Tethered", "start_time", "stop"]

#: The environment variable that marks a tethered child and all it starts as the record's.
MARK = "GITRELEASE_TETHER"

_HELPER = Path(__file__).with_name("tether_helper.py")
_PROC = Path("/proc")


@dataclass(frozen=True)
class Group:
    """A process group a child leads, as recorded: its id, its leader's start time (clock
    ticks after boot, from /proc), the boot's id and the mark its processes carry in their
    environment; None where unknown (the last two: a record from an older gitrelease)."""

    pgid: int
    started: int | None
    boot: str | None = None
    mark: str | None = None

    def text(self) -> str:
        return " ".join(f"{name}={'?' if value is None else value}" for name, value in (
            ("pgid", self.pgid), ("started", self.started), ("boot", self.boot),
            ("mark", self.mark)))

    @classmethod
    def parse(cls, text: str) -> Group | None:
        """The group `text` records, or None for anything else."""
        fields = {name: value for name, _, value in (part.partition("=") for part in
                                                     text.split()) if value != "?"}
        try:
            pgid = int(fields["pgid"])
            started = int(fields["started"]) if "started" in fields else None
        except (KeyError, ValueError):
            return None
        return cls(pgid, started, fields.get("boot"), fields.get("mark")) if pgid > 1 \
            else None


class Tethered:
    """A child started through the helper and held at its gate: `release` lets it start,
    once the caller has recorded `group`. The caller waits on `process` and then `close`s."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str],
                 stdin: Any = subprocess.DEVNULL, stdout: IO[bytes] | int | None = None,
                 stderr: IO[bytes] | int | None = None) -> None:
        mark = secrets.token_hex(8)
        go_read, self._go = os.pipe()
        status_read, status_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_HELPER), str(go_read), str(status_write),
                 "--", *argv], cwd=cwd, env={**env, MARK: mark}, stdin=stdin, stdout=stdout,
                stderr=stderr, pass_fds=(go_read, status_write), start_new_session=True)
        except BaseException:
            for fd in (self._go, status_read):
                os.close(fd)
            raise
        finally:
            os.close(go_read)
            os.close(status_write)
        self._status = status_read
        self.group = Group(self.process.pid, start_time(self.process.pid), _boot_id(), mark)

    def release(self) -> str | None:
        """Let the child start; None once it has, else why it could not (its OSError)."""
        with contextlib.suppress(BrokenPipeError):  # the helper is gone: said below
            os.write(self._go, b"1")
        with os.fdopen(self._status, "rb") as status:
            answer = status.read().decode(errors="replace").strip()
        return None if answer == "started" else answer or "the helper ended before it"

    def kill(self) -> None:
        """The whole group at once (a timeout, or a failure to record it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.group.pgid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        """Once the child is waited for: closing the pipe earlier would kill it."""
        with contextlib.suppress(OSError):
            os.close(self._go)
        with contextlib.suppress(OSError):
            os.close(self._status)


def stop(group: Group, *, timeout: float = 10.0) -> str | None:
    """Kill what is left of `group`, if it still is that group, and wait until none of it
    runs; None when nothing of it runs any more, else what still does.

    While any process is in a group, its id is not given to another process or group; so a
    group with a live process carrying the recorded mark, in the boot it was recorded in, is
    the recorded one, whole (only its own descendants can join it), and is stopped whole,
    even a member that cleared its environment. A record without a mark (an older
    gitrelease's) is trusted only while its leader lives with the recorded start time.
    Zombies (dead, not yet reaped) write nothing: gone.
    """
    if not _PROC.is_dir() or (group.mark is None and group.started is None):
        return None  # cannot be told from a reused pid: left to the helper
    if group.boot is not None and group.boot != _boot_id():
        return None  # recorded before a reboot: the id is any process's now
    deadline = time.monotonic() + timeout
    ours = False
    while True:
        members = _members(group.pgid)
        if not members:
            return None
        ours = ours or _is_recorded(group, members)
        if not ours:
            return None  # the id is another group's now: the recorded one is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group.pgid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return f"process group {group.pgid} (pids {', '.join(map(str, members[:5]))})"
        time.sleep(0.05)


def _is_recorded(group: Group, members: list[int]) -> bool:
    """Whether the live group `members` are of is the one `group` records."""
    if group.mark is None:
        return start_time(group.pgid) == group.started
    wanted = f"{MARK}={group.mark}".encode()
    return any(wanted in _environment(pid) for pid in members)


def _environment(pid: int) -> list[bytes]:
    """The environment `pid` was started with; none where it cannot be read (another
    user's process, or gone): then it is not taken for one of ours."""
    try:
        return (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat from the state on (its name may hold spaces)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def start_time(pid: int) -> int | None:
    """When a process started (clock ticks since boot, from /proc on Linux), or None: with
    its pid, what tells it from a later process given the same pid."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _members(pgid: int) -> list[int]:
    """The live (not zombie) processes in group `pgid`."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            found.append(int(entry.name))
    return found
