"""A long command's progress, shown by editing its "thinking" reply about once a second.

The engine calls the progress callback with (step, percent, detail); this turns those calls
into edits of the original response, and announces each finished step to the notify_channels.
The steps read as the product names them (`step_text`), under what the work will do (`intro`:
an install's plan), and the edit takes any buttons off the message.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import discord

from gitrelease_discord.cards import progress_text, step_label
from gitrelease_discord.embeds import COLOURS, LIMITS, cut, scrub
from gitrelease_discord.i18n import locale_of, text
from gitrelease_discord.notify import Notify

__all__ = ["PROGRESS_INTERVAL", "ProgressMessage"]

PROGRESS_INTERVAL = 1.0  # seconds between edits of a progress message


class ProgressMessage:
    """Engine progress → edits of the original response, about one a second.

    The engine may report from worker threads: everything is handed to the loop first.
    """

    def __init__(self, interaction: discord.Interaction, title: str, notify: Notify, *,
                 intro: str | None = None) -> None:
        self.interaction, self.title, self.notify = interaction, title, notify
        self.intro = intro  # shown above the steps the whole time (what the work will do)
        self.loop = asyncio.get_running_loop()
        self.state: tuple[str, int, str] | None = None
        self.done: list[str] = []  # steps finished, shown with ✅
        self.locale = locale_of(interaction)
        self.last = 0.0
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def __call__(self, step: str, percent: int, detail: str) -> None:
        self.loop.call_soon_threadsafe(self._update, step, percent, detail)

    def _update(self, step: str, percent: int, detail: str) -> None:
        if self.closed:
            return  # the result is shown now; a late report must not replace it
        self.state = (step, percent, detail)
        if detail == "done" and step not in self.done:
            self.done.append(step)
        if detail == "done":
            self.notify("update_progress_notifications", text(
                "notify_progress", title=self.title, step=step_label(step, self.locale),
                percent=percent))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._flush())

    async def _flush(self) -> None:
        wait = PROGRESS_INTERVAL - (time.monotonic() - self.last)
        if wait > 0:
            await asyncio.sleep(wait)
        if self.state is None or self.closed:
            return
        step, percent, _detail = self.state
        self.last = time.monotonic()
        shown = progress_text(self.done, step, percent, self.locale)
        body = f"{self.intro}\n{shown}" if self.intro else shown
        # The plan above may be long: the steps below it are what is cut last.
        if len(body) > LIMITS["description"]:
            body = cut(self.intro or "", LIMITS["description"] - len(shown) - 1) + "\n" + shown
        embed = discord.Embed(title=cut(scrub(self.title), LIMITS["title"]), colour=COLOURS["info"],
                              description=cut(scrub(body), LIMITS["description"]))
        with suppress(discord.HTTPException):
            # No view: the progress replaces a confirm card, buttons and all.
            await self.interaction.edit_original_response(embed=embed, view=None)

    async def close(self) -> None:
        """Stop showing progress: the result replaces it next."""
        self.closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task
