"""One operation at a time, on a deployment put in order first.

`exclusive` is what every changing operation runs under: the operation lock, then whatever a
crashed process left half-way settled (an interrupted restore, then an interrupted install,
then backups still `creating`).
`reconcile_if_idle` is the same settling for a read that follows a crash, never waiting for
a running operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, InsufficientDiskSpace
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.deploy.install import Installer
from gitrelease.deploy.restore_recovery import finish_restores, restores_pending
from gitrelease.state.space import is_disk_full

if TYPE_CHECKING:
    from gitrelease.index.store import Store

__all__ = ["audit_failure", "exclusive", "reconcile_if_idle"]


async def audit_failure(
    store: Store, actor: str, operation: str, target: str | None, outcome: str,
    error: GitReleaseError, detail: dict[str, Any],
) -> None:
    """Record a failed or refused operation in the audit. A row that cannot be written (on
    the full disk that was often the failure) never takes the place of the error it was
    recording: it is said with it."""
    try:
        await store.audit(actor, operation, target, outcome, detail)
    except Exception as trouble:
        error.also(f"the audit row could not be written: {trouble}")


@asynccontextmanager
async def exclusive(
    d: Deployment, operation: str, actor: str, target: str | None = None
) -> AsyncIterator[Store]:
    """The operation lock, with what a crash may have left behind put in order first."""
    from gitrelease.deploy.lock import OperationLock

    store = await d.index()
    lock = OperationLock(d.data_dir, operation, actor)
    try:
        await in_thread(lock.acquire)
    except GitReleaseError as exc:
        await audit_failure(store, actor, operation, target, "refused", exc,
                            {"code": exc.code, "reason": exc.message})
        raise
    except OSError as exc:  # not held (`acquire` lets go of what it took): nothing to release
        if not is_disk_full(exc):
            raise
        raise InsufficientDiskSpace(
            f"disk full while taking the operation lock in {d.data_dir}; nothing was changed",
            hint="free some disk space, then try again") from None
    try:
        await finish_restores(d, store)  # first: the reconcile sweeps staging dirs away
        await Installer(d).finish_interrupted(store)
        await d.backups(store).reconcile()
        yield store
    finally:
        lock.release()


async def reconcile_if_idle(d: Deployment, store: Store, *, always: bool = False) -> None:
    """Put things in order when no operation runs (never waiting for one): a list or a
    status may follow a crash, or a lost index that the archives can rebuild. Unless
    `always`, a cheap look (`upkeep`) first says whether there is anything to do."""
    from gitrelease.deploy.lock import OperationLock
    from gitrelease.state.upkeep import UpkeepWatch

    try:
        backup_dir = d.layout().backup_dir
        bad_layout: GitReleaseError | None = None
    except GitReleaseError as exc:
        # A bad backup_path: the backups cannot be put in order until it is mended. Reads
        # go on without; every operation refuses, naming the setting (its own reconcile
        # raises it); a recovery still settles interrupted installs, then names it.
        if not always:
            return
        backup_dir, bad_layout = None, exc
    if not always and backup_dir is not None:
        if d.upkeep is None:
            d.upkeep = UpkeepWatch()
        if await d.upkeep.pending(store, backup_dir) is None and \
                not await in_thread(restores_pending, d):
            return
    lock = OperationLock(d.data_dir, "reconcile", "system")
    try:
        await in_thread(lock.acquire)
    except GitReleaseError:
        return
    try:
        await finish_restores(d, store)
        await Installer(d).finish_interrupted(store)
        if bad_layout is not None:
            raise bad_layout
        await d.backups(store).reconcile()
    finally:
        lock.release()
