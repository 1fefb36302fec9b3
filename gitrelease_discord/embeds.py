"""Embeds that always fit Discord's limits, and never show a secret."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import discord

from gitrelease.core.text import redact, visible
from gitrelease_discord.i18n import SOURCE, text

__all__ = ["COLOURS", "LIMITS", "cut", "fit", "remember_root", "remember_secrets", "scrub"]

#: Values that must never reach Discord: the bot's token and every value of the deployment's
#: .env (a command's output or an error may quote them). Filled by the cog.
_SECRETS: set[str] = set()
#: The deployment's folder on the server: paths under it are shown from it ("data/x.db"),
#: the server's layout is not shown at all.
_ROOTS: set[str] = set()
#: Put after "@" and inside "```" so that a changelog cannot ping or close a code block.
_MARKDOWN_GUARD = "\u200b"


def remember_secrets(values: Iterable[object]) -> None:
    found = (str(value).strip().strip("'\"") for value in values if value is not None)
    _SECRETS.update(value for value in found if len(value) >= 6)


def remember_root(root: Path) -> None:
    _ROOTS.update({str(root), str(root.resolve())} - {"/", "."})


def scrub(value: str) -> str:
    """`value` without credentials in URLs, without any remembered secret, with paths of
    the deployment shown from its folder, and with what would act on the reader's client
    (controls, bidi overrides: a tag message or a file's name may hold them) shown as
    escapes; the zero-width spaces that guard markdown (`cards._plain`) stay."""
    value = visible(redact(value), keep=_MARKDOWN_GUARD)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        value = value.replace(secret, "***")
    for root in sorted(_ROOTS, key=len, reverse=True):
        value = re.sub(re.escape(root) + r"(/|(?![\w-]|\.\w))",
                       lambda m: "" if m.group(1) == "/" else ".", value)
    return value

LIMITS = {"content": 2000, "title": 256, "description": 4096, "field_name": 256,
          "field_value": 1024, "fields": 25, "footer": 2048, "total": 6000}
COLOURS = {"ok": discord.Colour.green(), "info": discord.Colour.blurple(),
           "warn": discord.Colour.orange(), "error": discord.Colour.red()}


def cut(value: str, limit: int, more: str = "…") -> str:
    """`value` within `limit` characters, marked where it was cut."""
    return value if len(value) <= limit else value[: limit - len(more)] + more


def fit(embed: discord.Embed, locale: str = SOURCE) -> discord.Embed:
    """Cut an embed to Discord's limits: each part, at most 25 fields, 6000 in all; what is
    left out is counted in a last field, in `locale`."""
    if embed.title:
        embed.title = cut(embed.title, LIMITS["title"])
    if embed.description:
        embed.description = cut(embed.description, LIMITS["description"])
    fields = [(cut(f.name or "-", LIMITS["field_name"]), cut(f.value or "-", LIMITS["field_value"]),
               f.inline) for f in embed.fields]
    embed.clear_fields()
    dropped = max(0, len(fields) - (LIMITS["fields"] - 1)) if len(fields) > LIMITS["fields"] else 0
    for name, value, inline in fields[: len(fields) - dropped]:
        embed.add_field(name=name, value=value, inline=inline)
    while len(embed) > LIMITS["total"] and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
        dropped += 1
    if dropped:
        embed.add_field(name="…", value=text("and_more", locale, count=dropped), inline=False)
    if len(embed) > LIMITS["total"] and embed.description:
        embed.description = cut(embed.description, max(1, len(embed.description)
                                                         - (len(embed) - LIMITS["total"])))
    return embed
