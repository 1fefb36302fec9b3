"""One update, restore or rollback at a time, across processes.

The lock is an flock on ``data/gitrelease.lock`` (released by the kernel if the holder dies).
Who holds it is written beside it, so a refusal can say which operation is running and since
when; that note is only ever read as a hint, the flock decides. A holder killed with -9
leaves its note behind: whoever then gets the flock knows the note is stale (`stale_note`
says so and removes it, under the flock), and a refusal never names a note's process as the
holder once that process is gone (its pid dead, or reused: the start time differs).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import filelock

from gitrelease.core.errors import UpdateInProgress
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import utcnow
from gitrelease.core.tether import start_time

__all__ = ["OperationLock", "stale_note"]

LOCK_NAME = "gitrelease.lock"
HOLDER_NAME = "gitrelease.lock.json"
_BRIEF_WAIT = 1.0  # seconds a holder with no running note is given before a refusal


class OperationLock:
    """Non-blocking: a second operation is refused at once, never queued behind the first."""

    def __init__(self, data_dir: Path, operation: str, actor: str) -> None:
        # Not thread-local: the manager acquires in a worker thread and releases in the event
        # loop's; a thread-local lock would ignore that release and stay held until collected.
        self._lock = filelock.FileLock(data_dir / LOCK_NAME, mode=0o600, thread_local=False)
        self._holder = data_dir / HOLDER_NAME
        self.operation = operation
        self.actor = actor

    def acquire(self) -> OperationLock:
        self._holder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            record = _read_note(self._holder)
            if record is None or not _running(record):
                # No running holder named: `stale_note` checking a dead one's note (it holds
                # the flock for a moment), or an operation about to write its own note.
                self._wait_briefly()
            else:
                raise UpdateInProgress(
                    f"another operation is running: {_described(record)}") from None
        record = {
            "pid": os.getpid(),
            "started": start_time(os.getpid()),
            "operation": self.operation,
            "actor": self.actor,
            "since": utcnow().isoformat(),
        }
        try:
            atomic_write(self._holder, json.dumps(record).encode())
        except BaseException:
            self._lock.release()  # held, but who holds it could not be said: not held
            raise
        return self

    def _wait_briefly(self) -> None:
        """Wait while the flock's holder names no running process (up to `_BRIEF_WAIT`):
        refused as soon as one does (an operation that just took it writes its note within
        milliseconds), never queued behind a real operation."""
        deadline = time.monotonic() + _BRIEF_WAIT
        while True:
            time.sleep(0.02)
            try:
                self._lock.acquire(timeout=0)
                return
            except filelock.Timeout:
                record = _read_note(self._holder)
                if (record is not None and _running(record)) or time.monotonic() > deadline:
                    holder = self._describe_holder()
                    raise UpdateInProgress(f"another operation is running: {holder}") from None

    def release(self) -> None:
        self._holder.unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> OperationLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _describe_holder(self) -> str:
        record = _read_note(self._holder)
        if record is None:
            return "holder unknown"
        if not _running(record):
            # The flock is held, by a process that has not written its note yet.
            return (f"holder unknown (the lock's note is from pid {record['pid']}, which is no "
                    "longer running)")
        return _described(record)


def stale_note(data_dir: Path) -> str | None:
    """Remove the holder's note a killed operation left, and say so; None when there is
    none, or when the lock is held (the note is then the holder's, or about to be). Taken
    under the flock itself, so no operation can be writing its own note meanwhile."""
    holder = data_dir / HOLDER_NAME
    if not holder.exists():
        return None
    lock = filelock.FileLock(data_dir / LOCK_NAME, mode=0o600, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except (filelock.Timeout, OSError):
        return None
    try:
        record = _read_note(holder)
        if not holder.exists():
            return None  # the operation that held the lock ended meanwhile
        holder.unlink(missing_ok=True)
    finally:
        lock.release()
    if record is None:
        return f"removed an unreadable lock note ({HOLDER_NAME}) that no lock holder owned"
    state = "is no longer running" if not _running(record) else "no longer holds the lock"
    return (f"removed a stale lock note: {_described(record)}, but pid {record['pid']} "
            f"{state} (killed?); what it left half-way is settled by the next operation")


def _read_note(holder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(holder.read_text())
        int(record["pid"])
        return record if isinstance(record, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _described(record: dict[str, Any]) -> str:
    try:
        since = datetime.fromisoformat(record["since"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (KeyError, TypeError, ValueError):
        since = "an unknown time"
    return (f"{record.get('operation', '?')} by {record.get('actor', '?')} "
            f"(pid {record['pid']}, since {since})")


def _running(record: dict[str, Any]) -> bool:
    """The note's process still runs: its pid is alive and, where the start time can be
    read, it is the same process (a pid is reused once its process is gone)."""
    pid = int(record["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = start_time(pid)
    return started is None or record.get("started") in (None, started)
