"""Installing a release as a transaction: preflight, fetch, resolve, backup, checkout, verify.

`Installer` holds the steps; `ReleaseManager.install_updates` takes the lock and calls it.
Every step is journalled before and after it runs (`journal.StepRunner`), so a process that
dies at any point is found and settled at the next start (`finish_interrupted`).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from gitrelease.core.choices import UPDATE_TYPES
from gitrelease.core.errors import (
    ConfirmationRequired,
    DirtyWorkingTree,
    DowngradeRefused,
    GitReleaseError,
    InsufficientDiskSpace,
    InvalidInput,
    NoSuchVersion,
    PythonVersionMismatch,
    SignatureRefused,
    TagMoved,
    UntrackedFilesInTheWay,
    VerificationFailed,
)
from gitrelease.core.models import (
    BackupType,
    Progress,
    UpdateInfo,
    UpdateSession,
    UpdateStatus,
    UpdateType,
    parse_update_type,
    utcnow,
)
from gitrelease.core.options import options_from
from gitrelease.core.reports import InstallPlan
from gitrelease.deploy.journal import StepRunner
from gitrelease.git import releases
from gitrelease.git.releases import ReleaseSnapshot
from gitrelease.git.versions import Channel, Release, TagPattern, parse_version

if TYPE_CHECKING:
    from gitrelease.core.models import Backup
    from gitrelease.deploy.context import Deployment
    from gitrelease.index.store import JournalStep, Store

__all__ = [
    "DATA_STEPS",
    "UPDATE_TYPES",
    "InstallOptions",
    "Installer",
    "Resolution",
    "moved_warning",
    "parse_update_type",
]

# A version, or a tag name as people type them; never starting with "-", so never an option.
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!/-]{0,99}$")
_BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MIB = 1024 * 1024


#: Steps after which the data may differ from the pre-change backup.
DATA_STEPS = frozenset({"post_update", "restore"})
#: Steps that change the deployment; a session that started none of them changed nothing.
CHANGE_STEPS = frozenset({"checkout", "packages", "dependencies", "config", *DATA_STEPS})
#: Update types that move HEAD to a release.
MOVES_CODE = frozenset({UpdateType.BOT, UpdateType.ALL})


@dataclass(frozen=True)
class InstallOptions:
    """How to install; `from_mapping` accepts the specification's option names."""

    to_version: str | None = None
    backup_before: bool = True
    restart_required: bool = True
    force: bool = False
    backup_name: str | None = None
    dry_run: bool = False
    initiated_by: str = "system"
    # Reasons to ask (ConfirmationRequired.reasons) that a person was shown and accepted:
    # the install goes past exactly these, and still stops at any other. `force` passes all.
    accept: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("backup_before", "restart_required", "force", "dry_run"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(name, getattr(self, name), "true or false")
        if not isinstance(self.accept, tuple | list) or len(self.accept) > 20 or not all(
                isinstance(r, str) and 0 < len(r) <= 1000 for r in self.accept):
            raise InvalidInput("accept", self.accept,
                               "a list of at most 20 reasons, as a refusal gave them")
        object.__setattr__(self, "accept", tuple(self.accept))
        if self.to_version is not None:
            allowed = "a release version such as 2.1.0, or a release tag name such as v2.1.0"
            if not isinstance(self.to_version, str):
                raise InvalidInput("to_version", self.to_version, allowed)
            if not _TAG_NAME.match(self.to_version) or ".." in self.to_version:
                raise InvalidInput("to_version", self.to_version, allowed)
        if self.backup_name is not None:
            if not isinstance(self.backup_name, str) or not _BACKUP_NAME.match(self.backup_name):
                raise InvalidInput(
                    "backup_name", self.backup_name,
                    "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
            if not self.backup_before:
                raise InvalidInput(
                    "backup_name", self.backup_name, "a name only when a backup is taken",
                    reason="no backup is taken with backup_before off")
        if not isinstance(self.initiated_by, str) or not 0 < len(self.initiated_by) <= 100:
            raise InvalidInput("initiated_by", self.initiated_by, "1-100 characters")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> InstallOptions:
        return options_from(cls, options, {
            "force_update": "force", "to": "to_version", "target_version": "to_version",
            "user_id": "initiated_by"})


@dataclass
class Resolution:
    """The release an install moves to, and what was found on the way."""

    target: Release | None  # None: already at the newest release
    snapshot: ReleaseSnapshot
    info: UpdateInfo | None = None
    warnings: list[str] = field(default_factory=list)


class Installer:
    """The install steps of one deployment; `d` is its deployment (repo, settings, index)."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment

    def plan(self, opts: InstallOptions, kind: UpdateType = UpdateType.BOT) -> InstallPlan:
        self.check_tree()
        if kind not in MOVES_CODE:
            current = self.d.snapshot().current
            return InstallPlan(kind, current.text, current.text, None, current.commit,
                               current.commit, self.steps(opts, kind), None, [])
        moved = self.d.fetch().moved_tags
        found = self._resolve(opts, moved)
        if found.target is None or found.info is None:
            current = found.snapshot.current
            steps = [] if kind is UpdateType.BOT else self.steps(opts, kind)
            return InstallPlan(kind, current.text, current.text, None,
                               current.commit, current.commit, steps, None, found.warnings)
        return InstallPlan(
            kind, found.snapshot.current.text, str(found.target.version),
            found.target.tag, found.snapshot.current.commit, found.target.commit,
            self.steps(opts, kind), found.info, found.warnings)

    def takes_backup(self, opts: InstallOptions) -> bool:
        return opts.backup_before or self.d.settings.require_backup_before_update

    def steps(self, opts: InstallOptions, kind: UpdateType = UpdateType.BOT) -> list[str]:
        backup = ["backup"] if self.takes_backup(opts) else []
        code = ["fetch", "resolve"] if kind in MOVES_CODE else []
        move = ["checkout", "verify"] if kind in MOVES_CODE else []
        rest = {UpdateType.PACKAGES: ["packages"], UpdateType.DEPENDENCIES: ["dependencies"],
                UpdateType.CONFIG: ["config"], UpdateType.ALL: ["packages", "config"]}
        return ["preflight", *code, *backup, *move, *rest.get(kind, [])]

    async def run(
        self, store: Store, opts: InstallOptions, progress: Progress | None,
        kind: UpdateType = UpdateType.BOT,
    ) -> UpdateSession:
        snap = await self.d.in_thread(self.d.snapshot)
        session = UpdateSession(
            id=f"upd_{utcnow():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}",
            update_type=kind, status=UpdateStatus.CHECKING, progress=0,
            started_at=utcnow(), completed_at=None,
            target_version=opts.to_version or ("newest" if kind in MOVES_CODE
                                               else snap.current.text),
            current_version=snap.current.text,
            error_message=None, steps_completed=[], total_steps=len(self.steps(opts, kind)),
            rollback_available=False, initiated_by=opts.initiated_by,
            from_commit=snap.current.commit,
        )
        await store.create_session(session)
        step = StepRunner(store, session, progress)
        branch = await self.d.in_thread(self.d.repo.head_branch)
        await step.note("origin", f"branch={branch or ''}")
        await step.note("plan", ",".join(self.steps(opts, kind)))
        try:
            await step("preflight", UpdateStatus.CHECKING, 10, self.check_tree)
            if kind in MOVES_CODE:
                fetched = await step("fetch", UpdateStatus.DOWNLOADING, 30, self.d.fetch)
                found = await step("resolve", UpdateStatus.CHECKING, 50, self._resolve, opts,
                                   fetched.moved_tags)
            else:
                found = Resolution(None, snap)
            if kind is UpdateType.DEPENDENCIES:
                await step("resolve", UpdateStatus.CHECKING, 50, self._check_python_at,
                           snap.current.commit, snap.current.text)
        except GitReleaseError as exc:
            refused = step.current in ("preflight", "resolve")
            await step.finish(UpdateStatus.CANCELLED if refused else UpdateStatus.FAILED,
                              exc.message)
            await store.audit(opts.initiated_by, "install", session.target_version,
                              "refused" if refused else "failed", {"session": session.id,
                                                                   "code": exc.code})
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
                raise
            session.backup_id = backup.id
            await store.save_session(session)
        try:
            if target is not None:
                await step("checkout", UpdateStatus.INSTALLING, 70, self._checkout,
                           target.commit)
                await step("verify", UpdateStatus.INSTALLING, 75, self._verify_head,
                           target.commit)
            if kind in (UpdateType.PACKAGES, UpdateType.ALL, UpdateType.DEPENDENCIES):
                name = "dependencies" if kind is UpdateType.DEPENDENCIES else "packages"
                frozen = await self.d.in_thread(self._freeze)
                await step.note("freeze", frozen)
                await step(name, UpdateStatus.INSTALLING, 82, self._packages, session,
                           kind is not UpdateType.DEPENDENCIES)
            if kind in (UpdateType.CONFIG, UpdateType.ALL):
                added = await step("config", UpdateStatus.INSTALLING, 86, self._merge_config)
                session.steps_completed.append(
                    f"config: added {', '.join(added)}" if added else "config: nothing missing")
            if target is not None:
                await self._release_steps(step, session)
        except Exception as exc:
            message = exc.message if isinstance(exc, GitReleaseError) else repr(exc)
            undo = await self._undo(store, session, branch, step.started, message)
            await step.finish(UpdateStatus.FAILED, f"{message}; {undo}")
            await store.audit(opts.initiated_by, "install", session.target_version, "failed",
                              {"session": session.id, "undo": undo})
            raise
        from gitrelease.deploy.restart_step import restart_after_update

        await store.audit(opts.initiated_by, "install", session.target_version, "completed",
                          {"session": session.id, "from": session.from_commit,
                           "to": session.to_commit})
        status = await restart_after_update(self.d, store, session,
                                            wanted=opts.restart_required)
        if status is UpdateStatus.COMPLETED:
            await step.finish(UpdateStatus.COMPLETED, None)
        return session

    async def _release_steps(self, step: StepRunner, session: UpdateSession) -> None:
        """The target release's own post-update command and health check, if it has them."""
        from gitrelease.core.settings import command_argv, load_settings

        # The release is checked out: its [tool.gitrelease] (with the runtime overrides) now
        # says what to run, so each release carries its own migrations and health check.
        loaded = await self.d.in_thread(load_settings, self.d.root, self.d.data_dir)
        target = loaded.settings
        planned = [name for name, command in (("post_update", target.post_update_command),
                                              ("health_check", target.health_check_command))
                   if command_argv(command)]
        # Written before either runs: recovery must know they were due even if neither began.
        await step.note("plan:release", ",".join(planned))
        if command_argv(target.post_update_command):
            await step("post_update", UpdateStatus.INSTALLING, 88, self._run, session,
                       "post-update command", target.post_update_command,
                       target.post_update_timeout)
        if command_argv(target.health_check_command):
            await step("health_check", UpdateStatus.INSTALLING, 95, self._run, session,
                       "health check", target.health_check_command, target.health_check_timeout)

    def _freeze(self) -> str:
        from gitrelease.deploy.packages import freeze

        return freeze(self.d.python_executable())

    def _packages(self, session: UpdateSession, upgrade: bool) -> None:
        """The requirements HEAD declares (the release, once checked out), through pip."""
        from gitrelease.deploy.packages import PackageError, install_requirements, read_requirements

        head = self.d.repo.head_commit()
        self._check_python_at(head, session.target_version)
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

    def _run(
        self, session: UpdateSession, name: str, command: str | list[str], timeout: int
    ) -> None:
        from gitrelease.core.settings import command_argv
        from gitrelease.deploy.update_commands import run_command

        layout = self.d.layout()
        run_command(
            name, command_argv(command), cwd=self.d.root, timeout=timeout,
            log=layout.logs_dir / f"{session.id}.log",
            environment={
                "GITRELEASE_SESSION_ID": session.id,
                "GITRELEASE_ROOT": str(self.d.root),
                "GITRELEASE_DATA_DIR": str(self.d.data_dir),
                "GITRELEASE_FROM_COMMIT": session.from_commit or "",
                "GITRELEASE_TO_COMMIT": session.to_commit or "",
                "GITRELEASE_FROM_VERSION": session.current_version,
                "GITRELEASE_TO_VERSION": session.target_version,
            })

    async def _undo(
        self, store: Store, session: UpdateSession, branch: str | None,
        started: list[str], reason: str, *, blame: bool = True,
    ) -> str:
        """After a failure past the checkout: back to where the install started, and why."""
        from gitrelease.deploy.quarantine import mark_bad

        install = session.update_type is not UpdateType.ROLLBACK
        release = install and session.target_tag is not None and "checkout" in started \
            and blame
        if release and session.to_commit and session.target_tag:
            await self.d.in_thread(mark_bad, self.d.data_dir, session.target_tag,
                                    session.to_commit, reason, session.id)
        if install and not self.d.settings.rollback_on_failure:
            return ("left as it is because rollback_on_failure is off"
                    + ("; the release is marked bad" if release else ""))
        parts = [await self.d.in_thread(self._restore_head, session.from_commit, branch)]
        if {"packages", "dependencies"}.intersection(started):
            parts.append(await self._restore_packages(store, session))
        if DATA_STEPS.intersection(started):
            parts.append(await self._restore_data(store, session, "all"))
        elif "config" in started:
            parts.append(await self._restore_data(store, session, "config"))
        if release:
            parts.append("the release is marked bad")
        return ("rolled back: " if install else "undone: ") + "; ".join(parts)

    async def _restore_packages(self, store: Store, session: UpdateSession) -> str:
        """Back to the `pip freeze` taken before the packages step."""
        from gitrelease.deploy.packages import restore_freeze

        notes = [s.detail for s in await store.steps(session.id) if s.step == "freeze"]
        if not notes:
            return "the packages could NOT be put back: no pip freeze was saved"
        layout = self.d.layout()
        try:
            await self.d.in_thread(restore_freeze, self.d.python_executable(), notes[-1],
                                    log=layout.logs_dir / f"{session.id}.log",
                                    timeout=self.d.settings.pip_timeout)
        except GitReleaseError as exc:
            return f"the packages could NOT be put back: {exc.message}"
        return "packages put back as they were"

    async def _restore_data(
        self, store: Store, session: UpdateSession, restore_type: str = "all"
    ) -> str:
        """Put the pre-update backup back (`restore_type` of it) after a step changed data."""
        from gitrelease.deploy.restore import RestoreOptions, restore

        if session.backup_id is None:
            return "the data could NOT be restored: no pre-update backup was taken"
        service = self.d.backups(store)
        try:
            backup = await service.get(session.backup_id)
            await restore(service, backup,
                          RestoreOptions(confirm=True, restore_type=restore_type),
                          await self.d.release_point())
        except GitReleaseError as exc:
            return f"the data could NOT be restored from {session.backup_id}: {exc.message}"
        return f"{'config' if restore_type == 'config' else 'data'} restored from " \
               f"{session.backup_id}"

    async def _pre_update_backup(
        self, store: Store, opts: InstallOptions, snap: ReleaseSnapshot, target: str
    ) -> Backup:
        """A full backup indexed with the current tag, COMPLETED and verified before any change."""
        from gitrelease.state.backups import BackupOptions, ReleasePoint

        service = self.d.backups(store)
        current = snap.current
        backup = await service.create(
            BackupType.FULL,
            BackupOptions(backup_name=opts.backup_name, auto_created=True,
                          description=f"before installing {target}"),
            ReleasePoint(current.tag, current.commit, current.text))
        if backup.verified_at is None:
            backup = await service.verify(backup)
        return backup

    def check_tree(self) -> None:
        dirty = self.d.repo.dirty_files()
        if dirty:
            shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10
                                              else "")
            raise DirtyWorkingTree(f"tracked files have local changes: {shown}")
        free = shutil.disk_usage(self.d.root).free
        needed = self.d.settings.min_disk_space_mb * _MIB
        if free < needed:
            raise InsufficientDiskSpace(
                f"{free // _MIB} MiB free under {self.d.root}, "
                f"{self.d.settings.min_disk_space_mb} MiB needed")

    def _resolve(self, opts: InstallOptions, moved: tuple[str, ...]) -> Resolution:
        snap = self.d.snapshot()
        current = snap.current
        warnings = [moved_warning(tag) for tag in moved] + self.d.inert_settings()
        if opts.to_version is not None:
            target = self._named_release(snap, opts.to_version)
            if target.version.is_prerelease and snap.channel is Channel.STABLE:
                warnings.append(f"{target.tag} is a pre-release, installed because it was named")
            if target.commit in snap.bad:
                if not opts.force:
                    raise ConfirmationRequired(
                        f"{target.tag} failed to install before ({snap.bad[target.commit]})",
                        hint="install it anyway only by naming it with --force")
                warnings.append(f"{target.tag} failed before; installed because it was named "
                                "with --force")
        else:
            offered = snap.offered()
            target = offered[-1] if offered else None
            warnings += snap.bad_warnings()
        if target is None or (target.commit == current.commit and current.tag is not None
                              and target.version == current.version):
            return Resolution(None, snap, warnings=warnings)
        if not current.is_older_than(target):
            raise DowngradeRefused(
                f"{target.tag} is not newer than the current version {current.text}")
        if target.tag in moved and not opts.force:
            raise TagMoved(f"{target.tag} points elsewhere on the remote than it did when fetched")
        in_the_way = [p for p in self.d.repo.paths_added(current.commit, target.commit)
                      if (self.d.root / p).exists() or (self.d.root / p).is_symlink()]
        if in_the_way:
            raise UntrackedFilesInTheWay(
                f"{target.tag} adds files that exist here untracked: {', '.join(in_the_way[:10])}")
        info = releases.update_info(self.d.repo, snap, target, include_security=True,
                                    download_url=self.d.remote_url())
        if self.d.settings.require_signed_tags and info.signature != "valid":
            # Never --force-able: the point of the setting is that nothing else is run.
            raise SignatureRefused.of_tag(target.tag, info.signature or "unknown",
                                          info.signature_detail or "")
        self._check_python(target)
        reasons = []
        local = releases.local_commit_warnings(self.d.repo, snap, target)
        if local and self.d.repo.head_branch() is None:
            reasons += local  # detached: those commits would be left on no branch at all
        else:
            warnings += local
        if info.breaking_changes and self.d.settings.require_confirmation:
            reasons.append(f"{target.tag} has breaking changes")
        if (info.size or 0) > self.d.settings.max_update_size_mb * _MIB:
            reasons.append(f"it changes {(info.size or 0) // _MIB} MiB, more than "
                           f"max_update_size_mb ({self.d.settings.max_update_size_mb})")
        unaccepted = [r for r in reasons if r not in opts.accept]
        if unaccepted and not opts.force:
            raise ConfirmationRequired("; ".join(unaccepted), reasons=tuple(unaccepted))
        warnings += [f"installed once confirmed although {r}" if r in opts.accept
                     else f"installed with --force although {r}" for r in reasons]
        return Resolution(target, snap, info, warnings)

    def wanted_version(self, name: str) -> Version:
        """The version a person named, as a release tag name or as a bare version.

        Checked before anything runs; the name itself is only ever looked up, never handed
        to git.
        """
        pattern = TagPattern.parse(self.d.settings.tag_pattern)
        return pattern.version_of(name) or parse_version(name, field="to_version")

    def _named_release(self, snap: ReleaseSnapshot, name: str) -> Release:
        by_tag = {r.tag: r for r in snap.releases}
        if name in by_tag:
            return by_tag[name]
        found = snap.find(self.wanted_version(name))
        if found is None:
            known = ", ".join(str(r.version) for r in snap.releases[-5:]) or "none"
            raise NoSuchVersion(f"no release {name} among the tags (newest known: {known})")
        return found

    def _check_python(self, target: Release) -> None:
        self._check_python_at(target.commit, target.tag)

    def _check_python_at(self, commit: str, label: str) -> None:
        """The release's requires-python against the deployment's interpreter."""
        project = releases.read_pyproject(self.d.repo, commit).get("project", {})
        spec_text = project.get("requires-python") if isinstance(project, dict) else None
        if not spec_text:
            return
        python = self.d.deployment_python()
        try:
            allowed = SpecifierSet(str(spec_text)).contains(python, prereleases=True)
        except InvalidSpecifier:
            raise PythonVersionMismatch(
                f"{label} declares requires-python {spec_text!r}, which is not valid",
                hint="fix requires-python in the release's pyproject.toml") from None
        if not allowed:
            raise PythonVersionMismatch(
                f"{label} requires Python {spec_text}, the deployment runs {python}",
                hint="upgrade the deployment's interpreter (setting python_executable) first")

    def _checkout(self, commit: str) -> None:
        # Looked at again right before: the fetch and the backup take time, and an edit made
        # meanwhile must stop the install rather than be caught up in it.
        dirty = self.d.repo.dirty_files()
        if dirty:
            raise DirtyWorkingTree(f"tracked files changed during the install: "
                                   f"{', '.join(dirty[:10])}")
        self.d.repo.checkout_detached(commit)

    def _verify_head(self, commit: str) -> None:
        head = self.d.repo.head_commit()
        if head != commit:
            raise VerificationFailed(f"after checkout HEAD is {head[:12]}, not {commit[:12]}")

    def _restore_head(self, commit: str | None, branch: str | None) -> str:
        """Put HEAD back where the install found it; says what it did, for the journal."""
        if commit is None:
            return "HEAD not restored: the starting commit is unknown"
        try:
            if self.d.repo.head_commit() == commit and self.d.repo.head_branch() == branch:
                dirty = self.d.repo.dirty_files()
                if dirty:
                    return (f"HEAD did not move, but tracked files differ from it: "
                            f"{', '.join(dirty[:10])} (left as they are; see git status)")
                return "HEAD did not move; nothing was changed"
            self.d.repo.restore_head(commit, branch)
            return f"HEAD restored to {branch or commit[:12]}"
        except GitReleaseError as exc:
            return f"HEAD could NOT be restored to {commit[:12]}: {exc.message}"

    async def finish_interrupted(self, store: Store) -> None:
        """Bring sessions left by a process that died to an end (called under the lock).

        Finished if HEAD reached the target, every step up to it completed and the health
        check passes; otherwise rolled back. Never left half-way.
        """
        for session in await store.unfinished_sessions():
            journal = await store.steps(session.id)
            last = next((s.step for s in reversed(journal) if s.state != "note"), "start")
            status, what = await self._settle(store, session, journal)
            session.status = status
            session.completed_at = utcnow()
            if status is UpdateStatus.COMPLETED:
                session.progress = 100
                session.restart_needed = True
                session.steps_completed.append(f"recovery: {what}")
            else:
                session.error_message = f"interrupted during {last!r}: {what}"
            await store.add_step(session.id, "recovery", "done", what)
            await store.save_session(session)

    async def _settle(
        self, store: Store, session: UpdateSession, journal: list[JournalStep]
    ) -> tuple[UpdateStatus, str]:
        started = [s.step for s in journal if s.state == "started"]
        done = {s.step for s in journal if s.state == "done"}
        branch = next((s.detail.removeprefix("branch=") or None for s in journal
                       if s.step == "origin"), None)
        head = await self.d.in_thread(self.d.repo.head_commit)
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
                    await self._release_steps_after_crash(session)
                return UpdateStatus.COMPLETED, f"everything up to {session.target_version} " \
                                               "had been done"
            except GitReleaseError as exc:
                started.append("health_check")
                reason = exc.message
        else:
            reason = (f"the process ended before {unfinished[0]!r} was done" if unfinished
                      else "the process ended while undoing")
            # A crash says nothing against the release: it is not marked bad for it.
            undo = await self._undo(store, session, branch, started, reason, blame=False)
            return UpdateStatus.FAILED, f"{reason}; {undo}"
        undo = await self._undo(store, session, branch, started, reason)
        return UpdateStatus.FAILED, f"{reason}; {undo}"

    async def _release_steps_after_crash(self, session: UpdateSession) -> None:
        """The health check of a release whose install was cut off after its last step."""
        from gitrelease.core.settings import command_argv, load_settings

        loaded = await self.d.in_thread(load_settings, self.d.root, self.d.data_dir)
        target = loaded.settings
        if command_argv(target.health_check_command):
            await self.d.in_thread(self._run, session, "health check",
                                    target.health_check_command, target.health_check_timeout)


def moved_warning(tag: str) -> str:
    return (f"tag {tag} was moved on the remote; the local tag is kept and the move is not "
            "followed")
