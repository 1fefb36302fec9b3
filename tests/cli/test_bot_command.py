"""`gitrelease bot` as an operator runs it: a real process, the real discord.py client
logging in, syncing the commands and connecting to a gateway (the local stand-in's), answering
a slash command sent over that gateway, and exiting with 75 when a restart is asked for."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENV_SECRET, World
from tests.discord_stub import FakeDiscord, slash_payload

# The only difference from `gitrelease bot`: where Discord is.
PRELUDE = """
import os, sys, yarl
import discord.gateway, discord.http
discord.http.Route.BASE = os.environ["FAKE_DISCORD_API"]
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])
from gitrelease.cli import main
sys.exit(main(sys.argv[1:]))
"""
TOKEN = ENV_SECRET.split("=", 1)[1].strip()


async def _until(found: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while not (value := found()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


def _env(fake: FakeDiscord, world: World) -> dict[str, str]:
    env = {**os.environ, "FAKE_DISCORD_API": fake.base_url,
           "FAKE_DISCORD_GATEWAY": fake.gateway_url, "GITRELEASE_ROOT": str(world.deploy)}
    env.pop("DISCORD_TOKEN", None)  # from .env, as an operator would keep it
    return env


@pytest.mark.parametrize("to_guild", [False, True], ids=["global", "guild"])
async def test_gitrelease_bot_runs_the_commands_and_exits_75_for_a_restart(
        world: World, tmp_path: Path, to_guild: bool) -> None:
    (world.deploy / "data" / "settings.toml").write_text('restart_method = "exit"\n')
    log = tmp_path / "bot.log"
    async with FakeDiscord() as fake:
        where = ["--guild", str(fake.guild_id)] if to_guild else []
        with log.open("wb") as out:
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-c", PRELUDE, "bot", "--sync", *where, cwd=world.deploy,
                env=_env(fake, world), stdout=out, stderr=out)
        try:
            identify = await _until(lambda: next(
                (f for f in fake.gateway_frames if f.get("op") == 2), None), "IDENTIFY")
            assert identify["d"]["token"] == TOKEN  # read from .env
            synced = {c["name"] for c in fake.commands.get(
                fake.guild_id if to_guild else None, [])}
            assert synced == {"update_check", "update_install", "update_status",
                              "update_rollback", "update_schedule", "backup_create",
                              "backup_list", "backup_restore", "update_settings",
                              "update_fleet"}

            payload = slash_payload(fake, "update_check", user_id=fake.owner_id,
                                    guild_id=fake.guild_id)
            if to_guild:
                payload["data"]["id"] = str(fake.command_id("update_check", fake.guild_id))
                payload["data"]["guild_id"] = str(fake.guild_id)
            fake.register_interaction(payload)
            await fake.dispatch("INTERACTION_CREATE", payload)
            answer = await _until(lambda: (fake.final_for(payload["token"]) or {}).get(
                "embeds"), "the answer to /update_check")
            assert answer[0]["title"] == "🔍 Update Check Results"
            assert "1.10.0" in answer[0]["description"]

            asked = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gitrelease", "restart", cwd=world.deploy,
                env=_env(fake, world))
            assert await asyncio.wait_for(asked.wait(), 60) == 0
            try:
                assert await asyncio.wait_for(bot.wait(), 60) == 75
            except TimeoutError:
                raise AssertionError(f"the bot did not exit: {log.read_text()}") from None
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
    output = log.read_text()
    assert TOKEN not in output, output


async def test_gitrelease_bot_refused_token_is_a_clear_error(
        world: World, tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.override("GET", "/users/@me", status=401,
                      body={"message": "401: Unauthorized", "code": 0}, times=None)
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PRELUDE, "bot", cwd=world.deploy, env=_env(fake, world),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(bot.communicate(), 60)
    text = (out + err).decode()
    assert bot.returncode not in (0, 75), text
    assert "Discord refused the token" in text and "Traceback" not in text, text
    assert TOKEN not in text
