"""The settings command: /update_settings, changing or resetting one setting of the deployment.

Values of the ``*_command`` settings may carry tokens, so the reply only says whether they are
set. A change under "schedule" wakes the schedule loop, which reads the settings when it wakes.
"""

from __future__ import annotations

import discord
from discord import app_commands

from gitrelease_discord.checks import allow, may
from gitrelease_discord.embeds import COLOURS, fit, scrub
from gitrelease_discord.i18n import describe, locale_of, text
from gitrelease_discord.lifecycle import CogLifecycle
from gitrelease_discord.options import (
    CATEGORIES,
    Choice,
    check_choice,
    check_flags,
    check_text,
    choices,
    matching,
    params,
)

__all__ = ["SettingsCommand"]


class SettingsCommand(CogLifecycle):
    """The settings command of the `UpdateManager` cog (a part of it, never loaded alone)."""

    @app_commands.command(name="update_settings", description=describe(
        "commands.update_settings.description"))
    @app_commands.describe(**params("update_settings", "setting_category", "setting_name",
                                    "setting_value", "reset_to_default"))
    @app_commands.choices(setting_category=choices("categories"))
    async def update_settings(self, interaction: discord.Interaction, setting_category: str,
                              setting_name: str, setting_value: str | None = None,
                              reset_to_default: bool = False) -> None:
        await allow(self.bot, interaction, "owner")
        check_choice("setting_category", setting_category, CATEGORIES)
        check_text("setting_name", setting_name, 100)
        check_text("setting_value", setting_value, 1000)
        check_flags(reset_to_default=reset_to_default)
        locale = locale_of(interaction)
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

    @update_settings.autocomplete("setting_name")
    async def _setting_names(self, interaction: discord.Interaction,
                             current: str) -> list[Choice[str]]:
        from gitrelease.core.settings import schema

        if not await may(self.bot, interaction, "owner"):
            return []
        category = getattr(interaction.namespace, "setting_category", None)
        names = [name for name, spec in schema().items()
                 if category in (None, spec.category)]
        return matching(names, current)
