"""Named points where a process can be told to stop and wait, so a test can kill it there.

Crash safety is only shown by crashing for real: a test sets ``GITRELEASE_PAUSE_AT`` to a
point's name (and ``GITRELEASE_PAUSE_MARKER`` to a file), waits for the marker to appear,
then sends SIGKILL. Without those variables a pause point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["pause_point"]


def pause_point(name: str) -> None:
    if os.environ.get("GITRELEASE_PAUSE_AT") != name:
        return
    marker = os.environ.get("GITRELEASE_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("GITRELEASE_PAUSE_SECONDS", "120")))
