"""Asking before destructive work: the confirm option, and the Confirm / Cancel buttons.

A rollback or restore needs ``confirm: true`` in the command itself; an install of a release
with breaking changes, one the engine would refuse without force, or one that would move a
package backwards, is shown first with Confirm / Cancel, and only the invoking user's Confirm
lets it go ahead. Once it is pressed the buttons are gone, and the progress takes the card's
place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from gitrelease_discord import cards
from gitrelease_discord.embeds import LIMITS, cut, fit, scrub
from gitrelease_discord.i18n import locale_of, text
from gitrelease_discord.views import ConfirmView

if TYPE_CHECKING:
    from gitrelease.core.reports import InstallPlan

__all__ = ["ask", "confirm_install", "unconfirmed"]


async def unconfirmed(interaction: discord.Interaction, confirm: bool) -> bool:
    """True (and answered) when a destructive command came without confirm = true."""
    if confirm is True:
        return False
    await interaction.response.send_message(text("confirm_false", locale_of(interaction)),
                                            ephemeral=True)
    return True


async def confirm_install(interaction: discord.Interaction, plan: InstallPlan, forced: bool,
                          reasons: list[str], *, timeout: float) -> bool:
    """Show the plan (changelog and breaking notes, the packages pip would move, the config
    keys to add, what the backup will hold) with Confirm / Cancel; True if confirmed."""
    locale, info = locale_of(interaction), plan.update
    # The engine's reasons name the breaking changes when require_confirmation is on.
    notes = reasons or ([text("install_confirm_breaking", locale)]
                        if info is not None and info.breaking_changes else [])
    notes += [text("install_confirm_forced", locale)] if forced else []
    embed = cards.confirm_card(plan, locale)
    return await ask(interaction, embed, notes, "install", timeout=timeout)


async def ask(interaction: discord.Interaction, embed: discord.Embed, notes: list[str],
              action: str, *, timeout: float) -> bool:
    """Confirm / Cancel under `embed`; True if the invoking user confirmed in time.
    Otherwise the response says nothing was done (`action`: install or rollback)."""
    locale = locale_of(interaction)
    prompt = text(f"{action}_confirm_prompt", locale, seconds=round(timeout))
    embed.description = cut(scrub("\n".join([*notes, prompt])),
                            LIMITS["description"])
    view = ConfirmView(interaction.user.id, locale, timeout=timeout)
    await interaction.edit_original_response(embed=fit(embed, locale), view=view)
    timed_out = await view.wait()
    if timed_out or not view.confirmed:
        key = f"{action}_expired" if view.confirmed is None else f"{action}_cancelled"
        await interaction.edit_original_response(content=text(key, locale), embed=None,
                                                 view=None)
        return False
    return True
