"""The update commands: /update_check, /update_install, /update_status, /update_rollback and
/update_schedule, the release the bot runs and when it changes.

Each one parses and checks its options, checks the permission, defers, calls the manager and
renders a card; what the manager raises is answered by the cog's error handler.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from gitrelease.core.errors import ConfirmationRequired, TargetChanged
from gitrelease_discord import cards, state_cards
from gitrelease_discord.checks import allow, may
from gitrelease_discord.confirm import ask, confirm_install, unconfirmed
from gitrelease_discord.embeds import COLOURS
from gitrelease_discord.i18n import describe, locale_of, text
from gitrelease_discord.lifecycle import CogLifecycle
from gitrelease_discord.options import (
    SCHEDULE_TYPES,
    TIME_RANGES,
    UPDATE_TYPES,
    Choice,
    check_choice,
    check_flags,
    check_text,
    choices,
    matching,
    params,
)
from gitrelease_discord.progress import ProgressMessage

__all__ = ["UpdateCommands"]


class UpdateCommands(CogLifecycle):
    """The update commands of the `UpdateManager` cog (a part of it, never loaded alone)."""

    @app_commands.command(name="update_check", description=describe(
        "commands.update_check.description"))
    @app_commands.describe(**params("update_check", "check_type", "show_details",
                                    "include_security"))
    @app_commands.choices(check_type=choices("update_types"))
    async def update_check(self, interaction: discord.Interaction, check_type: str = "all",
                           show_details: bool = False, include_security: bool = True) -> None:
        await allow(self.bot, interaction, "admin")
        check_choice("check_type", check_type, UPDATE_TYPES)
        check_flags(show_details=show_details, include_security=include_security)
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            report = await manager.check_for_updates(check_type,
                                                     include_security=include_security)
        await interaction.edit_original_response(embed=cards.check_card(
            report, text("check_title", locale_of(interaction)), locale_of(interaction),
            details=show_details))

    @app_commands.command(name="update_install", description=describe(
        "commands.update_install.description"))
    @app_commands.describe(**params("update_install", "update_type", "backup_before",
                                    "restart_required", "force_update", "backup_name"))
    @app_commands.choices(update_type=choices("update_types"))
    async def update_install(self, interaction: discord.Interaction, update_type: str,
                             backup_before: bool = True, restart_required: bool = True,
                             force_update: bool = False, backup_name: str | None = None) -> None:
        await allow(self.bot, interaction, "owner")
        check_choice("update_type", update_type, UPDATE_TYPES)
        check_flags(backup_before=backup_before, restart_required=restart_required,
                    force_update=force_update)
        check_text("backup_name", backup_name, 64)
        locale = locale_of(interaction)
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
                    # The dry run lists what the install would ask, beside the plan.
                    reasons: list[str] = list(getattr(plan, "needs_confirmation", []))
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
                    if not await confirm_install(interaction, plan, force_update, reasons,
                                                 timeout=self.confirm_timeout):
                        return
                    # Exactly the release that was shown, even if a newer one came meanwhile,
                    # and past only the reasons that were shown: the engine stops, under its
                    # lock, at any other (local commits made while the buttons were up).
                    options.update(to_version=plan.target_version, force=False,
                                   accept=reasons)
            self._notify_soon("update_start_notifications", text(
                "notify_start", kind=update_type, user=interaction.user.id))
            progress = ProgressMessage(interaction, text("install_title", locale,
                                                         kind=update_type), self._notify_soon)
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

    @app_commands.command(name="update_status", description=describe(
        "commands.update_status.description"))
    @app_commands.describe(**params("update_status", "show_history", "show_metrics",
                                    "time_range"))
    @app_commands.choices(time_range=choices("time_ranges"))
    async def update_status(self, interaction: discord.Interaction, show_history: bool = False,
                            show_metrics: bool = True, time_range: str = "7d") -> None:
        await allow(self.bot, interaction, "admin")
        check_flags(show_history=show_history, show_metrics=show_metrics)
        check_choice("time_range", time_range, TIME_RANGES)
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            info = await manager.get_update_status(time_range, show_history=show_history,
                                                   show_metrics=show_metrics)
        await interaction.edit_original_response(embed=state_cards.status_card(
            info, text("status_title", locale_of(interaction)), locale_of(interaction)))

    @app_commands.command(name="update_rollback", description=describe(
        "commands.update_rollback.description"))
    @app_commands.describe(**params("update_rollback", "target_version", "confirm",
                                    "create_backup", "restore_config"))
    async def update_rollback(self, interaction: discord.Interaction, target_version: str,
                              confirm: bool, create_backup: bool = True,
                              restore_config: bool = True) -> None:
        await allow(self.bot, interaction, "owner")
        check_text("target_version", target_version, 100)
        check_flags(confirm=confirm, create_backup=create_backup, restore_config=restore_config)
        if await unconfirmed(interaction, confirm):
            return
        await interaction.response.defer(thinking=True)
        locale = locale_of(interaction)
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
            if not await ask(interaction, embed, [exc.message], "rollback",
                             timeout=self.confirm_timeout):
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

    @update_rollback.autocomplete("target_version")
    async def _target_versions(self, interaction: discord.Interaction,
                               current: str) -> list[Choice[str]]:
        if not await may(self.bot, interaction, "owner"):
            return []
        async with self._open() as manager:
            names = ["previous", "last_backup", *await manager.release_tags()]
        return matching(names, current)

    @app_commands.command(name="update_schedule", description=describe(
        "commands.update_schedule.description"))
    @app_commands.describe(**params("update_schedule", "schedule_type", "update_time",
                                    "update_days", "update_types", "enabled"))
    @app_commands.choices(schedule_type=choices("schedule_types"))
    async def update_schedule(self, interaction: discord.Interaction, schedule_type: str,
                              update_types: str, update_time: str | None = None,
                              update_days: str | None = None, enabled: bool = True) -> None:
        await allow(self.bot, interaction, "owner")
        check_choice("schedule_type", schedule_type, SCHEDULE_TYPES)
        for field, value in (("update_types", update_types), ("update_time", update_time),
                             ("update_days", update_days)):
            check_text(field, value, 100)
        check_flags(enabled=enabled)
        await interaction.response.defer(thinking=True)
        async with self._open() as manager:
            schedule = await manager.add_schedule(
                schedule_type, update_time, update_days, update_types, enabled,
                actor=f"discord:{interaction.user.id}")
        self._start_schedules()
        locale = locale_of(interaction)
        await interaction.edit_original_response(embed=state_cards.schedule_card(
            schedule, text("schedule_title", locale, id=schedule.id), locale))
