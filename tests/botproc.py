"""A tiny stand-in for a bot process, for the restart tests.

Usage: botproc.py DATA_DIR MODE READY_FILE, run in the deployment root.
- signal: writes DATA_DIR/bot.pid, exits 143 on SIGTERM;
- exit: watches for a restart request (restart_method = exit), exits with status 75;
- confirm: a freshly started bot: confirms the version it runs, exits 0.
READY_FILE is written once the process is ready for the test to act.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from gitrelease.deploy.restart import RestartWatcher, write_pid_file
from gitrelease.manager import ReleaseManager


def main() -> int:
    data, mode, ready = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    if mode == "signal":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        write_pid_file(data)
        ready.write_text("ready")
        while True:
            time.sleep(0.05)
    if mode == "exit":
        return asyncio.run(_watch(data, ready))
    if mode == "confirm":
        return asyncio.run(_confirm(ready))
    return 2


async def _watch(data: Path, ready: Path) -> int:
    stop = asyncio.Event()
    watcher = RestartWatcher(data, on_request=lambda request: stop.set(), interval=0.05)
    task = asyncio.create_task(watcher.run())
    ready.write_text("ready")
    await stop.wait()
    await task
    return watcher.exit_code


async def _confirm(ready: Path) -> int:
    ready.write_text("ready")
    async with await ReleaseManager.open(Path.cwd(), this_process_is_bot=True) as manager:
        result = await manager.confirm_start(actor="bot")
    return 0 if result.action == "confirmed" else 1


if __name__ == "__main__":
    sys.exit(main())
