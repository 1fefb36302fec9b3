"""One update, restore or rollback at a time, across processes.

The lock is an flock on ``data/gitrelease.lock`` (released by the kernel if the holder dies).
Who holds it is written beside it, so a refusal can say which operation is running and since
when; that note is only ever read as a hint, the flock decides.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from types import TracebackType

import filelock

from gitrelease.core.errors import UpdateInProgress
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import utcnow

__all__ = ["OperationLock"]

LOCK_NAME = "gitrelease.lock"
HOLDER_NAME = "gitrelease.lock.json"


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
            holder = self._describe_holder()
            raise UpdateInProgress(f"another operation is running: {holder}") from None
        record = {
            "pid": os.getpid(),
            "operation": self.operation,
            "actor": self.actor,
            "since": utcnow().isoformat(),
        }
        atomic_write(self._holder, json.dumps(record).encode())
        return self

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
        try:
            record = json.loads(self._holder.read_text())
            since = datetime.fromisoformat(record["since"]).strftime("%Y-%m-%d %H:%M:%S UTC")
            return (f"{record['operation']} by {record['actor']} "
                    f"(pid {record['pid']}, since {since})")
        except (OSError, ValueError, KeyError, TypeError):
            return "holder unknown"
