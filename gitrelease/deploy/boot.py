"""Around a start of the bot: the restart an update asks for, the confirmation, crash loops.

Every code move (an install, or a checkout made by hand and seen by the post-checkout hook)
leaves a `PendingStart`. The bot, once it is up, confirms it (`confirm_start`; the cog does
this on ready, a plain bot calls ``gitrelease confirm``); only then is an install that
restarted the bot COMPLETED. ``gitrelease boot-check`` runs before every start
(``ExecStartPre=``): it counts starts of the new version that never confirmed, and after
``max_boot_failures`` of them rolls back to the version before and marks the release bad.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, InvalidInput
from gitrelease.core.models import UpdateStatus, utcnow
from gitrelease.deploy.restart import (
    PendingStart,
    RestartOutcome,
    clear_pending,
    new_pending,
    read_pending,
    restart_bot,
    write_pending,
)

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment

__all__ = ["StartCheck", "boot_check", "confirm_start", "restart_after_checkout", "restart_now"]

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class StartCheck:
    """What `confirm_start` or `boot_check` found and did."""

    # nothing_pending | confirmed | mismatch | stale | counted | rolled_back | rollback_failed
    action: str
    detail: str
    pending: PendingStart | None = None
    rollback_session: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pending"] = self.pending.to_dict() if self.pending else None
        return data


async def restart_after_checkout(d: Deployment, old: str, new: str) -> RestartOutcome:
    """The post-checkout hook: a checkout made by hand moved HEAD from `old` to `new`."""
    for name, value in (("old", old), ("new", new)):
        if not _COMMIT.match(value or ""):
            raise InvalidInput(name, value, "a full commit id, as git passes to the hook")
    snap = await d.in_thread(d.snapshot)
    if snap.current.commit != new:
        raise InvalidInput("new", new, f"HEAD ({snap.current.commit[:12]})",
                           reason="HEAD is not where the checkout says it went")
    before = next((r.tag for r in snap.releases if r.commit == old), old[:12])
    pending = new_pending(target_commit=new, target_version=snap.current.text,
                          from_commit=old, from_version=before, reason="checkout",
                          session_id=None)
    await d.in_thread(write_pending, d.data_dir, pending)
    store = await d.index()
    try:
        outcome = await d.in_thread(
            restart_bot, d.root, d.data_dir, d.settings, reason="checkout",
            environment={"GITRELEASE_VERSION": snap.current.text})
    except GitReleaseError as exc:
        await store.audit("post-checkout hook", "restart", snap.current.text, "failed",
                          {"from": old, "to": new, "reason": exc.message})
        raise
    await store.audit("post-checkout hook", "restart", snap.current.text,
                      "requested" if outcome.performed else "not_performed",
                      {"from": old, "to": new, "method": outcome.method,
                       "detail": outcome.detail})
    return outcome


async def confirm_start(d: Deployment, *, actor: str = "bot") -> StartCheck:
    """The bot is up: record the version it came up at and end the session waiting on it."""
    pending = await d.in_thread(read_pending, d.data_dir)
    if pending is None:
        return StartCheck("nothing_pending", "no update or checkout is waiting for a start")
    head = await d.in_thread(d.repo.head_commit)
    store = await d.index()
    session = await store.get_session(pending.session_id) if pending.session_id else None
    if head == pending.target_commit:
        action, detail = "confirmed", (f"the bot came up at {pending.target_version} "
                                       f"after {pending.starts or 1} start(s)")
        if session is not None:
            if session.status is UpdateStatus.RESTARTING:
                session.status = UpdateStatus.COMPLETED
                session.completed_at = utcnow()
            session.restart_needed = False
            session.steps_completed.append(f"restart: confirmed: {detail}")
    else:
        action, detail = "mismatch", (
            f"the bot came up at {head[:12]}, not at {pending.target_version} "
            f"({pending.target_commit[:12]}): HEAD moved since")
        if session is not None and session.status is UpdateStatus.RESTARTING:
            session.status = UpdateStatus.FAILED
            session.completed_at = utcnow()
            session.error_message = detail
    if session is not None:
        await store.add_step(session.id, "confirm", "done", detail)
        await store.save_session(session)
    await store.audit(actor, "confirm", pending.target_version, action,
                      {"session": pending.session_id, "commit": head})
    await d.in_thread(clear_pending, d.data_dir)
    return StartCheck(action, detail, pending)


async def boot_check(d: Deployment) -> StartCheck:
    """Before a start: count it, and roll back a version that keeps failing to come up."""
    pending = await d.in_thread(read_pending, d.data_dir)
    if pending is None:
        return StartCheck("nothing_pending", "no update is waiting for its first start")
    head = await d.in_thread(d.repo.head_commit)
    if head != pending.target_commit:
        await d.in_thread(clear_pending, d.data_dir)
        return StartCheck("stale", f"HEAD is {head[:12]}, not the pending "
                                   f"{pending.target_version}; nothing to count", pending)
    limit = d.settings.max_boot_failures
    if pending.starts < limit:
        pending.starts += 1
        await d.in_thread(write_pending, d.data_dir, pending)
        return StartCheck("counted", f"start {pending.starts} of {pending.target_version} "
                                     f"(rolled back after {limit} starts that never "
                                     "confirmed)", pending)
    return await _roll_back_crash_loop(d, pending, limit)


async def _roll_back_crash_loop(d: Deployment, pending: PendingStart, limit: int) -> StartCheck:
    from gitrelease.deploy.quarantine import mark_bad
    from gitrelease.deploy.rollback import RollbackOptions
    from gitrelease.deploy.updates import rollback_to_version

    reason = (f"{pending.target_version} started {pending.starts} times without confirming "
              f"(max_boot_failures = {limit})")
    snap = await d.in_thread(d.snapshot)
    tag = next((r.tag for r in snap.releases if r.commit == pending.target_commit), None)
    if tag is not None:
        await d.in_thread(mark_bad, d.data_dir, tag, pending.target_commit, reason,
                           pending.session_id or "boot-check")
    if not pending.from_commit:
        return StartCheck("rollback_failed", f"{reason}, and there is no earlier version to "
                                             "roll back to", pending)
    store = await d.index()
    session = await store.get_session(pending.session_id) if pending.session_id else None
    try:
        # Only the update's own pre-update backup is restored; a checkout by hand, or an
        # install without a backup, goes back in code alone: an older backup would lose data.
        rollback = await rollback_to_version(
            d, pending.from_version, RollbackOptions(confirm=True, force=True, restart=False,
                                                  initiated_by="boot-check"),
            commit=pending.from_commit, backup_id=session.backup_id if session else None)
    except GitReleaseError as exc:
        # The bot still starts (a refused ExecStartPre would keep it down); the next start
        # tries again, and says why this one could not.
        return StartCheck("rollback_failed", f"{reason}, but the rollback was refused: "
                                             f"{exc.message}", pending)
    if session is not None:
        session = await store.get_session(session.id) or session
        if session is not None:
            session.status = UpdateStatus.FAILED
            session.completed_at = session.completed_at or utcnow()
            session.error_message = f"{reason}; rolled back to {pending.from_version} " \
                                    f"(session {rollback.id})"
            await store.add_step(session.id, "boot-check", "done", session.error_message)
            await store.save_session(session)
    await store.audit("boot-check", "rollback", pending.from_version, "completed",
                      {"reason": reason, "session": rollback.id, "bad": tag})
    await d.in_thread(clear_pending, d.data_dir)
    return StartCheck("rolled_back", f"{reason}; rolled back to {pending.from_version}"
                      + (f" and marked {tag} bad" if tag else ""), pending, rollback.id)


async def restart_now(d: Deployment, *, actor: str = "system") -> RestartOutcome:
    """Restart the bot now by restart_method, asked for by a person; audited."""
    outcome = await d.in_thread(restart_bot, d.root, d.data_dir, d.settings, reason="asked")
    store = await d.index()
    await store.audit(actor, "restart", None,
                      "requested" if outcome.performed else "not_performed",
                      {"method": outcome.method, "detail": outcome.detail})
    return outcome
