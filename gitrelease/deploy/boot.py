"""Around a start of the bot: the restart an update asks for, the confirmation, crash loops.

Every code move (an install, or a checkout made by hand and seen by the post-checkout hook)
leaves a `PendingStart`; a checkout by hand is recorded as an update session of its own. The
bot, once it is up, confirms it (`confirm_start`; the cog does this at load, a plain bot calls
``gitrelease confirm``); only then is an install that restarted the bot COMPLETED.
``gitrelease boot-check`` runs before every start (``ExecStartPre=``). How it treats a start
is the setting ``start_confirmation``:

- ``required``: it counts the starts of the new version that never confirmed, and after
  ``max_boot_failures`` of them rolls back to the version before and marks the release bad;
- ``off``: the bot is not expected to confirm. A passing ``health_check_command`` confirms
  the start, a failing one counts toward the rollback; with no health check the start
  itself is taken, and nothing is counted;
- ``auto`` (the default): ``required`` once this deployment has ever confirmed a start
  (``data/confirms_starts``), else ``off``. A bot that never confirms is never rolled back
  for the confirmations it was never going to send.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, InvalidInput
from gitrelease.core.models import UpdateSession, UpdateStatus, UpdateType, utcnow
from gitrelease.deploy.restart import (
    PendingStart,
    RestartOutcome,
    clear_pending,
    confirms_starts,
    mark_confirms_starts,
    new_pending,
    read_pending,
    restart_bot,
    write_pending,
)

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import Store

__all__ = ["StartCheck", "boot_check", "confirm_start", "restart_after_checkout", "restart_now"]

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
HOOK_ACTOR = "post-checkout hook"


@dataclass(frozen=True)
class StartCheck:
    """What `confirm_start` or `boot_check` found and did."""

    # nothing_pending | confirmed | accepted | mismatch | stale | counted | rolled_back |
    # rollback_failed
    action: str
    detail: str
    pending: PendingStart | None = None
    rollback_session: str | None = None
    # How boot-check took this start: required (the bot must confirm), health_check (the
    # health check confirms it) or start (taken as it is); "" where it did not decide.
    confirmation: str = ""
    # Counted starts: how many more that fail before boot-check rolls back (0: it has).
    rollback_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pending"] = self.pending.to_dict() if self.pending else None
        return data


async def restart_after_checkout(d: Deployment, old: str, new: str) -> RestartOutcome:
    """The post-checkout hook: a checkout made by hand moved HEAD from `old` to `new`.

    Recorded as an update session of its own (initiated by the hook), which the restarted
    bot's confirmation completes like an install's. Recording it never fails the checkout.
    """
    for name, value in (("old", old), ("new", new)):
        if not _COMMIT.match(value or ""):
            raise InvalidInput(name, value, "a full commit id, as git passes to the hook")
    snap = await d.in_thread(d.snapshot)
    if snap.current.commit != new:
        raise InvalidInput("new", new, f"HEAD ({snap.current.commit[:12]})",
                           reason="HEAD is not where the checkout says it went")
    was = next((r for r in snap.releases if r.commit == old), None)
    before = was.tag if was else old[:12]
    store = await d.index()
    await _supersede(store, await d.in_thread(read_pending, d.data_dir), snap.current.text)
    restarts = d.settings.restart_method != "none" and d.settings.auto_restart
    session = await _record_checkout(store, snap, old, new, str(was.version) if was else before,
                                     restarts)
    pending = new_pending(target_commit=new, target_version=snap.current.text,
                          from_commit=old, from_version=before, reason="checkout",
                          session_id=session.id if session else None)
    await d.in_thread(write_pending, d.data_dir, pending)
    try:
        outcome = await d.in_thread(
            restart_bot, d.root, d.data_dir, d.settings, reason="checkout",
            environment={"GITRELEASE_VERSION": snap.current.text,
                         **({"GITRELEASE_SESSION": session.id} if session else {})})
    except GitReleaseError as exc:
        await store.audit(HOOK_ACTOR, "restart", snap.current.text, "failed",
                          {"from": old, "to": new, "reason": exc.message})
        await _end_checkout(store, session, f"restart: failed: {exc.message}",
                            warning=f"the bot was not restarted ({exc.message}); restart it "
                                    f"to run {snap.current.text}")
        raise
    await store.audit(HOOK_ACTOR, "restart", snap.current.text,
                      "requested" if outcome.performed else "not_performed",
                      {"from": old, "to": new, "method": outcome.method,
                       "detail": outcome.detail,
                       "session": session.id if session else None})
    if not outcome.performed:
        await _end_checkout(store, session, f"restart: {outcome.detail}")
    return outcome


async def _supersede(store: Store, earlier: PendingStart | None, version: str) -> None:
    """An update still waiting for its start will not get it: HEAD moved on by hand."""
    waiting = (await store.get_session(earlier.session_id)
               if earlier is not None and earlier.session_id else None)
    if waiting is None or waiting.status is not UpdateStatus.RESTARTING:
        return
    waiting.status = UpdateStatus.FAILED
    waiting.completed_at = utcnow()
    waiting.error_message = (f"a checkout by hand moved HEAD to {version} before the bot "
                             f"confirmed {waiting.target_version}")
    with suppress(GitReleaseError, OSError, sqlite3.Error):
        await store.save_session(waiting)


async def _record_checkout(
    store: Store, snap: Any, old: str, new: str, from_version: str, restarts: bool,
) -> UpdateSession | None:
    """The session of a checkout by hand: RESTARTING while the restarted bot has yet to
    confirm, COMPLETED (restart needed) when nothing restarts it. None if it could not be
    written: the history misses it, the checkout and its restart go on."""
    now = utcnow()
    session = UpdateSession(
        id=f"chk_{now:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}", update_type=UpdateType.BOT,
        status=UpdateStatus.RESTARTING if restarts else UpdateStatus.COMPLETED, progress=100,
        started_at=now, completed_at=None if restarts else now,
        target_version=snap.current.text, current_version=from_version, error_message=None,
        steps_completed=[f"checkout: by hand, {old[:12]} -> {new[:12]} (seen by the "
                         "post-checkout hook)"],
        total_steps=2, rollback_available=False, initiated_by=HOOK_ACTOR, from_commit=old,
        to_commit=new, target_tag=snap.current.tag, restart_needed=True)
    try:
        await store.create_session(session)
    except (GitReleaseError, OSError, sqlite3.Error):
        return None
    return session


async def _end_checkout(
    store: Store, session: UpdateSession | None, step: str, *, warning: str | None = None,
) -> None:
    """A checkout's session whose restart did not happen: done, the restart still needed."""
    if session is None:
        return
    session.status = UpdateStatus.COMPLETED
    session.completed_at = session.completed_at or utcnow()
    session.steps_completed.append(step)
    if warning:
        session.warnings.append(warning)
    with suppress(GitReleaseError, OSError, sqlite3.Error):
        await store.save_session(session)


async def confirm_start(d: Deployment, *, actor: str = "bot") -> StartCheck:
    """The bot is up: record the version it came up at and end the session waiting on it.

    Also notes that this bot confirms its starts, which `start_confirmation = auto` reads."""
    with suppress(OSError):  # a note for later starts: never a reason to fail this one
        await d.in_thread(mark_confirms_starts, d.data_dir, actor)
    pending = await d.in_thread(read_pending, d.data_dir)
    if pending is None:
        return StartCheck("nothing_pending", "no update or checkout is waiting for a start")
    head = await d.in_thread(d.repo.head_commit)
    if head == pending.target_commit:
        return await _settle(d, pending, actor, "confirmed",
                             f"the bot came up at {pending.target_version} after "
                             f"{pending.starts or 1} start(s)")
    store = await d.index()
    session = await store.get_session(pending.session_id) if pending.session_id else None
    detail = (f"the bot came up at {head[:12]}, not at {pending.target_version} "
              f"({pending.target_commit[:12]}): HEAD moved since")
    if session is not None:
        if session.status is UpdateStatus.RESTARTING:
            session.status = UpdateStatus.FAILED
            session.completed_at = utcnow()
            session.error_message = detail
        await store.add_step(session.id, "confirm", "done", detail)
        await store.save_session(session)
    await store.audit(actor, "confirm", pending.target_version, "mismatch",
                      {"session": pending.session_id, "commit": head})
    await d.in_thread(clear_pending, d.data_dir)
    return StartCheck("mismatch", detail, pending)


async def _settle(
    d: Deployment, pending: PendingStart, actor: str, action: str, detail: str,
    confirmation: str = "",
) -> StartCheck:
    """The start is good (confirmed, or taken without a confirmation): the session waiting
    on it completes and nothing is pending any more."""
    store = await d.index()
    session = await store.get_session(pending.session_id) if pending.session_id else None
    if session is not None:
        if session.status is UpdateStatus.RESTARTING:
            session.status = UpdateStatus.COMPLETED
            session.completed_at = utcnow()
        session.restart_needed = False
        session.steps_completed.append(f"restart: {action}: {detail}")
        await store.add_step(session.id, "confirm", "done", detail)
        await store.save_session(session)
    await store.audit(actor, "confirm", pending.target_version, action,
                      {"session": pending.session_id, "commit": pending.target_commit})
    await d.in_thread(clear_pending, d.data_dir)
    return StartCheck(action, detail, pending, confirmation=confirmation)


async def boot_check(d: Deployment) -> StartCheck:
    """Before a start: take it as `start_confirmation` says, and roll back a version that
    keeps failing to come up."""
    pending = await d.in_thread(read_pending, d.data_dir)
    if pending is None:
        return StartCheck("nothing_pending", "no update is waiting for its first start")
    head = await d.in_thread(d.repo.head_commit)
    if head != pending.target_commit:
        await d.in_thread(clear_pending, d.data_dir)
        return StartCheck("stale", f"HEAD is {head[:12]}, not the pending "
                                   f"{pending.target_version}; nothing to count", pending)
    how, why = await d.in_thread(_confirmation, d)
    if how == "start":
        return await _settle(
            d, pending, "boot-check", "accepted",
            f"{pending.target_version} starts without a confirmation ({why}, and no "
            "health_check_command is set): nothing counted toward a rollback", "start")
    if how == "health_check":
        failure = await d.in_thread(_health_check, d, pending)
        if failure is None:
            return await _settle(
                d, pending, "boot-check", "confirmed",
                f"the health check of {pending.target_version} passed; it confirms the "
                f"start ({why})", "health_check")
        return await _count(d, pending, how, failure)
    return await _count(d, pending, how, "")


def _confirmation(d: Deployment) -> tuple[str, str]:
    """How this start is confirmed: required, health_check or start; and why not required."""
    from gitrelease.core.settings import command_argv

    setting = d.settings.start_confirmation
    if setting == "required" or (setting == "auto" and confirms_starts(d.data_dir)):
        return "required", ""
    why = ("start_confirmation is off" if setting == "off" else
           "start_confirmation is auto and this bot has never confirmed a start")
    return ("health_check" if command_argv(d.settings.health_check_command) else "start"), why


def _health_check(d: Deployment, pending: PendingStart) -> str | None:
    """Run health_check_command as an install does; None if it passed, else why not."""
    from gitrelease.core.settings import command_argv
    from gitrelease.deploy.command_runner import run_command

    try:
        logs = d.layout().logs_dir
    except GitReleaseError:
        logs = d.data_dir / "update_logs"
    try:
        run_command(
            "health check", command_argv(d.settings.health_check_command), cwd=d.root,
            timeout=d.settings.health_check_timeout,
            log=logs / f"{pending.session_id or 'boot-check'}.log", secrets=d.secrets,
            environment={
                "GITRELEASE_SESSION_ID": pending.session_id or "",
                "GITRELEASE_ROOT": str(d.root),
                "GITRELEASE_DATA_DIR": str(d.data_dir),
                "GITRELEASE_FROM_COMMIT": pending.from_commit,
                "GITRELEASE_TO_COMMIT": pending.target_commit,
                "GITRELEASE_FROM_VERSION": pending.from_version,
                "GITRELEASE_TO_VERSION": pending.target_version,
                "GITRELEASE_BOOT_CHECK": "1",
            })
    except GitReleaseError as exc:
        return exc.message
    return None


async def _count(d: Deployment, pending: PendingStart, how: str, failure: str) -> StartCheck:
    """One more start that did not (or, by its health check, will not) come up well; the
    rollback once there are max_boot_failures of them."""
    limit = d.settings.max_boot_failures
    # Unconfirmed starts are known only at the next boot-check, a failed health check now:
    # both roll back after `limit` failures, before the next start of the failing version.
    failed = pending.starts + (1 if how == "health_check" else 0)
    if failed >= limit:
        return await _roll_back_crash_loop(d, pending, limit, how, failure)
    pending.starts += 1
    await d.in_thread(write_pending, d.data_dir, pending)
    left = limit - failed
    kind = "failed health check" if how == "health_check" else "unconfirmed start"
    then = (f"will roll back after {left} more {kind}{'s' if left != 1 else ''}, to "
            f"{pending.from_version}" if pending.from_commit else
            f"would roll back after {left} more {kind}{'s' if left != 1 else ''}, but there "
            "is no earlier version to go back to")
    counted = f"start {pending.starts} of {pending.target_version}"
    said = (f"the health check of {pending.target_version} failed ({failure}); {counted}"
            if failure else f"{counted}, waiting for the bot to confirm it")
    store = await d.index()
    if pending.session_id and await store.get_session(pending.session_id) is not None:
        await store.add_step(pending.session_id, "boot-check", "failed" if failure else "done",
                             said)
    return StartCheck("counted", f"{said}; {then} (max_boot_failures = {limit})",
                      pending, confirmation=how, rollback_after=left)


async def _roll_back_crash_loop(
    d: Deployment, pending: PendingStart, limit: int, how: str, failure: str,
) -> StartCheck:
    from gitrelease.deploy.quarantine import mark_bad
    from gitrelease.deploy.rollback import RollbackOptions
    from gitrelease.deploy.updates import rollback_to_version

    reason = (f"the health check of {pending.target_version} failed {limit} time(s) in a row "
              f"(max_boot_failures = {limit}; the last: {failure})" if failure
              else f"{pending.target_version} started {pending.starts} times without "
                   f"confirming (max_boot_failures = {limit})")
    snap = await d.in_thread(d.snapshot)
    tag = next((r.tag for r in snap.releases if r.commit == pending.target_commit), None)
    if tag is not None:
        await d.in_thread(mark_bad, d.data_dir, tag, pending.target_commit, reason,
                           pending.session_id or "boot-check", d.secrets)
    if not pending.from_commit:
        return StartCheck("rollback_failed", f"{reason}, and there is no earlier version to "
                                             "roll back to", pending, confirmation=how)
    store = await d.index()
    session = await store.get_session(pending.session_id) if pending.session_id else None
    carried = session is not None and "carry" in session.steps_completed
    try:
        # Only the update's own pre-update backup is restored; a checkout by hand, or an
        # install without a backup, goes back in code alone: an older backup would lose data.
        rollback = await rollback_to_version(
            d, pending.from_version, RollbackOptions(confirm=True, force=True, restart=False,
                                                  initiated_by="boot-check",
                                                  # edits the install carried stay edits;
                                                  # others refuse, as a plain rollback does
                                                  keep_local_changes=carried),
            commit=pending.from_commit, backup_id=session.backup_id if session else None)
    except GitReleaseError as exc:
        # The bot still starts (a refused ExecStartPre would keep it down); the next start
        # tries again, and says why this one could not.
        return StartCheck("rollback_failed", f"{reason}, but the rollback was refused: "
                                             f"{exc.message}", pending, confirmation=how)
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
                      + (f" and marked {tag} bad" if tag else ""), pending, rollback.id,
                      confirmation=how, rollback_after=0)


async def restart_now(d: Deployment, *, actor: str = "system") -> RestartOutcome:
    """Restart the bot now by restart_method, asked for by a person; audited."""
    outcome = await d.in_thread(restart_bot, d.root, d.data_dir, d.settings, reason="asked")
    store = await d.index()
    await store.audit(actor, "restart", None,
                      "requested" if outcome.performed else "not_performed",
                      {"method": outcome.method, "detail": outcome.detail})
    return outcome
