"""A restore's own journal: what it is about to replace, written before it replaces anything.

A restore swaps its files in one by one and then writes each database through SQLite; a
process killed between two of those steps leaves some files restored and some not. So before
the first live file is touched (`placing.replace`), everything it will replace is kept aside
in its staging dir (a hard link per file, a SQLite copy per database) and this journal is
written there (temp name, fsync, rename): each target, what of it is kept aside (or that
nothing was there), and which databases are written through SQLite. Before each such
database's write begins, the journal names it (`writing`); once everything is written and
durable it says so (`phase` "written"). The next start (`restore_undo`) reads it and either
puts the old state back (`phase` "placing") or, for a restore that got to the end, keeps the
new state and only cleans up: never a mix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gitrelease.core.fsutil import atomic_write

__all__ = ["JOURNAL", "PLACING", "WRITTEN", "JournalStep", "RestoreJournal", "interrupted",
           "needs_settling"]

JOURNAL = "restore.json"
PLACING = "placing"  # files are being swapped in, databases written: undo at the next start
WRITTEN = "written"  # everything is in place and durable: keep it, only clean up
_FORMAT = 1


@dataclass
class JournalStep:
    """One target. `aside`: its old content's name in the staging dir (None: nothing was
    there, so the restore creates it). `through`: a database written through SQLite, whose
    copy aside is written back the same way."""

    name: str
    path: str
    base: str
    shown: str
    aside: str | None
    through: bool = False
    follow: str | None = None
    link: str | None = None


@dataclass
class RestoreJournal:
    backup: str
    safety: str | None
    steps: list[JournalStep]
    phase: str = PLACING
    writing: list[str] = field(default_factory=list)  # databases whose write began

    def save(self, staging: Path) -> None:
        """Durably, whole or not at all: the old journal or the new one is read back."""
        data = {"format": _FORMAT, **asdict(self)}
        atomic_write(staging / JOURNAL, json.dumps(data, indent=1).encode())

    @classmethod
    def load(cls, staging: Path) -> RestoreJournal | None:
        """The journal in `staging`; None if there is none (a restore that never got to
        touch a live file). One that cannot be read is an error: it is never guessed at."""
        try:
            data = json.loads((staging / JOURNAL).read_text())
        except FileNotFoundError:
            return None
        if data.pop("format", None) != _FORMAT:
            raise ValueError(f"{staging / JOURNAL} is not a restore journal this version reads")
        steps = [JournalStep(**step) for step in data.pop("steps")]
        return cls(steps=steps, **data)


def needs_settling(staging: Path) -> bool:
    """Whether `staging` holds the journal of a restore that did not get to the end (its
    staging dir must then stay, with the copies kept aside, for the next start)."""
    try:
        record = RestoreJournal.load(staging)
    except (OSError, ValueError, TypeError):
        return True
    return record is not None and record.phase != WRITTEN


def interrupted(scratch: Path) -> list[Path]:
    """The staging dirs (``.restore-*`` in `scratch`) that hold a journal: restores a dead
    process left, newest first (undone in the reverse of the order they were made)."""
    if not scratch.is_dir():
        return []
    found = [p for p in scratch.iterdir() if p.name.startswith(".restore-")
             and not p.is_symlink() and p.is_dir() and (p / JOURNAL).is_file()]
    return sorted(found, key=lambda p: (p / JOURNAL).stat().st_mtime_ns, reverse=True)
