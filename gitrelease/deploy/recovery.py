"""Getting a deployment whole again: undoing a failed install, settling one a crash cut off.

`undo` runs right after a step failed; `finish_interrupted` runs at the next start (under
the lock) for the sessions a dead process left, reading their journal to decide between
finishing and undoing. Rollbacks are undone by the same `undo`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitrelease.core.errors import GitReleaseError, UpdateInProgress
from gitrelease.core.models import UpdateSession, UpdateStatus, UpdateType, utcnow
from gitrelease.deploy.install_steps import CHANGE_STEPS, DATA_STEPS, MOVES_CODE
from gitrelease.deploy.release_commands import run_release_command

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import JournalStep, Store

__all__ = ["finish_interrupted", "put_back_local_changes", "restore_head", "undo"]


async def undo(
    d: Deployment, store: Store, session: UpdateSession, branch: str | None,
    started: list[str], reason: str, *, blame: bool = True,
) -> str:
    """After a failure past the checkout: back to where the install started, and why."""
    from gitrelease.deploy.quarantine import mark_bad

    install = session.update_type is not UpdateType.ROLLBACK
    release = install and session.target_tag is not None and "checkout" in started \
        and blame
    if release and session.to_commit and session.target_tag:
        await d.in_thread(mark_bad, d.data_dir, session.target_tag,
                          session.to_commit, reason, session.id, d.secrets)
    stash = await _stash_of(store, session)
    mended, locked = await _mend_checkout(d, store, session, started)
    if locked:  # git's index is locked, and not by the dead checkout: nothing can move
        return f"left as it is: {mended}"
    # Edits that conflicted with the release are never left half-merged in a tracked file.
    if install and not d.settings.rollback_on_failure and started[-1:] != ["carry"]:
        return ("left as it is because rollback_on_failure is off"
                + ("; the release is marked bad" if release else "")
                + (f"; the local changes from before are in git stash ({stash[:12]})"
                   if stash else ""))
    if stash is not None:
        parts = [await d.in_thread(put_back_local_changes, d, stash, session.from_commit,
                                   branch, "carry" in started)]
    else:
        parts = [await d.in_thread(restore_head, d, session.from_commit, branch)]
    if mended is not None:
        parts.insert(0, mended)
    if {"packages", "dependencies"}.intersection(started):
        parts.append(await _restore_packages(d, store, session))
    if DATA_STEPS.intersection(started):
        parts.append(await _restore_data(d, store, session, "all"))
    elif "config" in started:
        parts.append(await _restore_data(d, store, session, "config"))
    if release:
        parts.append("the release is marked bad")
    return ("rolled back: " if install else "undone: ") + "; ".join(parts)


async def _mend_checkout(
    d: Deployment, store: Store, session: UpdateSession, started: list[str]
) -> tuple[str | None, bool]:
    """A checkout cut off half-way (HEAD still where it started, files of both releases in
    the tree, maybe git's index.lock left): the tree put back at the starting commit
    (`git.switch.put_back`). Says what was done (None: there was no such checkout), and
    whether git's index is locked by someone else, so that nothing else may be tried.

    Only where git had started: its process group is journalled before it may start
    (`tether`), so a checkout step without that note never ran git, and what differs in the
    tree from HEAD is the operator's (an edit the step refused, or one made since the
    crash), never mended away."""
    from gitrelease.git.switch import Before, clear_stale_lock, put_back

    old, new = session.from_commit, session.to_commit
    if "checkout" not in started or "checkout" in session.steps_completed or \
            old is None or new is None or old == new:
        return None, False
    journal = await store.steps(session.id)
    notes = {s.step: s.detail for s in journal if s.state == "note"}  # the last of each
    if "group:checkout" not in notes:
        return None, False  # git never started
    if await d.in_thread(d.repo.head_commit) != old:
        return None, False  # git got as far as moving HEAD: the tree is the release's
    try:
        held = await d.in_thread(clear_stale_lock, d.repo, session.started_at)
        if held is not None:
            return held, True
        before = Before.parse(notes.get("checkout:kept"))
        return await d.in_thread(put_back, d.repo, old, new, before), False
    except GitReleaseError as exc:
        return f"the cut-off checkout could NOT be undone: {exc.message}", False


async def _restore_packages(d: Deployment, store: Store, session: UpdateSession) -> str:
    """Back to the `pip freeze` taken before the packages step."""
    from gitrelease.deploy.packages import restore_freeze

    notes = [s.detail for s in await store.steps(session.id) if s.step == "freeze"]
    if not notes:
        return "the packages could NOT be put back: no pip freeze was saved"
    layout = d.layout()
    try:
        await d.in_thread(restore_freeze, d.python_executable(), notes[-1],
                          log=layout.logs_dir / f"{session.id}.log",
                          timeout=d.settings.pip_timeout)
    except GitReleaseError as exc:
        return f"the packages could NOT be put back: {exc.message}"
    return "packages put back as they were"


async def _restore_data(
    d: Deployment, store: Store, session: UpdateSession, restore_type: str = "all"
) -> str:
    """Put the pre-update backup back (`restore_type` of it) after a step changed data."""
    from gitrelease.deploy.restore import RestoreOptions, restore

    if session.backup_id is None:
        return "the data could NOT be restored: no pre-update backup was taken"
    service = d.backups(store)
    try:
        backup = await service.get(session.backup_id)
        await restore(service, backup,
                      RestoreOptions(confirm=True, restore_type=restore_type),
                      await d.release_point())
    except GitReleaseError as exc:
        return f"the data could NOT be restored from {session.backup_id}: {exc.message}"
    return f"{'config' if restore_type == 'config' else 'data'} restored from " \
           f"{session.backup_id}"


async def _stash_of(store: Store, session: UpdateSession) -> str | None:
    """The stash of the local changes an operation carried (journalled before the reset)."""
    return next((s.detail for s in reversed(await store.steps(session.id))
                 if s.step == "stash" and s.state == "note"), None)


def put_back_local_changes(
    d: Deployment, stash: str, commit: str | None, branch: str | None, carried: bool
) -> str:
    """Undo a carry (`local_changes`): HEAD back to `commit`, and the edits exactly as they
    were, from `stash`, which stays in `git stash list` until they are."""
    repo = d.repo
    kept = f"the local changes are kept in git stash ({stash[:12]})"
    try:
        repo.stash_store(stash, "gitrelease: local changes kept while undoing")
        if commit is None:
            return f"HEAD not restored: the starting commit is unknown; {kept}"
        if repo.head_commit() == commit and repo.matches_stash(stash):
            repo.stash_drop(stash)
            return "HEAD did not move; the local changes were never moved"
        dirty = repo.dirty_files()
        if dirty and not carried:
            return (f"HEAD not restored: tracked files were changed meanwhile "
                    f"({', '.join(dirty[:10])}), left as they are; {kept}")
        repo.discard_tracked_changes()  # the release's files, or the edits carried onto it
        head = restore_head(d, commit, branch)
        if repo.head_commit() != commit:
            return f"{head}; {kept}"
        repo.stash_restore(stash)
        repo.stash_drop(stash)
    except GitReleaseError as exc:
        return f"the local changes could NOT be put back ({exc.message}); {kept}"
    return f"{head}; the local changes put back as they were"


def restore_head(d: Deployment, commit: str | None, branch: str | None) -> str:
    """Put HEAD back where the install found it; says what it did, for the journal."""
    if commit is None:
        return "HEAD not restored: the starting commit is unknown"
    try:
        if d.repo.head_commit() == commit and d.repo.head_branch() == branch:
            dirty = d.repo.dirty_files()
            if dirty:
                return (f"HEAD did not move, but tracked files differ from it: "
                        f"{', '.join(dirty[:10])} (left as they are; see git status)")
            return "HEAD did not move; nothing was changed"
        d.repo.restore_head(commit, branch)
        return f"HEAD restored to {branch or commit[:12]}"
    except GitReleaseError as exc:
        return f"HEAD could NOT be restored to {commit[:12]}: {exc.message}"


async def finish_interrupted(d: Deployment, store: Store) -> None:
    """Bring sessions left by a process that died to an end (called under the lock).

    Finished if HEAD reached the target, every step up to it completed and the health
    check passes; otherwise rolled back. Never left half-way.
    """
    for session in await store.unfinished_sessions():
        journal = await store.steps(session.id)
        last = next((s.step for s in reversed(journal) if s.state != "note"), "start")
        # Before anything is put back: nothing the dead process started may still write.
        await d.in_thread(stop_children, session, journal)
        if DATA_STEPS.intersection(s.step for s in journal if s.state == "started"):
            await _settle_databases(d, store, session)
        status, what = await _settle(d, store, session, journal)
        session.status = status
        session.completed_at = utcnow()
        if status is UpdateStatus.COMPLETED:
            session.progress = 100
            session.restart_needed = True
            session.steps_completed.append(f"recovery: {what}")
            stash = await _stash_of(store, session)
            if stash is not None:  # carried over: the stash entry is no longer needed
                await d.in_thread(d.repo.stash_drop, stash)
        else:
            session.error_message = f"interrupted during {last!r}: {what}"
        await store.add_step(session.id, "recovery", "done", what)
        await store.save_session(session)


def stop_children(session: UpdateSession, journal: list[JournalStep]) -> None:
    """Stop each process group the session journalled (a release's command, the checkout's
    git) that still runs; UpdateInProgress if one cannot be stopped, for then nothing may be
    restored under it."""
    from gitrelease.core.tether import Group, stop

    for entry in journal:
        group = Group.parse(entry.detail) if entry.step.startswith("group:") and \
            entry.state == "note" else None
        left = stop(group) if group is not None else None
        if left is not None:
            raise UpdateInProgress(
                f"the {entry.step.removeprefix('group:')} of the interrupted session "
                f"{session.id} still runs as {left} and could not be stopped",
                hint=f"stop it (kill -KILL -- -{group.pgid}), then run this again")


async def _settle_databases(d: Deployment, store: Store, session: UpdateSession) -> None:
    """Roll back a write the dead process left half-done in a database it was writing (its
    journal, `settle_journal`) before anything reads or restores it. A database damaged
    beyond that is restored by the undo that follows, from the session's backup."""
    from gitrelease.state.snapshot import settle_journal

    if session.backup_id is None:
        return
    backup = await store.get_backup(session.backup_id)
    if backup is None:
        return
    layout = d.layout()
    for entry in (await store.backup_manifest(backup)).get("files", []):
        if entry.get("kind") != "database":
            continue
        try:
            live = layout.live_path(entry["path"])
            await d.in_thread(settle_journal, live)
        except (GitReleaseError, ValueError, KeyError):
            continue  # the restore from the backup below writes it whole


async def _settle(
    d: Deployment, store: Store, session: UpdateSession, journal: list[JournalStep]
) -> tuple[UpdateStatus, str]:
    started = [s.step for s in journal if s.state == "started"]
    done = {s.step for s in journal if s.state == "done"}
    branch = next((s.detail.removeprefix("branch=") or None for s in journal
                   if s.step == "origin"), None)
    head = await d.in_thread(d.repo.head_commit)
    intended = session.to_commit or session.from_commit
    changes = [name for name in started if name in CHANGE_STEPS]
    if not changes:
        return UpdateStatus.FAILED, "the process ended before anything changed"
    if head not in (session.from_commit, intended):
        return UpdateStatus.FAILED, (
            f"the process ended and HEAD has since moved to {head[:12]} (it started from "
            f"{(session.from_commit or '?')[:12]}); left as it is")
    # A health check cut off is simply run again; any other planned step that did not
    # finish (or never began) means the update is not whole.
    planned = [name for s in journal if s.step.startswith("plan") and s.state == "note"
               for name in s.detail.split(",") if name]
    unfinished = [name for name in dict.fromkeys(started + planned)
                  if name not in done and name != "health_check"]
    if session.update_type in MOVES_CODE and "checkout" in started and not any(
            s.step == "plan:release" for s in journal):
        unfinished.append("the release's own commands")
    if head == intended and not unfinished and "recovery" not in done:
        try:
            if "health_check" not in done and session.update_type in MOVES_CODE:
                await _health_check_after_crash(d, session)
            return UpdateStatus.COMPLETED, f"everything up to {session.target_version} " \
                                           "had been done"
        except GitReleaseError as exc:
            started.append("health_check")
            reason = exc.message
    else:
        reason = (f"the process ended before {unfinished[0]!r} was done" if unfinished
                  else "the process ended while undoing")
        # A crash says nothing against the release: it is not marked bad for it.
        undone = await undo(d, store, session, branch, started, reason, blame=False)
        return UpdateStatus.FAILED, f"{reason}; {undone}"
    undone = await undo(d, store, session, branch, started, reason)
    return UpdateStatus.FAILED, f"{reason}; {undone}"


async def _health_check_after_crash(d: Deployment, session: UpdateSession) -> None:
    """The health check of a release whose install was cut off after its last step."""
    from gitrelease.core.settings import command_argv, load_settings

    loaded = await d.in_thread(load_settings, d.root, d.data_dir)
    target = loaded.settings
    if command_argv(target.health_check_command):
        await d.in_thread(run_release_command, d, session, "health check",
                          target.health_check_command, target.health_check_timeout)
