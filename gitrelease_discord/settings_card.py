"""The /update_settings card, in the shape of the specification's example: the setting's new
value beside what it was ("15 (previously: 10)", or "unchanged"), the other values of its
category, what the setting does and when the change takes effect.

Values read as they are typed back (true/false, a,b,c); the value of a ``*_command`` setting
is never shown, only whether it is set (commands may carry tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import discord

from gitrelease.core.settings import is_secret
from gitrelease_discord.card_text import card, kind_name, line
from gitrelease_discord.i18n import text

__all__ = ["settings_card", "shown_value", "source_name", "takes_effect"]

_OTHERS_SHOWN = 15
#: Settings the extension reads once, when the bot starts.
_AT_START = frozenset({"restart_method", "index_url", "instance_id", "instance_group",
                       "shard_ids", "fleet_heartbeat_seconds"})


def shown_value(name: str, value: Any, locale: str) -> str:
    """A value as it would be typed: true/false, numbers, a,b,c; "(not set)" for none."""
    if is_secret(name):
        return line(locale, "setting_set" if value else "setting_not_set")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "" or value == []:
        return line(locale, "setting_empty")
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def source_name(source: str, root: Path | None) -> str:
    """Where the value in force comes from, as the operator knows the file: "default",
    "pyproject.toml", "data/settings.toml" (never the server's absolute path)."""
    if source == "default" or root is None:
        return source
    try:
        return str(Path(source).relative_to(root))
    except ValueError:
        return Path(source).name


def takes_effect(name: str, category: str, locale: str) -> str:
    """When a change to the setting is acted on."""
    if name in _AT_START:
        return line(locale, "effect_restart")
    return line(locale, f"effect_{category}")


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def settings_card(view: list[dict[str, Any]], name: str, locale: str, *,
                  change: dict[str, Any] | None = None, reset: bool = False,
                  root: Path | None = None) -> discord.Embed:
    """`view` is the category's settings (`settings_view`); `change` the change made to
    `name` (None: only shown). The changed setting first, then the category's others."""
    this = next(entry for entry in view if entry["name"] == name)
    category = this["category"]
    value = shown_value(name, this["value"], locale)
    if change is None:
        title, state = text("settings_show_title", locale, name=name), ""
    else:
        before = shown_value(name, change["previous"], locale)
        unchanged = before == value and change["previous"] == change["new"]
        title = text("settings_unchanged_title" if unchanged else "settings_reset_title"
                     if reset else "settings_title", locale, name=name)
        state = line(locale, "setting_unchanged") if unchanged else line(
            locale, "setting_previously", value=before)
    lines: list[str | None] = [
        line(locale, "settings_heading", category=kind_name(category, "categories", locale)),
        line(locale, "setting_this", title=_title(name), name=name, value=value, state=state),
    ]
    others = [e for e in view if e["name"] != name]
    lines += [line(locale, "setting_other", title=_title(e["name"]),
                   value=shown_value(e["name"], e["value"], locale))
              for e in others[:_OTHERS_SHOWN]]
    if len(others) > _OTHERS_SHOWN:
        lines.append(line(locale, "and_more", count=len(others) - _OTHERS_SHOWN))
    lines += [
        line(locale, "setting_about", description=this["description"]),
        line(locale, "setting_allowed", allowed=this["allowed"],
             default=shown_value(name, this["default"], locale)),
        line(locale, "setting_source", source=source_name(this["source"], root)),
        line(locale, "setting_effect", when=takes_effect(name, category, locale)),
        line(locale, "settings_applied") if change is not None else None,
    ]
    return card(title, lines, "ok" if change is not None else "info", locale)
