"""Restores a dead process left half-way, settled at the next start (under the lock).

A restore journals what it replaces before it replaces anything (`state.restore_journal`);
this finds those journals in the staging dirs beside the archives, before the reconcile
would sweep the dirs away as leftovers, and settles each (`state.restore_undo`): undone, or
kept if it got to the end. Each is recorded in the audit (action ``restore``, outcome
``undone`` or ``completed``) and said on the log (stderr for the CLI) of the command that
found it. Nothing a dead session started may still be writing while that is done: the
process groups its journal recorded are stopped first, as `recovery.finish_interrupted` does.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from gitrelease.core.errors import GitReleaseError

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import Store

__all__ = ["finish_restores"]

log = logging.getLogger(__name__)


async def finish_restores(d: Deployment, store: Store) -> list[str]:
    """Settle every restore a dead process left (the caller holds the lock); says what
    became of each. A restore that cannot be undone whole raises (`RestoreFailed`), its
    journal and copies kept: nothing else may run over a half-restored deployment."""
    from gitrelease.deploy.recovery import stop_children
    from gitrelease.state.archives import archive_store
    from gitrelease.state.restore_journal import interrupted
    from gitrelease.state.restore_undo import settle_interrupted

    try:
        scratch = archive_store(d.layout()).scratch  # where `restore` stages (`backups`)
    except GitReleaseError:
        return []  # a bad backup_path: said by what runs next, which needs it too
    found = await d.in_thread(interrupted, scratch)
    if not found:
        return []
    for session in await store.unfinished_sessions():
        await d.in_thread(stop_children, session, await store.steps(session.id))
    said = []
    for staging in found:
        try:
            settled = await d.in_thread(settle_interrupted, staging)
        except GitReleaseError as exc:
            try:
                await store.audit("system", "restore", None, "failed",
                                  {"code": exc.code, "recovery": exc.message})
            except Exception as trouble:  # never in the place of the error it records
                exc.also(f"the audit row could not be written: {trouble}")
            raise
        if settled is None:
            continue
        await d.in_thread(shutil.rmtree, staging, True)
        try:
            await store.audit("system", "restore", settled.backup,
                              "undone" if settled.undone else "completed",
                              {"recovery": settled.what, "safety_backup": settled.safety})
        except Exception as trouble:  # the files are settled; a lost row does not undo it
            log.warning("gitrelease: the audit row could not be written: %s", trouble)
        log.warning("gitrelease: %s", settled.what)
        said.append(settled.what)
    return said
