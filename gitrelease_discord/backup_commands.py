"""The backup commands: /backup_create, /backup_list and /backup_restore, the copies of the
bot's database, configuration and data that an install or rollback can return to.
"""

from __future__ import annotations

import time

import discord
from discord import app_commands

from gitrelease.core.errors import InvalidInput
from gitrelease.core.models import utcnow
from gitrelease.core.text import size
from gitrelease_discord import state_cards
from gitrelease_discord.card_text import kind_name
from gitrelease_discord.checks import allow, may
from gitrelease_discord.confirm import unconfirmed
from gitrelease_discord.embeds import cut
from gitrelease_discord.i18n import describe, locale_of, text
from gitrelease_discord.lifecycle import CogLifecycle
from gitrelease_discord.options import (
    BACKUP_RANGES,
    BACKUP_TYPES,
    RESTORE_TYPES,
    SORTS,
    Choice,
    check_choice,
    check_flags,
    check_text,
    choices,
    params,
)
from gitrelease_discord.views import PagedView

__all__ = ["PAGE_SIZE", "BackupCommands"]

PAGE_SIZE = 10  # backups on one page of /backup_list

Text64 = app_commands.Range[str, 1, 64]
Text100 = app_commands.Range[str, 1, 100]
Text500 = app_commands.Range[str, 1, 500]


class BackupCommands(CogLifecycle):
    """The backup commands of the `UpdateManager` cog (a part of it, never loaded alone)."""

    @app_commands.command(name="backup_create", description=describe(
        "commands.backup_create.description"))
    @app_commands.describe(**params("backup_create", "backup_type", "compress", "backup_name",
                                    "include_logs", "description"))
    @app_commands.choices(backup_type=choices("backup_types"))
    async def backup_create(self, interaction: discord.Interaction, backup_type: str = "full",
                            compress: bool = True, backup_name: Text64 | None = None,
                            include_logs: bool = False,
                            description: Text500 | None = None) -> None:
        await allow(self.bot, interaction, "admin")
        check_choice("backup_type", backup_type, BACKUP_TYPES)
        check_flags(compress=compress, include_logs=include_logs)
        check_text("backup_name", backup_name, 64)
        check_text("description", description, 500)
        await interaction.response.defer(thinking=True)
        options = {"compress": compress, "backup_name": backup_name,
                   "include_logs": include_logs, "description": description}
        locale = locale_of(interaction)
        backup = await self._with_progress(
            interaction, text("backup_title", locale,
                              type=kind_name(backup_type, "backup_types", locale)),
            lambda m, progress: m.create_backup(backup_type, options, progress=progress,
                                                actor=f"discord:{interaction.user.id}"))
        self._notify_soon("backup_notifications", text(
            "notify_backup", name=backup.name, status=backup.status.value,
            size=size(backup.compressed_size or backup.file_size)))
        await interaction.edit_original_response(embed=state_cards.backup_card(backup, locale))

    @app_commands.command(name="backup_list", description=describe(
        "commands.backup_list.description"))
    @app_commands.describe(**params("backup_list", "backup_type", "time_range", "limit",
                                    "sort_by"))
    @app_commands.choices(backup_type=choices("backup_types"), time_range=choices("backup_ranges"),
                          sort_by=choices("sorts"))
    async def backup_list(self, interaction: discord.Interaction, backup_type: str | None = None,
                          time_range: str = "30d", limit: app_commands.Range[int, 1, 50] = 20,
                          sort_by: str = "date") -> None:
        await allow(self.bot, interaction, "admin")
        check_choice("backup_type", backup_type, BACKUP_TYPES, optional=True)
        check_choice("time_range", time_range, BACKUP_RANGES)
        check_choice("sort_by", sort_by, SORTS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise InvalidInput("limit", limit, "an integer from 1 to 50")
        await interaction.response.defer(thinking=True)
        filters = {"time_range": time_range, "limit": limit, "sort_by": sort_by}
        if backup_type is not None:
            filters["backup_type"] = backup_type
        async with self._open() as manager:
            backups = await manager.list_backups(filters)
        locale = locale_of(interaction)
        if not backups:
            await interaction.edit_original_response(content=text("backup_list_empty", locale))
            return
        pages = -(-len(backups) // PAGE_SIZE)

        def page(index: int) -> discord.Embed:
            embed = state_cards.backups_page(backups, index * PAGE_SIZE, PAGE_SIZE, time_range,
                                             locale)
            embed.set_footer(text=text("page", locale, page=index + 1, pages=pages))
            return embed

        if pages == 1:
            await interaction.edit_original_response(embed=page(0))
            return
        view = PagedView(interaction.user.id, locale, pages, page, source=interaction,
                         timeout=self.page_timeout)
        await interaction.edit_original_response(embed=page(0), view=view)

    @app_commands.command(name="backup_restore", description=describe(
        "commands.backup_restore.description"))
    @app_commands.describe(**params("backup_restore", "backup_id", "confirm", "restore_type",
                                    "verify_backup"))
    @app_commands.choices(restore_type=choices("restore_types"))
    async def backup_restore(self, interaction: discord.Interaction, backup_id: Text100,
                             confirm: bool, restore_type: str = "all",
                             verify_backup: bool = True) -> None:
        await allow(self.bot, interaction, "owner")
        check_text("backup_id", backup_id, 100)
        check_flags(confirm=confirm, verify_backup=verify_backup)
        check_choice("restore_type", restore_type, RESTORE_TYPES)
        if await unconfirmed(interaction, confirm):
            return
        locale = locale_of(interaction)
        async with self._open() as manager:  # an unknown id is one private answer
            backup = await manager.get_backup(backup_id)
        await interaction.response.defer(thinking=True)
        options = {"confirm": True, "restore_type": restore_type, "verify_backup": verify_backup}
        started = time.monotonic()
        result = await self._with_progress(
            interaction, text("restore_title", locale),
            lambda m, progress: m.restore_backup(backup.id, options, progress=progress,
                                                 actor=f"discord:{interaction.user.id}"),
            intro=state_cards.restore_intro(backup, restore_type, locale))
        self._notify_soon("update_completion_notifications", text(
            "notify_restore_done", name=result.backup.name, kind=restore_type,
            user=interaction.user.id))
        await interaction.edit_original_response(embed=state_cards.restore_card(
            result, time.monotonic() - started, locale))

    @backup_restore.autocomplete("backup_id")
    async def _backup_ids(self, interaction: discord.Interaction,
                          current: str) -> list[Choice[str]]:
        if not await may(self.bot, interaction, "owner"):
            return []
        async with self._open() as manager:
            backups = await manager.list_backups({"time_range": "all", "limit": 50})
        now, locale = utcnow(), locale_of(interaction)
        typed = (current or "").lower()
        found = [Choice(name=cut(state_cards.backup_choice(b, now, locale), 100), value=b.id)
                 for b in backups if typed in b.name.lower() or typed in b.id.lower()]
        return found[:25]
