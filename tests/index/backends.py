"""Both index backends behind one fixture, so the store's tests run against each: SQLite in
`tmp_path`, and PostgreSQL in a database of the test's own on a real server (`tests.pg`).

    async def test_something(backend: Backend) -> None:
        store = await backend.open()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitrelease.index.store import Store

__all__ = ["Backend", "backend"]


class Backend:
    """Opens stores on one index (as many as a test wants: as several processes would), and
    writes to it behind their backs, as another process would."""

    def __init__(self, kind: str, where: str, scope: str = "host-a:/srv/bot") -> None:
        self.kind, self.where, self.scope = kind, where, scope

    async def open(self, scope: str | None = None,
                   hide: Callable[[str], str] | None = None) -> Store:
        """A store on the index; `hide` as a deployment gives its secrets' (`Secrets`)."""
        hidden = {} if hide is None else {"hide": hide}
        if self.kind == "sqlite":
            from gitrelease.index.sqlite import SQLiteStore

            return await SQLiteStore.open(Path(self.where), **hidden)
        from gitrelease.index.postgres import PostgresStore

        return await PostgresStore.open(self.where, scope or self.scope, **hidden)

    def write_elsewhere(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement on a connection of its own (`?` placeholders for both)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.where) as other:
                other.execute(sql, params)
            other.close()
            return
        import psycopg

        with psycopg.connect(self.where, autocommit=True) as other:
            other.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]

    def read_elsewhere(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.where) as other:
                found = other.execute(sql).fetchall()
            other.close()
            return found
        import psycopg

        with psycopg.connect(self.where, autocommit=True) as other:
            return other.execute(sql).fetchall()  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "data" / "update_manager.db"))
    return Backend("postgres", request.getfixturevalue("pg_url"))
