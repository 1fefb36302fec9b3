"""A restore's own journal: what it is about to replace, written before it replaces anything.

A restore swaps its files in one by one and then writes each database through SQLite; a
process killed between two of those steps leaves some files restored and some not. So before
the first live file is touched (`placing.replace`), everything it will replace is kept aside
in its staging dir (a hard link per file; a database's write keeps the pages it replaces) and
this journal is
written (temp name, fsync, rename): the staging dir, each target, what of it is kept aside
(or that nothing was there), and which databases are written through SQLite. It is kept in
the data dir, not beside the copies: a restore may bring back a settings file that puts the
backups (and so its staging dir) elsewhere, and the data dir is where the next start looks
whatever the settings say. Its name (``.restore-….tmp-journal``) is a work file's, which no
backup takes. Before each such
database's write begins, the journal names it (`writing`); once everything is written and
durable it says so (`phase` "written"). The next start (`restore_undo`) reads it and either
puts the old state back (`phase` "placing") or, for a restore that got to the end, keeps the
new state and only cleans up: never a mix.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gitrelease.core.fsutil import atomic_write

__all__ = ["PLACING", "WRITTEN", "JournalStep", "RestoreJournal", "interrupted", "journal_of",
           "needs_settling"]

_SUFFIX = ".tmp-journal"
PLACING = "placing"  # files are being swapped in, databases written: undo at the next start
WRITTEN = "written"  # everything is in place and durable: keep it, only clean up
_FORMAT = 1


@dataclass
class JournalStep:
    """One target. `aside`: its old content's name in the staging dir (None: nothing was
    there, so the restore creates it). `through`: a database written through SQLite; its
    way back (`aside`: the pages its write replaces, or a whole copy) is kept by the write
    itself, and with `staged` (the staged file it is written from) it is put back the same
    way (`snapshot.put_back_database`)."""

    name: str
    path: str
    base: str
    shown: str
    aside: str | None
    through: bool = False
    follow: str | None = None
    link: str | None = None
    sha256: str | None = None  # of what the restore puts there: only that is undone
    staged: str | None = None  # a database's staged file, relative to the staging dir


@dataclass
class RestoreJournal:
    backup: str
    safety: str | None
    staging: str  # the staging dir; each step's `aside` is relative to it
    steps: list[JournalStep]
    phase: str = PLACING
    writing: list[str] = field(default_factory=list)  # databases whose write began

    def save(self, path: Path) -> None:
        """Durably, whole or not at all: the old journal or the new one is read back."""
        data = {"format": _FORMAT, **asdict(self)}
        atomic_write(path, json.dumps(data, indent=1).encode())

    @classmethod
    def load(cls, path: Path) -> RestoreJournal | None:
        """The journal at `path`; None if there is none (a restore that never got to touch
        a live file). One that cannot be read is an error: it is never guessed at."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        if data.pop("format", None) != _FORMAT:
            raise ValueError(f"{path} is not a restore journal this version reads")
        steps = [JournalStep(**step) for step in data.pop("steps")]
        return cls(steps=steps, **data)


def journal_of(data_dir: Path, staging: Path) -> Path:
    """Where the journal of the restore staged in `staging` is kept."""
    return data_dir / f"{staging.name}{_SUFFIX}"


def needs_settling(path: Path) -> bool:
    """Whether `path` is the journal of a restore that did not get to the end: it, and the
    staging dir with the copies kept aside, must then stay for the next start."""
    try:
        record = RestoreJournal.load(path)
    except (OSError, ValueError, TypeError):
        return True
    return record is not None and record.phase != WRITTEN


def interrupted(data_dir: Path) -> list[Path]:
    """The journals in `data_dir`: restores a dead process left, newest first (undone in
    the reverse of the order they were made). One listing of the data dir."""
    try:
        found = [Path(e.path) for e in os.scandir(data_dir) if e.name.startswith(".restore-")
                 and e.name.endswith(_SUFFIX) and e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)
