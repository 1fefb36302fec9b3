"""Restarting the bot, and the bot's own side of a restart.

The setting ``restart_method`` says how:

- ``command``: run ``restart_command`` (no shell, ``restart_timeout``), e.g.
  ``systemctl restart --no-block mybot``;
- ``signal``: SIGTERM to the pid in ``data/bot.pid``, for a process manager that starts it
  again. The bot writes that file at start (`write_pid_file`); a pid whose process started
  after the file was written belongs to someone else and is never signalled;
- ``exit``: ``data/restart_request.json`` asks the running bot to close itself with status
  `RESTART_EXIT_CODE` (75), which its supervisor restarts on (`RestartWatcher`). A request
  older than the process reading it is stale and ignored, so a new process never exits for
  its predecessor's request;
- ``none``: nothing; the operator restarts the bot.

Every code move also leaves ``data/restart_pending.json``: the version the next start must
confirm (`gitrelease.deploy.boot`). ``data/confirms_starts`` says that this bot confirms its
starts (it has done so once: the cog at load, or ``gitrelease confirm``), which is when
``start_confirmation = auto`` counts unconfirmed starts. This module imports nothing heavy:
the post-checkout hook runs it on every checkout, and a checkout must not wait for it long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gitrelease.core.errors import RestartFailed
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import RESTART_EXIT_CODE, utcnow
from gitrelease.core.settings import Settings, command_argv

__all__ = [
    "CONFIRMS_FILE",
    "PENDING_FILE",
    "PID_FILE",
    "REQUEST_FILE",
    "RESTART_EXIT_CODE",
    "PendingStart",
    "RestartOutcome",
    "RestartWatcher",
    "clear_pending",
    "confirms_starts",
    "mark_confirms_starts",
    "read_pending",
    "restart_bot",
    "take_restart_request",
    "write_pending",
    "write_pid_file",
]

PID_FILE = "bot.pid"
REQUEST_FILE = "restart_request.json"
PENDING_FILE = "restart_pending.json"
CONFIRMS_FILE = "confirms_starts"


@dataclass(frozen=True)
class RestartOutcome:
    method: str
    performed: bool  # False: nothing was restarted (method none, or auto_restart off)
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PendingStart:
    """A code move the next start of the bot has to confirm (see gitrelease.deploy.boot)."""

    target_commit: str
    target_version: str
    from_commit: str
    from_version: str
    requested_at: str
    reason: str  # "install", or "checkout" for a checkout made by hand
    session_id: str | None = None
    starts: int = 0  # starts of the target version so far that did not confirm

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- restarting ----------------------------------------------------------------------------


def restart_bot(
    root: Path, data_dir: Path, settings: Settings, *, reason: str,
    environment: dict[str, str] | None = None, log: Path | None = None,
) -> RestartOutcome:
    """Restart the bot by `settings.restart_method`; raise RestartFailed if it cannot."""
    method = settings.restart_method
    if method == "none":
        return RestartOutcome(method, False, "restart_method is none: restart the bot "
                                             "yourself to run the new code")
    if not settings.auto_restart:
        return RestartOutcome(method, False, "auto_restart is off: restart the bot yourself "
                                             "to run the new code")
    if method == "command":
        return _by_command(root, data_dir, settings, reason, environment or {}, log)
    if method == "signal":
        pid = _live_bot_pid(data_dir)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            raise RestartFailed(f"the bot (pid {pid}) ended before it could be signalled",
                                hint="start the bot") from None
        except PermissionError:
            raise RestartFailed(f"not allowed to signal the bot (pid {pid})",
                                hint="run gitrelease as the bot's user") from None
        return RestartOutcome(method, True, f"sent SIGTERM to the bot (pid {pid})")
    if method == "exit":
        request = {"requested_at": time.time(), "reason": reason,
                   "exit_code": RESTART_EXIT_CODE}
        atomic_write(data_dir / REQUEST_FILE, json.dumps(request).encode(), mode=0o600)
        return RestartOutcome(method, True, f"asked the running bot to exit with status "
                                            f"{RESTART_EXIT_CODE} for its supervisor")
    raise RestartFailed(f"unknown restart_method {method!r}")  # the schema allows no other


def _by_command(
    root: Path, data_dir: Path, settings: Settings, reason: str, environment: dict[str, str],
    log: Path | None,
) -> RestartOutcome:
    from gitrelease.deploy.command_runner import CommandFailed, run_command

    argv = command_argv(settings.restart_command)
    if not argv:
        raise RestartFailed("restart_method is command but restart_command is empty",
                            hint="gitrelease settings set restart_command "
                                 "'systemctl restart --no-block mybot'")
    target = log or data_dir / "update_logs" / "restart.log"
    try:
        result = run_command("restart command", argv, cwd=root,
                             timeout=settings.restart_timeout, log=target,
                             environment={"GITRELEASE_RESTART_REASON": reason, **environment})
    except CommandFailed as exc:
        raise RestartFailed(exc.message, hint=exc.hint) from None
    return RestartOutcome("command", True, f"ran {argv[0]} ({result.tail})")


def _live_bot_pid(data_dir: Path) -> int:
    import psutil

    path = data_dir / PID_FILE
    try:
        text = path.read_text().strip()
        written = path.stat().st_mtime
    except FileNotFoundError:
        raise RestartFailed(f"restart_method is signal but there is no {path}",
                            hint="the bot writes it at start: gitrelease.manager."
                                 "write_pid_file(data_dir)") from None
    if not text.isdigit() or int(text) <= 1:
        raise RestartFailed(f"{path} does not hold a process id: {text[:20]!r}")
    pid = int(text)
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        raise RestartFailed(f"the bot is not running (no process {pid} from {path})",
                            hint="start the bot; it runs the new code from the start") from None
    # A process that began after the file was written reuses a dead bot's pid.
    if started > written + 2:
        raise RestartFailed(f"process {pid} started after {path} was written: it is not the "
                            "bot, and is left alone", hint="start the bot")
    return pid


# -- the bot's side ------------------------------------------------------------------------


def write_pid_file(data_dir: Path, pid: int | None = None) -> Path:
    """Called by the bot at start, so that restart_method = signal can find it."""
    path = data_dir / PID_FILE
    atomic_write(path, f"{pid or os.getpid()}\n".encode(), mode=0o644)
    return path


def take_restart_request(data_dir: Path, started_at: float) -> dict[str, Any] | None:
    """The restart request meant for a process started at `started_at`, removed once read.

    A request from before the process started is stale (its bot already went) and is removed.
    """
    path = data_dir / REQUEST_FILE
    try:
        request = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        request = {}
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    when = request.get("requested_at") if isinstance(request, dict) else None
    if not isinstance(when, int | float) or when < started_at:
        return None
    return request


class RestartWatcher:
    """For restart_method = exit: polls for a restart request and hands it to the bot.

    The bot then closes itself and exits with `RESTART_EXIT_CODE`::

        watcher = RestartWatcher(data_dir, on_request=lambda request: bot.close())
        asyncio.create_task(watcher.run())
        ...
        sys.exit(watcher.exit_code)  # 75 after a request, else 0
    """

    def __init__(
        self, data_dir: Path, on_request: Callable[[dict[str, Any]], Awaitable[Any] | Any],
        *, interval: float = 1.0,
    ) -> None:
        import psutil

        self.data_dir = data_dir
        self.on_request = on_request
        self.interval = interval
        self.started_at = psutil.Process().create_time()
        self.requested: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return RESTART_EXIT_CODE if self.requested is not None else 0

    def poll(self) -> dict[str, Any] | None:
        request = take_restart_request(self.data_dir, self.started_at)
        if request is not None:
            self.requested = request
        return request

    async def run(self) -> None:
        while True:
            request = await asyncio.to_thread(self.poll)
            if request is not None:
                outcome = self.on_request(request)
                if asyncio.iscoroutine(outcome) or isinstance(outcome, asyncio.Future):
                    await outcome
                return
            await asyncio.sleep(self.interval)


# -- the start to confirm ------------------------------------------------------------------


def write_pending(data_dir: Path, pending: PendingStart) -> None:
    atomic_write(data_dir / PENDING_FILE, json.dumps(pending.to_dict(), indent=2).encode())


def read_pending(data_dir: Path) -> PendingStart | None:
    """The unconfirmed start, or None; an unreadable file counts as none (and says so once
    confirmed or checked, since those remove it)."""
    try:
        raw = json.loads((data_dir / PENDING_FILE).read_text())
        return PendingStart(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None


def clear_pending(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PENDING_FILE).unlink()


def new_pending(
    *, target_commit: str, target_version: str, from_commit: str, from_version: str,
    reason: str, session_id: str | None,
) -> PendingStart:
    return PendingStart(target_commit, target_version, from_commit, from_version,
                        utcnow().isoformat(), reason, session_id)


def mark_confirms_starts(data_dir: Path, actor: str) -> None:
    """This bot confirms its starts: from now on `start_confirmation = auto` counts the ones
    that never confirm. Written once; a later confirmation leaves the first one's record."""
    path = data_dir / CONFIRMS_FILE
    if path.is_file():
        return
    record = {"first_confirmed_at": utcnow().isoformat(), "by": actor}
    atomic_write(path, json.dumps(record).encode(), mode=0o644)


def confirms_starts(data_dir: Path) -> bool:
    return (data_dir / CONFIRMS_FILE).is_file()
