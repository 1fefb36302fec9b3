"""Only a hot journal is rolled back: a bot's own write in progress is neither written to
nor held up by a whole-file check (`settle_journal`)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from gitrelease.state.snapshot import settle_journal, snapshot_database

_WRITER = """
import os, signal, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE t SET x = x + 1")
if sys.argv[2] == "die":
    db.execute("PRAGMA cache_size = 1")
    db.execute("INSERT INTO t SELECT x FROM t")  # spills: the live file is half-written
    os.kill(os.getpid(), signal.SIGKILL)
print("writing", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print("committed", flush=True)
"""


def _database(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5000)])
    db.close()
    return path


def _rows(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT count(*), sum(x) FROM t").fetchone()
    db.close()
    return found


def test_a_killed_writers_journal_is_rolled_back_and_checked(tmp_path: Path) -> None:
    db = _database(tmp_path / "app.db")
    before = _rows(db)
    subprocess.run([sys.executable, "-c", _WRITER, str(db), "die"], check=False)
    assert Path(f"{db}-journal").exists()
    assert settle_journal(db) is True
    assert not Path(f"{db}-journal").exists()
    assert _rows(db) == before
    snapshot_database(db, tmp_path / "snap.db")  # a read-only open reads past nothing now
    assert _rows(tmp_path / "snap.db") == before


def test_a_live_writers_journal_is_left_to_it(tmp_path: Path) -> None:
    db = _database(tmp_path / "app.db")
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "hold"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "writing"
        assert Path(f"{db}-journal").exists()
        stamp = os.stat(db).st_mtime_ns
        assert settle_journal(db) is False  # not hot: its writer holds it
        assert os.stat(db).st_mtime_ns == stamp
        snapshot_database(db, tmp_path / "snap.db")  # the state before its transaction
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "committed"
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert _rows(tmp_path / "snap.db") == (5000, sum(range(5000)))
    assert _rows(db) == (5000, sum(range(5000)) + 5000)
