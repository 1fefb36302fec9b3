"""The update journal: a row before and after every step, so a crash leaves a trace."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import Progress, UpdateSession, UpdateStatus, utcnow
from gitrelease.core.pausepoints import pause_point

if TYPE_CHECKING:
    from gitrelease.core.tether import Group
    from gitrelease.index.store import Store

__all__ = ["StepRunner"]

T = TypeVar("T")


class StepRunner:
    """Journals a step before and after it runs, so a crash leaves a trace of where it was."""

    def __init__(
        self, store: Store, session: UpdateSession, progress: Progress | None, *,
        operation: str = "install",
    ) -> None:
        self.store = store
        self.session = session
        self.progress = progress
        self.operation = operation  # names the pause points: "install:checkout"
        self.current = ""
        self.started: list[str] = []

    async def __call__(
        self, name: str, status: UpdateStatus, percent: int, work: Callable[..., T], *args: Any
    ) -> T:
        self.current = name
        self.started.append(name)
        self.session.status = status
        await self.store.add_step(self.session.id, name, "started")
        await self.store.save_session(self.session)
        self._report(name, self.session.progress, "started")
        pause_point(f"{self.operation}:{name}")
        try:
            if inspect.iscoroutinefunction(work):
                result = await work(*args)
            else:
                result = await asyncio.to_thread(work, *args)
        except Exception as exc:
            detail = exc.message if isinstance(exc, GitReleaseError) else type(exc).__name__
            await self.store.add_step(self.session.id, name, "failed", detail)
            raise
        self.session.steps_completed.append(name)
        self.session.progress = percent
        await self.store.add_step(self.session.id, name, "done")
        await self.store.save_session(self.session)
        self._report(name, percent, "done")
        pause_point(f"{self.operation}:{name}:done")
        return result

    async def note(self, name: str, detail: str) -> None:
        """A fact for whoever reads the journal later (recovery included), not a step."""
        await self.store.add_step(self.session.id, name, "note", detail)

    def from_thread(self) -> Callable[[str, str], None]:
        """`note` for a step's work in its worker thread (made in the event loop's): written
        before the call returns, so the work goes on only once the fact is journalled."""
        loop = asyncio.get_running_loop()

        def note(name: str, detail: str) -> None:
            asyncio.run_coroutine_threadsafe(self.note(name, detail), loop).result(timeout=60)

        return note

    def recorder(self, name: str) -> Callable[[Group], None]:
        """For the work of step `name`: journals (as the note ``group:<name>``) a process
        group it is about to start, before it starts, so that recovery after a crash stops
        what is left of it (`gitrelease.core.tether`)."""
        note = self.from_thread()
        return lambda group: note(f"group:{name}", group.text())

    async def finish(self, status: UpdateStatus, error: str | None) -> None:
        self.session.status = status
        self.session.error_message = error
        self.session.completed_at = utcnow()
        if status is UpdateStatus.COMPLETED:
            self.session.progress = 100
        await self.store.save_session(self.session)
        self._report("finished", self.session.progress, status.value)

    def _report(self, step: str, percent: int, detail: str) -> None:
        if self.progress is not None:
            self.progress(step, percent, detail)
