"""The commands' options: the values each may take, and the checks every value passes again.

Discord shows the choices and ranges but does not enforce them for a bot (a modified client, or
commands not synced since an upgrade, can send anything), so each command checks its values here
before it touches the deployment. The choices are the engine's own values, so the two can never
disagree.
"""

from __future__ import annotations

from typing import Any

from discord import app_commands

from gitrelease.core.choices import BACKUP_RANGES as LIST_RANGES
from gitrelease.core.choices import BACKUP_SORTS as LIST_SORTS
from gitrelease.core.choices import STATUS_RANGES
from gitrelease.core.choices import UPDATE_TYPES as INSTALL_TYPES
from gitrelease.core.errors import InvalidInput
from gitrelease.core.models import BackupType, ScheduleType
from gitrelease.core.settings import CATEGORIES
from gitrelease_discord.i18n import describe, label

__all__ = [
    "BACKUP_RANGES", "BACKUP_TYPES", "CATEGORIES", "GROUPS", "RESTORE_TYPES", "SCHEDULE_TYPES",
    "SORTS", "TIME_RANGES", "UPDATE_TYPES", "Choice", "check_choice", "check_flags", "check_text",
    "choices", "matching", "params",
]

Choice = app_commands.Choice
UPDATE_TYPES = tuple(t.value for t in INSTALL_TYPES)
TIME_RANGES = tuple(STATUS_RANGES)
SCHEDULE_TYPES = tuple(t.value for t in ScheduleType)
BACKUP_TYPES = tuple(t.value for t in BackupType)
BACKUP_RANGES = tuple(LIST_RANGES)
SORTS = LIST_SORTS
# The restore types offered; the engine also takes "full" (the specification's example) and
# an internal "all_but_config" for rollbacks.
RESTORE_TYPES = ("all", "database", "config", "data")


#: Each option's fixed values, by the group their readable names are under in the locale
#: file ("messages.choices.<group>.<value>").
GROUPS: dict[str, tuple[str, ...]] = {
    "update_types": UPDATE_TYPES, "time_ranges": TIME_RANGES,
    "schedule_types": SCHEDULE_TYPES, "backup_types": BACKUP_TYPES,
    "backup_ranges": BACKUP_RANGES, "sorts": SORTS, "restore_types": RESTORE_TYPES,
    "categories": CATEGORIES,
    "fleet_actions": ("status", "rollout", "pause", "promote", "abort"),
}


def choices(group: str) -> list[Choice[str]]:
    """The fixed choices of an option: readable names ("Last 7 days"), translated by the
    command tree's Translator, for the engine's values ("7d")."""
    return [Choice(name=app_commands.locale_str(
        label(f"choices.{group}.{value}") or value, key=f"messages.choices.{group}.{value}"),
        value=value) for value in GROUPS[group]]


def params(command: str, *names: str) -> dict[str, app_commands.locale_str]:
    """The translatable descriptions of a command's options, for ``app_commands.describe``."""
    return {name: describe(f"commands.{command}.params.{name}") for name in names}


def matching(names: list[str], current: str) -> list[Choice[str]]:
    """Autocomplete's answer: the names containing what was typed so far, at most 25."""
    wanted = (current or "").lower()
    # Discord refuses a whole answer with a choice over 100 characters: such names are left out.
    return [Choice(name=name, value=name) for name in names
            if wanted in name.lower() and len(name) <= 100][:25]


def check_choice(field: str, value: Any, allowed: tuple[str, ...], *,
                 optional: bool = False) -> None:
    """Refuse a value that is not one of the choices offered."""
    if optional and value is None:
        return
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(field, value, list(allowed))


def check_flags(**values: Any) -> None:
    """Refuse a true/false option that came as anything else."""
    for field, value in values.items():
        if not isinstance(value, bool):
            raise InvalidInput(field, value, "true or false")


def check_text(field: str, value: Any, limit: int = 200) -> None:
    """Refuse a text option that is not text or is longer than the command allows."""
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise InvalidInput(field, value, f"text of at most {limit} characters")
