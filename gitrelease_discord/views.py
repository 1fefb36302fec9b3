"""Buttons: Confirm / Cancel before a risky install, and pages of a long list."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

import discord

from gitrelease_discord.i18n import text

__all__ = ["ConfirmView", "PagedView"]


class _OwnedView(discord.ui.View):
    """A view only the member who invoked the command may press."""

    def __init__(self, owner_id: int, locale: str, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.locale = locale

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            text("not_yours", self.locale, user=f"<@{self.owner_id}>"), ephemeral=True)
        return False


class ConfirmView(_OwnedView):
    """Confirm or Cancel, once; after `timeout` seconds the answer is "no". Pressing one
    takes both off the message."""

    def __init__(self, owner_id: int, locale: str, *, timeout: float = 60.0) -> None:
        super().__init__(owner_id, locale, timeout=timeout)
        self.confirmed: bool | None = None
        self.confirm.label = text("confirm", locale)
        self.cancel.label = text("cancel", locale)

    async def _answer(self, interaction: discord.Interaction, answer: bool) -> None:
        # The buttons go as soon as one is pressed: left on the message (even disabled)
        # while the work runs, they would read as a question still open.
        self.confirmed = answer
        try:
            await interaction.response.edit_message(view=None)
        finally:  # the answer stands even if Discord did not take the edit
            self.stop()

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger,
                       custom_id="gitrelease:confirm")
    async def confirm(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._answer(interaction, True)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary,
                       custom_id="gitrelease:cancel")
    async def cancel(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._answer(interaction, False)


class PagedView(_OwnedView):
    """Previous / Next through pages made by `page(index)`; when it times out, the buttons
    of `source`'s response are shown disabled (they would no longer answer)."""

    def __init__(self, owner_id: int, locale: str, pages: int,
                 page: Callable[[int], discord.Embed], *,
                 source: discord.Interaction | None = None, timeout: float = 180.0) -> None:
        super().__init__(owner_id, locale, timeout=timeout)
        self.pages, self.page, self.index, self.source = pages, page, 0, source
        self.previous.label = text("previous", locale)
        self.next.label = text("next", locale)
        self._sync()

    def _sync(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index >= self.pages - 1

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.source is not None:
            with suppress(discord.HTTPException):
                await self.source.edit_original_response(view=self)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.index = min(max(0, self.index + step), self.pages - 1)
        self._sync()
        await interaction.response.edit_message(embed=self.page(self.index), view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary,
                       custom_id="gitrelease:page:previous")
    async def previous(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary,
                       custom_id="gitrelease:page:next")
    async def next(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._turn(interaction, 1)
