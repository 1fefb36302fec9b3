"""Settling a restore a dead process left half-way, from its journal (`restore_journal`).

A restore killed before its journal says "written" is undone: the state from before it is
the one the operator chose to leave, its copies are all kept aside, and nothing of the new
state can be finished without the process that knew what else it meant to do. Each target is
put back from its copy: a file by renaming its hard link back (one the swap never reached is
still that same inode, and is left alone), a file the restore created is removed, and each
database whose write began is first settled (a hot rollback journal a kill left rolled back,
`settle_journal`), then put back from what its write kept aside (the pages it replaced, with
the staged file), through SQLite, as a restore writes it, and checked. A restore whose
journal says "written" got to the end: its new state is kept, and only its staging dir is
left to remove. Renaming a copy back uses it up (and a database already put back is left as
it is), so settling again after a crash of its own finds only what is still left to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import fsync_dir
from gitrelease.core.pausepoints import pause_point
from gitrelease.core.text import counted
from gitrelease.state.archive import sha256_file
from gitrelease.state.placing import RestoreFailed, Target, place, remove_target
from gitrelease.state.restore_journal import WRITTEN, JournalStep, RestoreJournal
from gitrelease.state.snapshot import integrity_problem, put_back_database

__all__ = ["Settled", "settle_interrupted"]


@dataclass(frozen=True)
class Settled:
    """What became of an interrupted restore: `undone` (back to before it) or not (it had
    got to the end and is kept); `what` says so in a sentence."""

    backup: str
    safety: str | None
    staging: Path  # its staging dir, with the copies: now to be removed
    undone: bool
    what: str


def settle_interrupted(journal: Path) -> Settled | None:
    """Undo (or, if it got to the end, keep) the restore journalled at `journal`; None if
    there is no journal there. `RestoreFailed` if a file could not be put back: the journal
    and the copies stay, for the next start to try again."""
    try:
        record = RestoreJournal.load(journal)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise RestoreFailed(
            f"the journal of an interrupted restore, {journal}, cannot be read ({exc})",
            hint="look at it: it names the files that restore replaced and where the "
                 "copies of them are") from None
    if record is None:
        return None
    staging = Path(record.staging)
    if record.phase == WRITTEN:
        return Settled(record.backup, record.safety, staging, False,
                       f"a restore of {record.backup} was killed after everything was "
                       "written: it is kept as restored")
    where = (f"while writing {', '.join(_shown(record, n) for n in record.writing)}"
             if record.writing else "while putting its files in place")
    done, failed = _undo(record, staging)
    if failed:
        raise RestoreFailed(
            f"a restore of {record.backup} killed {where} could not be undone whole: "
            f"putting back FAILED for {', '.join(failed)}; the rest was put back",
            hint=(f"free what stops it (disk space, permissions), then run any gitrelease "
                  f"command again; the copies are kept in {staging}, the journal at {journal}"
                  + (f"; the safety backup {record.safety} holds the state from before"
                     if record.safety else "")))
    return Settled(record.backup, record.safety, staging, True,
                   f"a restore of {record.backup} killed {where} was undone: "
                   f"{', '.join(done) if done else 'nothing had been replaced yet'}")


def _undo(record: RestoreJournal, staging: Path) -> tuple[list[str], list[str]]:
    """Every target back as it was, last first; what was done and what failed, said."""
    put_back = removed = 0
    rolled: list[str] = []
    left: list[str] = []  # changed since the kill: not the restore's to undo
    failed: list[str] = []
    directories: set[Path] = set()
    for step in reversed(record.steps):
        target = Target(step.name, Path(step.path), Path(step.base),
                        Path(step.follow) if step.follow else None, step.link)
        try:
            if step.through:
                if step.name in record.writing:
                    rolled.append(_database_back(step, staging, target))
                continue
            if step.aside is None:
                if not os.path.lexists(target.live) or os.path.isdir(target.live):
                    continue
                if not _ours(step, target.live):
                    left.append(step.shown)
                    continue
                remove_target(target, step.shown)
                removed += 1
            elif _replaced(staging / step.aside, target.live):
                # A folder now at the name cannot be put back over: said, and tried again.
                if os.path.lexists(target.live) and not os.path.isdir(target.live) \
                        and not _ours(step, target.live):
                    left.append(step.shown)
                    continue
                place(staging / step.aside, target, step.shown)
                put_back += 1
            else:
                continue
            directories.add(target.live.parent)
            pause_point("restore:putting-back")
        except (GitReleaseError, OSError) as exc:
            failed.append(f"{step.shown} "
                          f"({exc.message if isinstance(exc, GitReleaseError) else exc})")
    for directory in sorted(directories):
        try:
            fsync_dir(directory)
        except OSError as exc:
            failed.append(f"{directory} ({exc})")
    done = ([f"{counted(put_back, 'file')} put back"] if put_back else []) + (
        [f"{counted(removed, 'file')} it had created removed"] if removed else []) + rolled
    if left:
        done.append(f"left as they are, changed since the restore was killed: "
                    f"{', '.join(left)}")
    return done, failed


def _ours(step: JournalStep, live: Path) -> bool:
    """Whether the file at `live` is still what the restore put there (its sha256), so
    that undoing it loses nothing: a file the bot or the operator wrote there since the
    kill is theirs. A journal of an older version records no sha256: trusted as before."""
    if step.sha256 is None:
        return True
    try:
        return os.path.isfile(live) and not os.path.islink(live) \
            and sha256_file(live) == step.sha256
    except OSError:
        return False


def _replaced(aside: Path, live: Path) -> bool:
    """Whether the live name no longer holds what was kept aside (the swap reached it, or
    it is gone): a hard link still the same inode as the live file was never swapped."""
    try:
        kept = os.lstat(aside)
    except FileNotFoundError:
        return False  # used up: put back already
    try:
        now = os.lstat(live)
    except FileNotFoundError:
        return True
    return (kept.st_dev, kept.st_ino) != (now.st_dev, now.st_ino)


def _database_back(step: JournalStep, staging: Path, target: Target) -> str:
    """A database whose write began, back as it was: a write cut off is rolled back by
    SQLite first, then what its write kept aside goes back (the write may have committed),
    and the result is checked."""
    kept = staging / str(step.aside)
    staged = staging / step.staged if step.staged else kept  # an older journal: a copy
    if step.staged and not staged.is_file() and kept.exists():
        raise RestoreFailed(f"{step.shown}: the staged file its pages are put back with, "
                            f"{staged}, is gone")
    done = put_back_database(kept, staged, target.path, step.sha256)
    problem = integrity_problem(target.path)
    if problem is not None:
        # As it was before the restore (often why it was restored): said, not undone again
        # at every start.
        return (f"{step.shown}: {done}, but it fails its integrity check ({problem}): "
                "restore a good backup of it (gitrelease backup restore ID --type database "
                "--yes)")
    return f"{step.shown}: {done} (integrity ok)"


def _shown(record: RestoreJournal, name: str) -> str:
    return next((s.shown for s in record.steps if s.name == name), name)
