"""A restore writes only the pages of a live database that differ (`state/page_writer.py`).

Real SQLite files, written by the real writer process (sqlean.py's SQLite), read by
Python's own SQLite: connections held open across the write see the restored rows and
schema, a WAL file keeps its mode and its last commits count, and a file grows or shrinks to
the snapshot's length, all in one transaction.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gitrelease.state.snapshot import integrity_problem, restore_database, snapshot_database

WRITER = Path(__file__).parents[2] / "gitrelease" / "state" / "page_writer.py"


def _messages(path: Path, count: int, *, page_size: int = 4096, wal: bool = False) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA page_size = {page_size}")
        if wal:
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO messages (body) VALUES (?)",
                       [(f"message {n} " + "x" * 300,) for n in range(count)])
    db.close()


def _dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def _pages(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA page_count").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, Path]:
    """A live database of 2,000 messages and a snapshot of it, taken as a backup takes it."""
    live = tmp_path / "app.db"
    _messages(live, 2000)
    kept = tmp_path / "kept.db"
    snapshot_database(live, kept)
    return live, kept


def test_only_the_pages_a_day_changed_are_written(snapshot: tuple[Path, Path]) -> None:
    live, kept = snapshot
    with sqlite3.connect(live) as db:
        db.execute("UPDATE messages SET body = 'edited' WHERE id % 400 = 0")
    db.close()
    written = restore_database(kept, live)
    assert written is not None and 0 < written < _pages(kept) // 4, written
    assert _dump(live) == _dump(kept)
    assert integrity_problem(live, thorough=True) is None


def test_nothing_differing_writes_nothing(snapshot: tuple[Path, Path]) -> None:
    live, kept = snapshot
    assert restore_database(kept, live) == 0
    assert _dump(live) == _dump(kept)


def test_a_connection_held_open_reads_the_restored_rows_and_schema(
        snapshot: tuple[Path, Path]) -> None:
    """The bot's connections stay open across a restore: each one's cache of pages and of
    the schema must go, as the backup API makes them go (the schema cookie moves on)."""
    live, kept = snapshot
    bot = sqlite3.connect(live, isolation_level=None)
    try:
        bot.execute("CREATE TABLE since (n)")  # a table the snapshot does not have
        bot.execute("INSERT INTO since VALUES (1)")
        bot.execute("DELETE FROM messages WHERE id > 10")
        assert bot.execute("SELECT count(*) FROM messages").fetchone() == (10,)
        restore_database(kept, live)
        assert bot.execute("SELECT count(*) FROM messages").fetchone() == (2000,)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            bot.execute("SELECT * FROM since")
        bot.execute("INSERT INTO messages (body) VALUES ('after the restore')")
    finally:
        bot.close()
    assert integrity_problem(live, thorough=True) is None


@pytest.mark.parametrize("grown", [True, False], ids=["live grew", "live shrank"])
def test_the_file_takes_the_snapshots_length(snapshot: tuple[Path, Path], grown: bool) -> None:
    live, kept = snapshot
    if grown:
        _messages(live, 3000)
    else:
        with sqlite3.connect(live) as db:
            db.execute("DELETE FROM messages WHERE id > 100")
        db.execute("VACUUM")
        db.close()
    assert (_pages(live) > _pages(kept)) is grown
    restore_database(kept, live)
    assert _pages(live) == _pages(kept)
    assert live.stat().st_size == kept.stat().st_size
    assert _dump(live) == _dump(kept)
    assert integrity_problem(live, thorough=True) is None


def test_a_wal_database_stays_wal_and_its_last_commits_count(tmp_path: Path) -> None:
    """Rows still only in the -wal file are the live state compared with, and the file
    keeps its journal mode (the snapshot's header says rollback journal)."""
    live = tmp_path / "app.db"
    _messages(live, 1500, wal=True)
    kept = tmp_path / "kept.db"
    snapshot_database(live, kept)
    bot = sqlite3.connect(live, isolation_level=None)
    try:
        bot.execute("PRAGMA wal_autocheckpoint = 0")  # the bot's writes stay in the WAL
        bot.execute("UPDATE messages SET body = 'since' WHERE id % 100 = 0")
        assert (tmp_path / "app.db-wal").stat().st_size > 0
        written = restore_database(kept, live)
        assert written is not None and written > 0
        assert bot.execute("SELECT count(*) FROM messages WHERE body = 'since'") \
            .fetchone() == (0,)
        assert bot.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        bot.close()
    assert _dump(live) == _dump(kept)
    assert integrity_problem(live, thorough=True) is None


def test_another_page_size_is_written_by_the_backup_api(tmp_path: Path) -> None:
    """Pages cannot be compared across page sizes: the writer writes nothing and says so,
    and the whole file goes through SQLite's backup API, as before."""
    live, kept = tmp_path / "app.db", tmp_path / "kept.db"
    _messages(kept, 500, page_size=8192)
    _messages(live, 800, page_size=4096)
    before = live.read_bytes()
    seen = subprocess.run([sys.executable, "-I", str(WRITER), "write", str(kept), str(live)],
                          capture_output=True, text=True)
    assert seen.returncode == 3 and "page size 8192" in seen.stderr, seen
    assert live.read_bytes() == before  # nothing written by the refusal
    assert restore_database(kept, live) is None  # all of it, by the backup API
    assert _dump(live) == _dump(kept)


def test_a_database_locked_by_a_writer_waits_then_is_written(
        snapshot: tuple[Path, Path]) -> None:
    """A bot's write transaction holds the file: the writer waits for its commit (SQLite's
    busy timeout), then writes over it, and what it wrote is what is there."""
    live, kept = snapshot
    bot = sqlite3.connect(live, isolation_level=None)
    bot.execute("BEGIN IMMEDIATE")
    bot.execute("DELETE FROM messages WHERE id > 5")
    writer = subprocess.Popen([sys.executable, "-I", str(WRITER), "write", str(kept),
                               str(live)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            writer.wait(timeout=0.5)  # held back by the bot's lock
        bot.execute("COMMIT")
        out, err = writer.communicate(timeout=60)
    finally:
        bot.close()
    assert writer.returncode == 0, err
    assert '"written"' in out
    assert _dump(live) == _dump(kept)



def test_an_auto_vacuum_database_is_written_by_the_backup_api(tmp_path: Path) -> None:
    """SQLite's commit of an auto_vacuum file moves pages by its b-tree layer's count,
    which pages written past it do not update: such a file goes whole, as before."""
    live, kept = tmp_path / "app.db", tmp_path / "kept.db"
    with sqlite3.connect(live) as db:
        db.execute("PRAGMA auto_vacuum = FULL")
    db.close()
    _messages(live, 800)
    snapshot_database(live, kept)
    with sqlite3.connect(live) as db:
        db.execute("DELETE FROM messages WHERE id % 3 = 0")
    db.close()
    assert restore_database(kept, live) is None
    assert _dump(live) == _dump(kept)
    assert integrity_problem(live, thorough=True) is None


def test_a_wal_database_that_shrinks_is_written_by_the_backup_api(tmp_path: Path) -> None:
    """A WAL commit records the file's old length, so a cut by pages never reaches the
    disk: such a file goes whole through the backup API, which gives the space back."""
    live, kept = tmp_path / "app.db", tmp_path / "kept.db"
    _messages(live, 800, wal=True)
    snapshot_database(live, kept)
    _messages(live, 1600)
    bot = sqlite3.connect(live)  # held open: the WAL stays
    try:
        bot.execute("SELECT count(*) FROM messages").fetchone()
        assert restore_database(kept, live) is None
    finally:
        bot.close()
    assert _dump(live) == _dump(kept)
    assert live.stat().st_size == _pages(kept) * 4096
    assert integrity_problem(live, thorough=True) is None
