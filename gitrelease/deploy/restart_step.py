"""The last step of an install that moved the code: the restart, and the start it awaits.

Kept apart from `boot` (the bot's own start: confirmation and crash loops), which reaches the
rollback and so the installer; the installer needs only this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitrelease.core.errors import RestartFailed
from gitrelease.core.models import UpdateSession, UpdateStatus
from gitrelease.deploy.restart import new_pending, restart_bot, write_pending

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import Store

__all__ = ["restart_after_update"]


async def restart_after_update(
    d: Deployment, store: Store, session: UpdateSession, *, wanted: bool,
) -> UpdateStatus:
    """The last step of an install that moved the code: restart the bot, if configured.

    Returns the status the session ends this process in: RESTARTING when a restart was set
    off (the restarted bot confirms it), else COMPLETED with restart_needed.
    """
    moved = bool(session.to_commit) and session.to_commit != session.from_commit
    if moved:
        pending = new_pending(
            target_commit=session.to_commit or "", target_version=session.target_version,
            from_commit=session.from_commit or "", from_version=session.current_version,
            reason="install", session_id=session.id)
        # Written first: a restarted bot may run boot-check before this process goes on.
        await d.in_thread(write_pending, d.data_dir, pending)
    # The release now checked out may bring its own restart settings ([tool.gitrelease]).
    from gitrelease.core.settings import load_settings

    settings = (await d.in_thread(load_settings, d.root, d.data_dir)).settings
    session.restart_needed = True
    if not wanted:
        session.steps_completed.append("restart: skipped as asked; restart the bot to run "
                                       f"{session.target_version}")
        return UpdateStatus.COMPLETED
    if settings.restart_method == "none" or not settings.auto_restart:
        outcome = await d.in_thread(restart_bot, d.root, d.data_dir, settings,
                                     reason="install")
        session.steps_completed.append(f"restart: {outcome.detail}")
        return UpdateStatus.COMPLETED
    # Saved before the restart, so that a fast confirmation is never overwritten. Only a
    # move of the code waits for a confirmation; a package or config update is done here.
    session.status = UpdateStatus.RESTARTING if moved else session.status
    session.progress = 100
    session.steps_completed.append(
        f"restart: by {settings.restart_method}; waiting for the bot to confirm it runs "
        f"{session.target_version}" if moved else f"restart: by {settings.restart_method}")
    await store.add_step(session.id, "restart", "started")
    await store.save_session(session)
    if d.before_restart is not None:
        await d.before_restart()
    try:
        outcome = await d.in_thread(
            restart_bot, d.root, d.data_dir, settings, reason="install",
            environment={"GITRELEASE_SESSION": session.id,
                         "GITRELEASE_VERSION": session.target_version},
            log=d.data_dir / "update_logs" / f"{session.id}.log")
    except RestartFailed as exc:
        # The release is installed and checked; only the restart is missing, so the update
        # is not undone for it. The pending start stays for whoever restarts the bot.
        await store.add_step(session.id, "restart", "failed", exc.message)
        session.steps_completed[-1] = f"restart: failed: {exc.message}"
        session.warnings.append(f"the bot was not restarted ({exc.message}); restart it "
                                f"to run {session.target_version}")
        return UpdateStatus.COMPLETED
    await store.add_step(session.id, "restart", "done", outcome.detail)
    await store.audit(session.initiated_by, "restart", session.target_version, "requested",
                      {"session": session.id, "method": outcome.method,
                       "detail": outcome.detail})
    if not moved:
        session.restart_needed = False
        return UpdateStatus.COMPLETED
    return UpdateStatus.RESTARTING
