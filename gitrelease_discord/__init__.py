"""gitrelease's Discord front-end: the `UpdateManager` cog and its nine slash commands.

An extension: ``await bot.load_extension("gitrelease_discord")``. Installed under this name
so that it can never clash with a bot's own ``cogs`` package; this repository's
``cogs/update_manager.py`` loads the same code for running the repository itself as the bot.
"""

from gitrelease_discord.update_manager import UpdateManager, setup

__all__ = ["UpdateManager", "setup"]
