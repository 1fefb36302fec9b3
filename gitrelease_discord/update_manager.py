"""The `UpdateManager` cog: the nine slash commands of the specification and /update_fleet,
put together from their groups.

Load it into a bot with ``await bot.load_extension("gitrelease_discord")``. It finds the
deployment through ``GITRELEASE_ROOT``, else the git top-level of the working directory. Each
command checks every value again (Discord does not enforce choices or ranges for a bot) and runs
the permission check itself: owner for install, rollback, schedule, restore and settings; owner
or a member with Administrator for the rest. The commands are registered for servers only, with
Administrator as their default member permission, so other members are not offered them.

Where things are: the commands in `update_commands`, `backup_commands` and
`settings_command`, the fleet's in `fleet_command`; load, background tasks and unload in
`lifecycle`; who may run what in `checks`; the options' choices and checks in `options`; the
error replies in `errors`; announcements in `notify`; progress messages in `progress`;
Confirm / Cancel in `confirm`; the cards in `cards`, `state_cards` and `outcome_cards`;
suggestions as you type in `suggestions`.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from gitrelease_discord.backup_commands import BackupCommands
from gitrelease_discord.checks import NotAllowed
from gitrelease_discord.errors import report_error
from gitrelease_discord.fleet_command import FleetCommand
from gitrelease_discord.settings_command import SettingsCommand
from gitrelease_discord.update_commands import UpdateCommands

__all__ = ["NotAllowed", "UpdateManager", "setup"]


# discord.py gathers the commands from the bases last to first, so this order registers them
# as users know them: the update commands, then the backup commands, then /update_settings,
# then /update_fleet.
class UpdateManager(FleetCommand, SettingsCommand, BackupCommands, UpdateCommands):
    """Release management for the bot that loads it."""

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        await report_error(interaction, error, self._notify_soon)


def _for_server_admins(cog: type[commands.Cog]) -> None:
    """Register every command for servers only, shown by default to members with
    Administrator: a server's admins can widen that in Discord's integration settings, and
    each command still checks who runs it (the owner-only ones check ownership)."""
    for command in cog.__cog_app_commands__:
        command.guild_only = True
        command.allowed_contexts = app_commands.AppCommandContext(guild=True, dm_channel=False,
                                                                  private_channel=False)
        command.default_permissions = discord.Permissions(administrator=True)


_for_server_admins(UpdateManager)


async def setup(bot: commands.Bot) -> None:
    """discord.py's extension entry point: ``await bot.load_extension("gitrelease_discord")``."""
    from gitrelease_discord.i18n import FileTranslator

    if bot.tree.translator is None:
        await bot.tree.set_translator(FileTranslator())
    await bot.add_cog(UpdateManager(bot))
