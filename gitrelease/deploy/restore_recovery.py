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
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

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


def _clean_up(journal: Path, staging: Path) -> None:
    """The journal first (durably), then the staging dir: one left without a journal is only
    a leftover, swept by the reconcile, never undone twice."""
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)
    shutil.rmtree(staging, ignore_errors=True)
