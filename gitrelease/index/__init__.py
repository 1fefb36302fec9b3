"""The index: sessions, journal steps, audit, backups and schedules behind `Store`.

`open_store` is where a backend is chosen: SQLite embedded in the deployment's data folder
(`gitrelease.index.sqlite`, the default), or a PostgreSQL server that several deployments
share, each seeing its own rows (`gitrelease.index.postgres`, with an index URL).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitrelease.index.store import Store

__all__ = ["INDEX_NAME", "open_store", "store_exists"]

#: The SQLite index's file in the data folder.
INDEX_NAME = "update_manager.db"


async def open_store(data_dir: Path, url: str = "", scope: str = "",
                     hide: Callable[[str], str] | None = None,
                     busy_timeout: float = 10.0) -> Store:
    """The deployment's index, opened (and created, migrated) as needed: on the server of
    `url` as `scope` (the deployment's name there) when a URL is given, else in SQLite.
    `hide` takes the deployment's secrets out of what a failure said before it is stored
    (`gitrelease.core.text.Secrets`); without it, credentials in URLs are. A statement
    waits up to `busy_timeout` seconds while another process holds what it needs, then
    the index is said to be busy (`IndexBusy`), never broken."""
    from gitrelease.core.text import redact

    if url:
        from gitrelease.index.postgres import PostgresStore

        return await PostgresStore.open(url, scope, hide=hide or redact,
                                        busy_timeout=busy_timeout)
    from gitrelease.index.sqlite import SQLiteStore

    return await SQLiteStore.open(data_dir / INDEX_NAME, hide or redact,
                                  busy_timeout=busy_timeout)


def store_exists(data_dir: Path, url: str = "") -> bool:
    """Whether the deployment has an index yet (read-only commands never create one); a
    shared server's is there to be opened."""
    return bool(url) or (data_dir / INDEX_NAME).exists()
