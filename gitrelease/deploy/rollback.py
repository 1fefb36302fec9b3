"""Rollback: back to an older release, code and data together.

The target is a version or tag, ``previous`` (what ran before the current release, from the
session history) or ``last_backup`` (the release the newest backup was taken at). Its data
comes from the newest completed backup taken at that commit. Steps: preflight, a
pre-rollback backup, checkout, verify, restore; a failure after the checkout undoes them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import (
    ConfirmationRequired,
    GitReleaseError,
    InvalidInput,
    NoSuchVersion,
    TargetChanged,
    VerificationFailed,
)
from gitrelease.core.models import (
    Backup,
    BackupStatus,
    BackupType,
    Progress,
    UpdateSession,
    UpdateStatus,
    UpdateType,
    utcnow,
)
from gitrelease.core.options import options_from
from gitrelease.deploy import local_changes
from gitrelease.deploy.install import Installer
from gitrelease.deploy.journal import StepRunner
from gitrelease.deploy.local_changes import Carry

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import Store

__all__ = ["SPECIAL_TARGETS", "Rollback", "RollbackOptions"]

SPECIAL_TARGETS = ("previous", "last_backup")
#: How a rollback carries edits to tracked files (the CLI's rollback has no flag for it).
ROLLBACK_CARRY_OFFER = ('roll back with the setting local_changes = "carry" (option '
                        "keep_local_changes) to carry them over")


@dataclass(frozen=True)
class RollbackOptions:
    confirm: bool = False
    create_backup: bool = True
    restore_config: bool = True
    force: bool = False
    restart: bool = True  # restart the bot afterwards by restart_method (boot-check: no)
    initiated_by: str = "system"
    # The commit a person confirmed (a confirmation dialog shows what "previous" meant then):
    # if the target now resolves elsewhere, nothing is done.
    expect_commit: str | None = None
    # Carry edits to tracked files over the checkout (also: setting local_changes = "carry").
    keep_local_changes: bool = False

    def __post_init__(self) -> None:
        if self.confirm is not True:
            raise InvalidInput("confirm", self.confirm, "true",
                               reason="a rollback replaces the code and the data")
        for name in ("create_backup", "restore_config", "force", "restart",
                     "keep_local_changes"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(name, getattr(self, name), "true or false")
        if not isinstance(self.initiated_by, str) or not 0 < len(self.initiated_by) <= 100:
            raise InvalidInput("initiated_by", self.initiated_by, "1-100 characters")
        if self.expect_commit is not None and not (
                isinstance(self.expect_commit, str)
                and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", self.expect_commit)):
            raise InvalidInput("expect_commit", self.expect_commit, "a full commit id")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> RollbackOptions:
        return options_from(cls, options, {"force_update": "force", "user_id": "initiated_by"})


@dataclass(frozen=True)
class _Target:
    commit: str
    label: str  # a version or tag, for people
    tag: str | None
    backup: Backup | None  # the data to bring back


class Rollback:
    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment
        self.installer = Installer(deployment)
        self._session_backup: str | None = None  # the pre-rollback backup, once taken

    def check_target(self, target: str) -> None:
        """Refuse a target that is neither a special word, a version nor a tag name."""
        if not isinstance(target, str) or not target.strip():
            raise InvalidInput("target_version", target,
                               "a version or tag such as 2.0.0, or previous, or last_backup")
        if target not in SPECIAL_TARGETS:
            try:
                self.installer.wanted_version(target)
            except InvalidInput as exc:
                raise exc.renamed("target_version") from None

    async def resolve(self, store: Store, target_text: str) -> dict[str, Any]:
        """Where `target_text` ("previous", "last_backup", a version) leads now, without
        acting: {"version", "tag", "commit", "backup"} (the backup whose data would come
        back, or None), or the error `run` would raise for it."""
        self.check_target(target_text)
        snap = await self.d.in_thread(self.d.snapshot)
        target = await self._target(store, target_text, snap)
        if target.commit == snap.current.commit:
            raise NoSuchVersion(f"already at {target.label}: nothing to roll back",
                                hint="name an older version")
        return {"version": target.label, "tag": target.tag, "commit": target.commit,
                "backup": target.backup.id if target.backup else None}

    async def run(
        self, store: Store, target_text: str, opts: RollbackOptions,
        progress: Progress | None, *, commit: str | None = None,
        backup_id: str | None = None,
    ) -> UpdateSession:
        """Roll back to `target_text`; `commit`, if given, is where that is (boot-check
        names the commit that ran before, which need not be a release), and then only the
        backup `backup_id` (the update's own) is restored: none means the code alone."""
        snap = await self.d.in_thread(self.d.snapshot)
        target = await self._target(store, target_text, snap, commit, backup_id)
        if target.commit == snap.current.commit:
            raise NoSuchVersion(f"already at {target.label}: nothing to roll back",
                                hint="name an older version")
        if self.d.settings.require_signed_tags and commit is None:
            await self.d.in_thread(self._check_signature, snap, target)
        if opts.expect_commit is not None and target.commit != opts.expect_commit:
            raise TargetChanged(
                f"{target_text} now means {target.label} ({target.commit[:12]}), not the "
                f"{opts.expect_commit[:12]} that was confirmed: nothing was rolled back",
                hint="run the rollback again to see what it would do now")
        if target.backup is not None and (target.backup.only_offsite or target.backup.chain):
            from gitrelease.deploy.offsite_ops import bring_back_chain  # before any change

            target = replace(target, backup=await bring_back_chain(
                self.d, store, target.backup, actor=opts.initiated_by))
            if target.backup.chain:  # a broken chain is refused here, before any change
                from gitrelease.state.incremental import load_chain

                await load_chain(store, target.backup)
        warnings = []
        carry = local_changes.wants_carry(self.d, opts.keep_local_changes)
        carrying = carry and bool(await self.d.in_thread(self.d.repo.dirty_files))
        lost = await self.d.in_thread(local_changes.lost_edits, self.d, snap.current.commit,
                                      target.commit, target.label) if carrying else []
        if lost and not opts.force:
            raise ConfirmationRequired("; ".join(lost), reasons=tuple(lost),
                                       hint="pass --force to roll back without those edits")
        warnings += [f"rolled back with --force although {r}" for r in lost]
        if target.backup is None:
            if not opts.force:
                raise ConfirmationRequired(
                    f"no backup was taken at {target.label}, so a rollback would bring back "
                    "its code but leave the data as it is now",
                    hint="pass --force to roll back the code alone",
                    commit=target.commit, label=target.label)
            warnings.append(f"no backup of {target.label}: the code was rolled back, the data "
                            "was left as it was")
        session = UpdateSession(
            id=f"rbk_{utcnow():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}",
            update_type=UpdateType.ROLLBACK, status=UpdateStatus.CHECKING, progress=0,
            started_at=utcnow(), completed_at=None, target_version=target.label,
            current_version=snap.current.text, error_message=None, steps_completed=[],
            total_steps=6, rollback_available=True, initiated_by=opts.initiated_by,
            from_commit=snap.current.commit, to_commit=target.commit, target_tag=target.tag,
            warnings=warnings)
        await store.create_session(session)
        step = StepRunner(store, session, progress, operation="rollback")
        branch = await self.d.in_thread(self.d.repo.head_branch)
        await step.note("origin", f"branch={branch or ''}")
        await step.note("request", f"rollback to {target_text!r} ({target.label}) by "
                                   f"{opts.initiated_by}")
        frozen = await self._frozen_then(store, target.backup) if target.backup else None
        plan = ["preflight", *(["backup"] if opts.create_backup else []),
                *(["stash"] if carrying else []), "checkout", "verify",
                *(["carry"] if carrying else []),
                *(["restore"] if target.backup else []), *(["packages"] if frozen else [])]
        session.total_steps = len(plan)
        await step.note("plan", ",".join(plan))
        carrier = Carry(self.d, session, step) if carrying else None
        try:
            await step("preflight", UpdateStatus.CHECKING, 10, self._check_tree, carry)
            if carrier is not None:
                await carrier.save()  # before the backup, which then holds the patch
            if opts.create_backup:
                backup = await step("backup", UpdateStatus.INSTALLING, 40, self._safety_backup,
                                    store, snap, target)
                session.backup_id = self._session_backup = backup.id
                await store.save_session(session)
        except GitReleaseError as exc:
            await step.finish(UpdateStatus.CANCELLED if step.current == "preflight"
                              else UpdateStatus.FAILED, exc.message)
            await store.audit(opts.initiated_by, "rollback", target.label, "refused",
                              {"session": session.id, "code": exc.code})
            exc.details.update(session=session.id, changed=False,
                               refused=step.current == "preflight")
            raise
        try:
            if carrier is not None:
                await carrier.put_aside(target.label)
            await step("checkout", UpdateStatus.INSTALLING, 60, self.installer._checkout,
                       target.commit, step.from_thread())
            await step("verify", UpdateStatus.INSTALLING, 70, self._verify, target)
            if carrier is not None:
                await carrier.reapply(target.commit, target.label)
            if target.backup is not None:
                await step("restore", UpdateStatus.INSTALLING, 90, self._restore, store,
                           target.backup, opts)
                if frozen is not None:
                    before = await self.d.in_thread(self.installer._freeze)
                    await step.note("freeze", before)
                    await step("packages", UpdateStatus.INSTALLING, 97, self._packages,
                               session, frozen)
                    session.package_changes = await self.d.in_thread(
                        self.installer._moved_since, before)
        except Exception as exc:
            message = exc.message if isinstance(exc, GitReleaseError) else repr(exc)
            undo = await self.installer._undo(store, session, branch, step.started, message)
            await step.finish(UpdateStatus.FAILED, f"{message}; {undo}")
            await store.audit(opts.initiated_by, "rollback", target.label, "failed",
                              {"session": session.id, "undo": undo})
            if isinstance(exc, GitReleaseError):  # what a front-end tells about the state
                exc.details.update(session=session.id, changed=True, undo=undo)
            raise
        if carrier is not None:
            await carrier.finish()
        session.restart_needed = True
        await self._forget_pending_start(store, session)
        if opts.restart:
            await self._restart(session)
        await step.finish(UpdateStatus.COMPLETED, None)
        await store.audit(opts.initiated_by, "rollback", target.label, "completed",
                          {"session": session.id, "from": session.from_commit,
                           "to": target.commit,
                           "backup": target.backup.id if target.backup else None})
        return session

    async def _forget_pending_start(self, store: Store, session: UpdateSession) -> None:
        """The code moved away from a start still waiting for confirmation: that start will
        never come, and the install that waited on it ends here."""
        from gitrelease.deploy.restart import clear_pending, read_pending

        pending = await self.d.in_thread(read_pending, self.d.data_dir)
        if pending is None:
            return
        await self.d.in_thread(clear_pending, self.d.data_dir)
        waiting = await store.get_session(pending.session_id) if pending.session_id else None
        if waiting is not None and waiting.status is UpdateStatus.RESTARTING:
            waiting.status = UpdateStatus.FAILED
            waiting.completed_at = utcnow()
            waiting.error_message = (f"rolled back by {session.id} before the bot confirmed "
                                     f"{waiting.target_version}")
            await store.save_session(waiting)

    def _check_tree(self, carry: bool) -> None:
        from gitrelease.deploy.resolve import check_tree

        check_tree(self.d, carry=carry, offer=ROLLBACK_CARRY_OFFER)

    def _check_signature(self, snap: Any, target: _Target) -> None:
        """With require_signed_tags, code is checked out only from a valid signed tag; boot-
        check's way back (to what ran before) is exempt, as it ran here already."""
        from gitrelease.core.errors import SignatureRefused

        release = next((r for r in snap.releases if r.tag == target.tag), None)
        if release is None:
            raise SignatureRefused(f"{target.label} is no release tag, and require_signed_tags "
                                   "is on")
        signature = self.d.repo.verify_tag(release.ref)
        if not signature.valid:
            raise SignatureRefused.of_tag(release.tag, signature.state, signature.detail)

    async def _restart(self, session: UpdateSession) -> None:
        """A rollback is not undone for a failed restart: the old release is back in place."""
        from gitrelease.core.errors import RestartFailed
        from gitrelease.deploy.restart import restart_bot

        if self.d.before_restart is not None and self.d.settings.restart_method != "none":
            await self.d.before_restart()
        try:
            outcome = await self.d.in_thread(
                restart_bot, self.d.root, self.d.data_dir, self.d.settings, reason="rollback",
                environment={"GITRELEASE_SESSION": session.id,
                             "GITRELEASE_VERSION": session.target_version},
                log=self.d.data_dir / "update_logs" / f"{session.id}.log")
        except RestartFailed as exc:
            session.warnings.append(f"the bot was not restarted ({exc.message}); restart it "
                                    f"to run {session.target_version}")
            return
        if outcome.performed:
            session.restart_needed = False
            session.steps_completed.append(f"restart: {outcome.detail}")

    async def _target(
        self, store: Store, text: str, snap: Any, commit: str | None = None,
        backup_id: str | None = None,
    ) -> _Target:
        backups = [b for b in await store.list_backups()
                   if (b.status is BackupStatus.COMPLETED or b.only_offsite)
                   and not b.deleting and b.commit]
        if text == "last_backup" and commit is None:
            if not backups:
                raise NoSuchVersion("there is no completed backup to roll back to")
            newest = backups[0]  # the index lists newest first
            return _Target(newest.commit or "", newest.tag or (newest.commit or "")[:12],
                           newest.tag, newest)
        if commit is not None:
            tag = next((r.tag for r in snap.releases if r.commit == commit), None)
            own = next((b for b in backups if b.id == backup_id and b.commit == commit), None)
            return _Target(commit, text, tag, own)
        elif text == "previous":
            commit, label = await self._previous(store, snap.current.commit)
            tag = next((r.tag for r in snap.releases if r.commit == commit), None)
        else:
            release = self.installer._named_release(snap, text)
            commit, label, tag = release.commit, release.tag, release.tag
        # The newest backup taken at that commit, a full one if there is one.
        at_commit = sorted((b for b in backups if b.commit == commit),
                           key=lambda b: b.backup_type is not BackupType.FULL)
        return _Target(commit, label, tag, at_commit[0] if at_commit else None)

    @staticmethod
    async def _previous(store: Store, head: str) -> tuple[str, str]:
        """What ran before the current release: the session that brought HEAD here."""
        for session in await store.list_sessions(limit=200):
            # RESTARTING: installed and waiting for the bot to confirm, as in a crash loop.
            if (session.status in (UpdateStatus.COMPLETED, UpdateStatus.RESTARTING)
                    and session.to_commit == head
                    and session.from_commit and session.from_commit != head):
                return session.from_commit, session.current_version
        raise NoSuchVersion("no completed update or rollback led to the current version, so "
                            "there is no 'previous' to go back to",
                            hint="name the version to roll back to")

    async def _safety_backup(self, store: Store, snap: Any, target: _Target) -> Backup:
        from gitrelease.core.models import BackupOrigin
        from gitrelease.state.backup_options import BackupOptions
        from gitrelease.state.backups import ReleasePoint

        service = self.d.backups(store)
        current = snap.current
        backup = await service.create(
            BackupType.FULL,
            BackupOptions(auto_created=True, origin=BackupOrigin.PRE_ROLLBACK,
                          description=f"before rolling back to {target.label}"),
            ReleasePoint(current.tag, current.commit, current.text))
        if backup.verified_at is None:
            backup = await service.verify(backup)
        return backup

    def _verify(self, target: _Target) -> None:
        self.installer._verify_head(target.commit)
        now = self.d.snapshot().current
        if target.tag is not None and now.tag is None:
            raise VerificationFailed(f"after checkout the version is {now.text}, "
                                     f"not {target.label}")

    async def _frozen_then(self, store: Store, backup: Backup) -> str | None:
        """The package set recorded with the backup, if it differs from what is installed."""
        from gitrelease.deploy.packages import pinned

        then = (await store.backup_manifest(backup)).get("pip_freeze")
        if not then:
            return None
        now = await self.d.in_thread(self.installer._freeze)
        return then if pinned(then) != pinned(now) else None

    def _packages(self, session: UpdateSession, frozen: str) -> None:
        from gitrelease.deploy.packages import restore_freeze

        layout = self.d.layout()
        restore_freeze(self.d.python_executable(), frozen,
                       log=layout.logs_dir / f"{session.id}.log",
                       timeout=self.d.settings.pip_timeout)

    async def _restore(self, store: Store, backup: Backup, opts: RollbackOptions) -> None:
        from gitrelease.deploy.restore import RestoreOptions, restore

        service = self.d.backups(store)
        safety = await service.get(self._session_backup) if self._session_backup else None
        await restore(service, backup,
                      RestoreOptions(confirm=True, restore_type="all" if opts.restore_config
                                     else "all_but_config"),
                      await self.d.release_point(), safety_backup=safety,
                      take_safety=opts.create_backup)
