"""The CLI's output boundary: nothing it prints can act on the terminal that shows it.

Tag messages, commit subjects, tag and branch names, archive member names and the errors
that quote them come from people the operator need not trust; printed raw, an escape in a
tag message clears the screen and writes "all good", a bidi override shows a name
backwards. Every line the CLI writes passes through `visible` here, once, instead of at each
print: what would act (controls, C1, bidi and other format characters) is shown as an
escape such as ``\\x1b`` or ``\\u202e``. `--json` output passes unchanged: `json.dumps`
already writes each such character as ``\\uXXXX``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from gitrelease.core.text import visible

__all__ = ["VisibleStream", "raw_stream", "visible_output"]


class VisibleStream:
    """A text stream that writes what it is given through `visible`; all else is the
    stream's own (fileno, isatty, flush, encoding)."""

    def __init__(self, stream: TextIO) -> None:
        self.unfiltered = stream

    def write(self, text: str) -> int:
        self.unfiltered.write(visible(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unfiltered, name)


def raw_stream(stream: TextIO) -> TextIO:
    """The stream beneath a `VisibleStream`: for a progress bar, whose own carriage
    returns are what redraws it (its text is made visible by whoever draws it)."""
    return getattr(stream, "unfiltered", stream)


@contextmanager
def visible_output() -> Iterator[None]:
    """stdout and stderr through `visible` while the command runs; put back after."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleStream(out), VisibleStream(err)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
