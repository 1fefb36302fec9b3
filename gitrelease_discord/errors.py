"""How a failed command is answered: one ephemeral message per kind of failure, in one place.

The cog's ``cog_app_command_error`` hands every error here. A refusal (not allowed, a bad value,
a stale client, an operation stopped before it changed anything) is only told to whoever ran
the command, and leaves nothing public; any other failure of an operation is also announced to
the notify_channels, and an unexpected one is logged under a short id the user can quote.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import suppress

import discord
from discord import app_commands

from gitrelease.core.errors import (
    ConfirmationRequired,
    DetachedHead,
    DirtyWorkingTree,
    DowngradeRefused,
    GitReleaseError,
    InsufficientDiskSpace,
    InvalidInput,
    NoSuchVersion,
    PythonVersionMismatch,
    TagMoved,
    TargetChanged,
    UntrackedFilesInTheWay,
    UpdateInProgress,
    UsageError,
)
from gitrelease_discord.checks import NotAllowed
from gitrelease_discord.embeds import COLOURS, LIMITS, cut, fit, scrub
from gitrelease_discord.i18n import hint, locale_of, text
from gitrelease_discord.notify import Notify

__all__ = ["OPERATIONS", "REFUSALS", "is_refusal", "report_error"]

log = logging.getLogger("gitrelease.discord")
#: Commands whose failure is announced to notify_channels (error_notifications).
OPERATIONS = frozenset({"update_install", "update_rollback", "backup_restore",
                        "backup_create"})


#: What a command refuses before it changes anything: told to whoever ran it, never
#: announced, never left as a public "failed" line.
REFUSALS: tuple[type[BaseException], ...] = (
    NotAllowed, InvalidInput, UsageError, ConfirmationRequired, TargetChanged,
    DowngradeRefused, NoSuchVersion, DirtyWorkingTree, UntrackedFilesInTheWay,
    UpdateInProgress, DetachedHead, TagMoved, PythonVersionMismatch, InsufficientDiskSpace,
    app_commands.TransformerError, app_commands.CommandSignatureMismatch)


def is_refusal(error: BaseException) -> bool:
    """A refusal: one of `REFUSALS`, or an operation the engine stopped before its first
    change (it says so in the error's details)."""
    return isinstance(error, REFUSALS) or (
        isinstance(error, GitReleaseError) and error.details.get("refused") is True)


async def report_error(interaction: discord.Interaction, error: app_commands.AppCommandError,
                       notify: Notify) -> None:
    """Tell the invoking user why the command failed, privately, and announce the failure
    of an operation."""
    original = getattr(error, "original", error)
    command = interaction.command.name if interaction.command else "?"
    locale = locale_of(interaction)
    refused = is_refusal(original)
    if command in OPERATIONS and not refused:
        reason = original.message if isinstance(original, GitReleaseError) else \
            f"/{command} failed unexpectedly"
        notify("error_notifications", text("notify_error", command=command, message=reason))
    if isinstance(original, NotAllowed):
        message = original.message
    elif isinstance(original, GitReleaseError):
        advice = hint(original.code, locale) or original.hint
        message = f"{original.message}\n{advice}" if advice else original.message
    elif isinstance(original, app_commands.TransformerError):
        message = text("invalid", locale, field=original.type.name, value=original.value,
                       allowed=original.type.name)
    elif isinstance(original, app_commands.CommandSignatureMismatch):
        # A required option is missing or the client's copy of the command is stale: a
        # modified client, or commands not synced since an upgrade.
        message = text("signature_mismatch", locale, command=command)
    else:
        error_id = uuid.uuid4().hex[:8]
        log.error("/%s failed (error id %s)", command, error_id, exc_info=original)
        message = text("unexpected", locale, command=command, error_id=error_id)
    embed = fit(discord.Embed(title=text("error_title", locale, command=command),
                              description=cut(scrub(message), LIMITS["description"]),
                              colour=COLOURS["error"]), locale)
    try:
        if interaction.response.is_done():
            # Deferred: a refusal leaves nothing in public (the "thinking" reply goes); a
            # failure leaves a short line. The reason goes privately to whoever ran it.
            with suppress(discord.HTTPException):
                if refused:
                    await interaction.delete_original_response()
                else:
                    await interaction.edit_original_response(
                        content=text("failed_privately", locale, command=command),
                        embed=None, view=None)
            await interaction.followup.send(embed=embed, ephemeral=True)
        else:
            await interaction.response.send_message(embed=embed, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not report an error of /%s: %s", command, exc)
