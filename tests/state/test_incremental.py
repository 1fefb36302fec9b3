"""Incremental backups: a chain of archives, each holding only what changed since the one
before it (files by sha256, databases by SQLite page), restored byte for byte from any point.

Real deployments, real SQLite databases, real tar archives read back with the tar reader
the tests use (`members_of`); nothing here stands in for the code under test.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from gitrelease.core.models import Backup
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.state.test_backups import members_of

YES = {"confirm": True}


def _fill(db: Path, rows: int) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.executemany("INSERT INTO notes (body) VALUES (?)",
                               [(f"note {n} " + hashlib.sha256(b"%d" % n).hexdigest() * 4,)
                                for n in range(rows)])


def _edit(db: Path, day: int) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE notes SET body = ? || id WHERE id % 500 = 0",
                           (f"edited on day {day}: ",))


def _dump(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def _state(world: World) -> dict[str, str]:
    """Every backed-up file's sha256, the database by its content (its `.dump`)."""
    data = world.deploy / "data"
    files = {p.relative_to(world.deploy).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((data / "json").glob("*"))}
    files[".env"] = hashlib.sha256((world.deploy / ".env").read_bytes()).hexdigest()
    files["dump"] = _dump(data / "app.db")
    return files


def _json(world: World, day: int) -> None:
    folder = world.deploy / "data" / "json"
    folder.mkdir(exist_ok=True)
    for n in range(6):
        text = f'{{"guild": {n}, "day": {day if n == day % 6 else 0}}}\n'
        (folder / f"guild_{n}.json").write_text(text)


async def test_a_chain_stores_only_what_changed_and_restores_every_point(world: World) -> None:
    db = world.deploy / "data" / "app.db"
    _fill(db, 4000)
    (world.deploy / ".env").chmod(0o600)
    states: list[dict[str, str]] = []
    backups: list[Backup] = []
    async with await ReleaseManager.open(world.deploy) as manager:
        for day in range(4):
            if day:
                _edit(db, day)
            _json(world, day)
            states.append(_state(world))
            backups.append(await manager.create_backup("full"))
        full, *daily = backups
        assert full.base_id is None and full.chain == []
        for number, backup in enumerate(daily):
            assert backup.base_id == backups[number].id
            assert [link["id"] for link in backup.chain] == [b.id for b in backups[:number + 1]]
            held = members_of(Path(backup.file_path or ""))
            assert "data/app.db" not in held and "pages/data/app.db.delta" in held
            assert ".env" not in held and "root/.env" not in held  # the base's
            assert backup.compressed_size < full.compressed_size / 3
        for point in (1, 0, 3, 2):
            _edit(db, 99)
            (world.deploy / ".env").write_text("DISCORD_TOKEN=other\n")
            result = await manager.restore_backup(backups[point].id, YES)
            assert _state(world) == states[point], point
            assert result.restored
