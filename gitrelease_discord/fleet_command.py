"""/update_fleet: the fleet that shares this bot's index, and rollouts across it (owner only).

`status` shows every instance and the latest rollout; `rollout` starts one (canary first, in
waves, each gated on health) and coordinates it from this bot, editing the reply as each
instance moves; `pause`, `promote` and `abort` act on the active one. Without a shared index
(index_url) the command says so privately, before anything is deferred.
"""

from __future__ import annotations

import asyncio
from typing import Any

import discord
from discord import app_commands

from gitrelease.core.errors import InvalidInput
from gitrelease.core.fleet import RolloutOptions
from gitrelease_discord.card_text import card, line
from gitrelease_discord.checks import allow
from gitrelease_discord.i18n import describe, locale_of, text
from gitrelease_discord.lifecycle import CogLifecycle
from gitrelease_discord.options import (
    Choice,
    check_choice,
    check_flags,
    check_text,
    choices,
    params,
)
from gitrelease_discord.state_cards import fleet_lines

__all__ = ["FleetCommand"]

ACTIONS = ("status", "rollout", "pause", "promote", "abort")  # as options.GROUPS has them
_SHOWN = 25  # instances and parts on one card


def _part_lines(rollout: Any, locale: str) -> list[str]:
    lines = [line(locale, "rollout_heading", target=rollout.target,
                  status=line(locale, f"rollout_{rollout.status}"))]
    if rollout.reason:
        lines.append(line(locale, "rollout_reason", reason=rollout.reason))
    for part in rollout.assignments[:_SHOWN]:
        lines.append(line(locale, "rollout_part", wave=part.wave, id=part.instance_id,
                          state=line(locale, f"part_{part.state}"), baseline=part.baseline))
    return lines


def _fleet_card(instances: list[Any], stale: float, latest: Any, locale: str) -> discord.Embed:
    lines = fleet_lines(instances, stale, locale)
    if latest is not None:
        lines += _part_lines(latest, locale)
    return card(text("fleet_title", locale), lines, "info", locale)


class FleetCommand(CogLifecycle):
    """The fleet command of the `UpdateManager` cog (a part of it, never loaded alone)."""

    @app_commands.command(name="update_fleet", description=describe(
        "commands.update_fleet.description"))
    @app_commands.describe(**params("update_fleet", "action", "target_version", "canary",
                                    "canary_group", "max_parallel", "min_healthy_seconds",
                                    "auto_revert", "pause_after_canary", "why"))
    @app_commands.choices(action=choices("fleet_actions"))
    async def update_fleet(
        self, interaction: discord.Interaction, action: str,
        target_version: app_commands.Range[str, 1, 100] | None = None,
        canary: app_commands.Range[int, 1, 100] = 1,
        canary_group: app_commands.Range[str, 1, 50] | None = None,
        max_parallel: app_commands.Range[int, 1, 100] = 1,
        min_healthy_seconds: app_commands.Range[int, 0, 86400] = 30,
        auto_revert: bool = False, pause_after_canary: bool = False,
        why: app_commands.Range[str, 1, 500] | None = None,
    ) -> None:
        await allow(self.bot, interaction, "owner")
        check_choice("action", action, ACTIONS)
        for field, value, limit in (("target_version", target_version, 100),
                                    ("canary_group", canary_group, 50), ("why", why, 500)):
            check_text(field, value, limit)
        check_flags(auto_revert=auto_revert, pause_after_canary=pause_after_canary)
        for field, number, low, high in (("canary", canary, 1, 100),
                                         ("max_parallel", max_parallel, 1, 100),
                                         ("min_healthy_seconds", min_healthy_seconds, 0, 86400)):
            if isinstance(number, bool) or not isinstance(number, int) or \
                    not low <= number <= high:
                raise InvalidInput(field, number, f"an integer from {low} to {high}")
        if action == "rollout" and target_version is None:
            raise InvalidInput("target_version", None, "the release to roll out")
        locale, who = locale_of(interaction), f"discord:{interaction.user.id}"
        async with self._open() as manager:
            if not manager.shared_index:  # said privately, before anything is public
                await interaction.response.send_message(text("fleet_none", locale),
                                                        ephemeral=True)
                return
            await interaction.response.defer(thinking=True)
            if action == "status":
                instances, stale = await manager.fleet_status()
                latest = await manager.rollouts(1)
                await interaction.edit_original_response(embed=_fleet_card(
                    instances, stale, latest[0][0] if latest else None, locale))
                return
            if action in ("pause", "promote"):
                rollout = await manager.pause_rollout(
                    actor=who, why=why or f"{action} from Discord", promote=action == "promote")
            elif action == "abort":
                rollout = await manager.abort_rollout(actor=who, why=why or "aborted from "
                                                                            "Discord")
            else:
                options = RolloutOptions(
                    canary=canary, canary_group=canary_group, max_parallel=max_parallel,
                    min_healthy_seconds=float(min_healthy_seconds), auto_revert=auto_revert,
                    pause_after_canary=pause_after_canary)
                started = await manager.start_rollout(str(target_version), options, actor=who)
                edits: list[asyncio.Task[Any]] = []  # the reply, edited as instances move
                rollout = await manager.drive_rollout(
                    started.id, actor=who, on_change=lambda r: edits.append(self._spawn(
                        interaction.edit_original_response(embed=self._rollout_card(
                            r, locale)))))
                await asyncio.gather(*edits, return_exceptions=True)  # none lands after
                self._notify_soon("update_completion_notifications", text(
                    "notify_rollout", target=rollout.target, status=rollout.status,
                    user=interaction.user.id))
        await interaction.edit_original_response(embed=self._rollout_card(rollout, locale))

    @staticmethod
    def _rollout_card(rollout: Any, locale: str) -> discord.Embed:
        colour = {"succeeded": "ok", "failed": "error", "reverted": "warn",
                  "aborted": "warn", "paused": "warn"}.get(rollout.status, "info")
        return card(text("rollout_title", locale, target=rollout.target),
                    _part_lines(rollout, locale), colour, locale)

    @update_fleet.autocomplete("target_version")
    async def _fleet_versions(self, interaction: discord.Interaction,
                              current: str) -> list[Choice[str]]:
        return await self._release_suggestions(interaction, current)
