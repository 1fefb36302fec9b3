"""Announcements to the notify_channels: what was started, finished or failed, and by whom.

Each kind of event has its own switch in the settings (update_start_notifications,
error_notifications, …); the settings are read at each announcement, not at load, because
/update_settings may have changed them since.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import discord
from discord.ext import commands

from gitrelease.manager import ReleaseManager
from gitrelease_discord.embeds import LIMITS, cut, scrub

__all__ = ["Notify", "announce"]

log = logging.getLogger("gitrelease.discord")
#: Announces a message soon, in the background, if the switch named first is on: what the
#: cog hands to the parts that announce (progress, errors) so they need not know the cog.
Notify = Callable[[str, str], None]


async def announce(bot: commands.Bot, manager: ReleaseManager | None, switch: str,
                   message: str) -> None:
    """Post to the notify_channels, if the event's switch is on; never raises."""
    from gitrelease.core.settings import load_settings

    if manager is None:
        return
    settings = (await asyncio.to_thread(load_settings, manager.root,
                                        manager.data_dir)).settings
    if not getattr(settings, switch, False):
        return
    if switch == "update_completion_notifications" and not settings.notify_on_completion:
        return
    for channel_id in settings.notify_channels:
        try:
            await bot.get_partial_messageable(int(channel_id)).send(
                cut(scrub(message), LIMITS["content"]),
                allowed_mentions=discord.AllowedMentions.none())  # named, not pinged
        except (discord.HTTPException, ValueError) as exc:
            log.warning("notification to channel %s failed: %s", channel_id, exc)
