"""`Beside`: one call run in a thread of its own while the caller does something else; and
`in_thread`, the same for a coroutine: blocking work off the event loop.

`check` waits mostly on git processes (the fetch above all); those that do not depend on
each other run side by side. A plain thread, not an executor: concurrent.futures is an
import the CLI's `check` does without (start-up time is part of the product).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Beside", "in_thread"]

T = TypeVar("T")


class Beside(Generic[T]):
    """Starts `func()` now; `result()` waits for it and returns or raises what it did."""

    def __init__(self, func: Callable[[], T]) -> None:
        self._func = func
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gitrelease-beside",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._func()
        except BaseException as exc:  # kept for whoever asks for the result
            self._error = exc

    def succeeds(self) -> bool:
        """Waits; true if the call returned rather than raised."""
        self._thread.join()
        return self._error is None

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


async def in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Blocking work (git, disk, processes) off the event loop. asyncio is imported here,
    when a coroutine first needs it: the CLI's `check` runs without it."""
    import asyncio

    return await asyncio.to_thread(func, *args, **kwargs)
