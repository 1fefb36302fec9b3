"""The Discord suite's harness: a real deployment (the `world` fixture) with the real extension
loaded into a bot logged in to the local stand-in of Discord, and readers of what it sent.

    async def test_something(h: Harness) -> None:
        result = await h.owner("update_check", {"check_type": "bot"})
        assert "### Bot Update" in body(result)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from discord.ext import commands

from gitrelease_discord.update_manager import UpdateManager
from tests.conftest import World
from tests.discord_stub import FakeDiscord, InteractionResult, slash, start_bot, stop_bot

__all__ = ["ADMIN", "ADMIN_ID", "MEMBER_ID", "Harness", "body", "h", "harness", "refusal",
           "title"]

ADMIN = 0x8
MEMBER_ID = 4242
ADMIN_ID = 4343


class Harness:
    def __init__(self, fake: FakeDiscord, bot: commands.Bot, world: World) -> None:
        self.fake, self.bot, self.world = fake, bot, world

    @property
    def cog(self) -> UpdateManager:
        cog = self.bot.get_cog("UpdateManager")
        assert cog is not None  # reloaded per test: the class object is not this module's
        return cog  # type: ignore[return-value]

    async def owner(self, name: str, options: dict[str, Any] | None = None,
                    **kwargs: Any) -> InteractionResult:
        return await slash(self.bot, name, options, user_id=self.fake.owner_id,
                           guild_id=self.fake.guild_id, **kwargs)

    async def admin(self, name: str, options: dict[str, Any] | None = None) -> InteractionResult:
        return await slash(self.bot, name, options, user_id=ADMIN_ID,
                           guild_id=self.fake.guild_id, permissions=ADMIN)

    async def member(self, name: str, options: dict[str, Any] | None = None,
                     *, guild: bool = True) -> InteractionResult:
        return await slash(self.bot, name, options, user_id=MEMBER_ID,
                           guild_id=self.fake.guild_id if guild else None)


@asynccontextmanager
async def harness(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The extension loaded into a bot logged in to a fresh stand-in, serving `world`."""
    monkeypatch.setenv("GITRELEASE_ROOT", str(world.deploy))
    async with FakeDiscord() as fake:
        fake.background.update({"_schedule_loop", "gitrelease-schedule-sleep"})
        bot = await start_bot(fake, setup=lambda b: b.load_extension("gitrelease_discord"))
        try:
            yield Harness(fake, bot, world)
        finally:
            await stop_bot(bot)


@pytest.fixture
async def h(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    async with harness(world, monkeypatch) as ready:
        yield ready


def title(result: InteractionResult) -> str:
    assert result.final is not None, result
    embeds = result.final.get("embeds") or []
    return embeds[0]["title"] if embeds else result.final.get("content", "")


def refusal(result: InteractionResult) -> str:
    """The private answer to a refused command: the reply itself, or a private follow-up."""
    if result.ephemeral:
        return body(result)
    private = [m for m in result.messages if int(m.get("flags") or 0) & 64]
    assert private, f"no private answer: {result.messages}"
    embeds = private[-1].get("embeds") or []
    return "\n".join([private[-1].get("content") or ""]
                     + [e.get("description") or "" for e in embeds])


def body(result: InteractionResult) -> str:
    assert result.final is not None, result
    embeds = result.final.get("embeds") or []
    parts = [result.final.get("content") or ""]
    for embed in embeds:
        parts.append(embed.get("description") or "")
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)


def _described(result: InteractionResult) -> str:
    text_ = body(result)
    assert "cards." not in text_ and "steps." not in text_, text_  # every string is in the file
    return text_


