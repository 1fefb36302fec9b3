"""Installing a release as a transaction: preflight, fetch, resolve, backup, checkout, verify.

`Installer` holds the steps; `ReleaseManager.install_updates` takes the lock and calls it.
Every step is journalled before and after it runs (`journal.StepRunner`), so a process that
dies at any point is found and settled at the next start (`finish_interrupted`).

What the steps lean on lives beside this module: the options (`install_options`), the step
names (`install_steps`), what a dry run's plan says besides the code (`install_plan`), the
choice of release and the refusals before any change (`resolve`), the release's own commands
(`release_commands`) and the undoing of a failed or interrupted install (`recovery`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gitrelease.core.choices import UPDATE_TYPES
from gitrelease.core.errors import (
    ConfirmationRequired,
    DirtyWorkingTree,
    GitReleaseError,
    VerificationFailed,
)
from gitrelease.core.models import (
    BackupType,
    Progress,
    UpdateSession,
    UpdateStatus,
    UpdateType,
    parse_update_type,
    utcnow,
)
from gitrelease.core.reports import InstallPlan
from gitrelease.deploy import install_plan, install_steps, local_changes, recovery, resolve
from gitrelease.deploy.install_options import InstallOptions
from gitrelease.deploy.install_steps import DATA_STEPS, MOVES_CODE
from gitrelease.deploy.journal import StepRunner
from gitrelease.deploy.local_changes import Carry, LocalChangesConflict
from gitrelease.deploy.release_commands import run_release_steps
from gitrelease.deploy.resolve import Resolution, moved_warning

if TYPE_CHECKING:
    from packaging.version import Version

    from gitrelease.core.models import Backup
    from gitrelease.deploy.context import Deployment
    from gitrelease.git.releases import ReleaseSnapshot
    from gitrelease.git.versions import Release
    from gitrelease.index.store import Store

# The options, the resolution and the step names are re-exported: they were first defined
# here, and callers that install still find them in one place.
__all__ = [
    "DATA_STEPS",
    "UPDATE_TYPES",
    "InstallOptions",
    "Installer",
    "Resolution",
    "moved_warning",
    "parse_update_type",
]


class Installer:
    """The install steps of one deployment; `d` is its deployment (repo, settings, index)."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment

    def plan(self, opts: InstallOptions, kind: UpdateType = UpdateType.BOT) -> InstallPlan:
        carrying = self.carrying(opts)
        self.check_tree(carrying)
        if kind not in MOVES_CODE:
            current = self.d.snapshot().current
            plan = InstallPlan(kind, current.text, current.text, None, current.commit,
                               current.commit, self.steps(opts, kind), None, [])
            return install_plan.filled(self.d, plan, kind, current.commit)
        moved = self.d.fetch().moved_tags
        asked: tuple[str, ...] = ()
        try:
            found = resolve.resolve_target(self.d, opts, moved, kind)
        except ConfirmationRequired as exc:
            # A dry run shows the plan and what the install would ask, rather than stop at
            # the question; asked once more with those accepted (any other refusal stands).
            asked = exc.reasons
            found = resolve.resolve_target(
                self.d, dataclasses.replace(opts, accept=(*opts.accept, *asked)), moved, kind)
            found.warnings = [w for w in found.warnings
                              if w not in {f"installed once confirmed although {r}"
                                           for r in asked}]
        # A named release passes over nothing; a plain install, the failed ones newer.
        skipped = [] if opts.to_version is not None else \
            install_plan.skipped(self.d, found.snapshot)
        if found.target is None or found.info is None:
            current = found.snapshot.current
            steps = [] if kind is UpdateType.BOT else self.steps(opts, kind)
            plan = InstallPlan(kind, current.text, current.text, None,
                               current.commit, current.commit, steps, None, found.warnings,
                               skipped=skipped)
            return install_plan.filled(self.d, plan, kind, current.commit)
        edited = self.d.repo.dirty_files() if carrying else []
        if edited:
            found.warnings.append(
                f"the local changes to {', '.join(edited[:10])} would be carried over to "
                f"{found.target.tag} (stash, checkout, re-apply); a conflict would undo the "
                "install")
        plan = InstallPlan(
            kind, found.snapshot.current.text, str(found.target.version),
            found.target.tag, found.snapshot.current.commit, found.target.commit,
            self.steps(opts, kind, carrying=bool(edited)), found.info, found.warnings,
            needs_confirmation=list(asked), skipped=skipped)
        return install_plan.filled(self.d, plan, kind, found.target.commit)

    def carrying(self, opts: InstallOptions) -> bool:
        """Whether edits to tracked files are carried over the checkout (option or setting)."""
        return local_changes.wants_carry(self.d, opts.keep_local_changes)

    def takes_backup(self, opts: InstallOptions) -> bool:
        return install_steps.takes_backup(self.d, opts)

    def steps(self, opts: InstallOptions, kind: UpdateType = UpdateType.BOT, *,
              carrying: bool = False) -> list[str]:
        return install_steps.planned_steps(self.d, opts, kind, carrying=carrying)

    async def run(
        self, store: Store, opts: InstallOptions, progress: Progress | None,
        kind: UpdateType = UpdateType.BOT,
    ) -> UpdateSession:
        snap = await self.d.in_thread(self.d.snapshot)
        carry = self.carrying(opts)
        carrying = carry and kind in MOVES_CODE and bool(
            await self.d.in_thread(self.d.repo.dirty_files))
        session = UpdateSession(
            id=f"upd_{utcnow():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}",
            update_type=kind, status=UpdateStatus.CHECKING, progress=0,
            started_at=utcnow(), completed_at=None,
            target_version=opts.to_version or ("newest" if kind in MOVES_CODE
                                               else snap.current.text),
            current_version=snap.current.text,
            error_message=None, steps_completed=[],
            total_steps=len(self.steps(opts, kind, carrying=carrying)),
            rollback_available=False, initiated_by=opts.initiated_by,
            from_commit=snap.current.commit,
        )
        await store.create_session(session)
        step = StepRunner(store, session, progress)
        carrier = Carry(self.d, session, step) if carrying else None
        branch = await self.d.in_thread(self.d.repo.head_branch)
        await step.note("origin", f"branch={branch or ''}")
        await step.note("plan", ",".join(self.steps(opts, kind, carrying=carrying)))
        try:
            await step("preflight", UpdateStatus.CHECKING, 10, self.check_tree, carry)
            if kind in MOVES_CODE:
                fetched = await step("fetch", UpdateStatus.DOWNLOADING, 30, self.d.fetch)
                found = await step("resolve", UpdateStatus.CHECKING, 50,
                                   resolve.resolve_target, self.d, opts, fetched.moved_tags,
                                   kind)
            else:
                found = Resolution(None, snap)
            if kind is UpdateType.DEPENDENCIES:
                await step("resolve", UpdateStatus.CHECKING, 50, resolve.check_python_at,
                           self.d, snap.current.commit, snap.current.text)
            if carrier is not None and found.target is not None:
                await carrier.save()  # before the backup, which then holds the patch
        except GitReleaseError as exc:
            refused = step.current in ("preflight", "resolve")
            await step.finish(UpdateStatus.CANCELLED if refused else UpdateStatus.FAILED,
                              exc.message)
            await store.audit(opts.initiated_by, "install", session.target_version,
                              "refused" if refused else "failed", {"session": session.id,
                                                                   "code": exc.code})
            exc.details.update(session=session.id, changed=False, refused=refused)
            raise
        session.warnings = found.warnings
        if not opts.backup_before and self.takes_backup(opts):
            session.warnings.append("a backup was taken although none was asked for: the "
                                    "setting require_backup_before_update is on")
        if found.target is None and kind is UpdateType.BOT:
            session.target_version = session.current_version
            session.to_commit = session.from_commit
            session.steps_completed.append(f"already at {session.current_version}")
            await step.finish(UpdateStatus.COMPLETED, None)
            await store.audit(opts.initiated_by, "install", session.target_version,
                              "up_to_date", {"session": session.id})
            return session
        target = found.target
        if target is not None:
            session.target_version = str(target.version)
            session.target_tag = target.tag
            session.to_commit = target.commit
        else:
            session.target_version = session.current_version
            session.to_commit = session.from_commit
        session.rollback_available = True  # the previous release's code stays in git
        if self.takes_backup(opts):
            try:
                backup = await step("backup", UpdateStatus.INSTALLING, 65,
                                    self._pre_update_backup, store, opts, snap,
                                    target.tag if target else session.current_version)
            except GitReleaseError as exc:
                await step.finish(UpdateStatus.FAILED, f"pre-update backup failed: {exc.message}")
                await store.audit(opts.initiated_by, "install", session.target_version,
                                  "failed", {"session": session.id, "code": exc.code})
                exc.details.update(session=session.id, changed=False)
                raise
            session.backup_id = backup.id
            await store.save_session(session)
        try:
            if target is not None:
                if carrier is not None:
                    await carrier.put_aside(target.tag)
                await step("checkout", UpdateStatus.INSTALLING, 70, self._checkout,
                           target.commit, step.from_thread())
                await step("verify", UpdateStatus.INSTALLING, 75, self._verify_head,
                           target.commit)
                if carrier is not None:
                    await carrier.reapply(target.commit, target.tag)
            if kind in (UpdateType.PACKAGES, UpdateType.ALL, UpdateType.DEPENDENCIES):
                name = "dependencies" if kind is UpdateType.DEPENDENCIES else "packages"
                frozen = await self.d.in_thread(self._freeze)
                await step.note("freeze", frozen)
                await step(name, UpdateStatus.INSTALLING, 82, self._packages, session,
                           kind is not UpdateType.DEPENDENCIES)
                session.package_changes = await self.d.in_thread(self._moved_since, frozen)
            if kind in (UpdateType.CONFIG, UpdateType.ALL):
                added = await step("config", UpdateStatus.INSTALLING, 86, self._merge_config)
                session.steps_completed.append(
                    f"config: added {', '.join(added)}" if added else "config: nothing missing")
                from gitrelease.deploy.configsync import NEEDS_VALUE

                unset = [a.removesuffix(f" {NEEDS_VALUE}") for a in added
                         if a.endswith(NEEDS_VALUE)]
                if unset:  # added as the template has them: a placeholder, not a value
                    session.warnings.append(f"needs your value: {', '.join(unset)} (the "
                                            "template gives no real value; set it, then "
                                            "restart the bot)")
            if target is not None:
                await run_release_steps(self.d, step, session)
        except Exception as exc:
            message = exc.message if isinstance(exc, GitReleaseError) else repr(exc)
            # Edits that conflict with a release, or made meanwhile, say nothing against it.
            blame = not isinstance(exc, LocalChangesConflict | DirtyWorkingTree)
            undo = await recovery.undo(self.d, store, session, branch, step.started,
                                        message, blame=blame)
            await step.finish(UpdateStatus.FAILED, f"{message}; {undo}")
            await store.audit(opts.initiated_by, "install", session.target_version, "failed",
                              {"session": session.id, "undo": undo})
            if isinstance(exc, GitReleaseError):  # what a front-end tells about the state
                exc.details.update(session=session.id, changed=True, undo=undo)
            raise
        from gitrelease.deploy.restart_step import restart_after_update

        if carrier is not None:
            await carrier.finish()
        await store.audit(opts.initiated_by, "install", session.target_version, "completed",
                          {"session": session.id, "from": session.from_commit,
                           "to": session.to_commit})
        status = await restart_after_update(self.d, store, session,
                                            wanted=opts.restart_required)
        if status is UpdateStatus.COMPLETED:
            await step.finish(UpdateStatus.COMPLETED, None)
        return session

    def _freeze(self) -> str:
        from gitrelease.deploy.packages import freeze

        return freeze(self.d.python_executable())

    def _moved_since(self, frozen: str) -> list[dict[str, Any]]:
        """Which packages moved since `frozen` (a `pip freeze`), from -> to."""
        from gitrelease.deploy.packages import package_moves, pinned

        return package_moves(pinned(frozen), pinned(self._freeze()))

    def _packages(self, session: UpdateSession, upgrade: bool) -> None:
        """The requirements HEAD declares (the release, once checked out), through pip."""
        from gitrelease.deploy.packages import PackageError, install_requirements, read_requirements

        head = self.d.repo.head_commit()
        resolve.check_python_at(self.d, head, session.target_version)
        wanted = read_requirements(self.d.repo, head, str(self.d.deployment_python()))
        if wanted.source is None:
            return
        if wanted.problems:
            # A line skipped could be an index option or a package the bot needs: installing
            # the rest could fetch from the wrong index or leave the bot broken.
            raise PackageError(
                f"{len(wanted.problems)} requirement line(s) cannot be installed by gitrelease: "
                f"{'; '.join(wanted.problems[:3])}",
                hint="use plain requirements (name and version specifiers) in the release")
        layout = self.d.layout()
        install_requirements(self.d.python_executable(), wanted.requirements, upgrade=upgrade,
                             log=layout.logs_dir / f"{session.id}.log",
                             timeout=self.d.settings.pip_timeout)

    def _merge_config(self) -> list[str]:
        from gitrelease.deploy.configsync import merge_config

        return merge_config(self.d.repo, self.d.root, self.d.settings.config_templates,
                            self.d.repo.head_commit())

    async def _pre_update_backup(
        self, store: Store, opts: InstallOptions, snap: ReleaseSnapshot, target: str
    ) -> Backup:
        """A full backup indexed with the current tag, COMPLETED and verified before any change."""
        from gitrelease.core.models import BackupOrigin
        from gitrelease.state.backup_options import BackupOptions
        from gitrelease.state.backups import ReleasePoint

        service = self.d.backups(store)
        current = snap.current
        scheduled = (opts.initiated_by or "").startswith("schedule:")
        backup = await service.create(
            BackupType.FULL,
            BackupOptions(backup_name=opts.backup_name, auto_created=True,
                          description=f"before installing {target}",
                          origin=BackupOrigin.SCHEDULED if scheduled
                          else BackupOrigin.PRE_UPDATE),
            ReleasePoint(current.tag, current.commit, current.text))
        if backup.verified_at is None:
            backup = await service.verify(backup)
        return backup

    def _checkout(self, commit: str, note: Callable[[str, str], None]) -> None:
        """The checkout, journalled so that a crash half-way can be undone exactly: what
        of the operator's it may meet (`checkout:kept`, never removed by that undo) and git's
        process group, before git starts (see `git.switch`). A refusal here comes before
        both: the undo after it then knows git never ran, and touches no file."""
        from gitrelease.git.switch import before_checkout

        # Looked at again right before: the fetch and the backup take time, and an edit made
        # meanwhile must stop the install rather than be caught up in it.
        repo = self.d.repo
        dirty = repo.dirty_files()
        if dirty:
            raise DirtyWorkingTree(f"tracked files changed during the install: "
                                   f"{', '.join(dirty[:10])}")
        note("checkout:kept", before_checkout(repo, repo.head_commit(), commit).text())
        repo.checkout_detached(commit, lambda group: note("group:checkout", group.text()))

    def _verify_head(self, commit: str) -> None:
        head = self.d.repo.head_commit()
        if head != commit:
            raise VerificationFailed(f"after checkout HEAD is {head[:12]}, not {commit[:12]}")

    def check_tree(self, carry: bool = False) -> None:
        resolve.check_tree(self.d, carry=carry)

    def wanted_version(self, name: str) -> Version:
        """The version a person named (see `resolve.wanted_version`), checked before any run."""
        return resolve.wanted_version(self.d, name)

    def _named_release(self, snap: ReleaseSnapshot, name: str) -> Release:
        return resolve.named_release(self.d, snap, name)

    async def _undo(
        self, store: Store, session: UpdateSession, branch: str | None,
        started: list[str], reason: str, *, blame: bool = True,
    ) -> str:
        """Back to where the install (or rollback) started; see `recovery.undo`."""
        return await recovery.undo(self.d, store, session, branch, started, reason,
                                   blame=blame)

    async def finish_interrupted(self, store: Store) -> None:
        """Settle the sessions a dead process left (under the lock); see `recovery`."""
        await recovery.finish_interrupted(self.d, store)
