"""`ReleaseManager`: the one entry point every front-end calls.

It orchestrates the layers: the lock, the journal, progress events and undo. Its surface is
async (the bot's event loop); git, disk and process work runs in threads.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from gitrelease import releases
from gitrelease.errors import (
    ConfirmationRequired,
    DirtyWorkingTree,
    DowngradeRefused,
    GitReleaseError,
    InsufficientDiskSpace,
    InvalidInput,
    InvalidSetting,
    NoSuchVersion,
    PythonVersionMismatch,
    TagMoved,
    UnsupportedUpdateType,
    UntrackedFilesInTheWay,
    VerificationFailed,
)
from gitrelease.models import (
    BackupType,
    Progress,
    SystemInfo,
    UpdateInfo,
    UpdateSession,
    UpdateStatus,
    UpdateType,
    utcnow,
)
from gitrelease.pausepoints import pause_point
from gitrelease.releases import ReleaseSnapshot
from gitrelease.repo import FetchResult, GitRepo, find_toplevel
from gitrelease.reports import NOT_IMPLEMENTED, CheckReport, InstallPlan, SourceError
from gitrelease.settings import LoadedSettings, Settings, load_settings
from gitrelease.versions import Channel, Release, TagPattern, parse_version

if TYPE_CHECKING:
    from gitrelease.backups import (
        BackupOptions,
        BackupService,
        ListFilters,
        PruneResult,
        ReleasePoint,
    )
    from gitrelease.models import Backup
    from gitrelease.restore import RestoreOptions, RestoreResult
    from gitrelease.store import IndexStore, JournalStep

# The lock (filelock), the index (aiosqlite) and host metrics (psutil) are imported where
# they are used: `check` needs none of them, and CLI start-up time is part of the product.

__all__ = ["TIME_RANGES", "InstallOptions", "ReleaseManager", "parse_update_type"]

T = TypeVar("T")
TIME_RANGES = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# A version, or a tag name as people type them; never starting with "-", so never an option.
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!/-]{0,99}$")
_BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MIB = 1024 * 1024


def parse_update_type(value: str, *, field: str = "update_type") -> UpdateType:
    try:
        return UpdateType(value)
    except ValueError:
        raise InvalidInput(field, value, [t.value for t in UpdateType]) from None


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

    def __post_init__(self) -> None:
        for name in ("backup_before", "restart_required", "force", "dry_run"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(name, getattr(self, name), "true or false")
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
        aliases = {"force_update": "force", "to": "to_version", "user_id": "initiated_by",
                   "target_version": "to_version"}
        known = set(cls.__dataclass_fields__)
        values: dict[str, Any] = {}
        for key, value in options.items():
            name = aliases.get(key, key)
            if name not in known:
                raise InvalidInput("option", key, sorted(known | set(aliases)))
            values[name] = str(value) if name == "initiated_by" else value
        return cls(**values)


@dataclass
class _Resolution:
    """The release an install moves to, and what was found on the way."""

    target: Release | None  # None: already at the newest release
    snapshot: ReleaseSnapshot
    info: UpdateInfo | None = None
    warnings: list[str] = field(default_factory=list)


class ReleaseManager:
    """Check, install and report on the releases of one deployment."""

    def __init__(
        self, repo: GitRepo, data_dir: Path, loaded: LoadedSettings, *,
        this_process_is_bot: bool = False,
    ) -> None:
        self.repo = repo
        self.root = repo.root
        self.data_dir = data_dir
        self.loaded = loaded
        self._this_process_is_bot = this_process_is_bot
        self._store: IndexStore | None = None

    @classmethod
    async def open(
        cls, root: Path | None = None, *, data_dir: Path | None = None,
        this_process_is_bot: bool = False,
    ) -> ReleaseManager:
        """The deployment at `root`, else $GITRELEASE_ROOT, else the git top-level of the cwd."""
        return await asyncio.to_thread(cls._open, root, data_dir, this_process_is_bot)

    @classmethod
    def _open(
        cls, root: Path | None, data_dir: Path | None, this_process_is_bot: bool
    ) -> ReleaseManager:
        if root is None:
            env_root = os.environ.get("GITRELEASE_ROOT")
            root = Path(env_root) if env_root else find_toplevel(Path.cwd())
        repo = GitRepo(root.resolve())
        try:
            if data_dir is None:
                env_data = os.environ.get("GITRELEASE_DATA_DIR")
                data_dir = Path(env_data) if env_data else repo.root / "data"
            loaded = load_settings(repo.root, data_dir)
            repo.timeout = loaded.settings.git_timeout
            return cls(repo, data_dir, loaded, this_process_is_bot=this_process_is_bot)
        except BaseException:
            repo.close()
            raise

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None
        self.repo.close()

    async def __aenter__(self) -> ReleaseManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def index(self) -> IndexStore:
        """The index, opened once per manager and created if missing."""
        if self._store is None:
            from gitrelease.store import INDEX_NAME, SQLiteStore

            self._store = await SQLiteStore.open(self.data_dir / INDEX_NAME)
        return self._store

    async def existing_index(self) -> IndexStore | None:
        """The index if there is one: read-only commands never create it."""
        from gitrelease.store import INDEX_NAME

        if self._store is None and not (self.data_dir / INDEX_NAME).exists():
            return None
        return await self.index()

    # -- check -----------------------------------------------------------------------------

    async def check_for_updates(
        self, check_type: str = "all", *, include_security: bool = True
    ) -> CheckReport:
        """What is available, per source; one failing source does not sink the others."""
        kind = parse_update_type(check_type, field="check_type")
        report = CheckReport(kind, utcnow(), "", security_checked=include_security)
        if kind in (UpdateType.ALL, UpdateType.BOT):
            await asyncio.to_thread(self._check_bot, report, include_security)
        else:
            report.current_version = (await self._in_thread(self._snapshot)).current.text
        for source in (UpdateType.PACKAGES, UpdateType.CONFIG, UpdateType.DEPENDENCIES):
            if kind in (UpdateType.ALL, source):
                report.errors[source.value] = SourceError(
                    NOT_IMPLEMENTED,
                    f"checking {source.value} is not implemented in this version of gitrelease",
                    UnsupportedUpdateType.exit_code,
                )
        return report

    def _check_bot(self, report: CheckReport, include_security: bool) -> None:
        moved: tuple[str, ...] = ()
        try:
            moved = self._fetch().moved_tags
        except GitReleaseError as exc:
            report.errors["bot"] = SourceError.from_exception(exc)
            report.warnings.append("showing the releases already known locally")
        snap = self._snapshot()
        report.current_version = snap.current.text
        report.ignored_tags = snap.ignored
        report.warnings += [_moved_warning(tag) for tag in moved]
        report.warnings += self._inert_settings()
        offered = snap.offered()
        if offered:
            report.bot = releases.update_info(
                self.repo, snap, offered[-1], include_security=include_security,
                download_url=self._remote_url(),
            )
            report.warnings += self._local_commit_warnings(snap, offered[-1])

    # -- install ---------------------------------------------------------------------------

    async def install_updates(
        self, update_type: str, options: InstallOptions | Mapping[str, Any] | None = None,
        *, progress: Progress | None = None,
    ) -> UpdateSession | InstallPlan:
        """Install the newest release (or `to_version`); a dry run returns the plan instead."""
        kind = parse_update_type(update_type)
        opts = options if isinstance(options, InstallOptions) else InstallOptions.from_mapping(
            options or {})
        if kind is not UpdateType.BOT:
            raise UnsupportedUpdateType(
                f"installing {kind.value!r} updates is not available in this version",
                hint="install the bot's release with update type 'bot'")
        if opts.to_version is not None:
            self._wanted_version(opts.to_version)  # bad input changes nothing: refuse it now
        if opts.dry_run:
            return await asyncio.to_thread(self._plan, opts)
        async with self._exclusive("install", opts.initiated_by, opts.to_version) as store:
            return await self._install(store, opts, progress)

    @asynccontextmanager
    async def _exclusive(
        self, operation: str, actor: str, target: str | None = None
    ) -> AsyncIterator[IndexStore]:
        """The operation lock, with what a crash may have left behind put in order first."""
        from gitrelease.lock import OperationLock

        store = await self.index()
        lock = OperationLock(self.data_dir, operation, actor)
        try:
            await asyncio.to_thread(lock.acquire)
        except GitReleaseError as exc:
            await store.audit(actor, operation, target, "refused",
                              {"code": exc.code, "reason": exc.message})
            raise
        try:
            await self._finish_interrupted(store)
            await self._backups(store).reconcile()
            yield store
        finally:
            lock.release()

    def _backups(self, store: IndexStore) -> BackupService:
        from gitrelease.backups import BackupService
        from gitrelease.sources import Layout

        return BackupService(
            Layout.of(self.root, self.data_dir, self.settings), self.settings, store,
            python=self.settings.python_executable or sys.executable,
            gitrelease_version=_own_version())

    async def _release_point(self) -> ReleasePoint:
        from gitrelease.backups import ReleasePoint

        current = (await self._in_thread(self._snapshot)).current
        return ReleasePoint(current.tag, current.commit, current.text)

    # -- backups ---------------------------------------------------------------------------

    async def create_backup(
        self, backup_type: str = "full",
        options: BackupOptions | Mapping[str, Any] | None = None, *,
        actor: str = "system", progress: Progress | None = None,
    ) -> Backup:
        """Archive the state git does not version, indexed with the current tag."""
        from gitrelease.backups import BackupOptions, parse_backup_type

        kind = parse_backup_type(backup_type)
        opts = options if isinstance(options, BackupOptions) else BackupOptions.from_mapping(
            options or {})
        if not self.settings.backup_enabled:
            raise InvalidInput("backup_enabled", False, "true",
                               reason="backups are switched off in the settings")
        async with self._exclusive("backup", actor) as store:
            service = self._backups(store)
            backup = await service.create(kind, opts, await self._release_point(), progress)
            await store.audit(actor, "backup_create", backup.id, "completed",
                              {"type": kind.value, "size": backup.compressed_size})
            if self.settings.auto_cleanup:
                pruned = await service.prune(backup.tag, dry_run=False)
                if pruned.deleted:
                    await store.audit(actor, "backup_prune", None, "completed",
                                      {"deleted": [b.id for b in pruned.deleted]})
            return backup

    async def list_backups(
        self, filters: ListFilters | Mapping[str, Any] | None = None
    ) -> list[Backup]:
        from gitrelease.backups import ListFilters

        chosen = filters if isinstance(filters, ListFilters) else ListFilters.from_mapping(
            filters or {})
        store = await self.index()
        service = self._backups(store)
        await self._reconcile_if_idle(store)
        return await service.list_backups(chosen)

    async def _reconcile_if_idle(self, store: IndexStore) -> None:
        """Put things in order when no operation runs (never waiting for one): a list or a
        status may follow a crash, or a lost index that the archives can rebuild."""
        from gitrelease.lock import OperationLock

        lock = OperationLock(self.data_dir, "reconcile", "system")
        try:
            await asyncio.to_thread(lock.acquire)
        except GitReleaseError:
            return
        try:
            await self._finish_interrupted(store)
            await self._backups(store).reconcile()
        finally:
            lock.release()

    async def _known_backup(self, backup_id: str) -> None:
        """Refuse an unknown id before anything opens, locks or writes."""
        from gitrelease.backups import BackupNotFound

        if not isinstance(backup_id, str) or not backup_id or len(backup_id) > 100:
            raise InvalidInput("backup_id", backup_id, "a backup id or name")
        store = await self.existing_index()
        if store is None or await store.get_backup(backup_id) is None:
            raise BackupNotFound(f"no backup with id or name {backup_id!r}")

    async def verify_backup(self, backup_id: str, *, actor: str = "system") -> Backup:
        """Re-read an archive against its checksums; a mismatch marks it CORRUPTED."""
        await self._known_backup(backup_id)
        async with self._exclusive("backup_verify", actor, backup_id) as store:
            service = self._backups(store)
            backup = await service.get(backup_id)
            try:
                return await service.verify(backup)
            finally:
                await store.audit(actor, "backup_verify", backup.id, backup.status.value)

    async def delete_backup(
        self, backup_id: str, *, confirm: bool = False, actor: str = "system"
    ) -> Backup:
        if confirm is not True:
            raise InvalidInput("confirm", confirm, "true",
                               reason="deleting a backup cannot be undone")
        await self._known_backup(backup_id)
        async with self._exclusive("backup_delete", actor, backup_id) as store:
            service = self._backups(store)
            backup = await service.get(backup_id)
            if backup.id in await store.backups_in_use():
                raise InvalidInput("backup_id", backup_id, "a backup no unfinished update needs",
                                   reason="an unfinished update may still need it")
            await service.delete(backup)
            await store.audit(actor, "backup_delete", backup.id, "completed")
            return backup

    async def prune_backups(self, *, dry_run: bool = False, actor: str = "system") -> PruneResult:
        """Apply max_backups and backup_retention_days, never touching protected backups."""
        async with self._exclusive("backup_prune", actor) as store:
            point = await self._release_point()
            result = await self._backups(store).prune(point.tag, dry_run=dry_run)
            if not dry_run:
                await store.audit(actor, "backup_prune", None, "completed",
                                  {"deleted": [b.id for b in result.deleted]})
            return result

    async def restore_backup(
        self, backup_id: str, options: RestoreOptions | Mapping[str, Any] | None = None, *,
        actor: str = "system", progress: Progress | None = None,
    ) -> RestoreResult:
        """Verify, take a safety backup, then put the backup's files back in place."""
        from gitrelease.restore import RestoreOptions, restore

        opts = options if isinstance(options, RestoreOptions) else RestoreOptions.from_mapping(
            options or {})
        await self._known_backup(backup_id)
        async with self._exclusive("restore", actor, backup_id) as store:
            service = self._backups(store)
            backup = await service.get(backup_id)
            try:
                result = await restore(service, backup, opts, await self._release_point(),
                                       progress)
            except GitReleaseError as exc:
                await store.audit(actor, "restore", backup.id, "failed", {"code": exc.code})
                raise
            await store.audit(actor, "restore", backup.id, "completed",
                              {"type": opts.restore_type, "files": len(result.restored),
                               "safety_backup": result.safety_backup.id
                               if result.safety_backup else None})
            return result

    def _plan(self, opts: InstallOptions) -> InstallPlan:
        self._check_tree()
        moved = self._fetch().moved_tags
        found = self._resolve(opts, moved)
        if found.target is None or found.info is None:
            current = found.snapshot.current
            return InstallPlan(UpdateType.BOT, current.text, current.text, None,
                               current.commit, current.commit, [], None, found.warnings)
        return InstallPlan(
            UpdateType.BOT, found.snapshot.current.text, str(found.target.version),
            found.target.tag, found.snapshot.current.commit, found.target.commit,
            self._steps(opts), found.info, found.warnings)

    def _takes_backup(self, opts: InstallOptions) -> bool:
        return opts.backup_before or self.settings.require_backup_before_update

    def _steps(self, opts: InstallOptions) -> list[str]:
        backup = ["backup"] if self._takes_backup(opts) else []
        return ["preflight", "fetch", "resolve", *backup, "checkout", "verify"]

    async def _install(
        self, store: IndexStore, opts: InstallOptions, progress: Progress | None
    ) -> UpdateSession:
        snap = await self._in_thread(self._snapshot)
        session = UpdateSession(
            id=f"upd_{utcnow():%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:6]}",
            update_type=UpdateType.BOT, status=UpdateStatus.CHECKING, progress=0,
            started_at=utcnow(), completed_at=None,
            target_version=opts.to_version or "newest", current_version=snap.current.text,
            error_message=None, steps_completed=[], total_steps=len(self._steps(opts)),
            rollback_available=False, initiated_by=opts.initiated_by,
            from_commit=snap.current.commit,
        )
        await store.create_session(session)
        step = _StepRunner(store, session, progress)
        branch = await self._in_thread(self.repo.head_branch)
        try:
            await step("preflight", UpdateStatus.CHECKING, 10, self._check_tree)
            fetched = await step("fetch", UpdateStatus.DOWNLOADING, 30, self._fetch)
            found = await step(
                "resolve", UpdateStatus.CHECKING, 50, self._resolve, opts, fetched.moved_tags)
        except GitReleaseError as exc:
            refused = step.current in ("preflight", "resolve")
            await step.finish(UpdateStatus.CANCELLED if refused else UpdateStatus.FAILED,
                              exc.message)
            await store.audit(opts.initiated_by, "install", session.target_version,
                              "refused" if refused else "failed", {"session": session.id,
                                                                   "code": exc.code})
            raise
        session.warnings = found.warnings
        if not opts.backup_before and self._takes_backup(opts):
            session.warnings.append("a backup was taken although none was asked for: the "
                                    "setting require_backup_before_update is on")
        if found.target is None:
            session.target_version = session.current_version
            session.to_commit = session.from_commit
            session.steps_completed.append(f"already at {session.current_version}")
            await step.finish(UpdateStatus.COMPLETED, None)
            await store.audit(opts.initiated_by, "install", session.target_version,
                              "up_to_date", {"session": session.id})
            return session
        target = found.target
        session.target_version = str(target.version)
        session.target_tag = target.tag
        session.to_commit = target.commit
        session.rollback_available = True  # the previous release's code stays in git
        if self._takes_backup(opts):
            try:
                backup = await step("backup", UpdateStatus.INSTALLING, 65,
                                    self._pre_update_backup, store, opts, snap, target)
            except GitReleaseError as exc:
                await step.finish(UpdateStatus.FAILED, f"pre-update backup failed: {exc.message}")
                await store.audit(opts.initiated_by, "install", session.target_version,
                                  "failed", {"session": session.id, "code": exc.code})
                raise
            session.backup_id = backup.id
            await store.save_session(session)
        try:
            await step("checkout", UpdateStatus.INSTALLING, 80, self._checkout, target.commit)
            await step("verify", UpdateStatus.INSTALLING, 95, self._verify_head, target.commit)
        except Exception as exc:
            message = exc.message if isinstance(exc, GitReleaseError) else repr(exc)
            undo = await self._in_thread(self._restore_head, session.from_commit, branch)
            await step.finish(UpdateStatus.FAILED, f"{message}; {undo}")
            await store.audit(opts.initiated_by, "install", session.target_version, "failed",
                              {"session": session.id, "undo": undo})
            raise
        session.restart_needed = True
        session.steps_completed.append(
            "restart: not performed (this version does not restart the bot); restart it to run "
            f"{target.tag}" if opts.restart_required else "restart: skipped as asked")
        await step.finish(UpdateStatus.COMPLETED, None)
        await store.audit(opts.initiated_by, "install", session.target_version, "completed",
                          {"session": session.id, "from": session.from_commit,
                           "to": session.to_commit})
        return session

    async def _pre_update_backup(
        self, store: IndexStore, opts: InstallOptions, snap: ReleaseSnapshot, target: Release
    ) -> Backup:
        """A full backup indexed with the current tag, COMPLETED and verified before any change."""
        from gitrelease.backups import BackupOptions, ReleasePoint

        service = self._backups(store)
        current = snap.current
        backup = await service.create(
            BackupType.FULL,
            BackupOptions(backup_name=opts.backup_name, auto_created=True,
                          description=f"before installing {target.tag}"),
            ReleasePoint(current.tag, current.commit, current.text))
        if backup.verified_at is None:
            backup = await service.verify(backup)
        return backup

    def _check_tree(self) -> None:
        dirty = self.repo.dirty_files()
        if dirty:
            shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10
                                              else "")
            raise DirtyWorkingTree(f"tracked files have local changes: {shown}")
        free = shutil.disk_usage(self.root).free
        needed = self.settings.min_disk_space_mb * _MIB
        if free < needed:
            raise InsufficientDiskSpace(
                f"{free // _MIB} MiB free under {self.root}, "
                f"{self.settings.min_disk_space_mb} MiB needed")

    def _resolve(self, opts: InstallOptions, moved: tuple[str, ...]) -> _Resolution:
        if self.settings.require_signed_tags:
            raise VerificationFailed(
                "require_signed_tags is on, but this version of gitrelease cannot verify tag "
                "signatures yet, so it installs nothing",
                hint="switch require_signed_tags off only if unsigned releases are acceptable")
        snap = self._snapshot()
        current = snap.current
        warnings = [_moved_warning(tag) for tag in moved] + self._inert_settings()
        if opts.to_version is not None:
            target = self._named_release(snap, opts.to_version)
            if target.version.is_prerelease and snap.channel is Channel.STABLE:
                warnings.append(f"{target.tag} is a pre-release, installed because it was named")
        else:
            offered = snap.offered()
            target = offered[-1] if offered else None
        if target is None or (target.commit == current.commit and current.tag is not None
                              and target.version == current.version):
            return _Resolution(None, snap, warnings=warnings)
        if not current.is_older_than(target):
            raise DowngradeRefused(
                f"{target.tag} is not newer than the current version {current.text}")
        if target.tag in moved and not opts.force:
            raise TagMoved(f"{target.tag} points elsewhere on the remote than it did when fetched")
        in_the_way = [p for p in self.repo.paths_added(current.commit, target.commit)
                      if (self.root / p).exists() or (self.root / p).is_symlink()]
        if in_the_way:
            raise UntrackedFilesInTheWay(
                f"{target.tag} adds files that exist here untracked: {', '.join(in_the_way[:10])}")
        self._check_python(target)
        info = releases.update_info(self.repo, snap, target, include_security=True,
                                    download_url=self._remote_url())
        reasons = []
        local = self._local_commit_warnings(snap, target)
        if local and self.repo.head_branch() is None:
            reasons += local  # detached: those commits would be left on no branch at all
        else:
            warnings += local
        if info.breaking_changes and self.settings.require_confirmation:
            reasons.append(f"{target.tag} has breaking changes")
        if (info.size or 0) > self.settings.max_update_size_mb * _MIB:
            reasons.append(f"it changes {(info.size or 0) // _MIB} MiB, more than "
                           f"max_update_size_mb ({self.settings.max_update_size_mb})")
        if reasons and not opts.force:
            raise ConfirmationRequired("; ".join(reasons))
        warnings += [f"installed with --force although {r}" for r in reasons]
        return _Resolution(target, snap, info, warnings)

    def _local_commit_warnings(self, snap: ReleaseSnapshot, target: Release) -> list[str]:
        """Commits at HEAD that the target does not contain: an install leaves them behind."""
        local = self.repo.commits_between(target.commit, snap.current.commit)
        if not local:
            return []
        branch = self.repo.head_branch()
        where = (f"they stay on branch {branch}" if branch else
                 "HEAD is detached, so no branch would hold them")
        return [f"HEAD has {len(local)} commit(s) that {target.tag} does not contain ({where})"]

    def _remote_url(self) -> str | None:
        try:
            return self.repo.remote_url(self.settings.remote)
        except GitReleaseError:
            return None

    def _inert_settings(self) -> list[str]:
        """Settings given a value although this version does not act on them yet."""
        from gitrelease.settings import INERT

        return [f"setting {name} = {self.settings.get(name)!r} has no effect in this version "
                f"(set in {self.loaded.sources[name]})"
                for name in INERT if self.loaded.sources[name] != "default"]

    def _wanted_version(self, name: str) -> Version:
        """The version a person named, as a release tag name or as a bare version.

        Checked before anything runs; the name itself is only ever looked up, never handed
        to git.
        """
        pattern = TagPattern.parse(self.settings.tag_pattern)
        return pattern.version_of(name) or parse_version(name, field="to_version")

    def _named_release(self, snap: ReleaseSnapshot, name: str) -> Release:
        by_tag = {r.tag: r for r in snap.releases}
        if name in by_tag:
            return by_tag[name]
        found = snap.find(self._wanted_version(name))
        if found is None:
            known = ", ".join(str(r.version) for r in snap.releases[-5:]) or "none"
            raise NoSuchVersion(f"no release {name} among the tags (newest known: {known})")
        return found

    def _check_python(self, target: Release) -> None:
        project = releases.read_pyproject(self.repo, target.commit).get("project", {})
        spec_text = project.get("requires-python") if isinstance(project, dict) else None
        if not spec_text:
            return
        python = self._deployment_python()
        try:
            allowed = SpecifierSet(str(spec_text)).contains(python, prereleases=True)
        except InvalidSpecifier:
            raise PythonVersionMismatch(
                f"{target.tag} declares requires-python {spec_text!r}, which is not valid",
                hint="fix requires-python in the release's pyproject.toml") from None
        if not allowed:
            raise PythonVersionMismatch(
                f"{target.tag} requires Python {spec_text}, the deployment runs {python}",
                hint="upgrade the deployment's interpreter (setting python_executable) first")

    def _deployment_python(self) -> Version:
        executable = self.settings.python_executable
        if not executable:
            return Version(platform.python_version())
        try:
            out = subprocess.run(
                [executable, "-c", "import platform; print(platform.python_version())"],
                capture_output=True, text=True, timeout=30, check=True).stdout
            return Version(out.strip())
        except (OSError, subprocess.SubprocessError, InvalidVersion):
            raise InvalidSetting(self.loaded.sources["python_executable"], "python_executable",
                                 f"is {executable!r}, which is not a working Python "
                                 "interpreter") from None

    def _checkout(self, commit: str) -> None:
        # Looked at again right before: the fetch and the backup take time, and an edit made
        # meanwhile must stop the install rather than be caught up in it.
        dirty = self.repo.dirty_files()
        if dirty:
            raise DirtyWorkingTree(f"tracked files changed during the install: "
                                   f"{', '.join(dirty[:10])}")
        self.repo.checkout_detached(commit)

    def _verify_head(self, commit: str) -> None:
        head = self.repo.head_commit()
        if head != commit:
            raise VerificationFailed(f"after checkout HEAD is {head[:12]}, not {commit[:12]}")

    def _restore_head(self, commit: str | None, branch: str | None) -> str:
        """Put HEAD back where the install found it; says what it did, for the journal."""
        if commit is None:
            return "HEAD not restored: the starting commit is unknown"
        try:
            if self.repo.head_commit() == commit and self.repo.head_branch() == branch:
                dirty = self.repo.dirty_files()
                if dirty:
                    return (f"HEAD did not move, but tracked files differ from it: "
                            f"{', '.join(dirty[:10])} (left as they are; see git status)")
                return "HEAD did not move; nothing was changed"
            self.repo.restore_head(commit, branch)
            return f"HEAD restored to {branch or commit[:12]}"
        except GitReleaseError as exc:
            return f"HEAD could NOT be restored to {commit[:12]}: {exc.message}"

    async def _finish_interrupted(self, store: IndexStore) -> None:
        """Bring sessions left by a process that died to an end (called under the lock)."""
        for session in await store.unfinished_sessions():
            steps = await store.steps(session.id)
            last = steps[-1].step if steps else "start"
            status, what = await self._in_thread(self._settle, session)
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

    def _settle(self, session: UpdateSession) -> tuple[UpdateStatus, str]:
        head = self.repo.head_commit()
        if session.to_commit and session.to_commit != session.from_commit \
                and head == session.to_commit:
            return UpdateStatus.COMPLETED, f"HEAD is at the target {session.to_commit[:12]}"
        if head == session.from_commit:
            return UpdateStatus.FAILED, "the process ended before HEAD moved; nothing changed"
        return UpdateStatus.FAILED, (
            f"the process ended and HEAD has since moved to {head[:12]} (it started from "
            f"{(session.from_commit or '?')[:12]}); left as it is")

    # -- status ----------------------------------------------------------------------------

    async def get_update_status(
        self, time_range: str = "7d", *, show_history: bool = False, show_metrics: bool = True
    ) -> SystemInfo:
        from gitrelease import system

        if time_range not in TIME_RANGES:
            raise InvalidInput("time_range", time_range, list(TIME_RANGES))
        since = utcnow() - TIME_RANGES[time_range]
        snap = await self._in_thread(self._snapshot)
        store = await self.existing_index()
        if store is not None:
            await self._reconcile_if_idle(store)
        counts = await store.session_counts(since) if store else {}
        last = await store.last_completed() if store else None
        recent = await store.list_sessions(since, limit=10) if store and show_history else []
        completed = counts.get(UpdateStatus.COMPLETED.value, 0)
        failed = counts.get(UpdateStatus.FAILED.value, 0)
        finished = completed + failed
        stats = {
            "time_range": time_range,
            "total": sum(counts.values()),
            "by_status": counts,
            "completed": completed,
            "failed": failed,
            "success_rate": round(completed / finished * 100, 1) if finished else None,
        }
        version_file, agrees, warnings = await self._in_thread(self._version_file, snap)
        python, python_warnings = await self._in_thread(self._python_text)
        warnings += python_warnings + self._inert_settings()
        uptime, source = await self._in_thread(
            system.uptime, self.data_dir, this_process_is_bot=self._this_process_is_bot)
        disk: dict[str, Any] = {}
        memory: dict[str, Any] = {}
        if show_metrics:
            disk = await self._in_thread(system.disk_usage, self.root, self.data_dir)
            memory = await self._in_thread(system.memory_usage, self.data_dir)
        return SystemInfo(
            version=snap.current.text, python_version=python,
            bot_version=version_file, last_update=last.completed_at if last else None,
            uptime=uptime, disk_usage=disk, memory_usage=memory, update_statistics=stats,
            backup_statistics=self._backup_statistics(
                await store.list_backups() if store else []),
            tag=snap.current.tag, commit=snap.current.commit,
            version_file_agrees=agrees, uptime_source=source,
            gitrelease_version=_own_version(), recent_sessions=recent, warnings=warnings,
        )

    def _python_text(self) -> tuple[str, list[str]]:
        try:
            return str(self._deployment_python()), []
        except InvalidSetting as exc:
            return "unknown", [exc.message]

    @staticmethod
    def _backup_statistics(backups: list[Backup]) -> dict[str, Any]:
        completed = [b for b in backups if b.status.value == "completed"]
        return {
            "total": len(backups),
            "completed": len(completed),
            "corrupted": sum(1 for b in backups if b.status.value == "corrupted"),
            "failed": sum(1 for b in backups if b.status.value == "failed"),
            "stored_bytes": sum(b.compressed_size or 0 for b in completed),
            "latest": completed[0].id if completed else None,
            "latest_at": completed[0].created_at.isoformat() if completed else None,
        }

    def _version_file(self, snap: ReleaseSnapshot) -> tuple[str | None, bool | None, list[str]]:
        try:
            text = (self.root / "VERSION").read_text().strip()
        except OSError:
            return None, None, []
        current = snap.current.version
        try:
            agrees = current is not None and Version(text.removeprefix("v")) == current
        except InvalidVersion:
            agrees = False
        warnings = [] if agrees else [
            f"VERSION says {text!r} but the release tag says {snap.current.text}"]
        return text, agrees, warnings

    async def journal(
        self, session_id: str | None = None
    ) -> tuple[UpdateSession, list[JournalStep]]:
        """A session (default: the latest) and its journalled steps."""
        store = await self.existing_index()
        if store is None:
            raise InvalidInput("session", session_id, "the id of a recorded update session",
                               reason="no update session has been recorded yet")
        if session_id is None:
            latest = await store.list_sessions(limit=1)
            if not latest:
                raise InvalidInput("session", None, "the id of a recorded update session",
                                   reason="no update session has been recorded yet")
            session = latest[0]
        else:
            found = await store.get_session(session_id)
            if found is None:
                raise InvalidInput("session", session_id, "an id listed by `status --history`",
                                   reason="no such session")
            session = found
        return session, await store.steps(session.id)

    # -- shared ----------------------------------------------------------------------------

    def _snapshot(self) -> ReleaseSnapshot:
        pattern = TagPattern.parse(self.settings.tag_pattern)
        return releases.snapshot(self.repo, pattern, Channel(self.settings.channel))

    def _fetch(self) -> FetchResult:
        return self.repo.fetch_tags(self.settings.remote, self.settings.fetch_timeout)

    @staticmethod
    async def _in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)


class _StepRunner:
    """Journals a step before and after it runs, so a crash leaves a trace of where it was."""

    def __init__(self, store: IndexStore, session: UpdateSession, progress: Progress | None):
        self.store = store
        self.session = session
        self.progress = progress
        self.current = ""

    async def __call__(
        self, name: str, status: UpdateStatus, percent: int, work: Callable[..., T], *args: Any
    ) -> T:
        self.current = name
        self.session.status = status
        await self.store.add_step(self.session.id, name, "started")
        await self.store.save_session(self.session)
        self._report(name, self.session.progress, "started")
        pause_point(f"install:{name}")
        try:
            if inspect.iscoroutinefunction(work):
                result = await work(*args)
            else:
                result = await asyncio.to_thread(work, *args)
        except Exception as exc:
            detail = exc.message if isinstance(exc, GitReleaseError) else type(exc).__name__
            await self.store.add_step(self.session.id, name, "failed", detail)
            raise
        self.session.steps_completed.append(name)
        self.session.progress = percent
        await self.store.add_step(self.session.id, name, "done")
        await self.store.save_session(self.session)
        self._report(name, percent, "done")
        pause_point(f"install:{name}:done")
        return result

    async def finish(self, status: UpdateStatus, error: str | None) -> None:
        self.session.status = status
        self.session.error_message = error
        self.session.completed_at = utcnow()
        if status is UpdateStatus.COMPLETED:
            self.session.progress = 100
        await self.store.save_session(self.session)
        self._report("finished", self.session.progress, status.value)

    def _report(self, step: str, percent: int, detail: str) -> None:
        if self.progress is not None:
            self.progress(step, percent, detail)


def _moved_warning(tag: str) -> str:
    return (f"tag {tag} was moved on the remote; the local tag is kept and the move is not "
            "followed")


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gitrelease")
    except PackageNotFoundError:
        return "unknown"
