"""Running a release's own commands (post-update, health check): no shell, a timeout, a log.

The command comes from settings as an argument list. It runs in the deployment root with the
session's facts in its environment; everything it prints goes to the session's log file
(``data/update_logs/<session id>.log``, 0600). On a timeout its whole process group is
killed, so a hung child cannot outlive it.

A release's own commands are `tether`ed (`gitrelease.core.tether`): they die with the
process that started them, and their process group is handed to `tether` (which journals
it) before they start, so recovery after a crash can stop what is left of them first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.tether import Group, Tethered
from gitrelease.core.text import Secrets, redact

__all__ = ["CommandFailed", "CommandResult", "run_command"]

_TAIL_LINES = 8


class CommandFailed(GitReleaseError):
    """A release's post-update command or health check failed or timed out."""

    code = "command_failed"
    exit_code = 20


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    tail: str  # the last lines it printed


def run_command(
    name: str, argv: list[str], *, cwd: Path, timeout: float, log: Path,
    environment: Mapping[str, str], tether: Callable[[Group], None] | None = None,
    secrets: Secrets | None = None,
) -> CommandResult:
    """Run `argv`; raise CommandFailed (with the output's last lines) unless it exits 0.

    `tether`: the command dies with this process, and is given its process group to record
    before the command starts (see the module's docstring).

    The lines shown (in the error, and from there in the journal, the index and
    bad_releases.json) have `secrets` taken out (the deployment's, `Deployment.secrets`;
    without them, those of the `.env` in `cwd` and of the environment): the values as
    they are before the command starts and as it leaves them, since it may rewrite `.env`.
    The log keeps the output whole: it is the operator's own (0600), the one complete
    record of what ran; whatever shows it redacts it."""
    hide = (secrets or Secrets(cwd / ".env")).from_now()
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as handle:
        handle.write(f"--- {name}: {redact(' '.join(argv))}\n".encode())
        handle.flush()
        start = handle.tell()
        tethered: Tethered | None = None
        try:
            if tether is None:
                process = subprocess.Popen(
                    argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=handle,
                    stderr=subprocess.STDOUT, env={**os.environ, **environment},
                    start_new_session=True)
            else:
                tethered = _start_tethered(argv, cwd, handle, environment, tether)
                process = tethered.process
        except OSError as exc:
            raise CommandFailed(f"{name} could not start: {exc.strerror} ({argv[0]})",
                                hint="fix the command in [tool.gitrelease] or the settings",
                                log=str(log)) from None
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            handle.write(f"--- {name}: killed after {timeout:g} s\n".encode())
            raise CommandFailed(f"{name} timed out after {timeout:g} s; "
                                f"{_tail(log, start, hide)}",
                                hint=f"its output is in {log}", log=str(log)) from None
        finally:
            if tethered is not None:
                tethered.close()
        handle.write(f"--- {name}: exit status {returncode}\n".encode())
    tail = _tail(log, start, hide)
    if returncode != 0:
        raise CommandFailed(f"{name} exited with status {returncode}; {tail}",
                            hint=f"its output is in {log}", log=str(log))
    return CommandResult(returncode, tail)


def _start_tethered(
    argv: list[str], cwd: Path, handle: object, environment: Mapping[str, str],
    tether: Callable[[Group], None],
) -> Tethered:
    """The command through the tether's helper: its group recorded by `tether`, then let go.
    OSError if it could not start (as from Popen), after the helper is gone."""
    tethered = Tethered(argv, cwd=cwd, env={**os.environ, **environment},
                        stdout=handle, stderr=subprocess.STDOUT)  # type: ignore[arg-type]
    try:
        tether(tethered.group)
        failed = tethered.release()
    except BaseException:
        tethered.kill()  # held at the gate: nothing ran
        tethered.close()
        raise
    if failed is not None:
        tethered.process.wait()
        tethered.close()
        raise OSError(0, failed)
    return tethered


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(log: Path, start: int, hide: Callable[[str], str]) -> str:
    with log.open("rb") as handle:
        handle.seek(start)
        data = handle.read()
    text = data[-4096:].decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(data) > 4096:
        lines = lines[1:]  # cut mid-line: a secret's end is no longer the secret
    shown = " | ".join(lines[-_TAIL_LINES:])
    return hide(f"output: {shown}" if shown else "no output")
