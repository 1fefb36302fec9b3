"""What every card is made of: its lines from the locale file, times, flags, names, durations.

The cards (`cards` for checks, installs and rollbacks; `state_cards` for backups, restores,
schedules, status and settings) build their lines from these, so a time or a yes/no reads
the same on every card.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import discord

from gitrelease_discord.embeds import COLOURS, LIMITS, cut, fit, scrub
from gitrelease_discord.i18n import label, text

__all__ = ["card", "flag", "kind_name", "line", "took", "when"]


def line(locale: str, key: str, **values: Any) -> str:
    """The card line `key` (under "messages.cards"), filled with `values`."""
    return text(f"cards.{key}", locale, **values)


def when(moment: datetime | str | None, locale: str) -> str:
    """A moment as Discord timestamps: relative ("2 hours ago") beside the full date and
    time, each shown in the reader's own locale and time zone."""
    if moment is None:
        return line(locale, "never")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    stamp = int(moment.timestamp())
    return line(locale, "moment", relative=f"<t:{stamp}:R>", full=f"<t:{stamp}:F>")


def flag(value: bool | None, locale: str, *, unknown: str = "not_checked") -> str:
    return line(locale, unknown if value is None else ("yes" if value else "no"))


def kind_name(value: Any, group: str, locale: str) -> str:
    """A value's readable name ("Data only" for data_only), as its option offers it
    (`group`: "backup_types", "update_types", ...); a value with none is shown as it is."""
    raw = str(getattr(value, "value", value))
    return label(f"choices.{group}.{raw}", locale) or raw


def took(seconds: float | None, locale: str) -> str:
    """A duration in words: "45 seconds", "2 min 15 seconds"."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    plain = line(locale, "second" if rest == 1 else "seconds", seconds=rest)
    return line(locale, "minutes", minutes=minutes, seconds=plain) if minutes else plain


def card(title: str, lines: list[str | None], colour: str, locale: str) -> discord.Embed:
    """An embed of `lines` (None lines left out), scrubbed of secrets and cut to fit."""
    body = "\n".join(entry for entry in lines if entry is not None)
    return fit(discord.Embed(title=cut(scrub(title), LIMITS["title"]),
                             description=cut(scrub(body), LIMITS["description"]),
                             colour=COLOURS[colour]), locale)
