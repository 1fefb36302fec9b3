"""A restore's write keeps aside only the pages it replaces, and they put the database back.

Real SQLite files and the real writer process: `restore_database(..., kept)` streams each
live page it replaces into the kept file before it writes one, and `put_back_database`
puts them back whether the write committed, was killed half-way, or the database was
written again since (then the whole file as it was goes in through the backup API).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gitrelease.state.page_undo import KeptPages, is_kept_pages
from gitrelease.state.placing import Target
from gitrelease.state.snapshot import (
    integrity_problem,
    put_back_database,
    restore_database,
    snapshot_database,
)
from tests.state.test_page_writer import WRITER, _dump, _messages, _pages


@contextmanager
def _wal_grown(tmp_path: Path, rows: int,
               staged_rows: int) -> Iterator[tuple[Path, Path, Path, sqlite3.Connection]]:
    """A WAL live database, a longer staged one (a restore grows the file) and the bot's
    connection held open across (so the WAL stays)."""
    live, staged, kept = tmp_path / "app.db", tmp_path / "staged.db", tmp_path / "0.kept"
    _messages(live, rows, wal=True)
    _messages(staged, staged_rows)
    bot = sqlite3.connect(live)
    try:
        bot.execute("SELECT count(*) FROM messages").fetchone()
        yield live, staged, kept, bot
    finally:
        bot.close()


def _edit(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql)
    db.close()


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A live database of 2,000 messages, a snapshot of it (the staged file a restore
    writes from), the live one changed since, and where its pages are kept aside."""
    live = tmp_path / "app.db"
    _messages(live, 2000)
    staged = tmp_path / "staged.db"
    snapshot_database(live, staged)
    _edit(live, "UPDATE messages SET body = 'edited since' WHERE id % 400 = 0")
    (tmp_path / "aside").mkdir()
    return live, staged, tmp_path / "aside" / "0.kept"


def test_only_the_pages_replaced_are_kept_and_they_put_the_database_back(
        world: tuple[Path, Path, Path]) -> None:
    live, staged, kept = world
    before = _dump(live)
    written = restore_database(staged, live, kept)
    assert written is not None and _dump(live) == _dump(staged)
    assert is_kept_pages(kept)
    with KeptPages(kept) as pages:
        assert len(pages.numbers()) == written  # each page written, as it was (page 1 too)
        assert pages.total == _pages(live)
    assert kept.stat().st_size < live.stat().st_size // 4
    assert put_back_database(kept, staged, live) == "put back from the pages kept aside"
    assert _dump(live) == before
    assert integrity_problem(live, thorough=True) is None


def test_a_connection_held_open_reads_the_rows_put_back(
        world: tuple[Path, Path, Path]) -> None:
    live, staged, kept = world
    bot = sqlite3.connect(live, isolation_level=None)
    try:
        edited = "SELECT count(*) FROM messages WHERE body = 'edited since'"
        assert bot.execute(edited).fetchone() == (5,)
        restore_database(staged, live, kept)
        assert bot.execute(edited).fetchone() == (0,)
        put_back_database(kept, staged, live)
        assert bot.execute(edited).fetchone() == (5,)
    finally:
        bot.close()


@pytest.mark.parametrize("grown", [True, False], ids=["live grew", "live shrank"])
def test_the_file_takes_its_old_length_back(world: tuple[Path, Path, Path],
                                            grown: bool) -> None:
    """The pages a shrinking write cuts off are kept too; those a growing one adds go."""
    live, staged, kept = world
    if grown:
        _messages(live, 3000)
    else:
        _edit(live, "DELETE FROM messages WHERE id > 100")
        db = sqlite3.connect(live)
        db.execute("VACUUM")
        db.close()
    before, length = _dump(live), live.stat().st_size
    restore_database(staged, live, kept)
    assert _pages(live) == _pages(staged)
    put_back_database(kept, staged, live)
    assert _dump(live) == before
    assert live.stat().st_size == length
    assert integrity_problem(live, thorough=True) is None


def test_written_since_the_restore_it_goes_back_whole(world: tuple[Path, Path, Path]) -> None:
    """The bot wrote after the restore committed: its pages are no longer the staged ones,
    so putting back only the kept ones could mix two states. The whole file as it was
    goes in instead, as a copy of it would."""
    live, staged, kept = world
    before = _dump(live)
    restore_database(staged, live, kept)
    _messages(live, 500)  # the bot, after the restore
    assert put_back_database(kept, staged, live) == "put back whole from the pages kept aside"
    assert _dump(live) == before
    assert integrity_problem(live, thorough=True) is None
    assert list(kept.parent.iterdir()) == []  # used up, and no work file left


def test_a_write_killed_half_way_is_left_as_it_was(world: tuple[Path, Path, Path],
                                                   tmp_path: Path) -> None:
    """Killed inside its transaction: the kept pages are whole on disk, the live file is
    rolled back by SQLite, and putting back finds it as it was and writes nothing."""
    live, staged, kept = world
    before = _dump(live)
    marker = tmp_path / "paused"
    writer = subprocess.Popen(
        [sys.executable, "-I", str(WRITER), "write", str(staged), str(live), str(kept)],
        env={**os.environ, "GITRELEASE_PAUSE_AT": "sqlite:restore-writing",
             "GITRELEASE_PAUSE_MARKER": str(marker)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the writer never reached its pause point"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert is_kept_pages(kept)
    assert put_back_database(kept, staged, live) == "nothing of it had been written"
    assert _dump(live) == before
    assert integrity_problem(live, thorough=True) is None


def test_nothing_kept_is_nothing_written(world: tuple[Path, Path, Path]) -> None:
    live, staged, kept = world
    before = _dump(live)
    assert put_back_database(kept, staged, live) == "nothing left to put back"
    assert _dump(live) == before
    snapshot_database(live, staged.with_name("same.db"))
    assert restore_database(staged.with_name("same.db"), live, kept) == 0
    assert not kept.exists()  # a write of nothing keeps nothing


def test_the_backup_apis_way_keeps_a_whole_copy(tmp_path: Path) -> None:
    """Another page size: the backup API writes the file, so a copy of all of it is kept
    first, and it is that copy that goes back."""
    live, staged, kept = tmp_path / "app.db", tmp_path / "staged.db", tmp_path / "0.kept"
    _messages(staged, 500, page_size=8192)
    _messages(live, 800, page_size=4096)
    before = _dump(live)
    assert restore_database(staged, live, kept) is None
    assert not is_kept_pages(kept) and _dump(kept) == before
    assert put_back_database(kept, staged, live) == "put back from its copy"
    assert _dump(live) == before


def test_a_wal_database_a_write_grew_goes_back_whole(tmp_path: Path) -> None:
    """A WAL file cannot be cut by pages (its commit keeps the old length): putting back a
    write that grew it writes the file as it was through the backup API."""
    with _wal_grown(tmp_path, 800, 1600) as (live, staged, kept, bot):
        before = _dump(live)
        assert restore_database(staged, live, kept) is not None
        assert put_back_database(kept, staged, live) == \
            "put back whole from the pages kept aside"
        assert bot.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert _dump(live) == before
    assert integrity_problem(live, thorough=True) is None
    assert [p.name for p in tmp_path.iterdir() if "kept" in p.name] == []  # no work file


def test_a_kept_file_cut_short_is_refused(world: tuple[Path, Path, Path]) -> None:
    live, staged, kept = world
    restore_database(staged, live, kept)
    restored = _dump(live)
    with kept.open("rb+") as handle:
        handle.truncate(kept.stat().st_size - 100)
    with pytest.raises(Exception, match="cut short"):
        put_back_database(kept, staged, live)
    assert _dump(live) == restored  # nothing written


def test_a_database_put_back_is_left_as_it_is_when_settled_again(
        world: tuple[Path, Path, Path]) -> None:
    """The journal stays when another file could not be put back: settling again must not
    put the database back a second time over what the bot wrote since."""
    live, staged, kept = world
    restore_database(staged, live, kept)
    put_back_database(kept, staged, live)
    assert not kept.exists()  # used up
    _messages(live, 10)  # the bot, after the first undo
    after = _dump(live)
    assert put_back_database(kept, staged, live) == "nothing left to put back"
    assert _dump(live) == after


def test_a_damaged_staged_file_is_never_written_in(world: tuple[Path, Path, Path]) -> None:
    """Rebuilding the old file needs the staged one: if that was damaged since (a power
    loss before the disk had it), the rebuilt file fails its check and nothing is written;
    the kept pages stay for another try."""
    live, staged, kept = world
    restore_database(staged, live, kept)
    _messages(live, 100)  # written since: the whole old file must go back
    after = _dump(live)
    with staged.open("rb+") as handle:
        handle.seek(4096 * 3)
        handle.write(b"\0" * 4096 * 20)
    with pytest.raises(Exception, match="fails its check"):
        put_back_database(kept, staged, live)
    assert _dump(live) == after and kept.exists()
    assert sorted(p.name for p in kept.parent.iterdir()) == ["0.kept"]


def test_a_kept_file_that_cannot_be_written_is_not_left(world: tuple[Path, Path, Path]) -> None:
    """The disk refuses the kept pages part-way (here a file size limit): the write is off,
    the live file untouched, and no temporary file is left beside the copies."""
    import resource

    live, staged, kept = world
    before = _dump(live)
    writer = subprocess.run(
        [sys.executable, "-I", str(WRITER), "write", str(staged), str(live), str(kept)],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192)),
        capture_output=True, text=True)
    assert writer.returncode == 1 and "cannot keep the pages" in writer.stderr, writer
    assert list(kept.parent.iterdir()) == []
    assert _dump(live) == before


@pytest.mark.parametrize("how", ["write", "put-back"])
def test_no_other_writer_gets_in_while_the_writer_holds_its_transaction(
        world: tuple[Path, Path, Path], tmp_path: Path, how: str) -> None:
    """Paused inside its transaction, the writer still holds SQLite's locks on the live
    file: another process's write is refused, and what the writer commits is all there is.
    (Closing any descriptor of the file in the writer's process would drop those POSIX
    locks; a raw read of the live file once did.)"""
    live, staged, kept = world
    if how == "put-back":
        restore_database(staged, live, kept)
        argv = ["put-back", str(kept), str(staged), str(live)]
    else:
        argv = ["write", str(staged), str(live), str(kept)]
    marker = tmp_path / "paused"
    writer = subprocess.Popen(
        [sys.executable, "-I", str(WRITER), *argv],
        env={**os.environ, "GITRELEASE_PAUSE_AT": "sqlite:restore-writing",
             "GITRELEASE_PAUSE_MARKER": str(marker), "GITRELEASE_PAUSE_SECONDS": "2"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the writer never reached its pause point"
        bot = subprocess.run([sys.executable, "-c", (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
            "try:\n"
            "    c.execute('BEGIN IMMEDIATE'); c.execute('CREATE TABLE bot (x)'); "
            "c.execute('COMMIT'); print('committed')\n"
            "except sqlite3.OperationalError as exc:\n"
            "    print('refused:', exc)\n"), str(live)], capture_output=True, text=True)
        _out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert bot.stdout.startswith("refused: database is locked"), bot
    assert writer.returncode == 0, err
    db = sqlite3.connect(live)
    try:
        assert "bot" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert integrity_problem(live, thorough=True) is None


def test_a_put_back_killed_before_it_could_say_so_is_not_done_twice(
        world: tuple[Path, Path, Path]) -> None:
    """The writer committed the put-back, then its starter died before it removed the kept
    pages; the bot wrote since. Settling again must leave that as it is: the put-back's
    schema cookie says it was done."""
    live, staged, kept = world
    restore_database(staged, live, kept)
    done = subprocess.run([sys.executable, "-I", str(WRITER), "put-back", str(kept),
                           str(staged), str(live)], capture_output=True, text=True)
    assert done.returncode == 0 and '"restored"' in done.stdout, done
    assert kept.exists()  # as a kill would leave it
    _messages(live, 25)  # the bot, since
    after = _dump(live)
    assert put_back_database(kept, staged, live) == "put back already"
    assert _dump(live) == after and not kept.exists()


def test_a_whole_put_back_killed_before_it_could_say_so_is_not_done_twice(
        world: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The same for the whole file, written back because the bot wrote after the restore."""
    from gitrelease.state.page_undo import rebuild

    live, staged, kept = world
    before = _dump(live)
    restore_database(staged, live, kept)
    _messages(live, 40)  # written since the restore: the whole old file goes back
    whole = tmp_path / "whole.db"
    rebuild(kept, staged, whole)
    with KeptPages(kept) as pages:
        mark = pages.put_back_cookie
    done = subprocess.run([sys.executable, "-I", str(WRITER), "write", str(whole), str(live),
                           "--cookie", str(mark)], capture_output=True, text=True)
    assert done.returncode == 0, done
    assert _dump(live) == before
    _messages(live, 5)  # the bot, after the kill
    after = _dump(live)
    assert put_back_database(kept, staged, live) == "put back already"
    assert _dump(live) == after


def test_a_staged_file_that_no_longer_matches_its_checksum_is_not_rebuilt_from(
        world: tuple[Path, Path, Path]) -> None:
    import hashlib

    live, staged, kept = world
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    restore_database(staged, live, kept)
    _messages(live, 30)
    after = _dump(live)
    with staged.open("rb+") as handle:
        handle.seek(4096 * 5)
        handle.write(b"\xff" * 64)
    with pytest.raises(Exception, match="is damaged"):
        put_back_database(kept, staged, live, digest)
    assert _dump(live) == after and kept.exists()


def test_a_database_damaged_before_the_restore_is_put_back_and_said_so(
        world: tuple[Path, Path, Path]) -> None:
    """Often a database is restored because it is damaged. Undone, it is as it was, damage
    and all: that is said (with what to do), not refused at every start after."""
    from gitrelease.state.restore_journal import JournalStep
    from gitrelease.state.restore_undo import _database_back

    live, staged, kept = world
    with live.open("rb+") as handle:  # a leaf page of the table, scribbled over
        handle.seek(4096 * 40 + 200)
        handle.write(b"\xee" * 600)
    assert integrity_problem(live) is not None
    restore_database(staged, live, kept)
    assert integrity_problem(live) is None
    step = JournalStep("data/app.db", str(live), str(live.parent), "data/app.db",
                       f"aside/{kept.name}", True, staged=staged.name)
    said = _database_back(step, kept.parents[1], Target("data/app.db", live, live.parent))
    assert "put back from the pages kept aside, but it fails its integrity check" in said
    assert "gitrelease backup restore" in said
    assert integrity_problem(live) is not None and not kept.exists()


def test_a_wal_put_back_through_the_backup_api_is_marked_too(tmp_path: Path) -> None:
    """A WAL file the restore grew cannot be cut by pages: its put-back goes whole through
    the backup API, and is marked all the same, in that copy's own commit."""
    from gitrelease.state.snapshot import _whole_back

    with _wal_grown(tmp_path, 300, 2000) as (live, staged, kept, bot):
        before = _dump(live)
        restore_database(staged, live, kept)
        _whole_back(kept, staged, live, None)  # then killed before the kept pages went
        assert _dump(live) == before
        _messages(live, 50)  # the bot, since
        after = _dump(live)
        assert put_back_database(kept, staged, live) == "put back already"
        assert _dump(live) == after
        assert bot.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_put_back_is_known_even_after_the_bot_vacuumed_to_another_page_size(
        world: tuple[Path, Path, Path]) -> None:
    live, staged, kept = world
    restore_database(staged, live, kept)
    done = subprocess.run([sys.executable, "-I", str(WRITER), "put-back", str(kept),
                           str(staged), str(live)], capture_output=True, text=True)
    assert done.returncode == 0, done
    _messages(live, 50)
    db = sqlite3.connect(live, isolation_level=None)
    db.execute("PRAGMA page_size = 8192")
    db.execute("VACUUM")
    db.close()
    after = _dump(live)
    assert put_back_database(kept, staged, live) == "put back already"
    assert _dump(live) == after


def test_a_whole_copy_put_back_is_marked_too(tmp_path: Path) -> None:
    """A restore the backup API wrote (another page size) kept a whole copy: its put-back,
    cut off before the copy went, is known as done at the next settle as well."""
    from gitrelease.state.snapshot import _copy_back

    live, staged, kept = tmp_path / "app.db", tmp_path / "staged.db", tmp_path / "0.kept"
    _messages(staged, 500, page_size=8192)
    _messages(live, 800, page_size=4096)
    before = _dump(live)
    assert restore_database(staged, live, kept) is None
    assert _copy_back(kept, live) == "put back from its copy"  # then killed
    assert _dump(live) == before
    _messages(live, 30)  # the bot, since
    after = _dump(live)
    assert put_back_database(kept, staged, live) == "put back already"
    assert _dump(live) == after and not kept.exists()
