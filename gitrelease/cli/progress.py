"""A terminal's progress bar for long commands: the CLI's progress callback, tqdm's only user.

The engine calls a progress callback and knows nothing of how it is shown; this one draws on
stderr, and only on a terminal, since in logs and pipes the result and the journal say it all.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from gitrelease.cli.output import raw_stream
from gitrelease.core.text import visible

__all__ = ["ProgressBar", "terminal_progress"]


class ProgressBar:
    """Draws install progress on a terminal's stderr (or `stream`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._bar: Any = None
        # The bar redraws itself with carriage returns, so it writes beneath the output
        # boundary; the text it is given (a step, a file's name) is made visible here.
        self._stream = raw_stream(stream or sys.stderr)

    def __call__(self, step: str, percent: int, detail: str) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=100, file=self._stream, leave=False,
                             bar_format="{desc:<24} {bar} {n:>3}%")
        self._bar.set_description_str(visible(f"{step} ({detail})", lines=False))
        self._bar.update(percent - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def terminal_progress(as_json: bool) -> ProgressBar | None:
    """A bar on a terminal only: in logs and pipes the result and the journal say it all."""
    return ProgressBar() if not as_json and sys.stderr.isatty() else None
