"""The settings command: /update_settings, showing, changing or resetting one setting of the
deployment.

The category, name and value are checked before the reply is deferred, so a typo is one private
answer. Values of the ``*_command`` settings may carry tokens: the reply only says whether they
are set. A change under "schedule" wakes the schedule loop, which reads the settings when it
wakes.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from gitrelease.core.settings import is_secret
from gitrelease.core.settings_edit import parse_value, spec_for
from gitrelease_discord.checks import allow, may
from gitrelease_discord.i18n import describe, locale_of
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
from gitrelease_discord.settings_card import settings_card, shown_value

__all__ = ["SettingsCommand"]


class SettingsCommand(CogLifecycle):
    """The settings command of the `UpdateManager` cog (a part of it, never loaded alone)."""

    @app_commands.command(name="update_settings", description=describe(
        "commands.update_settings.description"))
    @app_commands.describe(**params("update_settings", "setting_category", "setting_name",
                                    "setting_value", "reset_to_default"))
    @app_commands.choices(setting_category=choices("categories"))
    async def update_settings(
        self, interaction: discord.Interaction, setting_category: str,
        setting_name: app_commands.Range[str, 1, 100],
        setting_value: app_commands.Range[str, 1, 1000] | None = None,
        reset_to_default: bool = False,
    ) -> None:
        await allow(self.bot, interaction, "owner")
        check_choice("setting_category", setting_category, CATEGORIES)
        check_text("setting_name", setting_name, 100)
        check_text("setting_value", setting_value, 1000)
        check_flags(reset_to_default=reset_to_default)
        spec = spec_for(setting_category, setting_name)  # the nearest names, privately
        if setting_value is not None and not reset_to_default:
            parse_value(spec, setting_value)  # what is allowed, privately; nothing written
        locale = locale_of(interaction)
        await interaction.response.defer(thinking=True, ephemeral=True)
        change = None
        async with self._open() as manager:
            if setting_value is not None or reset_to_default:
                change = (await manager.change_setting(
                    setting_category, setting_name,
                    None if reset_to_default else setting_value,
                    actor=f"discord:{interaction.user.id}")).to_dict()
            view = manager.settings_view(setting_category)
            root = manager.root
        if change is not None and setting_category == "schedule":
            self._wake_schedules.set()  # the loop reads settings when it wakes
        await interaction.edit_original_response(embed=settings_card(
            view, setting_name, locale, change=change, reset=reset_to_default, root=root))

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

    @update_settings.autocomplete("setting_value")
    async def _setting_values(self, interaction: discord.Interaction,
                              current: str) -> list[Choice[str]]:
        """Values of the setting's type: true/false, its choices, its current value, default
        and bounds (never a command's value)."""
        from gitrelease.core.settings import schema

        if not await may(self.bot, interaction, "owner"):
            return []
        name = getattr(interaction.namespace, "setting_name", None)
        spec = schema().get(name or "")
        if spec is None:
            return []
        async with self._open() as manager:
            value = manager.settings.get(spec.name)
        return _value_choices(spec, value, current or "", locale_of(interaction))


def _value_choices(spec: Any, value: Any, typed: str, locale: str) -> list[Choice[str]]:
    if spec.type is bool:
        offered = ["true", "false"]
    elif spec.choices:
        offered = list(spec.choices)
    elif is_secret(spec.name):
        return []
    else:
        offered = [shown_value(spec.name, v, locale) for v in (value, spec.default)
                   if v not in (None, "", [])]
        offered += [str(b) for b in (spec.minimum, spec.maximum) if b is not None]
    unique = list(dict.fromkeys(o for o in offered if typed.lower() in o.lower()))
    return [Choice(name=o[:100], value=o[:100]) for o in unique[:25]]
