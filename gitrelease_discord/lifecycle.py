"""The cog's life cycle: what it starts at load, runs in the background and stops at unload.

At load it opens the deployment, finishes a restart that was pending, and starts the restart
watcher and the schedule loop; announcements to the notify_channels run as background tasks
too, so that a command never waits on them. At unload every task gets a short grace, then the
deployment is closed. Each command opens its own manager (`_open`), so settings and tags changed
meanwhile are seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import discord
from discord.ext import commands

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import RESTART_EXIT_CODE
from gitrelease.core.reports import ScheduleEvent, Stage
from gitrelease.manager import ReleaseManager, restart_watcher, write_pid_file
from gitrelease_discord import suggestions
from gitrelease_discord.checks import may
from gitrelease_discord.embeds import remember_root, remember_secrets
from gitrelease_discord.i18n import locale_of, text
from gitrelease_discord.notify import announce
from gitrelease_discord.progress import ProgressMessage

__all__ = ["CogLifecycle"]

log = logging.getLogger("gitrelease.discord")
T = TypeVar("T")


class CogLifecycle(commands.Cog):
    """The state and background work the command groups share; `UpdateManager` is the cog."""

    def __init__(self, bot: commands.Bot, *, root: Path | None = None,
                 data_dir: Path | None = None) -> None:
        self.bot = bot
        self.root = root
        self.data_dir = data_dir
        self.manager: ReleaseManager | None = None
        self.confirm_timeout = 60.0
        self.page_timeout = 180.0
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._wake_schedules = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._schedule_task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.unload_grace = 5.0  # seconds the loop and announcements get to finish on unload
        self.session_starts_every = 600.0  # seconds between two looks at the session starts
        self.offsite_every = 60.0  # seconds between two runs of the offsite upload queue
        # The code this process runs: the commit checked out when the cog loaded, and when.
        # While HEAD is elsewhere, /update_status says a restart is pending.
        self.running_commit: str | None = None
        self.running_since: datetime | None = None

    async def cog_load(self) -> None:
        manager = await ReleaseManager.open(self.root, data_dir=self.data_dir,
                                            this_process_is_bot=True)
        try:
            self.running_commit = await asyncio.to_thread(manager.repo.head_commit)
            self.running_since = datetime.now(UTC)
            await asyncio.to_thread(self._remember_secrets, manager.root)
            await manager.recover()
            await asyncio.to_thread(write_pid_file, manager.data_dir)
            started = await manager.confirm_start(actor="bot")
        except BaseException:
            await manager.close()  # a failed load leaves no index or repository open
            raise
        self.manager = manager
        if started.action == "confirmed" and started.pending is not None:
            self._notify_soon("update_completion_notifications",
                              text("now_running", version=started.pending.target_version))
        if manager.settings.restart_method == "exit":
            watcher = restart_watcher(manager.data_dir, self._restart_requested)
            self._watcher = self._spawn(watcher.run())
        if await manager.list_schedules():
            self._start_schedules()
        if manager.settings.offsite == "after_backup":  # uploads left queued, and retries
            self._spawn(self._offsite_uploads())
        if manager.shared_index:  # one of a fleet: say so, every heartbeat
            self._spawn(self._session_starts())
            self._spawn(self._heartbeat())

    async def cog_unload(self) -> None:
        self._stop.set()
        self._wake_schedules.set()
        # The unload may run inside one of these tasks (the restart watcher closes the bot):
        # awaiting itself would never end.
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        if self._watcher in tasks:  # it only watches for requests: nothing to finish
            self._watcher.cancel()
        if tasks:  # a short grace: a sleeping loop ends, an announcement being posted lands
            _done, pending = await asyncio.wait(tasks, timeout=self.unload_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.manager is not None:
            if self.manager.shared_index:
                with suppress(GitReleaseError):  # the fleet sees this bot go, not go stale
                    await self.manager.report_instance(health="stopped", shards=self._shards())
            await self.manager.close()
            self.manager = None

    def _shards(self) -> list[int] | None:
        """The shard ids this bot runs (None: unsharded, the shard_ids setting stands)."""
        shards = getattr(self.bot, "shards", None)
        if isinstance(shards, dict) and shards:
            return sorted(shards)
        shard = getattr(self.bot, "shard_id", None)
        return [shard] if isinstance(shard, int) else None

    async def _heartbeat(self) -> None:
        """The fleet's agent, inside the bot: report it every heartbeat and install its part
        of a rollout when one is assigned, until the cog unloads. An unreachable server is
        logged and tried again a heartbeat later."""
        await self._note_session_starts()  # in its first report already
        while not self._stop.is_set() and self.manager is not None:
            try:
                await self.manager.run_agent(stop=self._stop, shards=self._shards())
            except GitReleaseError as exc:
                log.warning("fleet agent: %s", exc.message)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(),
                                       timeout=self.manager.settings.fleet_heartbeat_seconds)

    async def _note_session_starts(self) -> None:
        """What Discord says of the bot's session starts (GET /gateway/bot), kept for the
        fleet's rollouts, which refuse to restart more shards than the bot could start
        again. Not known, a rollout says so; never a failure of the bot."""
        if self.manager is None:
            return
        try:
            _shards, _url, limit = await self.bot.http.get_bot_gateway()
            user = self.bot.user
            await self.manager.note_session_starts(limit, str(user.id) if user else None)
        except (discord.DiscordException, ValueError) as exc:
            log.warning("could not read the bot's session starts: %s", exc)

    async def _session_starts(self) -> None:
        """Look at them again every `session_starts_every` seconds (each start uses one)."""
        while not self._stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.session_starts_every)
            if not self._stop.is_set():
                await self._note_session_starts()

    async def _offsite_uploads(self) -> None:
        """Upload what is queued for offsite (a backup taken while the storage was away, an
        upload a restart cut short), now and every `offsite_every` seconds: a failure is
        logged and retried when it is due, never a failure of the bot."""
        while not self._stop.is_set() and self.manager is not None:
            try:
                report = await self.manager.upload_queued(actor="bot")
                for backup_id, why in report.failed.items():
                    log.warning("offsite upload of %s failed (retried later): %s",
                                backup_id, why)
            except GitReleaseError as exc:
                log.warning("offsite uploads: %s", exc.message)
            except Exception as exc:  # the loop outlives any one round
                log.warning("offsite uploads: unexpected %s (retried later)",
                            type(exc).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.offsite_every)

    async def _restart_requested(self, _request: dict[str, Any]) -> None:
        self.exit_code = RESTART_EXIT_CODE
        await self.bot.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- schedules ---------------------------------------------------------------------------

    def _start_schedules(self) -> None:
        """Start the schedule loop, or wake it: a schedule was added, its next run may be
        sooner than the one the loop sleeps until."""
        if self.manager is None:
            return
        if self._schedule_task is None or self._schedule_task.done():
            self._schedule_task = self._spawn(self._schedule_loop(self.manager))
        else:
            self._wake_schedules.set()

    async def _schedule_loop(self, manager: ReleaseManager) -> None:
        await manager.run_schedules_forever(self._stop, wake=self._wake_schedules,
                                            listener=self._on_schedule)

    async def _on_schedule(self, event: ScheduleEvent) -> None:
        """Scheduled runs are announced like the ones started from a command."""
        schedule = event.schedule
        kinds = ", ".join(kind.value for kind in schedule.update_types)
        if event.stage is Stage.STARTED:
            await self._notify("update_start_notifications", text(
                "notify_schedule_start", schedule=schedule.name, kinds=kinds))
        elif event.stage is Stage.COMPLETED:
            await self._notify("update_completion_notifications", text(
                "notify_schedule_done", schedule=schedule.name, outcome=event.detail))
        elif event.stage is Stage.SKIPPED:  # missed while the bot was down: not an error
            await self._notify("update_completion_notifications", text(
                "notify_schedule_skipped", schedule=schedule.name, outcome=event.detail))
        else:
            await self._notify("error_notifications", text(
                "notify_schedule_failed", schedule=schedule.name, outcome=event.detail))

    # -- notifications -----------------------------------------------------------------------

    def _notify_soon(self, switch: str, message: str) -> None:
        self._spawn(self._notify(switch, message))

    async def _notify(self, switch: str, message: str) -> None:
        """Post to the notify_channels, if the event's switch is on; never raises."""
        await announce(self.bot, self.manager, switch, message)

    # -- the manager each command uses -------------------------------------------------------

    async def _with_progress(
        self, interaction: discord.Interaction, title: str,
        work: Callable[[ReleaseManager, ProgressMessage], Awaitable[T]], *,
        intro: str | None = None,
    ) -> T:
        """Run `work` with a fresh manager, its progress shown in the original response
        (under `intro`, when given)."""
        async with self._open() as manager:
            progress = ProgressMessage(interaction, title, self._notify_soon, intro=intro)
            try:
                return await work(manager, progress)
            finally:
                await progress.close()

    async def _release_suggestions(self, interaction: discord.Interaction,
                                   current: str) -> list[Any]:
        """The releases as typed so far, marked current / newer / older: to the owner only
        (the commands that take a version are the owner's)."""
        if not await may(self.bot, interaction, "owner"):
            return []
        async with self._open() as manager:
            releases = await manager.release_choices()
        return suggestions.versions(current, releases, locale_of(interaction))

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[ReleaseManager]:
        """A manager per command, so settings and tags changed meanwhile are seen."""
        async with await ReleaseManager.open(self.root, data_dir=self.data_dir,
                                             this_process_is_bot=True) as manager:
            await asyncio.to_thread(self._remember_secrets, manager.root)
            yield manager

    def _remember_secrets(self, root: Path) -> None:
        from gitrelease.core.text import hidden_values

        remember_root(root)
        token = getattr(self.bot.http, "token", None)
        remember_secrets([token] if token else [])
        with suppress(OSError, ValueError):  # every value, a key given twice or a PEM's lines
            remember_secrets(hidden_values((root / ".env").read_text()))
