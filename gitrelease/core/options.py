"""Options dataclasses built from the specification's option dictionaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from gitrelease.core.errors import InvalidInput

__all__ = ["options_from"]

T = TypeVar("T")


def options_from(cls: type[T], options: Mapping[str, Any],
                 aliases: Mapping[str, str] | None = None) -> T:
    """`cls(**options)` with the specification's names mapped (`force_update` -> `force`),
    unknown keys refused by name, and a Discord user id taken as the text it stands for."""
    aliases = aliases or {}
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in options.items():
        name = aliases.get(key, key)
        if name not in known:
            raise InvalidInput("option", key, sorted(known | set(aliases)))
        values[name] = str(value) if name == "initiated_by" and isinstance(value, int) \
            and not isinstance(value, bool) else value
    return cls(**values)
