"""`gitrelease bot`: a minimal bot that runs the UpdateManager extension and nothing else.

The token comes from ``DISCORD_TOKEN``, else the ``DISCORD_TOKEN`` line of the deployment's
``.env``; it is never printed. With restart_method = exit, the process exits with status 75
when an update asks for a restart, for its supervisor to start it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import discord
from discord.ext import commands

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.text import env_bindings

__all__ = ["discord_token", "run_bot"]


class MissingToken(GitReleaseError):
    code = "missing_token"
    exit_code = 78  # EX_CONFIG
    default_hint = "export DISCORD_TOKEN=... or add a DISCORD_TOKEN=... line to .env"


def discord_token(root: Path) -> str:
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        try:
            text = (root / ".env").read_text()
        except FileNotFoundError:
            text = ""
        # As python-dotenv reads it: the last DISCORD_TOKEN line, quotes and escapes decoded.
        token = next((read for key, _written, read in reversed(env_bindings(text))
                      if key == "DISCORD_TOKEN"), "").strip()
    if not token:
        raise MissingToken(f"no Discord token: DISCORD_TOKEN is not set and {root / '.env'} "
                           "has no DISCORD_TOKEN line")
    return token


def run_bot(root: Path, *, sync: bool = False, guild: int | None = None) -> int:
    """Run until the bot is closed; the exit status its supervisor should see."""
    token = discord_token(root)
    os.environ["GITRELEASE_ROOT"] = str(root)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    bot = commands.Bot(command_prefix=commands.when_mentioned,
                       intents=discord.Intents.default())

    loaded: list[commands.Cog] = []

    async def setup_hook() -> None:
        await bot.load_extension("gitrelease_discord")
        loaded.extend(filter(None, [bot.get_cog("UpdateManager")]))
        if sync:
            target = discord.Object(guild) if guild is not None else None
            if target is not None:
                bot.tree.copy_global_to(guild=target)
            await bot.tree.sync(guild=target)

    bot.setup_hook = setup_hook  # type: ignore[method-assign]

    async def main() -> int:
        async with bot:
            try:
                await bot.start(token)
            except discord.LoginFailure:
                raise GitReleaseError("Discord refused the token",
                                      hint="check DISCORD_TOKEN (Developer Portal → Bot)") from None
        return getattr(loaded[0], "exit_code", 0) if loaded else 0

    return asyncio.run(main())
