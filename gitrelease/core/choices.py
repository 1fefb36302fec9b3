"""The values a command's parameters may take, for the engine that checks them and for the
front-ends that offer them (the CLI's choices, Discord's pickers)."""

from __future__ import annotations

from datetime import timedelta

from gitrelease.core.models import UpdateType

__all__ = ["BACKUP_RANGES", "BACKUP_SORTS", "STATUS_RANGES", "UPDATE_TYPES"]

#: What check and install take; a rollback is its own command.
UPDATE_TYPES = tuple(t for t in UpdateType if t is not UpdateType.ROLLBACK)
#: How far back `backup list` looks (None: every backup).
BACKUP_RANGES: dict[str, timedelta | None] = {
    "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90), "all": None}
#: How `backup list` orders its rows.
BACKUP_SORTS = ("date", "size", "name", "type")
#: How far back `status` counts the update sessions.
STATUS_RANGES = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
