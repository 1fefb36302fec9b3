"""SQLite databases, copied only through SQLite itself.

A raw file copy of a live database can tear a page or miss transactions still in its
``-wal`` file. The online backup API copies a consistent snapshot (everything committed
before it started, WAL included) while other processes go on writing, and restoring through
it keeps open connections of the bot valid: they see the restored data.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from gitrelease.core.errors import InsufficientDiskSpace, VerificationFailed
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.pausepoints import pause_point
from gitrelease.core.tether import Tethered
from gitrelease.state.archive import sha256_file
from gitrelease.state.databases import is_sqlite
from gitrelease.state.page_undo import KeptPages, is_kept_pages, marked, put_back_mark, rebuild

__all__ = ["integrity_problem", "is_sqlite", "put_back_database", "restore_database",
           "settle_journal", "snapshot_database"]

# How the checks divide the work: a snapshot is checked with `PRAGMA quick_check` (every page,
# b-tree and record is read and validated; what it skips is whether each index agrees with its
# table, which costs three times as long and which a page-for-page copy cannot break). The
# caller runs it beside the compression (see `BackupService`), and a backup whose snapshot
# fails it is never COMPLETED. A restore does not check the live file again afterwards: what it
# copied in is byte for byte the snapshot that passed, by the manifest's sha256.

_BUSY_MS = 30_000
_STEP_PAGES = 256  # 1 MiB of 4 KiB pages per step of a restore into a live database
_SQLITE_FULL = 13
_SQLITE_READONLY_ROLLBACK = 776  # SQLITE_READONLY | 3 << 8: a hot journal


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        # A read-only connection cannot roll back a hot journal, and refuses to read past
        # one ("attempt to write a readonly database"): settled read-write first.
        settle_journal(path)
    return _open(path, "ro" if readonly else "rw")


def _open(path: Path, mode: str) -> sqlite3.Connection:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True,
                                 timeout=_BUSY_MS / 1000, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
    return connection


def settle_journal(path: Path) -> bool:
    """Roll back the rollback journal a writer killed mid-transaction left beside `path`
    (a restore killed while it wrote the live database), then check what is left; True if
    there was one. Without it, every read-only open of the database fails.

    Whether a journal is hot is SQLite's to say: a read-only read goes past the journal of
    a live writer (it holds its lock) and of a finished one, and fails with
    SQLITE_READONLY_ROLLBACK only at a hot one. Only then is the database opened read-write
    (SQLite rolls the journal back on its first read) and checked; a bot writing as usual is
    neither written to nor held up by a whole-file check.
    """
    journal = Path(f"{path}-journal")
    if not journal.exists():
        return False
    try:
        probe = _open(path, "ro")
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return False
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != _SQLITE_READONLY_ROLLBACK:
                raise
        finally:
            probe.close()
        connection = _open(path, "rw")
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            row = connection.execute("PRAGMA quick_check").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise VerificationFailed(
            f"{path} has the journal of a write that never finished ({journal.name}), and it "
            f"cannot be rolled back: {exc}",
            hint=f"make {path} and its folder writable by this user, then run it again"
        ) from None
    if row[0] != "ok":
        raise VerificationFailed(
            f"{path} is damaged after rolling back an interrupted write: {row[0]}",
            hint="restore its database from a backup: gitrelease backup restore ID "
                 "--type database --yes")
    return True


def _between_steps(_status: int, remaining: int, _total: int) -> None:
    if remaining:  # still inside the transaction: part of the live file is written
        pause_point("sqlite:restore-writing")


def _copy(source: Path, target: Path, *, new_file: bool, what: str) -> None:
    """One backup-API step: one read transaction (a consistent view), and on the target one
    write transaction, which SQLite rolls back by itself if the copy fails half-way."""
    src = _connect(source, readonly=True)
    try:
        dst = sqlite3.connect(target, isolation_level=None) if new_file else _connect(target)
        try:
            if new_file:
                # A scratch file no one sees until it is archived (and the archive is
                # fsynced): no journal and no fsync of its own. A failed copy is deleted.
                dst.execute("PRAGMA synchronous = OFF")
                dst.execute("PRAGMA journal_mode = OFF")
            if new_file:
                src.backup(dst, pages=-1)
            else:
                # The live file in steps, all in one write transaction (the target stays
                # locked between them, its journal holds the way back): a kill between two
                # steps is a kill in the middle of writing the live database.
                src.backup(dst, pages=_STEP_PAGES, progress=_between_steps)
            if new_file:
                dst.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        finally:
            dst.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            raise InsufficientDiskSpace(f"cannot {what}: the disk is full") from None
        raise VerificationFailed(f"cannot {what}: {exc}") from None
    finally:
        src.close()


def snapshot_database(source: Path, target: Path) -> None:
    """Copy a consistent snapshot of `source` into a new file `target` (mode 0600).

    Not checked here: `integrity_problem(target)` says whether it may be kept.
    """
    target.touch(mode=0o600, exist_ok=False)
    _copy(source, target, new_file=True, what=f"snapshot the database {source}")


def integrity_problem(path: Path, *, thorough: bool = False) -> str | None:
    """None if `PRAGMA quick_check` (`integrity_check` if thorough) passes, else its first
    complaint."""
    pragma = "integrity_check" if thorough else "quick_check"
    try:
        connection = _connect(path, readonly=True)
        try:
            row = connection.execute(f"PRAGMA {pragma}").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if row and row[0] == "ok" else str(row[0] if row else "no answer")


def restore_database(snapshot: Path, live: Path, kept: Path | None = None) -> int | None:
    """Write `snapshot` into the live database through SQLite, as one transaction: only the
    pages that differ (`page_writer`, in a process of its own), or, where that cannot be
    done (no sqlean.py, another page size), every page through the backup API. Returns how
    many pages were written; None: all of them, by the backup API.

    `kept`: where the live database's way back is kept before anything is written, for
    `put_back_database`: the pages the write replaces (`page_undo`), or, when the backup
    API writes it, a copy of the whole file. Nothing there: nothing was written."""
    written = _write_differing(["write", str(snapshot), str(live)]
                               + ([str(kept)] if kept is not None else []), live)
    if written is None:
        if kept is not None:
            _copy_aside(live, kept)
        _copy(snapshot, live, new_file=False, what=f"restore the database {live}")
        return None
    return int(written["written"])


def put_back_database(kept: Path, staged: Path, live: Path, sha256: str | None = None) -> str:
    """Undo `restore_database(staged, live, kept)`, whether or not its write committed; what
    was done, said. The pages kept go back if the live file is still as written (the staged
    file's); if it was written since, the whole file as it was (`page_undo.rebuild`) goes
    in, as a copy of it would. One already put back (by a process killed before it could
    remove the kept pages) is left as it is, whatever the bot wrote since. `sha256`: the
    staged file's, checked before a rebuild is made of it."""
    settle_journal(live)
    if not kept.exists():
        return "nothing left to put back"
    if not is_kept_pages(kept):  # a copy of the whole file
        done = _copy_back(kept, live)
    else:
        answer = _write_differing(["put-back", str(kept), str(staged), str(live)], live,
                                  refused=(_WRITER_UNAVAILABLE, _WRITER_WRITTEN_SINCE))
        if answer is not None:
            done = {"restored": "put back from the pages kept aside",
                    "put back": "put back already"}.get(str(answer.get("state")),
                                                        "nothing of it had been written")
        else:
            _whole_back(kept, staged, live, sha256)
            done = "put back whole from the pages kept aside"
    # Used up: settling again (the journal kept for another file) leaves it as it is now,
    # with whatever the bot wrote since.
    kept.unlink()
    fsync_dir(kept.parent)
    return done


def _copy_back(copy: Path, live: Path) -> str:
    """A whole copy kept aside written back, marked as a put-back as kept pages are (its
    header carries the live cookie from when it was taken, `_copy_aside`)."""
    with copy.open("rb") as handle:
        mark = put_back_mark(handle.read(100))
    if marked(_cookie(live), mark):
        return "put back already"
    _write_marked(copy, live, mark)
    return "put back from its copy"


def _write_marked(whole: Path, live: Path, mark: int) -> None:
    """`whole` written into the live file, its schema cookie `mark` in the same commit: by
    the page writer, or through the backup API (which sets the live cookie plus one)."""
    if _write_differing(["write", str(whole), str(live), "--cookie", str(mark)],
                        live) is None:
        _set_cookie(live, (mark - 1) & 0xFFFFFFFF)
        _copy(whole, live, new_file=False, what=f"put back the database {live}")


def _cookie(path: Path) -> int:
    """The schema cookie of the database at `path`, as SQLite reads it (the WAL included)."""
    connection = _connect(path, readonly=True)
    try:
        return int(connection.execute("PRAGMA schema_version").fetchone()[0]) & 0xFFFFFFFF
    finally:
        connection.close()


def _whole_back(kept: Path, staged: Path, live: Path, sha256: str | None) -> None:
    """The old file rebuilt from `staged` (checked first) and the pages kept, then written
    in: by the page writer, its schema cookie marking it put back, or else whole through
    the backup API."""
    if sha256 is not None and sha256_file(staged) != sha256:
        raise VerificationFailed(f"cannot put back the database {live}: the staged file "
                                 f"{staged.name} it is rebuilt from is damaged")
    whole = kept.with_name(f"{kept.name}.whole")
    work = [whole, *(whole.with_name(f"{whole.name}{end}") for end in ("-journal", "-wal",
                                                                        "-shm"))]
    for path in work:
        path.unlink(missing_ok=True)
    try:
        rebuild(kept, staged, whole)
        if sha256 is None and (problem := integrity_problem(whole)) is not None:
            raise VerificationFailed(
                f"cannot put back the database {live}: its old file, rebuilt from "
                f"{staged.name} and the pages kept aside, fails its check ({problem})")
        with KeptPages(kept) as pages:
            _write_marked(whole, live, pages.put_back_cookie)
    finally:
        for path in work:
            path.unlink(missing_ok=True)


def _set_cookie(live: Path, cookie: int) -> None:
    """The live file's schema cookie set to `cookie` (a value no connection has seen: each
    one reads the schema again, as after any schema change)."""
    connection = _connect(live)
    try:
        signed = cookie - (1 << 32) if cookie >= 1 << 31 else cookie
        connection.execute(f"PRAGMA schema_version = {signed:d}")
    except sqlite3.Error as exc:
        raise VerificationFailed(f"cannot put back the database {live}: {exc}") from None
    finally:
        connection.close()


def _copy_aside(live: Path, kept: Path) -> None:
    """A whole copy of the live database at `kept`, durable before the backup API writes."""
    temporary = kept.with_name(f".{kept.name}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        snapshot_database(live, temporary)
        # The live cookie in its header, as kept pages carry it: its put-back is marked
        # from it (`_copy_back`).
        _set_cookie(temporary, _cookie(live))
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, kept)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(kept.parent)


_WRITER = Path(__file__).with_name("page_writer.py")
_WRITER_UNAVAILABLE = 3
_WRITER_FULL = 4
_WRITER_WRITTEN_SINCE = 5
#: What the writer is given of the environment: the pause points' (for the kill tests) and
#: the locale's; nothing else of gitrelease's (no secret) reaches it.
_WRITER_ENVIRONMENT = ("GITRELEASE_PAUSE_AT", "GITRELEASE_PAUSE_MARKER",
                       "GITRELEASE_PAUSE_SECONDS", "LANG", "LC_ALL", "TMPDIR", "PATH")


def _write_differing(args: list[str], live: Path, *, refused: tuple[int, ...] = (
        _WRITER_UNAVAILABLE,)) -> dict[str, Any] | None:
    """`page_writer` run with `args`: its answer; None when it exits with one of `refused`
    (nothing was written)."""
    environment = {name: value for name, value in os.environ.items()
                   if name in _WRITER_ENVIRONMENT}
    child = Tethered([sys.executable, "-I", str(_WRITER), *args], cwd=live.parent,
                     env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        refusal = child.release()
        out, err = child.process.communicate()
    except BaseException:
        child.kill()
        raise
    finally:
        child.close()
    what = f"cannot restore the database {live}"
    said = err.decode(errors="replace").strip().splitlines()
    if refusal is not None:
        raise VerificationFailed(f"{what}: its writer did not start ({refusal})")
    code = child.process.returncode
    if code in refused:
        return None
    if code == _WRITER_FULL:
        raise InsufficientDiskSpace(f"{what}: the disk is full")
    if code < 0:
        raise VerificationFailed(f"{what}: its writer was killed by signal {-code}")
    if code != 0:
        raise VerificationFailed(f"{what}: {said[-1] if said else f'exit status {code}'}")
    answer: dict[str, Any] = json.loads(out)
    return answer
