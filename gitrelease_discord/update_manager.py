"""The nine slash commands: parse, authorise, defer, call `ReleaseManager`, render.

Load it into a bot with ``await bot.load_extension("gitrelease_discord")``. It finds the
deployment through ``GITRELEASE_ROOT``, else the git top-level of the working directory. Every
value is checked again here (Discord does not enforce choices or ranges for a bot), and the
permission check runs inside each command: owner for install, rollback, schedule, restore and
settings; owner or a member with Administrator for the rest (owner only in direct messages).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Literal, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from gitrelease.core.choices import BACKUP_RANGES as LIST_RANGES
from gitrelease.core.choices import BACKUP_SORTS as LIST_SORTS
from gitrelease.core.choices import STATUS_RANGES
from gitrelease.core.choices import UPDATE_TYPES as INSTALL_TYPES
from gitrelease.core.errors import (
    ConfirmationRequired,
    GitReleaseError,
    InvalidInput,
    TargetChanged,
)
from gitrelease.core.models import RESTART_EXIT_CODE, BackupType, ScheduleType
from gitrelease.core.reports import ScheduleEvent, Stage
from gitrelease.core.settings import CATEGORIES
from gitrelease.core.text import size
from gitrelease.manager import ReleaseManager, restart_watcher, write_pid_file
from gitrelease_discord import cards
from gitrelease_discord.cards import progress_text, step_label
from gitrelease_discord.embeds import (
    COLOURS,
    LIMITS,
    cut,
    fit,
    remember_secrets,
    scrub,
)
from gitrelease_discord.i18n import describe, hint, locale_name, text
from gitrelease_discord.views import ConfirmView, PagedView

__all__ = ["NotAllowed", "UpdateManager", "setup"]

log = logging.getLogger("gitrelease.discord")
T = TypeVar("T")
Level = Literal["owner", "admin"]
Choice = app_commands.Choice
# The choices are the engine's own values, so the two can never disagree.
UPDATE_TYPES = tuple(t.value for t in INSTALL_TYPES)
TIME_RANGES = tuple(STATUS_RANGES)
SCHEDULE_TYPES = tuple(t.value for t in ScheduleType)
BACKUP_TYPES = tuple(t.value for t in BackupType)
BACKUP_RANGES = tuple(LIST_RANGES)
SORTS = LIST_SORTS
# The restore types offered; the engine also takes "full" (the specification's example) and
# an internal "all_but_config" for rollbacks.
RESTORE_TYPES = ("all", "database", "config", "data")
PAGE_SIZE = 10
#: Commands whose failure is announced to notify_channels (error_notifications).
_OPERATIONS = frozenset({"update_install", "update_rollback", "backup_restore",
                         "backup_create"})
PROGRESS_INTERVAL = 1.0  # seconds between edits of a progress message


def _choices(values: tuple[str, ...]) -> list[Choice[str]]:
    return [Choice(name=value, value=value) for value in values]


def _params(command: str, *names: str) -> dict[str, app_commands.locale_str]:
    return {name: describe(f"commands.{command}.params.{name}") for name in names}


class NotAllowed(app_commands.CheckFailure):
    """The invoking user may not run this command; `message` says what is needed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Progress:
    """Engine progress → edits of the original response, about one a second.

    The engine may report from worker threads: everything is handed to the loop first.
    """

    def __init__(self, cog: UpdateManager, interaction: discord.Interaction, title: str) -> None:
        self.cog, self.interaction, self.title = cog, interaction, title
        self.loop = asyncio.get_running_loop()
        self.state: tuple[str, int, str] | None = None
        self.done: list[str] = []  # steps finished, shown with ✅
        self.locale = _locale(interaction)
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
            self.cog._notify_soon("update_progress_notifications", text(
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
        embed = discord.Embed(title=self.title, colour=COLOURS["info"],
                              description=progress_text(self.done, step, percent, self.locale))
        with suppress(discord.HTTPException):
            await self.interaction.edit_original_response(embed=embed)

    async def close(self) -> None:
        self.closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task


class UpdateManager(commands.Cog):
    """Release management for the bot that loads it."""

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

    # -- life cycle --------------------------------------------------------------------------

    async def cog_load(self) -> None:
        manager = await ReleaseManager.open(self.root, data_dir=self.data_dir,
                                            this_process_is_bot=True)
        try:
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
            await self.manager.close()
            self.manager = None

    async def _restart_requested(self, _request: dict[str, Any]) -> None:
        self.exit_code = RESTART_EXIT_CODE
        await self.bot.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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

    async def _with_progress(
        self, interaction: discord.Interaction, title: str,
        work: Callable[[ReleaseManager, _Progress], Awaitable[T]],
    ) -> T:
        """Run `work` with a fresh manager, its progress shown in the original response."""
        async with self._open() as manager:
            progress = _Progress(self, interaction, title)
            try:
                return await work(manager, progress)
            finally:
                await progress.close()

    @staticmethod
    async def _unconfirmed(interaction: discord.Interaction, confirm: bool) -> bool:
        """True (and answered) when a destructive command came without confirm = true."""
        if confirm is True:
            return False
        await interaction.response.send_message(text("confirm_false", _locale(interaction)),
                                                ephemeral=True)
        return True

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[ReleaseManager]:
        """A manager per command, so settings and tags changed meanwhile are seen."""
        async with await ReleaseManager.open(self.root, data_dir=self.data_dir,
                                             this_process_is_bot=True) as manager:
            await asyncio.to_thread(self._remember_secrets, manager.root)
            yield manager

    def _remember_secrets(self, root: Path) -> None:
        from gitrelease.core.text import env_values

        token = getattr(self.bot.http, "token", None)
        remember_secrets([token] if token else [])
        with suppress(OSError, ValueError):
            remember_secrets(env_values((root / ".env").read_text()).values())

    # -- checks ------------------------------------------------------------------------------

    async def _allow(self, interaction: discord.Interaction, level: Level) -> None:
        command = interaction.command.name if interaction.command else "?"
        if await self.bot.is_owner(interaction.user):
            return
        if level == "owner":
            raise NotAllowed(text("not_allowed_owner", _locale(interaction), command=command))
        if interaction.guild_id is None:
            raise NotAllowed(text("not_allowed_dm", _locale(interaction), command=command))
        if not interaction.permissions.administrator:
            raise NotAllowed(text("not_allowed_admin", _locale(interaction), command=command))

    async def _may(self, interaction: discord.Interaction, level: Level) -> bool:
        """The permission check, for autocomplete: offers nothing to whom may not run it."""
        try:
            await self._allow(interaction, level)
        except NotAllowed:
            return False
        return True

    @staticmethod
    def _choice(field: str, value: Any, allowed: tuple[str, ...], *,
                optional: bool = False) -> None:
        if optional and value is None:
            return
        if not isinstance(value, str) or value not in allowed:
            raise InvalidInput(field, value, list(allowed))

    @staticmethod
    def _flags(**values: Any) -> None:
        for field, value in values.items():
            if not isinstance(value, bool):
                raise InvalidInput(field, value, "true or false")

    @staticmethod
    def _text(field: str, value: Any, limit: int = 200) -> None:
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise InvalidInput(field, value, f"text of at most {limit} characters")

    # -- notifications -----------------------------------------------------------------------

    def _notify_soon(self, switch: str, message: str) -> None:
        self._spawn(self._notify(switch, message))

    async def _notify(self, switch: str, message: str) -> None:
        """Post to the notify_channels, if the event's switch is on; never raises."""
        from gitrelease.core.settings import load_settings

        manager = self.manager
        if manager is None:
            return
        # Read now, not at load: /update_settings may have changed them since.
        settings = (await asyncio.to_thread(load_settings, manager.root,
                                            manager.data_dir)).settings
        if not getattr(settings, switch, False):
            return
        if switch == "update_completion_notifications" and not settings.notify_on_completion:
            return
        for channel_id in settings.notify_channels:
            try:
                await self.bot.get_partial_messageable(int(channel_id)).send(
                    cut(scrub(message), LIMITS["content"]),
                    allowed_mentions=discord.AllowedMentions.none())  # named, not pinged
            except (discord.HTTPException, ValueError) as exc:
                log.warning("notification to channel %s failed: %s", channel_id, exc)

    # -- commands ----------------------------------------------------------------------------

    @app_commands.command(name="update_check", description=describe(
        "commands.update_check.description"))
    @app_commands.describe(**_params("update_check", "check_type", "show_details",
                                     "include_security"))
    @app_commands.choices(check_type=_choices(UPDATE_TYPES))
    async def update_check(self, interaction: discord.Interaction, check_type: str = "all",
                           show_details: bool = False, include_security: bool = True) -> None:
        await self._allow(interaction, "admin")
        self._choice("check_type", check_type, UPDATE_TYPES)
        self._flags(show_details=show_details, include_security=include_security)
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            report = await manager.check_for_updates(check_type,
                                                     include_security=include_security)
        await interaction.edit_original_response(embed=cards.check_card(
            report, text("check_title", _locale(interaction)), _locale(interaction),
            details=show_details))

    @app_commands.command(name="update_install", description=describe(
        "commands.update_install.description"))
    @app_commands.describe(**_params("update_install", "update_type", "backup_before",
                                     "restart_required", "force_update", "backup_name"))
    @app_commands.choices(update_type=_choices(UPDATE_TYPES))
    async def update_install(self, interaction: discord.Interaction, update_type: str,
                             backup_before: bool = True, restart_required: bool = True,
                             force_update: bool = False, backup_name: str | None = None) -> None:
        await self._allow(interaction, "owner")
        self._choice("update_type", update_type, UPDATE_TYPES)
        self._flags(backup_before=backup_before, restart_required=restart_required,
                    force_update=force_update)
        self._text("backup_name", backup_name, 64)
        locale = _locale(interaction)
        options: dict[str, Any] = {
            "backup_before": backup_before, "restart_required": restart_required,
            "force": force_update, "backup_name": backup_name,
            "initiated_by": f"discord:{interaction.user.id}"}
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            if update_type in ("bot", "all"):
                # What the engine would refuse without force (breaking changes, a release
                # larger than max_update_size_mb, local commits) is asked here instead.
                # Asked without force even when force_update is set: the reasons are what the
                # owner is shown and what Confirm overrides, and nothing else.
                try:
                    plan = await manager.install_updates(
                        update_type, {**options, "force": False, "dry_run": True})
                    reasons: list[str] = []
                except ConfirmationRequired as exc:
                    reasons = list(exc.reasons)
                    plan = await manager.install_updates(
                        update_type, {**options, "force": True, "dry_run": True})
                info = getattr(plan, "update", None)
                if info is None and update_type == "bot":
                    await interaction.edit_original_response(content=text(
                        "install_up_to_date", locale, version=plan.current_version))
                    return
                if info is not None and (info.breaking_changes or force_update or reasons):
                    if not await self._confirmed(interaction, plan, force_update, reasons):
                        return
                    # Exactly the release that was shown, even if a newer one came meanwhile,
                    # and past only the reasons that were shown: the engine stops, under its
                    # lock, at any other (local commits made while the buttons were up).
                    options.update(to_version=plan.target_version, force=False,
                                   accept=reasons)
            self._notify_soon("update_start_notifications", text(
                "notify_start", kind=update_type, user=interaction.user.id))
            progress = _Progress(self, interaction, text("install_title", locale,
                                                         kind=update_type))
            try:
                session = await manager.install_updates(update_type, options,
                                                        progress=progress)
            except ConfirmationRequired as exc:
                if "accept" not in options:
                    raise
                raise TargetChanged("since the release was shown, " + "; ".join(exc.reasons)
                                    + ": nothing was installed") from None
            finally:
                await progress.close()
        self._notify_soon("update_completion_notifications", text(
            "notify_done", status=session.status.value, version=session.target_version))
        await interaction.edit_original_response(view=None, embed=cards.session_card(
            session, text("install_done_title", locale, status=session.status.value), locale))

    async def _confirmed(self, interaction: discord.Interaction, plan: Any, forced: bool,
                         reasons: list[str]) -> bool:
        """Show the changelog and breaking notes with Confirm / Cancel; True if confirmed."""
        locale, info = _locale(interaction), plan.update
        # The engine's reasons name the breaking changes when require_confirmation is on.
        notes = reasons or ([text("install_confirm_breaking", locale)]
                            if info.breaking_changes else [])
        notes += [text("install_confirm_forced", locale)] if forced else []
        embed = cards.confirm_card(plan.target_tag, info.changelog, plan.warnings, locale)
        return await self._ask(interaction, embed, notes, "install")

    async def _ask(self, interaction: discord.Interaction, embed: discord.Embed,
                   notes: list[str], action: str) -> bool:
        """Confirm / Cancel under `embed`; True if the invoking user confirmed in time.
        Otherwise the response says nothing was done (`action`: install or rollback)."""
        locale = _locale(interaction)
        prompt = text(f"{action}_confirm_prompt", locale, seconds=round(self.confirm_timeout))
        embed.description = cut(scrub("\n".join([*notes, prompt])),
                                LIMITS["description"])
        view = ConfirmView(interaction.user.id, locale, timeout=self.confirm_timeout)
        await interaction.edit_original_response(embed=fit(embed, locale), view=view)
        timed_out = await view.wait()
        if timed_out or not view.confirmed:
            key = f"{action}_expired" if view.confirmed is None else f"{action}_cancelled"
            await interaction.edit_original_response(content=text(key, locale), embed=None,
                                                     view=None)
            return False
        return True

    @app_commands.command(name="update_status", description=describe(
        "commands.update_status.description"))
    @app_commands.describe(**_params("update_status", "show_history", "show_metrics",
                                     "time_range"))
    @app_commands.choices(time_range=_choices(TIME_RANGES))
    async def update_status(self, interaction: discord.Interaction, show_history: bool = False,
                            show_metrics: bool = True, time_range: str = "7d") -> None:
        await self._allow(interaction, "admin")
        self._flags(show_history=show_history, show_metrics=show_metrics)
        self._choice("time_range", time_range, TIME_RANGES)
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            info = await manager.get_update_status(time_range, show_history=show_history,
                                                   show_metrics=show_metrics)
        await interaction.edit_original_response(embed=cards.status_card(
            info, text("status_title", _locale(interaction)), _locale(interaction)))

    @app_commands.command(name="update_rollback", description=describe(
        "commands.update_rollback.description"))
    @app_commands.describe(**_params("update_rollback", "target_version", "confirm",
                                     "create_backup", "restore_config"))
    async def update_rollback(self, interaction: discord.Interaction, target_version: str,
                              confirm: bool, create_backup: bool = True,
                              restore_config: bool = True) -> None:
        await self._allow(interaction, "owner")
        self._text("target_version", target_version, 100)
        self._flags(confirm=confirm, create_backup=create_backup, restore_config=restore_config)
        if await self._unconfirmed(interaction, confirm):
            return
        await interaction.response.defer(thinking=True)
        locale = _locale(interaction)
        options = {"confirm": True, "create_backup": create_backup,
                   "restore_config": restore_config,
                   "initiated_by": f"discord:{interaction.user.id}"}
        title = text("rollback_title", locale, target=target_version)
        try:
            session = await self._with_progress(
                interaction, title, lambda m, progress: m.rollback_to_version(
                    target_version, options, progress=progress))
        except ConfirmationRequired as exc:
            # Refused before anything changed (no backup of that version): ask, then force.
            embed = discord.Embed(title=title, colour=COLOURS["warn"])
            if not await self._ask(interaction, embed, [exc.message], "rollback"):
                return
            # Only what was shown: if "previous" means another commit by now, nothing is done.
            confirmed = {**options, "force": True, "expect_commit": exc.details.get("commit")}
            session = await self._with_progress(
                interaction, title, lambda m, progress: m.rollback_to_version(
                    target_version, confirmed, progress=progress))
        self._notify_soon("update_completion_notifications", text(
            "notify_rollback_done", status=session.status.value, version=session.target_version,
            user=interaction.user.id))
        await interaction.edit_original_response(view=None, embed=cards.session_card(
            session, title, locale))

    @app_commands.command(name="update_schedule", description=describe(
        "commands.update_schedule.description"))
    @app_commands.describe(**_params("update_schedule", "schedule_type", "update_time",
                                     "update_days", "update_types", "enabled"))
    @app_commands.choices(schedule_type=_choices(SCHEDULE_TYPES))
    async def update_schedule(self, interaction: discord.Interaction, schedule_type: str,
                              update_types: str, update_time: str | None = None,
                              update_days: str | None = None, enabled: bool = True) -> None:
        await self._allow(interaction, "owner")
        self._choice("schedule_type", schedule_type, SCHEDULE_TYPES)
        for field, value in (("update_types", update_types), ("update_time", update_time),
                             ("update_days", update_days)):
            self._text(field, value, 100)
        self._flags(enabled=enabled)
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            schedule = await manager.add_schedule(
                schedule_type, update_time, update_days, update_types, enabled,
                actor=f"discord:{interaction.user.id}")
        self._start_schedules()
        locale = _locale(interaction)
        await interaction.edit_original_response(embed=cards.schedule_card(
            schedule, text("schedule_title", locale, id=schedule.id), locale))

    @app_commands.command(name="backup_create", description=describe(
        "commands.backup_create.description"))
    @app_commands.describe(**_params("backup_create", "backup_type", "compress", "backup_name",
                                     "include_logs", "description"))
    @app_commands.choices(backup_type=_choices(BACKUP_TYPES))
    async def backup_create(self, interaction: discord.Interaction, backup_type: str = "full",
                            compress: bool = True, backup_name: str | None = None,
                            include_logs: bool = False,
                            description: str | None = None) -> None:
        await self._allow(interaction, "admin")
        self._choice("backup_type", backup_type, BACKUP_TYPES)
        self._flags(compress=compress, include_logs=include_logs)
        self._text("backup_name", backup_name, 64)
        self._text("description", description, 500)
        await interaction.response.defer(thinking=True)
        options = {"compress": compress, "backup_name": backup_name,
                   "include_logs": include_logs, "description": description}
        backup = await self._with_progress(
            interaction, text("backup_title", _locale(interaction), status="…"),
            lambda m, progress: m.create_backup(backup_type, options, progress=progress,
                                                actor=f"discord:{interaction.user.id}"))
        self._notify_soon("backup_notifications", text(
            "notify_backup", name=backup.name, status=backup.status.value,
            size=size(backup.compressed_size or backup.file_size)))
        await interaction.edit_original_response(embed=cards.backup_card(
            backup, text("backup_title", _locale(interaction), status=backup.status.value),
            _locale(interaction)))

    @app_commands.command(name="backup_list", description=describe(
        "commands.backup_list.description"))
    @app_commands.describe(**_params("backup_list", "backup_type", "time_range", "limit",
                                     "sort_by"))
    @app_commands.choices(backup_type=_choices(BACKUP_TYPES), time_range=_choices(BACKUP_RANGES),
                          sort_by=_choices(SORTS))
    async def backup_list(self, interaction: discord.Interaction, backup_type: str | None = None,
                          time_range: str = "30d", limit: app_commands.Range[int, 1, 50] = 20,
                          sort_by: str = "date") -> None:
        await self._allow(interaction, "admin")
        self._choice("backup_type", backup_type, BACKUP_TYPES, optional=True)
        self._choice("time_range", time_range, BACKUP_RANGES)
        self._choice("sort_by", sort_by, SORTS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise InvalidInput("limit", limit, "an integer from 1 to 50")
        await interaction.response.defer(thinking=True)
        filters = {"time_range": time_range, "limit": limit, "sort_by": sort_by}
        if backup_type is not None:
            filters["backup_type"] = backup_type
        async with self._open() as manager:
            backups = await manager.list_backups(filters)
        locale = _locale(interaction)
        if not backups:
            await interaction.edit_original_response(content=text("backup_list_empty", locale))
            return
        pages = -(-len(backups) // PAGE_SIZE)

        def page(index: int) -> discord.Embed:
            embed = cards.backups_page(backups, index * PAGE_SIZE, PAGE_SIZE, text(
                "backup_list_title", locale, count=len(backups)), locale)
            embed.set_footer(text=text("page", locale, page=index + 1, pages=pages))
            return embed

        if pages == 1:
            await interaction.edit_original_response(embed=page(0))
            return
        view = PagedView(interaction.user.id, locale, pages, page, source=interaction,
                         timeout=self.page_timeout)
        await interaction.edit_original_response(embed=page(0), view=view)

    @app_commands.command(name="backup_restore", description=describe(
        "commands.backup_restore.description"))
    @app_commands.describe(**_params("backup_restore", "backup_id", "confirm", "restore_type",
                                     "verify_backup"))
    @app_commands.choices(restore_type=_choices(RESTORE_TYPES))
    async def backup_restore(self, interaction: discord.Interaction, backup_id: str,
                             confirm: bool, restore_type: str = "all",
                             verify_backup: bool = True) -> None:
        await self._allow(interaction, "owner")
        self._text("backup_id", backup_id, 100)
        self._flags(confirm=confirm, verify_backup=verify_backup)
        self._choice("restore_type", restore_type, RESTORE_TYPES)
        if await self._unconfirmed(interaction, confirm):
            return
        await interaction.response.defer(thinking=True)
        locale = _locale(interaction)
        options = {"confirm": True, "restore_type": restore_type, "verify_backup": verify_backup}
        result = await self._with_progress(
            interaction, text("restore_title", locale, backup=backup_id),
            lambda m, progress: m.restore_backup(backup_id, options, progress=progress,
                                                 actor=f"discord:{interaction.user.id}"))
        self._notify_soon("update_completion_notifications", text(
            "notify_restore_done", name=result.backup.name, kind=restore_type,
            user=interaction.user.id))
        await interaction.edit_original_response(embed=cards.restore_card(
            result, text("restore_title", locale, backup=backup_id), locale))

    @app_commands.command(name="update_settings", description=describe(
        "commands.update_settings.description"))
    @app_commands.describe(**_params("update_settings", "setting_category", "setting_name",
                                     "setting_value", "reset_to_default"))
    @app_commands.choices(setting_category=_choices(CATEGORIES))
    async def update_settings(self, interaction: discord.Interaction, setting_category: str,
                              setting_name: str, setting_value: str | None = None,
                              reset_to_default: bool = False) -> None:
        await self._allow(interaction, "owner")
        self._choice("setting_category", setting_category, CATEGORIES)
        self._text("setting_name", setting_name, 100)
        self._text("setting_value", setting_value, 1000)
        self._flags(reset_to_default=reset_to_default)
        locale = _locale(interaction)
        if setting_value is None and not reset_to_default:
            await interaction.response.send_message(text("setting_value_missing", locale),
                                                    ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        async with self._open() as manager:
            change = await manager.change_setting(
                setting_category, setting_name, None if reset_to_default else setting_value,
                actor=f"discord:{interaction.user.id}")
        if setting_category == "schedule":  # the loop reads settings when it wakes
            self._wake_schedules.set()
        data = change.to_dict()
        if setting_name.endswith("_command"):  # commands may carry tokens: never shown
            data = {**data, "previous": "(set)" if data.get("previous") else "(empty)",
                    "new": "(set)" if data.get("new") else "(empty)"}
        key = "settings_reset" if reset_to_default else "settings_changed"
        await interaction.edit_original_response(embed=fit(discord.Embed(
            title=text("settings_title", locale, name=setting_name), colour=COLOURS["ok"],
            description=scrub(text(key, locale, name=setting_name, old=data.get("previous"),
                                    new=data.get("new")))), locale))

    # -- autocomplete ------------------------------------------------------------------------

    @update_rollback.autocomplete("target_version")
    async def _target_versions(self, interaction: discord.Interaction,
                               current: str) -> list[Choice[str]]:
        if not await self._may(interaction, "owner"):
            return []
        async with self._open() as manager:
            names = ["previous", "last_backup", *await manager.release_tags()]
        return _matching(names, current)

    @backup_restore.autocomplete("backup_id")
    async def _backup_ids(self, interaction: discord.Interaction,
                          current: str) -> list[Choice[str]]:
        if not await self._may(interaction, "owner"):
            return []
        async with self._open() as manager:
            backups = await manager.list_backups({"time_range": "all", "limit": 50})
        found = [Choice(name=cut(f"{b.name} ({b.backup_type.value}, {b.status.value})", 100),
                        value=b.id) for b in backups
                 if current.lower() in b.name.lower() or current.lower() in b.id.lower()]
        return found[:25]

    @update_settings.autocomplete("setting_name")
    async def _setting_names(self, interaction: discord.Interaction,
                             current: str) -> list[Choice[str]]:
        from gitrelease.core.settings import schema

        if not await self._may(interaction, "owner"):
            return []
        category = getattr(interaction.namespace, "setting_category", None)
        names = [name for name, spec in schema().items()
                 if category in (None, spec.category)]
        return _matching(names, current)

    # -- errors ------------------------------------------------------------------------------

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        command = interaction.command.name if interaction.command else "?"
        locale = _locale(interaction)
        refused = (NotAllowed, InvalidInput, app_commands.TransformerError,
                   app_commands.CommandSignatureMismatch)
        if command in _OPERATIONS and not isinstance(original, refused):
            reason = original.message if isinstance(original, GitReleaseError) else \
                f"/{command} failed unexpectedly"
            self._notify_soon("error_notifications", text("notify_error", message=reason))
        if isinstance(original, NotAllowed):
            message = original.message
        elif isinstance(original, GitReleaseError):
            advice = hint(original.code, locale) or original.hint
            message = f"{original.message}\n{advice}" if advice else original.message
        elif isinstance(original, app_commands.TransformerError):
            message = text("invalid", locale, field=original.type.name, value=original.value,
                           allowed=original.type.name)
        elif isinstance(original, app_commands.CommandSignatureMismatch):
            # A required option is missing or the client's copy of the command is stale: a
            # modified client, or commands not synced since an upgrade.
            message = text("signature_mismatch", locale, command=command)
        else:
            error_id = uuid.uuid4().hex[:8]
            log.error("/%s failed (error id %s)", command, error_id, exc_info=original)
            message = text("unexpected", locale, command=command, error_id=error_id)
        embed = fit(discord.Embed(title=text("error_title", locale, command=command),
                                  description=cut(scrub(message), LIMITS["description"]),
                                  colour=COLOURS["error"]), locale)
        try:
            if interaction.response.is_done():
                # Deferred: the "thinking" reply becomes a short line, and the reason goes
                # privately to whoever ran the command.
                with suppress(discord.HTTPException):
                    await interaction.edit_original_response(
                        content=text("failed_privately", locale, command=command), embed=None,
                        view=None)
                await interaction.followup.send(embed=embed, ephemeral=True)
            else:
                await interaction.response.send_message(embed=embed, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not report an error of /%s: %s", command, exc)


def _locale(interaction: discord.Interaction) -> str:
    return locale_name(interaction.locale)


def _matching(names: list[str], current: str) -> list[Choice[str]]:
    wanted = (current or "").lower()
    # Discord refuses a whole answer with a choice over 100 characters: such names are left out.
    return [Choice(name=name, value=name) for name in names
            if wanted in name.lower() and len(name) <= 100][:25]


async def setup(bot: commands.Bot) -> None:
    """discord.py's extension entry point: ``await bot.load_extension("gitrelease_discord")``."""
    from gitrelease_discord.i18n import FileTranslator

    if bot.tree.translator is None:
        await bot.tree.set_translator(FileTranslator())
    await bot.add_cog(UpdateManager(bot))
