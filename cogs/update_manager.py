"""This repository's cog file: ``await bot.load_extension("cogs.update_manager")``.

The code is the installed `gitrelease_discord` package; a bot that has gitrelease installed
loads ``gitrelease_discord`` directly instead, so its own ``cogs/`` folder is never shadowed.
"""

from gitrelease_discord.update_manager import UpdateManager, setup

__all__ = ["UpdateManager", "setup"]
