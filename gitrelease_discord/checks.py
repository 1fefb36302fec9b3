"""Who may run a command: the permission check every command makes before it does anything.

The commands are registered for servers with Administrator as their default permission
(`update_manager`), which only decides who is offered them: a server's admins may widen it.
So the check runs inside each command as well, and a server cannot widen that: owner for
install, rollback, schedule, restore and settings; owner or a member with Administrator for
the rest (owner only in direct messages, should a client send one).
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from gitrelease_discord.i18n import locale_of, text

__all__ = ["Level", "NotAllowed", "allow", "may"]

Level = Literal["owner", "admin"]


class NotAllowed(app_commands.CheckFailure):
    """The invoking user may not run this command; `message` says what is needed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def allow(bot: commands.Bot, interaction: discord.Interaction, level: Level) -> None:
    """Return if the invoking user may run the command at `level`, else raise `NotAllowed`."""
    command = interaction.command.name if interaction.command else "?"
    if await bot.is_owner(interaction.user):
        return
    if level == "owner":
        raise NotAllowed(text("not_allowed_owner", locale_of(interaction), command=command))
    if interaction.guild_id is None:
        raise NotAllowed(text("not_allowed_dm", locale_of(interaction), command=command))
    if not interaction.permissions.administrator:
        raise NotAllowed(text("not_allowed_admin", locale_of(interaction), command=command))


async def may(bot: commands.Bot, interaction: discord.Interaction, level: Level) -> bool:
    """The permission check, for autocomplete: offers nothing to whom may not run it."""
    try:
        await allow(bot, interaction, level)
    except NotAllowed:
        return False
    return True
