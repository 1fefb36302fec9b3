"""What callers ask of the backups: options for a new one, filters for a listing, and parsing.

Each is a frozen dataclass that refuses a bad value when it is built (`InvalidInput` naming
the field), so a front-end's input is checked before anything opens, locks or writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitrelease.core.choices import BACKUP_RANGES, BACKUP_SORTS
from gitrelease.core.errors import InvalidInput
from gitrelease.core.models import BackupOrigin, BackupType
from gitrelease.core.options import options_from

__all__ = [
    "BACKUP_NAME",
    "BACKUP_RANGES",
    "SORTS",
    "BackupOptions",
    "ListFilters",
    "parse_backup_type",
]

SORTS = BACKUP_SORTS
#: A backup's name, and what an adopted archive's name and tag must look like.
BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class BackupOptions:
    compress: bool = True
    backup_name: str | None = None
    description: str | None = None
    include_logs: bool = False
    keep: bool = False
    auto_created: bool = False
    origin: BackupOrigin = BackupOrigin.MANUAL  # why it is taken, shown beside it
    # A full backup even where it could store only what changed since the last one (a
    # new chain starts with it).
    full: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.origin, BackupOrigin):
            raise InvalidInput("origin", self.origin, [o.value for o in BackupOrigin])
        for name in ("compress", "include_logs", "keep", "auto_created", "full"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(name, getattr(self, name), "true or false")
        if self.backup_name is not None and (
                not isinstance(self.backup_name, str) or not BACKUP_NAME.match(self.backup_name)):
            raise InvalidInput("backup_name", self.backup_name,
                               "1-64 letters, digits, '.', '_' or '-', starting with a letter "
                               "or digit")
        if self.description is not None and (
                not isinstance(self.description, str) or len(self.description) > 500
                or any(ord(c) < 32 and c not in "\t" for c in self.description)):
            raise InvalidInput("description", self.description,
                               "up to 500 characters on one line")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> BackupOptions:
        return options_from(cls, options, {"name": "backup_name"})


@dataclass(frozen=True)
class ListFilters:
    backup_type: BackupType | None = None
    time_range: str = "30d"
    limit: int = 20
    sort_by: str = "date"

    def __post_init__(self) -> None:
        if self.time_range not in BACKUP_RANGES:
            raise InvalidInput("time_range", self.time_range, list(BACKUP_RANGES))
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not (
                1 <= self.limit <= 50):
            raise InvalidInput("limit", self.limit, "an integer from 1 to 50")
        if self.sort_by not in SORTS:
            raise InvalidInput("sort_by", self.sort_by, SORTS)

    @classmethod
    def from_mapping(cls, filters: Mapping[str, Any]) -> ListFilters:
        values = dict(filters)
        kind = values.pop("backup_type", None)
        unknown = set(values) - {"time_range", "limit", "sort_by"}
        if unknown:
            raise InvalidInput("filter", sorted(unknown)[0],
                               ["backup_type", "time_range", "limit", "sort_by"])
        return cls(parse_backup_type(kind) if kind is not None else None, **values)


def parse_backup_type(value: str, *, field: str = "backup_type") -> BackupType:
    try:
        return BackupType(value)
    except ValueError:
        raise InvalidInput(field, value, [t.value for t in BackupType]) from None
