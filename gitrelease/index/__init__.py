"""The index: sessions, journal steps, audit, backups and schedules behind `Store`.

`open_store` is where a backend is chosen; today the one backend is SQLite, embedded in the
deployment's data folder (`gitrelease.index.sqlite`). A server-backed one goes beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitrelease.index.store import Store

__all__ = ["INDEX_NAME", "open_store", "store_exists"]

#: The SQLite index's file in the data folder.
INDEX_NAME = "update_manager.db"


async def open_store(data_dir: Path) -> Store:
    """The deployment's index, opened (and created, migrated) as needed."""
    from gitrelease.index.sqlite import SQLiteStore

    return await SQLiteStore.open(data_dir / INDEX_NAME)


def store_exists(data_dir: Path) -> bool:
    """Whether the deployment has an index yet (read-only commands never create one)."""
    return (data_dir / INDEX_NAME).exists()
