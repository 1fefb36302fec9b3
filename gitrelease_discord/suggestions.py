"""What the update commands' text options suggest as you type: update types, days and times
for a schedule, and versions to roll back to, each named so that it helps before sending.

Discord takes at most 25 suggestions of at most 100 characters each (name and value); a
comma-separated option (update_types, update_days) is completed item by item, keeping what
was typed before the last comma.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gitrelease.core.text import visible
from gitrelease_discord.card_text import kind_name
from gitrelease_discord.i18n import text
from gitrelease_discord.options import Choice

__all__ = ["days", "times", "update_types", "versions"]

_MAX = 25
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TYPES = ("bot", "packages", "config", "dependencies")


def _fits(choices: Iterable[Choice[str]]) -> list[Choice[str]]:
    return [c for c in choices if len(str(c.name)) <= 100 and len(c.value) <= 100][:_MAX]


def _listed(current: str, items: Iterable[str], named: Any) -> list[Choice[str]]:
    """Completions of a comma-separated list: what is typed before the last comma, then each
    item not yet in it that starts like the last part."""
    parts = [p.strip().lower() for p in (current or "").split(",")]
    done, partial = [p for p in parts[:-1] if p], parts[-1]
    found = []
    for item in items:
        if item in done or not item.startswith(partial):
            continue
        value = ",".join([*done, item])
        found.append(Choice(name=", ".join(named(v) for v in value.split(",")), value=value))
    return found


def update_types(current: str, allowed: list[str], locale: str) -> list[Choice[str]]:
    """The update types the settings allow (allowed_update_types), and "all"."""
    def named(value: str) -> str:
        return kind_name(value, "update_types", locale)

    offered = [t for t in _TYPES if t in allowed]
    found = _listed(current, offered, named)
    if "all".startswith((current or "").strip().lower()):
        found.insert(0, Choice(name=text("suggest_all_types", locale, types=", ".join(
            named(t) for t in offered)), value="all"))
    return _fits(found)


def days(current: str, schedule_type: str | None, locale: str) -> list[Choice[str]]:
    """Weekday names (weekly, custom), days of the month (monthly); nothing for daily,
    which takes no days."""
    if schedule_type == "daily":
        return []
    if schedule_type == "monthly":
        numbers = [str(n) for n in range(1, 32)]
        parts = (current or "").split(",")
        done = [p.strip() for p in parts[:-1] if p.strip()]
        partial = parts[-1].strip()
        found = [Choice(name=text("suggest_month_days", locale, days=", ".join([*done, n])),
                        value=",".join([*done, n]))
                 for n in numbers if n not in done and n.startswith(partial)]
        return _fits(found)
    return _fits(_listed(current, WEEKDAYS, lambda d: text(f"weekdays.{d}", locale)))


def times(current: str, default_time: str, zone: str, locale: str) -> list[Choice[str]]:
    """Times of day HH:MM, in the schedules' time zone: the default first, then the hours
    (and, once an hour is typed, its quarter hours)."""
    typed = (current or "").strip()
    if typed.isdigit() and len(typed) == 1 and typed > "2":
        typed = f"0{typed}"  # "4" can only be 04:..
    hours = [f"{h:02d}:00" for h in range(24)]
    if len(typed) >= 2 and typed[:2].isdigit() and int(typed[:2]) < 24:
        hours = [f"{typed[:2]}:{m:02d}" for m in (0, 15, 30, 45)] + hours
    ordered = list(dict.fromkeys([default_time, *hours]))
    found = [Choice(name=text("suggest_time", locale, time=t, zone=zone)
                    + (text("suggest_default", locale) if t == default_time else ""), value=t)
             for t in ordered if t.startswith(typed)]
    return _fits(found)


def versions(current: str, releases: list[dict[str, Any]], locale: str) -> list[Choice[str]]:
    """"previous" and "last_backup", then the release tags newest first, each marked as the
    one running, newer or older (and "failed before")."""
    wanted = (current or "").strip().lower()
    found = [Choice(name=text(f"suggest_{name}", locale), value=name)
             for name in ("previous", "last_backup") if wanted in name]
    for release in releases:
        tag = release["tag"]
        if wanted not in tag.lower():
            continue
        mark = text(f"suggest_{release['relation']}", locale)
        if release.get("failed"):
            mark += text("suggest_failed", locale)
        # The name is shown, so a bidi override in a tag shows as an escape; the value
        # stays the tag itself, which the rollback looks up.
        found.append(Choice(name=visible(f"{tag} · {mark}", lines=False), value=tag))
    return _fits(found)
