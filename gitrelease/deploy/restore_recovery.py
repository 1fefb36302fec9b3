"""Restores a dead process left half-way, settled at the next start (under the lock).

A restore journals what it replaces before it replaces anything (`state.restore_journal`);
this finds those journals in the data dir, before the reconcile would sweep the staging dirs
with the copies away as leftovers, and settles each (`state.restore_undo`): undone, or kept
if it got to the end; then the journal goes, then the staging dir. Each is recorded in the
audit (action ``restore``, outcome ``undone`` or ``completed``) and said on the log (stderr
for the CLI) of the command that found it. Nothing a dead session started may still be
writing while that is done: the process groups its journal recorded are stopped first, as
`recovery.finish_interrupted` does.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fsutil import fsync_dir

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import Store

__all__ = ["finish_restores", "restores_pending"]

log = logging.getLogger(__name__)


async def finish_restores(d: Deployment, store: Store) -> list[str]:
    """Settle every restore a dead process left (the caller holds the lock); says what
    became of each. A restore that cannot be undone whole raises (`RestoreFailed`), its
    journal and copies kept: nothing else may run over a half-restored deployment."""
    from gitrelease.deploy.recovery import stop_children
    from gitrelease.state.restore_journal import interrupted
    from gitrelease.state.restore_undo import settle_interrupted

    found = await d.in_thread(interrupted, d.data_dir)
    if not found:
        return []
    for session in await store.unfinished_sessions():
        await d.in_thread(stop_children, session, await store.steps(session.id))
    said = []
    for journal in found:
        try:
            await d.in_thread(_check_journal, d, journal)
            settled = await d.in_thread(settle_interrupted, journal)
        except GitReleaseError as exc:
            try:
                await store.audit("system", "restore", None, "failed",
                                  {"code": exc.code, "recovery": exc.message})
            except Exception as trouble:  # never in the place of the error it records
                exc.also(f"the audit row could not be written: {trouble}")
            raise
        if settled is None:
            continue
        await d.in_thread(_clean_up, journal, settled.staging)
        try:
            await store.audit("system", "restore", settled.backup,
                              "undone" if settled.undone else "completed",
                              {"recovery": settled.what, "safety_backup": settled.safety})
        except Exception as trouble:  # the files are settled; a lost row does not undo it
            log.warning("gitrelease: the audit row could not be written: %s", trouble)
        log.warning("gitrelease: %s", settled.what)
        said.append(settled.what)
    return said


def restores_pending(d: Deployment) -> bool:
    """Whether a restore's journal waits in the data dir (one listing of it): the cheap look
    a read makes before it takes the lock to settle."""
    from gitrelease.state.restore_journal import interrupted

    return bool(interrupted(d.data_dir))


_ASIDE = re.compile(r"aside/[0-9]+(\.db|\.kept)?")


def _check_journal(d: Deployment, journal: Path) -> None:
    """Refuse (touching nothing) a journal that is not this deployment's own: every path
    it names is undone, removed or rewritten, so each must be where a restore of this
    deployment writes: its staging dir named for the journal, each target inside the root
    or the data dir, each copy a name in the staging dir. A deployment copied with a
    journal in it, or a journal written by anything but gitrelease, is said so."""
    from gitrelease.state.placing import RestoreFailed
    from gitrelease.state.restore_journal import RestoreJournal

    try:
        record = RestoreJournal.load(journal)
    except (OSError, ValueError, TypeError, KeyError):
        return  # unreadable: settle_interrupted says so, and touches nothing either
    if record is None:
        return
    problem = _problem(d, journal, record)
    if problem is not None:
        raise RestoreFailed(
            f"the journal of an interrupted restore, {journal}, is not this deployment's: "
            f"{problem}; nothing was changed",
            hint=f"if this deployment was copied from another with it, or no restore of it "
                 f"was killed, move it out of the data dir: mv {journal} {journal}.refused")


def _problem(d: Deployment, journal: Path, record: Any) -> str | None:
    from gitrelease.state.restore_journal import journal_of

    staging = Path(record.staging)
    if not staging.is_absolute() or not staging.name.startswith(".restore-") \
            or ".." in staging.parts or journal_of(d.data_dir, staging) != journal:
        return f"its staging dir {staging} is not the one it is named for"
    # Where it is cannot be checked against the settings (the restore may have swapped in a
    # settings.toml that keeps the backups elsewhere), but what it is can: a folder, reached
    # through no link. (Its mode says little: a backups folder on a NAS mount shows the
    # mount's.)
    try:
        made = os.lstat(staging)
    except FileNotFoundError:
        made = None  # gone: settling it says what that leaves
    if made is not None and not stat.S_ISDIR(made.st_mode):
        return f"its staging dir {staging} is not a folder (a link, or a file)"
    inside = os.path.realpath(staging)
    # The copy itself may be a link (a link the restore replaced is kept as one); the folder
    # of the copies is no link.
    copies_inside = os.path.realpath(staging / "aside") == os.path.join(inside, "aside")
    layout = d.layout()
    bases = {str(layout.root), str(layout.data_dir), str(layout.logs_dir)}
    for step in record.steps:
        path, base = Path(step.path), Path(step.base)
        if step.base not in bases:
            return f"{step.path} is outside {layout.root}"
        if not path.is_relative_to(base) or ".." in path.parts or path == base:
            return f"{step.path} is not inside {step.base}"
        real = os.path.realpath(path.parent)
        if not Path(real).is_relative_to(os.path.realpath(base)):
            return f"{step.path} is reached through a link out of {step.base}"
        if step.aside is not None and not _ASIDE.fullmatch(step.aside):
            return f"the copy of {step.path} is not in its staging dir ({step.aside})"
        if step.aside is not None and not copies_inside:
            return f"the copies of {step.path} are not in its staging dir ({step.aside})"
        if step.staged is not None and (
                Path(step.staged).is_absolute() or ".." in Path(step.staged).parts
                or not step.through or os.path.islink(staging / step.staged)
                or not Path(os.path.realpath(staging / step.staged)).is_relative_to(inside)):
            return f"the staged file of {step.path} is not in its staging dir ({step.staged})"
        if step.follow is not None and os.path.realpath(path) != step.follow:
            return f"{step.path} is no link to {step.follow}"
    return None


def _clean_up(journal: Path, staging: Path) -> None:
    """The journal first (durably), then the staging dir: one left without a journal is only
    a leftover, swept by the reconcile, never undone twice."""
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)
    shutil.rmtree(staging, ignore_errors=True)
