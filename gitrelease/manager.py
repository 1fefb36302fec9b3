"""`ReleaseManager`: the one entry point every front-end calls.

It orchestrates the layers: the lock, the journal, progress events and undo. Its surface is
async (the bot's event loop); git, disk and process work runs in threads.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.version import InvalidVersion, Version

from gitrelease import releases
from gitrelease.beside import Beside
from gitrelease.errors import (
    GitReleaseError,
    InvalidInput,
    InvalidSetting,
)
from gitrelease.models import (
    Progress,
    SystemInfo,
    UpdateInfo,
    UpdateSession,
    UpdateStatus,
    UpdateType,
    parse_update_type,
    utcnow,
)
from gitrelease.releases import ReleaseSnapshot
from gitrelease.repo import FetchResult, GitRepo, deployment_root
from gitrelease.reports import CheckReport, InstallPlan, SourceError
from gitrelease.settings import LoadedSettings, Settings, load_settings
from gitrelease.versions import Channel, TagPattern

if TYPE_CHECKING:
    import asyncio

    from gitrelease.backups import (
        BackupOptions,
        BackupService,
        ListFilters,
        PruneResult,
        ReleasePoint,
    )
    from gitrelease.boot import StartCheck
    from gitrelease.install import InstallOptions
    from gitrelease.models import Backup, UpdateSchedule
    from gitrelease.restart import RestartOutcome
    from gitrelease.restore import RestoreOptions, RestoreResult
    from gitrelease.rollback import RollbackOptions
    from gitrelease.scheduler import RunReport
    from gitrelease.settings_edit import SettingChange
    from gitrelease.sources import Layout
    from gitrelease.store import BackupSummary, IndexStore, JournalStep
    from gitrelease.upkeep import UpkeepWatch

# The lock (filelock), the index (aiosqlite), host metrics (psutil), the installer and even
# asyncio are imported where they are used: the CLI's `check` needs none of them (it runs
# without an event loop, see `blocking`), and CLI start-up time is part of the product.

__all__ = ["TIME_RANGES", "InstallOptions", "ReleaseManager", "parse_update_type"]


def __getattr__(name: str) -> Any:
    if name == "InstallOptions":  # re-exported for front-ends, imported only when asked for
        from gitrelease.install import InstallOptions

        return InstallOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

T = TypeVar("T")
LAST_CHECK = "last_check.json"
TIME_RANGES = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# A version, or a tag name as people type them; never starting with "-", so never an option.
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!/-]{0,99}$")
_BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MIB = 1024 * 1024


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
        self._upkeep: UpkeepWatch | None = None  # for self._store, once it is open

    @classmethod
    async def open(
        cls, root: Path | None = None, *, data_dir: Path | None = None,
        this_process_is_bot: bool = False,
    ) -> ReleaseManager:
        """The deployment at `root`, else $GITRELEASE_ROOT, else the git top-level of the cwd."""
        return await cls._in_thread(cls._open, root, data_dir, this_process_is_bot)

    @classmethod
    @contextmanager
    def blocking(
        cls, root: Path | None = None, *, data_dir: Path | None = None
    ) -> Iterator[ReleaseManager]:
        """A manager for the blocking calls (`check_blocking`), with no event loop: what a
        one-shot CLI command needs, without asyncio's import. It never opens the index."""
        manager = cls._open(root, data_dir, False)
        try:
            yield manager
        finally:
            if manager._store is not None:
                raise RuntimeError("the index was opened on a blocking manager")
            manager.repo.close()

    @classmethod
    def _open(
        cls, root: Path | None, data_dir: Path | None, this_process_is_bot: bool
    ) -> ReleaseManager:
        repo = GitRepo(deployment_root(root).resolve())
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

    async def reload_settings(self) -> Settings:
        """Read the settings again: a long-lived manager (the bot's) sees later changes."""
        self.loaded = await self._in_thread(load_settings, self.root, self.data_dir)
        self.repo.timeout = self.loaded.settings.git_timeout
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
            self._upkeep = None  # its stamps are those of a connection now gone
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
        return await self._in_thread(self.check_blocking, check_type,
                                     include_security=include_security)

    def check_blocking(
        self, check_type: str = "all", *, include_security: bool = True
    ) -> CheckReport:
        """`check_for_updates` in the calling thread (git and disk work block)."""
        kind = parse_update_type(check_type, field="check_type")
        report = CheckReport(kind, utcnow(), "", security_checked=include_security)
        self._check_bot(report, include_security, kind)
        others = [s for s in (UpdateType.PACKAGES, UpdateType.DEPENDENCIES, UpdateType.CONFIG)
                  if kind in (UpdateType.ALL, s)]
        if others:
            self._check_others(report, include_security, others)
        self._remember_check(report)
        return report

    def _remember_check(self, report: CheckReport) -> None:
        """When the last check ran and what it found, for `status` (a small JSON file, so
        that `check` needs no database)."""
        import json

        from gitrelease.fsutil import atomic_write

        summary = {"at": report.last_check.isoformat(), "check_type": report.check_type.value,
                   "total_updates": report.to_dict()["total_updates"]}
        with suppress(OSError):  # a read-only data dir must not make the check itself fail
            atomic_write(self.data_dir / LAST_CHECK, json.dumps(summary).encode())

    def _last_check(self) -> dict[str, Any] | None:
        import json

        try:
            return json.loads((self.data_dir / LAST_CHECK).read_text())
        except (OSError, ValueError):
            return None

    def _check_others(
        self, report: CheckReport, include_security: bool, sources: list[UpdateType]
    ) -> None:
        from gitrelease import checks

        snap = self._snapshot()
        if UpdateType.PACKAGES in sources:
            checks.check_packages(self, report, snap, include_security)
        if UpdateType.DEPENDENCIES in sources:
            checks.check_dependencies(self, report, snap)
        if UpdateType.CONFIG in sources:
            checks.check_config_source(self, report, snap)

    def _check_bot(self, report: CheckReport, include_security: bool, kind: UpdateType) -> None:
        moved: tuple[str, ...] = ()
        wanted = kind in (UpdateType.ALL, UpdateType.BOT)
        with suppress(GitReleaseError):  # asked once here, before anything runs beside
            self.repo.remote_names()
        # The tags are listed (and the remote's URL read) while the remote is asked for its
        # tags, and the bot's update is worked out from that listing; both stand if nothing
        # needed fetching, else (or if the fetch failed) they are done again.
        early = Beside(self._snapshot)
        url = Beside(self._remote_url)
        ahead = Beside(lambda: self._bot_update(early.result(), include_security, url)) \
            if wanted else None
        try:
            fresh = False
            try:
                fetched = self._fetch_unless_current(early)
                # Only the remote's own list vouches for the early listing: a fetch that
                # brings nothing may follow another process's that brought the new tags.
                fresh = fetched is None
                moved = fetched.moved_tags if fetched is not None else ()
            except GitReleaseError as exc:
                if wanted:
                    report.errors["bot"] = SourceError.from_exception(exc)
                report.warnings.append(f"showing the releases already known locally "
                                       f"({exc.message})")
            early_stands = early.succeeds() and fresh
            snap = early.result() if early_stands else self._snapshot()
            report.current_version = snap.current.text
            report.ignored_tags = snap.ignored
            if moved:
                from gitrelease.install import moved_warning

                report.warnings += [moved_warning(tag) for tag in moved]
            report.warnings += self._inert_settings() + snap.bad_warnings()
            if wanted:
                if ahead is not None and early_stands and ahead.succeeds():
                    bot, local = ahead.result()
                else:
                    bot, local = self._bot_update(snap, include_security, url)
                report.bot = bot
                report.warnings += local
                if bot is not None and self.settings.require_signed_tags and \
                        bot.signature != "valid":
                    report.warnings.append(
                        f"{bot.tag} would be refused: require_signed_tags is on and its "
                        f"signature is {bot.signature} ({bot.signature_detail})")
        finally:  # no thread outlives the check
            for thread in (early, url, ahead):
                if thread is not None:
                    thread.succeeds()

    def _bot_update(
        self, snap: ReleaseSnapshot, include_security: bool, url: Beside[str | None]
    ) -> tuple[UpdateInfo | None, list[str]]:
        """The newest release `snap` offers, and what installing it would leave behind."""
        offered = snap.offered()
        if not offered:
            return None, []
        local = Beside(lambda: releases.local_commit_warnings(self.repo, snap, offered[-1]))
        try:
            info = releases.update_info(self.repo, snap, offered[-1],
                                        include_security=include_security,
                                        download_url=url.result())
        finally:
            local.succeeds()
        return info, local.result()

    # -- install ---------------------------------------------------------------------------

    async def install_updates(
        self, update_type: str, options: InstallOptions | Mapping[str, Any] | None = None,
        *, progress: Progress | None = None,
    ) -> UpdateSession | InstallPlan:
        """Install an update of one type, or all of them in one session; a dry run returns
        the plan instead. `bot` moves to the newest release (or `to_version`); `packages`
        and `dependencies` bring the interpreter's packages to what HEAD requires (upgrading,
        or only as far as needed); `config` adds keys the templates have and the live files
        lack; `all` does them all after the bot's checkout, and undoes them together."""
        from gitrelease.install import Installer, InstallOptions

        kind = parse_update_type(update_type)
        opts = options if isinstance(options, InstallOptions) else InstallOptions.from_mapping(
            options or {})
        if opts.to_version is not None:
            # Bad input changes nothing: refuse it before anything runs.
            Installer(self).wanted_version(opts.to_version)
        if opts.dry_run:
            return await self._in_thread(Installer(self).plan, opts, kind)
        async with self._exclusive("install", opts.initiated_by, opts.to_version) as store:
            return await Installer(self).run(store, opts, progress, kind)

    @asynccontextmanager
    async def _exclusive(
        self, operation: str, actor: str, target: str | None = None
    ) -> AsyncIterator[IndexStore]:
        """The operation lock, with what a crash may have left behind put in order first."""
        from gitrelease.install import Installer
        from gitrelease.lock import OperationLock

        store = await self.index()
        lock = OperationLock(self.data_dir, operation, actor)
        try:
            await self._in_thread(lock.acquire)
        except GitReleaseError as exc:
            await store.audit(actor, operation, target, "refused",
                              {"code": exc.code, "reason": exc.message})
            raise
        try:
            await Installer(self).finish_interrupted(store)
            await self._backups(store).reconcile()
            yield store
        finally:
            lock.release()

    def layout(self) -> Layout:
        """Where the data, backups and logs are; a bad path names the file it was set in."""
        from gitrelease.sources import Layout

        return Layout.of(self.root, self.data_dir, self.settings, self.loaded.sources)

    def _backups(self, store: IndexStore) -> BackupService:
        from gitrelease.backups import BackupService

        return BackupService(
            self.layout(), self.settings, store,
            python=self.python_executable(),
            gitrelease_version=_own_version(), tracked_files=self.repo.tracked_files)

    async def _release_point(self) -> ReleasePoint:
        from gitrelease.backups import ReleasePoint

        current = (await self._in_thread(self._snapshot)).current
        return ReleasePoint(current.tag, current.commit, current.text)

    # -- rollback --------------------------------------------------------------------------

    async def rollback_to_version(
        self, target_version: str, options: RollbackOptions | Mapping[str, Any] | None = None,
        *, progress: Progress | None = None, commit: str | None = None,
        backup_id: str | None = None,
    ) -> UpdateSession:
        """Back to an older release (a version, `previous` or `last_backup`), data included.
        `commit` pins where `target_version` is (boot-check's way back to what ran before)."""
        from gitrelease.rollback import Rollback, RollbackOptions

        opts = options if isinstance(options, RollbackOptions) else \
            RollbackOptions.from_mapping(options or {})
        rollback = Rollback(self)
        if commit is None:
            rollback.check_target(target_version)
        async with self._exclusive("rollback", opts.initiated_by, target_version) as store:
            return await rollback.run(store, target_version, opts, progress, commit=commit,
                                      backup_id=backup_id)

    # -- schedules -------------------------------------------------------------------------

    async def add_schedule(
        self, schedule_type: str, update_time: str | None = None, update_days: str | None = None,
        update_types: str = "all", enabled: bool = True, *, actor: str = "system",
    ) -> UpdateSchedule:
        """A daily, weekly, monthly or custom automatic update, in the configured time zone."""
        from gitrelease.scheduler import Scheduler

        return await Scheduler(self).add(schedule_type, update_time, update_days, update_types,
                                         enabled, actor)

    async def list_schedules(self) -> list[UpdateSchedule]:
        store = await self.existing_index()
        return await store.list_schedules() if store else []

    async def set_schedule_enabled(
        self, schedule_id: str, enabled: bool, *, actor: str = "system"
    ) -> UpdateSchedule:
        from gitrelease.scheduler import Scheduler

        return await Scheduler(self).set_enabled(schedule_id, enabled, actor)

    async def remove_schedule(self, schedule_id: str, *, actor: str = "system") -> UpdateSchedule:
        from gitrelease.scheduler import Scheduler

        return await Scheduler(self).remove(schedule_id, actor)

    async def run_due_schedules(self, now: datetime | None = None) -> RunReport:
        """Run every schedule that is due (claimed first: never twice by two runners)."""
        from gitrelease.scheduler import Scheduler

        return await Scheduler(self).run_due(now)

    async def run_schedules_forever(self, stop: asyncio.Event) -> None:
        """For the bot: run due schedules until `stop` is set, sleeping until the next one."""
        from gitrelease.scheduler import Scheduler

        await Scheduler(self).run_forever(stop)

    async def recover(self) -> None:
        """Settle what a dead process left half-way, unless an operation is running now."""
        await self._reconcile_if_idle(await self.index(), always=True)

    async def release_tags(self) -> list[str]:
        """Every release tag known locally, newest first (for autocomplete)."""
        snap = await self._in_thread(self._snapshot)
        return [r.tag for r in reversed(snap.releases)]

    # -- restarts and starts ---------------------------------------------------------------

    async def restart(self, *, actor: str = "system") -> RestartOutcome:
        """Restart the bot now by restart_method."""
        from gitrelease.restart import restart_bot

        outcome = await self._in_thread(restart_bot, self.root, self.data_dir, self.settings,
                                        reason="asked")
        store = await self.index()
        await store.audit(actor, "restart", None,
                          "requested" if outcome.performed else "not_performed",
                          {"method": outcome.method, "detail": outcome.detail})
        return outcome

    async def restart_after_checkout(self, old: str, new: str) -> RestartOutcome:
        """The post-checkout hook's call: a checkout by hand moved HEAD from `old` to `new`."""
        from gitrelease.boot import restart_after_checkout

        return await restart_after_checkout(self, old, new)

    async def confirm_start(self, *, actor: str = "bot") -> StartCheck:
        """Called by the bot once it is up: the version it runs, recorded and confirmed."""
        from gitrelease.boot import confirm_start

        return await confirm_start(self, actor=actor)

    async def boot_check(self) -> StartCheck:
        """Before each start: count unconfirmed starts and roll back a crash loop."""
        from gitrelease.boot import boot_check

        return await boot_check(self)

    # -- settings --------------------------------------------------------------------------

    def settings_view(self, category: str | None = None) -> list[dict[str, Any]]:
        """Every setting (of one category) with its value and the layer it comes from."""
        from gitrelease.settings import CATEGORIES, schema

        if category is not None and category not in CATEGORIES:
            raise InvalidInput("setting_category", category, CATEGORIES)
        return [{"category": spec.category, "name": name, "value": self.settings.get(name),
                 "default": spec.default, "source": self.loaded.sources[name],
                 "allowed": spec.allowed(), "description": spec.description}
                for name, spec in schema().items() if category in (None, spec.category)]

    async def change_setting(
        self, category: str, name: str, value: str | None, *, actor: str = "system"
    ) -> SettingChange:
        """Set a runtime setting from text, or reset it with `value` None; audited."""
        from gitrelease.settings_edit import change_setting, parse_value, spec_for

        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput("setting_value", value, "text")
            parse_value(spec_for(category, name), value)  # bad input changes nothing
        else:
            spec_for(category, name)
        change = await self._in_thread(change_setting, self.root, self.data_dir, category,
                                       name, value)
        self.loaded = await self._in_thread(load_settings, self.root, self.data_dir)
        store = await self.index()
        await store.audit(actor, "settings_reset" if value is None else "settings_set",
                          f"{category}.{name}", "completed",
                          {"previous": _shown(name, change.previous),
                           "new": _shown(name, change.new)})
        return change

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
        """The backups as `BackupService.list_backups` picks and orders them, by SQL: only
        the rows shown are read."""
        from gitrelease.backups import BACKUP_RANGES, ListFilters

        chosen = filters if isinstance(filters, ListFilters) else ListFilters.from_mapping(
            filters or {})
        store = await self.index()
        await self._reconcile_if_idle(store)
        window = BACKUP_RANGES[chosen.time_range]
        return await store.query_backups(
            backup_type=chosen.backup_type, since=utcnow() - window if window else None,
            sort_by=chosen.sort_by, limit=chosen.limit)

    async def _reconcile_if_idle(self, store: IndexStore, *, always: bool = False) -> None:
        """Put things in order when no operation runs (never waiting for one): a list or a
        status may follow a crash, or a lost index that the archives can rebuild. Unless
        `always`, a cheap look (`upkeep`) first says whether there is anything to do."""
        from gitrelease.install import Installer
        from gitrelease.lock import OperationLock
        from gitrelease.upkeep import UpkeepWatch

        try:
            backup_dir = self.layout().backup_dir
            bad_layout: GitReleaseError | None = None
        except GitReleaseError as exc:
            # A bad backup_path: the backups cannot be put in order until it is mended. Reads
            # go on without; every operation refuses, naming the setting (its own reconcile
            # raises it); a recovery still settles interrupted installs, then names it.
            if not always:
                return
            backup_dir, bad_layout = None, exc
        if not always and backup_dir is not None:
            if self._upkeep is None:
                self._upkeep = UpkeepWatch()
            if await self._upkeep.pending(store, backup_dir) is None:
                return
        lock = OperationLock(self.data_dir, "reconcile", "system")
        try:
            await self._in_thread(lock.acquire)
        except GitReleaseError:
            return
        try:
            await Installer(self).finish_interrupted(store)
            if bad_layout is not None:
                raise bad_layout
            await self._backups(store).reconcile()
        finally:
            lock.release()

    async def _known_backup(self, backup_id: str) -> None:
        """Refuse an unknown id before anything opens, locks or writes."""
        from gitrelease.backups import BackupNotFound

        if not isinstance(backup_id, str) or not backup_id or len(backup_id) > 100:
            raise InvalidInput("backup_id", backup_id, "a backup id or name")
        store = await self.existing_index()
        if store is not None and await store.get_backup(backup_id) is not None:
            return
        # The index may have been lost while the archives were not: rebuild it, then look.
        if (store is None and self._has_archives()) or store is not None:
            store = await self.index()
            await self._reconcile_if_idle(store)
            if await store.get_backup(backup_id) is not None:
                return
        raise BackupNotFound(f"no backup with id or name {backup_id!r}")

    def _has_archives(self) -> bool:
        directory = self.layout().backup_dir
        return directory.is_dir() and any(p.name.startswith("backup_")
                                          for p in directory.iterdir())

    async def verify_backup(self, backup_id: str, *, deep: bool = False,
                            actor: str = "system") -> Backup:
        """Re-read an archive against its checksums; a mismatch marks it CORRUPTED. `deep`
        also checks every member against the manifest, not only the archive's sha256."""
        await self._known_backup(backup_id)
        async with self._exclusive("backup_verify", actor, backup_id) as store:
            service = self._backups(store)
            backup = await service.get(backup_id)
            try:
                return await service.verify(backup, deep=deep)
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

    # -- shared by check, install and status -----------------------------------------------

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

    def python_executable(self) -> str:
        """The deployment's interpreter: the setting, else the one running gitrelease."""
        return self.settings.python_executable or sys.executable

    def deployment_python(self) -> Version:
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

    # -- status ----------------------------------------------------------------------------

    async def get_update_status(
        self, time_range: str = "7d", *, show_history: bool = False, show_metrics: bool = True
    ) -> SystemInfo:
        if time_range not in TIME_RANGES:
            raise InvalidInput("time_range", time_range, list(TIME_RANGES))
        since = utcnow() - TIME_RANGES[time_range]
        import asyncio

        layout_problems: list[str] = []
        try:
            backup_dir: Path | None = self.layout().backup_dir
        except GitReleaseError as exc:  # a bad backup_path: status still answers, and says so
            backup_dir = None
            layout_problems.append(exc.message)
        # git, the host's facts and the index each wait on something of their own: together.
        snap, host, (stats, summary, last, recent) = await asyncio.gather(
            self._in_thread(self._snapshot),
            self._in_thread(self._host_facts, show_metrics, backup_dir),
            self._index_statistics(since, show_history))
        disk = host.disk
        if disk:  # the archives' sizes come from the index, which reconcile keeps true
            archives = summary.archive_bytes if summary else 0
            inside = backup_dir is not None and \
                backup_dir.resolve().is_relative_to(self.data_dir.resolve())
            disk = {**disk, "backups_bytes": archives,
                    "data_dir_bytes": disk["data_dir_bytes"] + (archives if inside else 0)}
        stats = {"time_range": time_range, **stats,
                 "last_check": await self._in_thread(self._last_check)}
        version_file, agrees, warnings = await self._in_thread(self._version_file, snap)
        warnings += layout_problems + host.warnings + self._inert_settings()
        return SystemInfo(
            version=snap.current.text, python_version=host.python,
            bot_version=version_file, last_update=last.completed_at if last else None,
            uptime=host.uptime, disk_usage=disk, memory_usage=host.memory,
            update_statistics=stats, backup_statistics=self._backup_statistics(summary),
            tag=snap.current.tag, commit=snap.current.commit,
            version_file_agrees=agrees, uptime_source=host.uptime_source,
            gitrelease_version=_own_version(), recent_sessions=recent, warnings=warnings,
        )

    async def _index_statistics(
        self, since: datetime, show_history: bool
    ) -> tuple[dict[str, Any], BackupSummary | None, UpdateSession | None, list[UpdateSession]]:
        """The update statistics of `status`, by SQL over the index (none without one)."""
        store = await self.existing_index()
        if store is not None:
            await self._reconcile_if_idle(store)
        analytics = await store.session_analytics(since) if store else {}
        by_type: dict[str, dict[str, int]] = analytics.get("by_type", {})
        # The counts by status are the analytics' counts summed over the types (the same
        # sessions: those that changed something, since `since`).
        totals: dict[str, int] = {}
        for per_status in by_type.values():
            for status, count in per_status.items():
                totals[status] = totals.get(status, 0) + count
        counts = dict(sorted(totals.items()))
        completed = counts.get(UpdateStatus.COMPLETED.value, 0)
        failed = counts.get(UpdateStatus.FAILED.value, 0)
        finished = completed + failed
        schedules = await store.list_schedules() if store else []
        upcoming = min((s.next_run for s in schedules if s.enabled and s.next_run),
                       default=None)
        stats = {
            "total": sum(counts.values()),
            "by_status": counts,
            "completed": completed,
            "failed": failed,
            "success_rate": round(completed / finished * 100, 1) if finished else None,
            "by_type": by_type,
            "rollbacks": sum(by_type.get("rollback", {}).values()),
            "mean_duration_seconds": analytics.get("mean_duration_seconds"),
            "longest_duration_seconds": analytics.get("longest_duration_seconds"),
            "next_scheduled_run": upcoming.isoformat() if upcoming else None,
        }
        if store is None:
            return stats, None, None, []
        recent = await store.list_sessions(since, limit=10) if show_history else []
        return stats, await store.backup_summary(), await store.last_completed(), recent

    def _host_facts(self, show_metrics: bool, backup_dir: Path | None) -> _HostFacts:
        from gitrelease import system

        python, warnings = self._python_text()
        uptime, source = system.uptime(self.data_dir,
                                       this_process_is_bot=self._this_process_is_bot)
        if not show_metrics:
            return _HostFacts(python, warnings, uptime, source, {}, {})
        return _HostFacts(
            python, warnings, uptime, source,
            system.disk_usage(self.root, self.data_dir, self.settings.min_disk_space_mb,
                              skip=backup_dir),
            system.memory_usage(self.data_dir))

    def _python_text(self) -> tuple[str, list[str]]:
        try:
            return str(self.deployment_python()), []
        except InvalidSetting as exc:
            return "unknown", [exc.message]

    @staticmethod
    def _backup_statistics(summary: BackupSummary | None) -> dict[str, Any]:
        counts = summary.by_status if summary else {}
        latest = summary.latest if summary else None
        return {
            "total": summary.total if summary else 0,
            "completed": counts.get("completed", 0),
            "corrupted": counts.get("corrupted", 0),
            "failed": counts.get("failed", 0),
            "stored_bytes": summary.completed_bytes if summary else 0,
            "latest": latest[0] if latest else None,
            "latest_at": latest[1].isoformat() if latest else None,
            "newest_verified": summary.newest_verified if summary else None,
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
        from gitrelease.quarantine import load_bad

        pattern = TagPattern.parse(self.settings.tag_pattern)
        bad = {commit: b.reason for commit, b in load_bad(self.data_dir).items()}
        return releases.snapshot(self.repo, pattern, Channel(self.settings.channel), bad)

    def _fetch(self) -> FetchResult:
        return self.repo.fetch_tags(self.settings.remote, self.settings.fetch_timeout)

    def _fetch_unless_current(self, local: Beside[ReleaseSnapshot]) -> FetchResult | None:
        """`_fetch`, unless every tag the remote has is in the `local` listing, naming the
        same object: then None, and that listing is the remote's too. With many tags, a
        fetch that brings nothing costs twice what listing them does (`ls-remote`: one round
        trip, no negotiation, no connectivity walk)."""
        remote = self.repo.remote_tags(self.settings.remote, self.settings.fetch_timeout)
        if remote is not None and local.succeeds():
            known = local.result().tags
            if all(known.get(name) == oid for name, oid in remote.items()):
                return None
        return self._fetch()

    @staticmethod
    async def _in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import asyncio

        return await asyncio.to_thread(func, *args, **kwargs)


@dataclass(frozen=True)
class _HostFacts:
    python: str
    warnings: list[str]
    uptime: timedelta
    uptime_source: str
    disk: dict[str, Any]
    memory: dict[str, Any]


def _shown(name: str, value: Any) -> Any:
    """A setting's value as it may be written to the audit log (never a command's secrets)."""
    return "(set)" if name.endswith("_command") and value else value


@cache
def _own_version() -> str:
    """The installed gitrelease's version, read once: the code running is the code that was
    imported, whatever an upgrade has since put on disk (parsing the metadata costs ~1 ms)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gitrelease")
    except PackageNotFoundError:
        return "unknown"
