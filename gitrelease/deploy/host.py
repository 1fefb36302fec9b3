"""Host facts for `status`: disk, memory and the bot's uptime."""

from __future__ import annotations

import contextlib
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from gitrelease.core.fsutil import dir_size

__all__ = ["PID_FILE", "disk_usage", "memory_usage", "uptime"]

PID_FILE = "bot.pid"


def disk_usage(root: Path, data_dir: Path, min_free_mb: int = 0, *,
               skip: Path | None = None) -> dict[str, Any]:
    """The disk's figures and the data folder's size; `skip` (the backup folder, whose sizes
    the index already holds) is not walked: with thousands of archives the walk is most of
    the cost of a status."""
    usage = shutil.disk_usage(root)
    # Both resolved: the walk compares the paths it meets with `skip` as text, and a data
    # folder reached through a symlink must still leave its backup folder out.
    data_bytes = dir_size(data_dir.resolve(), skip=skip.resolve() if skip else None)
    return {
        "min_free_bytes": min_free_mb * 1024 * 1024,
        "enough_free": usage.free >= min_free_mb * 1024 * 1024,
        "total_bytes": usage.total,
        "used_bytes": usage.used,
        "free_bytes": usage.free,
        "percent_used": round(usage.used / usage.total * 100, 1) if usage.total else None,
        "data_dir_bytes": data_bytes,
    }


def _bot_process(data_dir: Path) -> psutil.Process | None:
    """The bot's process, if it wrote a pid file and that process is alive."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        return psutil.Process(pid)
    except (OSError, ValueError, psutil.Error):
        return None


def memory_usage(data_dir: Path) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    result: dict[str, Any] = {
        "total_bytes": memory.total,
        "available_bytes": memory.available,
        "percent_used": memory.percent,
        "bot_rss_bytes": None,
    }
    process = _bot_process(data_dir)
    if process is not None:
        with contextlib.suppress(psutil.Error):
            result["bot_rss_bytes"] = process.memory_info().rss
    return result


def uptime(data_dir: Path, *, this_process_is_bot: bool = False) -> tuple[timedelta, str]:
    """How long the bot has run, and what that figure is of.

    In the bot (the cog) it is this process; from the CLI it is the process named by
    ``data/bot.pid`` when that is alive, else the host, said as such.
    """
    process = psutil.Process() if this_process_is_bot else _bot_process(data_dir)
    source = "bot"
    try:
        started = process.create_time() if process else psutil.boot_time()
    except psutil.Error:
        started = psutil.boot_time()
        process = None
    if process is None:
        source = "host"
    return timedelta(seconds=max(0.0, time.time() - started)), source
