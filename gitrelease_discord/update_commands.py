"""The update commands: /update_check, /update_install, /update_status, /update_rollback and
/update_schedule, the release the bot runs and when it changes.

Each one checks its options and the permission before it defers (a typo is one private reply,
never a public "failed"), calls the manager and renders a card; what the manager raises is
answered by the cog's error handler, except a failed install or rollback, whose card says
what state it left (`outcome_cards`).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from gitrelease.core.errors import ConfirmationRequired, GitReleaseError, TargetChanged
from gitrelease_discord import cards, outcome_cards, state_cards, suggestions
from gitrelease_discord.card_text import kind_name
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
    params,
)
from gitrelease_discord.progress import ProgressMessage

__all__ = ["UpdateCommands"]

Text64 = app_commands.Range[str, 1, 64]
Text100 = app_commands.Range[str, 1, 100]


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
            report, locale_of(interaction), details=show_details))

    @app_commands.command(name="update_install", description=describe(
        "commands.update_install.description"))
    @app_commands.describe(**params("update_install", "update_type", "backup_before",
                                    "restart_required", "force_update", "backup_name"))
    @app_commands.choices(update_type=choices("update_types"))
    async def update_install(self, interaction: discord.Interaction, update_type: str,
                             backup_before: bool = True, restart_required: bool = True,
                             force_update: bool = False,
                             backup_name: Text64 | None = None) -> None:
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
            plan = await self._plan(interaction, manager, update_type, options, force_update)
            if plan is None:
                return
            kind = kind_name(update_type, "update_types", locale)
            self._notify_soon("update_start_notifications", text(
                "notify_start", kind=kind, user=interaction.user.id))
            shows_plan = update_type in ("all", "packages", "dependencies", "config")
            progress = ProgressMessage(
                interaction, text("install_title", locale, kind=kind), self._notify_soon,
                intro="\n".join(cards.plan_lines(plan, locale)) if shows_plan else None)
            try:
                session = await manager.install_updates(update_type, options,
                                                        progress=progress)
            except ConfirmationRequired as exc:
                if "accept" not in options:
                    raise
                raise TargetChanged("since the release was shown, " + "; ".join(exc.reasons)
                                    + ": nothing was installed") from None
            except GitReleaseError as exc:
                if not exc.details.get("session") or exc.details.get("refused"):
                    raise  # refused before anything was done: the error handler says why
                await progress.close()
                await self._failed(interaction, manager, exc)
                return
            finally:
                await progress.close()
        self._notify_soon("update_completion_notifications", text(
            "notify_done", status=session.status.value, version=session.target_version))
        await interaction.edit_original_response(view=None, embed=cards.session_card(
            session, locale))

    async def _plan(self, interaction: discord.Interaction, manager: Any, update_type: str,
                    options: dict[str, Any], forced: bool) -> Any:
        """The dry run, shown and confirmed where the install would need it: the plan, or
        None when the command is answered already (nothing to do, cancelled)."""
        locale = locale_of(interaction)
        try:
            plan = await manager.install_updates(
                update_type, {**options, "force": False, "dry_run": True})
            # The dry run lists what the install would ask, beside the plan.
            reasons: list[str] = list(plan.needs_confirmation)
        except ConfirmationRequired as exc:
            reasons = list(exc.reasons)
            plan = await manager.install_updates(
                update_type, {**options, "force": True, "dry_run": True})
        skipped = plan.skipped
        # Each skipped release is asked about below, not also warned of.
        plan.warnings = [w for w in plan.warnings
                         if not any(w.startswith(f"{s['tag']} is skipped:") for s in skipped)]
        info = plan.update
        if info is None and update_type == "bot":
            key = "install_nothing_skipped" if skipped else "install_up_to_date"
            await interaction.edit_original_response(content=text(
                key, locale, version=plan.current_version,
                tags=", ".join(s["tag"] for s in skipped),
                id=skipped[-1].get("session", "-") if skipped else "-"))
            return None
        # Asked here, not by the engine: a release skipped because it failed before, and
        # packages pip would move backwards.
        ours = [text("install_reason_skipped", locale, tag=s["tag"], reason=s["reason"],
                     target=plan.target_tag or plan.current_version) for s in skipped]
        downgrades = [c for c in plan.package_changes if c.get("downgrade")]
        if downgrades:
            ours.append(text("install_reason_downgrade", locale, packages=", ".join(
                f"{c['name']} {c.get('from')} → {c.get('to')}" for c in downgrades)))
        breaking = info is not None and info.breaking_changes
        if breaking or forced or reasons or ours:
            if not await confirm_install(interaction, plan, forced, reasons + ours,
                                         timeout=self.confirm_timeout):
                return None
            # Past only the reasons that were shown: the engine stops, under its lock, at any
            # other (local commits made while the buttons were up).
            options.update(force=False, accept=reasons)
        if plan.target_tag is not None and update_type in ("bot", "all"):
            # Exactly the release that was shown, even if a newer one came meanwhile.
            options["to_version"] = plan.target_version
        return plan

    async def _failed(self, interaction: discord.Interaction, manager: Any,
                      error: GitReleaseError, *, rollback: bool = False) -> None:
        """Answer a failed install or rollback with the state it left, and announce it."""
        locale = locale_of(interaction)
        session, steps = await manager.journal(error.details["session"])
        await interaction.edit_original_response(view=None, content=None, embed=(
            outcome_cards.failed_card(error, session, steps, locale, rollback=rollback)))
        state = outcome_cards.undo_state(error)
        self._notify_soon("error_notifications", text(
            "update_failed_notify", kind=kind_name(session.update_type, "update_types", "en_US"),
            current=session.current_version, target=session.target_version,
            user=interaction.user.id, id=session.id,
            state=text(f"cards.failed_title_{state}").removeprefix("❌ ")))

    @app_commands.command(name="update_status", description=describe(
        "commands.update_status.description"))
    @app_commands.describe(**params("update_status", "show_history", "show_metrics",
                                    "time_range", "update_id"))
    @app_commands.choices(time_range=choices("time_ranges"))
    async def update_status(self, interaction: discord.Interaction, show_history: bool = False,
                            show_metrics: bool = True, time_range: str = "7d",
                            update_id: Text64 | None = None) -> None:
        await allow(self.bot, interaction, "owner" if update_id is not None else "admin")
        check_flags(show_history=show_history, show_metrics=show_metrics)
        check_choice("time_range", time_range, TIME_RANGES)
        check_text("update_id", update_id, 64)
        locale = locale_of(interaction)
        if update_id is not None:  # one update and its log: to the owner alone
            await interaction.response.defer(thinking=True, ephemeral=True)
            async with self._open() as manager:
                session, tail = await manager.session_log(update_id)
            await interaction.edit_original_response(embed=outcome_cards.log_card(
                session, tail, locale))
            return
        await interaction.response.defer(thinking=True)
        fleet = None
        async with self._open() as manager:
            info = await manager.get_update_status(time_range, show_history=show_history,
                                                   show_metrics=show_metrics)
            if manager.shared_index and await may(self.bot, interaction, "owner"):
                fleet = await manager.fleet_status()  # the other hosts: the owner's alone
        await interaction.edit_original_response(embed=state_cards.status_card(
            info, locale, running_commit=self.running_commit,
            running_since=self.running_since, fleet=fleet))

    @update_status.autocomplete("update_id")
    async def _update_ids(self, interaction: discord.Interaction,
                          current: str) -> list[Choice[str]]:
        if not await may(self.bot, interaction, "owner"):
            return []
        async with self._open() as manager:
            info = await manager.get_update_status("30d", show_history=True,
                                                   show_metrics=False)
        locale = locale_of(interaction)
        found = [Choice(name=f"{s.id} · {kind_name(s.update_type, 'update_types', locale)} "
                        f"{s.current_version} → {s.target_version} · {s.status.value}"[:100],
                        value=s.id) for s in info.recent_sessions
                 if (current or "").lower() in s.id.lower()]
        return found[:25]

    @app_commands.command(name="update_rollback", description=describe(
        "commands.update_rollback.description"))
    @app_commands.describe(**params("update_rollback", "target_version", "confirm",
                                    "create_backup", "restore_config"))
    async def update_rollback(self, interaction: discord.Interaction, target_version: Text100,
                              confirm: bool, create_backup: bool = True,
                              restore_config: bool = True) -> None:
        await allow(self.bot, interaction, "owner")
        check_text("target_version", target_version, 100)
        check_flags(confirm=confirm, create_backup=create_backup, restore_config=restore_config)
        if await unconfirmed(interaction, confirm):
            return
        async with self._open() as manager:  # an unknown version is one private answer
            target = await manager.rollback_target(target_version)
        await interaction.response.defer(thinking=True)
        locale = locale_of(interaction)
        # Exactly the commit named in the title: if "previous" means another by the time
        # the lock is held, nothing is rolled back.
        options = {"confirm": True, "create_backup": create_backup,
                   "restore_config": restore_config, "expect_commit": target["commit"],
                   "initiated_by": f"discord:{interaction.user.id}"}
        tag = target["tag"]
        title = text("rollback_title", locale, target=target["version"] + (
            f" ({tag})" if tag and tag != target["version"] else ""))
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
            try:
                session = await self._with_progress(
                    interaction, title, lambda m, progress: m.rollback_to_version(
                        target_version, confirmed, progress=progress))
            except GitReleaseError as failed:
                await self._rollback_failed(interaction, failed)
                return
        except GitReleaseError as exc:
            await self._rollback_failed(interaction, exc)
            return
        self._notify_soon("update_completion_notifications", text(
            "notify_rollback_done", status=session.status.value, version=session.target_version,
            user=interaction.user.id))
        await interaction.edit_original_response(view=None, embed=cards.session_card(
            session, locale, title=text("rollback_done_title", locale,
                                        version=session.target_version,
                                        tag=f" ({session.target_tag})"
                                        if session.target_tag else "")))

    async def _rollback_failed(self, interaction: discord.Interaction,
                               error: GitReleaseError) -> None:
        if not error.details.get("session") or error.details.get("refused"):
            raise error
        async with self._open() as manager:
            await self._failed(interaction, manager, error, rollback=True)

    @update_rollback.autocomplete("target_version")
    async def _target_versions(self, interaction: discord.Interaction,
                               current: str) -> list[Choice[str]]:
        return await self._release_suggestions(interaction, current)

    @app_commands.command(name="update_schedule", description=describe(
        "commands.update_schedule.description"))
    @app_commands.describe(**params("update_schedule", "schedule_type", "update_time",
                                    "update_days", "update_types", "enabled"))
    @app_commands.choices(schedule_type=choices("schedule_types"))
    async def update_schedule(self, interaction: discord.Interaction, schedule_type: str,
                              update_types: Text100, update_time: Text100 | None = None,
                              update_days: Text100 | None = None, enabled: bool = True) -> None:
        await allow(self.bot, interaction, "owner")
        check_choice("schedule_type", schedule_type, SCHEDULE_TYPES)
        for field, value in (("update_types", update_types), ("update_time", update_time),
                             ("update_days", update_days)):
            check_text(field, value, 100)
        check_flags(enabled=enabled)
        async with self._open() as manager:
            # Every value is checked before the reply is deferred: a typo is one private
            # answer (the error handler's), and nothing public.
            await manager.check_schedule(schedule_type, update_time, update_days,
                                         update_types, enabled)
            await interaction.response.defer(thinking=True)
            schedule = await manager.add_schedule(
                schedule_type, update_time, update_days, update_types, enabled,
                actor=f"discord:{interaction.user.id}")
            settings = manager.settings
        self._start_schedules()
        await interaction.edit_original_response(embed=state_cards.schedule_card(
            schedule, settings, locale_of(interaction)))

    @update_schedule.autocomplete("update_types")
    async def _update_types(self, interaction: discord.Interaction,
                            current: str) -> list[Choice[str]]:
        if not await may(self.bot, interaction, "owner"):
            return []
        async with self._open() as manager:
            allowed = list(manager.settings.allowed_update_types)
        return suggestions.update_types(current, allowed, locale_of(interaction))

    @update_schedule.autocomplete("update_days")
    async def _update_days(self, interaction: discord.Interaction,
                           current: str) -> list[Choice[str]]:
        if not await may(self.bot, interaction, "owner"):
            return []
        kind = getattr(interaction.namespace, "schedule_type", None)
        return suggestions.days(current, kind, locale_of(interaction))

    @update_schedule.autocomplete("update_time")
    async def _update_time(self, interaction: discord.Interaction,
                           current: str) -> list[Choice[str]]:
        if not await may(self.bot, interaction, "owner"):
            return []
        async with self._open() as manager:
            settings = manager.settings
        return suggestions.times(current, settings.default_time, settings.timezone,
                                 locale_of(interaction))
