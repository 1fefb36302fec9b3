"""User-visible strings, one JSON file per locale, and the command tree's Translator.

``translations/<locale>/commands/update_manager.json`` holds command descriptions, parameter
descriptions and messages. en_US is the source: a missing key in another locale falls back to
it, so adding a locale is adding a file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import discord
from discord import app_commands

__all__ = ["FileTranslator", "describe", "hint", "locale_of", "text"]

SOURCE = "en_US"


@cache
def _strings(locale: str) -> dict[str, Any]:
    folder = resources.files("gitrelease_discord").joinpath("translations", locale)
    try:
        return json.loads(folder.joinpath("commands", "update_manager.json").read_text())
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _lookup(locale: str, key: str) -> str | None:
    node: Any = _strings(locale)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, str) else None


def text(key: str, locale: str = SOURCE, **values: Any) -> str:
    """The message `key` (under "messages") in `locale`, else in en_US, filled with values.
    A key with no string at all comes back as it is, never formatted (it may hold braces)."""
    template = label(key, locale)
    return key if template is None else template.format(**values)


def label(key: str, locale: str = SOURCE) -> str | None:
    """The plain string `key` (under "messages") in `locale` or en_US, unformatted; None when
    there is none."""
    return _lookup(locale, f"messages.{key}") or _lookup(SOURCE, f"messages.{key}")


def hint(code: str, locale: str = SOURCE) -> str | None:
    """What to do about an engine error of `code`, worded for Discord, where the engine's
    own hint names CLI commands and flags; None: the engine's hint fits as it is."""
    return _lookup(locale, f"hints.{code}") or _lookup(SOURCE, f"hints.{code}")


def describe(key: str) -> app_commands.locale_str:
    """A description for the command tree: the en_US text, keyed for the Translator."""
    english = _lookup(SOURCE, key)
    if english is None:
        raise KeyError(f"no en_US string {key!r}")
    return app_commands.locale_str(english, key=key)


def locale_name(locale: discord.Locale | str) -> str:
    """discord's 'en-US' is the folder 'en_US'."""
    return str(getattr(locale, "value", locale)).replace("-", "_")


def locale_of(interaction: discord.Interaction) -> str:
    """The folder of the invoking user's language: replies are worded for whoever asked."""
    return locale_name(interaction.locale)


class FileTranslator(app_commands.Translator):
    """Command and parameter descriptions from the locale files (names stay English)."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        if not key:
            return None
        folder = locale_name(locale)
        return None if folder == SOURCE else _lookup(folder, key)
