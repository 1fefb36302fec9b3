"""`ReleaseManager`: the one entry point every front-end calls.

A thin facade: it opens a `Deployment` (gitrelease.deploy.context) and hands each call to
the operation that does it. Its surface is async (the bot's event loop); the operations run
git, disk and process work in threads. The release side (cutting a release, the pre-push
check) and the git hooks work on a checkout alone, and are plain functions at the end.

Over the ~400-line aim on purpose: it is the whole public surface in one place, each entry a
docstring and a call or two; split, a front-end's author would have to search for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitrelease.core.beside import in_thread

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from packaging.version import Version

    from gitrelease.core.choices import STATUS_RANGES as TIME_RANGES
    from gitrelease.core.fleet import Instance, Rollout, RolloutOptions, SessionStarts
    from gitrelease.core.models import (
        Backup,
        Progress,
        SystemInfo,
        UpdateSchedule,
        UpdateSession,
        parse_update_type,
    )
    from gitrelease.core.reports import CheckReport, InstallPlan, RestoreResult, ScheduleListener
    from gitrelease.core.settings import LoadedSettings, Settings
    from gitrelease.core.settings_edit import SettingChange
    from gitrelease.deploy.boot import StartCheck
    from gitrelease.deploy.context import Deployment
    from gitrelease.deploy.install_options import InstallOptions
    from gitrelease.deploy.offsite_ops import QueueReport
    from gitrelease.deploy.recover import Recovered
    from gitrelease.deploy.restart import RestartOutcome
    from gitrelease.deploy.restore import RestoreOptions
    from gitrelease.deploy.rollback import RollbackOptions
    from gitrelease.deploy.scheduler import RunReport
    from gitrelease.git.hooks import HookState
    from gitrelease.git.repo import GitRepo
    from gitrelease.index.store import JournalStep, Store
    from gitrelease.release.cut import ReleaseResult
    from gitrelease.state.backup_options import BackupOptions, ListFilters
    from gitrelease.state.offsite import OffsiteCopy
    from gitrelease.state.retention import PruneResult
    from gitrelease.state.sources import Layout

# The operations are imported where they are used: the CLI's `check` needs none of the
# installer, the index or asyncio (it runs without an event loop, see `blocking`), the
# release side and the hooks need no deployment at all, and CLI start-up time is part of
# the product.

__all__ = ["TIME_RANGES", "InstallOptions", "ReleaseManager", "check_push", "cut_release",
           "deployment_root", "manage_hooks", "new_offsite_key", "parse_update_type",
           "recover_deployment",
           "restart_watcher", "write_pid_file"]


def __getattr__(name: str) -> Any:
    # Re-exported for front-ends (and for the code written against the flat package),
    # imported only when asked for.
    if name == "InstallOptions":
        from gitrelease.deploy.install_options import InstallOptions

        return InstallOptions
    if name == "TIME_RANGES":
        from gitrelease.core.choices import STATUS_RANGES

        return STATUS_RANGES
    if name == "parse_update_type":
        from gitrelease.core.models import parse_update_type

        return parse_update_type
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ReleaseManager:
    """Check, install and report on the releases of one deployment."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @classmethod
    async def open(
        cls, root: Path | None = None, *, data_dir: Path | None = None,
        this_process_is_bot: bool = False,
    ) -> ReleaseManager:
        """The deployment at `root`, else $GITRELEASE_ROOT, else the git top-level of the cwd."""
        from gitrelease.deploy.context import Deployment

        return cls(await in_thread(Deployment.open, root, data_dir, this_process_is_bot))

    @classmethod
    @contextmanager
    def blocking(
        cls, root: Path | None = None, *, data_dir: Path | None = None
    ) -> Iterator[ReleaseManager]:
        """A manager for the blocking calls (`check_blocking`), with no event loop: what a
        one-shot CLI command needs, without asyncio's import. It never opens the index."""
        from gitrelease.deploy.context import Deployment

        manager = cls(Deployment.open(root, data_dir))
        try:
            yield manager
        finally:
            if manager.deployment.store is not None:
                raise RuntimeError("the index was opened on a blocking manager")
            manager.repo.close()

    # -- the deployment --------------------------------------------------------------------

    @property
    def repo(self) -> GitRepo:
        return self.deployment.repo

    @property
    def root(self) -> Path:
        return self.deployment.root

    @property
    def data_dir(self) -> Path:
        return self.deployment.data_dir

    @property
    def loaded(self) -> LoadedSettings:
        return self.deployment.loaded

    @property
    def settings(self) -> Settings:
        return self.deployment.settings

    async def reload_settings(self) -> Settings:
        """Read the settings again: a long-lived manager (the bot's) sees later changes."""
        return await in_thread(self.deployment.reload_settings)

    def layout(self) -> Layout:
        """Where the data, backups and logs are; a bad path names the file it was set in."""
        return self.deployment.layout()

    def python_executable(self) -> str:
        return self.deployment.python_executable()

    def deployment_python(self) -> Version:
        """The version of the interpreter that runs the bot."""
        return self.deployment.deployment_python()

    async def index(self) -> Store:
        """The index, opened once per manager and created if missing."""
        return await self.deployment.index()

    async def existing_index(self) -> Store | None:
        """The index if there is one: read-only commands never create it."""
        return await self.deployment.existing_index()

    async def close(self) -> None:
        await self.deployment.close()

    async def __aenter__(self) -> ReleaseManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- check and install -----------------------------------------------------------------

    async def check_for_updates(
        self, check_type: str = "all", *, include_security: bool = True
    ) -> CheckReport:
        """What is available, per source; one failing source does not sink the others."""
        return await in_thread(self.check_blocking, check_type,
                               include_security=include_security)

    def check_blocking(
        self, check_type: str = "all", *, include_security: bool = True
    ) -> CheckReport:
        """`check_for_updates` in the calling thread (git and disk work block)."""
        from gitrelease.deploy.check import check

        return check(self.deployment, check_type, include_security=include_security)

    async def install_updates(
        self, update_type: str, options: InstallOptions | Mapping[str, Any] | None = None,
        *, progress: Progress | None = None,
    ) -> UpdateSession | InstallPlan:
        """Install an update of one type, or all of them in one session; a dry run returns
        the plan instead. `bot` moves to the newest release (or `to_version`); `packages`
        and `dependencies` bring the interpreter's packages to what HEAD requires (upgrading,
        or only as far as needed); `config` adds keys the templates have and the live files
        lack; `all` does them all after the bot's checkout, and undoes them together."""
        from gitrelease.deploy.updates import install_updates

        return await install_updates(self.deployment, update_type, options, progress)

    async def rollback_to_version(
        self, target_version: str, options: RollbackOptions | Mapping[str, Any] | None = None,
        *, progress: Progress | None = None, commit: str | None = None,
        backup_id: str | None = None,
    ) -> UpdateSession:
        """Back to an older release (a version, `previous` or `last_backup`), data included.
        `commit` pins where `target_version` is (boot-check's way back to what ran before)."""
        from gitrelease.deploy.updates import rollback_to_version

        return await rollback_to_version(self.deployment, target_version, options,
                                         progress=progress, commit=commit, backup_id=backup_id)

    async def rollback_target(self, target_version: str) -> dict[str, Any]:
        """Where a rollback to `target_version` would go now ({"version", "tag", "commit",
        "backup"}), or the error it would raise; changes nothing."""
        from gitrelease.deploy.rollback import Rollback

        return await Rollback(self.deployment).resolve(await self.index(), target_version)

    async def recover(self) -> None:
        """Settle what a dead process left half-way, unless an operation is running now."""
        from gitrelease.deploy.guard import reconcile_if_idle

        await reconcile_if_idle(self.deployment, await self.index(), always=True)

    async def release_tags(self) -> list[str]:
        """Every release tag known locally, newest first (for autocomplete)."""
        snap = await in_thread(self.deployment.snapshot)
        return [r.tag for r in reversed(snap.releases)]

    async def release_choices(self) -> list[dict[str, Any]]:
        """Every release tag, newest first, each with where it stands against what runs:
        {"tag", "relation": "current" | "newer" | "older", "failed": bool} (for the
        suggestions a front-end offers; "failed": it failed to install before)."""
        snap = await in_thread(self.deployment.snapshot)
        current = snap.current
        return [{"tag": r.tag,
                 "relation": "current" if r.commit == current.commit and current.distance == 0
                 else "newer" if current.is_older_than(r) else "older",
                 "failed": r.commit in snap.bad} for r in reversed(snap.releases)]

    # -- the fleet (a shared index) -------------------------------------------------------

    @property
    def shared_index(self) -> bool:
        """Whether the index is on a server several deployments share (index_url)."""
        return bool(self.deployment.index_location()[0])

    async def report_instance(self, *, health: str | None = None,
                              shards: list[int] | None = None) -> Instance:
        """Report this deployment to the shared index (`NoFleet` without one)."""
        from gitrelease.deploy.fleet import report

        return await report(self.deployment, health=health, shards=shards,
                            this_process_is_bot=self.deployment.this_process_is_bot)

    async def note_session_starts(self, limit: Mapping[str, Any],
                                  bot_id: str | None) -> SessionStarts:
        """Keep what Discord says of the bot's session starts (its `session_start_limit`),
        for this deployment's reports to carry to a rollout (`deploy.sessions`)."""
        from gitrelease.deploy.sessions import save_session_starts

        return await in_thread(save_session_starts, self.deployment.data_dir, limit, bot_id)

    async def fleet_status(self) -> tuple[list[Instance], float]:
        """Every deployment on the shared index, and after how many seconds without a
        report one reads stale (`NoFleet` without a shared index)."""
        from gitrelease.deploy.fleet import instances, stale_after

        return await instances(self.deployment), stale_after(self.deployment)

    async def run_agent(self, *, once: bool = False, stop: asyncio.Event | None = None,
                        shards: list[int] | None = None) -> Instance:
        """Report this deployment every heartbeat, and act on its part of a rollout, until
        `stop` (`gitrelease agent`)."""
        from gitrelease.deploy.agent import agent

        return await agent(self.deployment, once=once, stop=stop, shards=shards)

    async def start_rollout(self, target: str, options: RolloutOptions, *,
                            actor: str = "system") -> Rollout:
        """Plan and record a rollout of `target` over the running instances."""
        from gitrelease.deploy.rollout import start

        return await start(self.deployment, target, options, actor=actor)

    async def drive_rollout(self, rollout_id: str, *, actor: str = "system",
                            poll: float = 0.5,
                            on_change: Callable[[Rollout], None] | None = None) -> Rollout:
        """Coordinate a rollout until it ends (again, after a coordinator died)."""
        from gitrelease.deploy.rollout import drive

        return await drive(self.deployment, rollout_id, actor=actor, poll=poll,
                           on_change=on_change)

    async def abort_rollout(self, rollout_id: str | None = None, *, actor: str = "system",
                            why: str = "aborted") -> Rollout:
        from gitrelease.deploy.rollout import abort

        return await abort(self.deployment, rollout_id, actor=actor, why=why)

    async def pause_rollout(self, rollout_id: str | None = None, *, actor: str = "system",
                            why: str = "paused", promote: bool = False) -> Rollout:
        """Hold the running rollout, or (`promote`) let a paused one go on."""
        from gitrelease.deploy.rollout import pause

        return await pause(self.deployment, rollout_id, actor=actor, why=why, promote=promote)

    async def rollouts(self, limit: int = 10) -> list[tuple[Rollout, list[dict[str, Any]]]]:
        """The latest rollouts, newest first, each with its audit trail."""
        from gitrelease.deploy.fleet import fleet_store

        store = await fleet_store(self.deployment)
        return [(r, await store.rollout_trail(r.id)) for r in await store.latest_rollouts(limit)]

    # -- schedules -------------------------------------------------------------------------

    async def add_schedule(
        self, schedule_type: str, update_time: str | None = None, update_days: str | None = None,
        update_types: str = "all", enabled: bool = True, *, actor: str = "system",
    ) -> UpdateSchedule:
        """A daily, weekly, monthly or custom automatic update, in the configured time zone."""
        from gitrelease.deploy.scheduler import Scheduler

        return await Scheduler(self.deployment).add(schedule_type, update_time, update_days,
                                                    update_types, enabled, actor)

    async def check_schedule(
        self, schedule_type: str, update_time: str | None = None, update_days: str | None = None,
        update_types: str = "all", enabled: bool = True,
    ) -> None:
        """Raise `InvalidInput` for what `add_schedule` would refuse; writes nothing."""
        from gitrelease.deploy.scheduler import Scheduler

        await Scheduler(self.deployment).check(schedule_type, update_time, update_days,
                                               update_types, enabled)

    async def list_schedules(self) -> list[UpdateSchedule]:
        store = await self.existing_index()
        return await store.list_schedules() if store else []

    async def set_schedule_enabled(
        self, schedule_id: str, enabled: bool, *, actor: str = "system"
    ) -> UpdateSchedule:
        from gitrelease.deploy.scheduler import Scheduler

        return await Scheduler(self.deployment).set_enabled(schedule_id, enabled, actor)

    async def remove_schedule(self, schedule_id: str, *, actor: str = "system") -> UpdateSchedule:
        from gitrelease.deploy.scheduler import Scheduler

        return await Scheduler(self.deployment).remove(schedule_id, actor)

    async def run_due_schedules(self, now: datetime | None = None) -> RunReport:
        """Run every schedule that is due (claimed first: never twice by two runners)."""
        from gitrelease.deploy.scheduler import Scheduler

        return await Scheduler(self.deployment).run_due(now)

    async def run_schedules_forever(
        self, stop: asyncio.Event, *, wake: asyncio.Event | None = None,
        listener: ScheduleListener | None = None,
    ) -> None:
        """For the bot: run due schedules until `stop` is set, sleeping until the next one
        (`wake` ends a sleep early; `listener` hears each run start and end)."""
        from gitrelease.deploy.scheduler import Scheduler

        await Scheduler(self.deployment).run_forever(stop, wake=wake, listener=listener)

    # -- restarts and starts ---------------------------------------------------------------

    async def restart(self, *, actor: str = "system") -> RestartOutcome:
        """Restart the bot now by restart_method."""
        from gitrelease.deploy.boot import restart_now

        return await restart_now(self.deployment, actor=actor)

    async def restart_after_checkout(self, old: str, new: str) -> RestartOutcome:
        """The post-checkout hook's call: a checkout by hand moved HEAD from `old` to `new`."""
        from gitrelease.deploy.boot import restart_after_checkout

        return await restart_after_checkout(self.deployment, old, new)

    async def confirm_start(self, *, actor: str = "bot") -> StartCheck:
        """Called by the bot once it is up: the version it runs, recorded and confirmed.
        From the first call on, boot-check expects every start to confirm (start_confirmation
        = auto); the cog calls it at load."""
        from gitrelease.deploy.boot import confirm_start

        return await confirm_start(self.deployment, actor=actor)

    async def boot_check(self) -> StartCheck:
        """Before each start: count the starts expected to confirm that did not (or failed
        health checks, for a bot that never confirms) and roll back a crash loop."""
        from gitrelease.deploy.boot import boot_check

        return await boot_check(self.deployment)

    # -- settings --------------------------------------------------------------------------

    def settings_view(self, category: str | None = None) -> list[dict[str, Any]]:
        """Every setting (of one category) with its value and the layer it comes from."""
        from gitrelease.deploy.setting_change import settings_view

        return settings_view(self.deployment, category)

    async def change_setting(
        self, category: str, name: str, value: str | None, *, actor: str = "system"
    ) -> SettingChange:
        """Set a runtime setting from text, or reset it with `value` None; audited."""
        from gitrelease.deploy.setting_change import change_setting

        return await change_setting(self.deployment, category, name, value, actor=actor)

    # -- backups ---------------------------------------------------------------------------

    async def create_backup(
        self, backup_type: str = "full",
        options: BackupOptions | Mapping[str, Any] | None = None, *,
        actor: str = "system", progress: Progress | None = None,
    ) -> Backup:
        """Archive the state git does not version, indexed with the current tag."""
        from gitrelease.deploy import backup_ops

        return await backup_ops.create_backup(self.deployment, backup_type, options,
                                              actor=actor, progress=progress)

    async def list_backups(
        self, filters: ListFilters | Mapping[str, Any] | None = None
    ) -> list[Backup]:
        """The backups as `BackupService.list_backups` picks and orders them, by SQL: only
        the rows shown are read."""
        from gitrelease.deploy import backup_ops

        return await backup_ops.list_backups(self.deployment, filters)

    async def get_backup(self, backup_id: str) -> Backup:
        """The backup of that id or name, or `BackupNotFound`."""
        from gitrelease.deploy import backup_ops

        return await backup_ops.get_backup(self.deployment, backup_id)

    async def verify_backup(self, backup_id: str, *, deep: bool = False,
                            actor: str = "system") -> Backup:
        """Re-read an archive against its checksums; a mismatch marks it CORRUPTED. `deep`
        also checks every member against the manifest, not only the archive's sha256."""
        from gitrelease.deploy import backup_ops

        return await backup_ops.verify_backup(self.deployment, backup_id, deep=deep,
                                              actor=actor)

    async def push_backup(self, backup_id: str, *, actor: str = "system") -> OffsiteCopy:
        """Copy a backup to the offsite storage (`offsite_url`); again after a failure, it
        completes what is missing."""
        from gitrelease.deploy.offsite_ops import push_backup

        return await push_backup(self.deployment, backup_id, actor=actor)

    async def upload_queued(self, *, force: bool = False, actor: str = "system") -> QueueReport:
        """Upload the backups queued for offsite (offsite = "after_backup") and the failed
        ones whose retry is due (`force`: all now)."""
        from gitrelease.deploy.offsite_ops import upload_queued

        return await upload_queued(self.deployment, actor=actor, force=force)

    async def verify_offsite(self, *, sample_percent: float = 100.0,
                             actor: str = "system") -> dict[str, Any]:
        """Download the offsite copies (or a sample) and check each against its digest."""
        from gitrelease.deploy.offsite_ops import verify_offsite

        return await verify_offsite(self.deployment, sample_percent=sample_percent,
                                    actor=actor)

    async def prune_offsite(self, *, dry_run: bool = False, actor: str = "system"
                            ) -> PruneResult:
        """Apply offsite_max_backups and offsite_retention_days to the offsite copies."""
        from gitrelease.deploy.offsite_ops import prune_offsite

        return await prune_offsite(self.deployment, dry_run=dry_run, actor=actor)

    async def delete_backup(
        self, backup_id: str, *, confirm: bool = False, actor: str = "system"
    ) -> Backup:
        from gitrelease.deploy import backup_ops

        return await backup_ops.delete_backup(self.deployment, backup_id, confirm=confirm,
                                              actor=actor)

    async def prune_backups(self, *, dry_run: bool = False, actor: str = "system") -> PruneResult:
        """Apply max_backups and backup_retention_days, never touching protected backups."""
        from gitrelease.deploy import backup_ops

        return await backup_ops.prune_backups(self.deployment, dry_run=dry_run, actor=actor)

    async def restore_backup(
        self, backup_id: str, options: RestoreOptions | Mapping[str, Any] | None = None, *,
        actor: str = "system", progress: Progress | None = None,
    ) -> RestoreResult:
        """Verify, take a safety backup, then put the backup's files back in place."""
        from gitrelease.deploy import backup_ops

        return await backup_ops.restore_backup(self.deployment, backup_id, options,
                                               actor=actor, progress=progress)

    # -- status ----------------------------------------------------------------------------

    async def get_update_status(
        self, time_range: str = "7d", *, show_history: bool = False, show_metrics: bool = True
    ) -> SystemInfo:
        from gitrelease.deploy.status import get_update_status

        return await get_update_status(self.deployment, time_range, show_history=show_history,
                                       show_metrics=show_metrics)

    async def journal(
        self, session_id: str | None = None
    ) -> tuple[UpdateSession | None, list[JournalStep]]:
        """A session (default: the latest) and its journalled steps; (None, []) when none
        is asked for and none has been recorded yet."""
        from gitrelease.deploy.status import journal

        return await journal(self.deployment, session_id)

    async def session_log(self, session_id: str, lines: int = 20
                          ) -> tuple[UpdateSession, list[str]]:
        """A recorded session and the last lines its commands printed (its log's tail)."""
        from gitrelease.core.errors import InvalidInput
        from gitrelease.deploy.status import log_tail

        session, _steps = await self.journal(session_id)
        if session is None:  # only when no id is given, and this always takes one
            raise InvalidInput("session", session_id, "the id of a recorded update session")
        return session, await in_thread(log_tail, self.deployment, session, lines)


# -- what works on a checkout alone -----------------------------------------------------------


def deployment_root(root: Path | None = None) -> Path:
    """`root`, else $GITRELEASE_ROOT, else the git top-level of the current directory."""
    from gitrelease.git.worktree import deployment_root as find

    return find(root).resolve()


def cut_release(
    root: Path, target: str, *, pre: str | None = None, sign: bool = False,
    push: bool = False, dry_run: bool = False,
) -> ReleaseResult:
    """The release side: bump the version, write the changelog, tag, and push if asked."""
    from gitrelease.release.cut import ReleaseOptions
    from gitrelease.release.cut import cut_release as cut

    return cut(root, ReleaseOptions(target=target, pre=pre, sign=sign, push=push,
                                    dry_run=dry_run))


def check_push(root: Path, remote: str, url: str, lines: list[str]) -> list[str]:
    """The pre-push hook's check of the refs git is about to push: the refusals, if any."""
    from gitrelease.release.prepush import check_push as check

    return check(root, remote, url, lines)


def manage_hooks(
    root: Path, action: str, *, release: bool = False, python: str | None = None,
    default_python: str | None = None,
) -> list[HookState]:
    """Install, uninstall or show (`status`) gitrelease's git hooks in the checkout."""
    from gitrelease.git.hooks import (
        DEPLOYMENT_HOOKS,
        RELEASE_HOOKS,
        hook_states,
        install_hooks,
        uninstall_hooks,
    )
    from gitrelease.git.repo import GitRepo

    repo = GitRepo(root)
    try:
        names = RELEASE_HOOKS if release else DEPLOYMENT_HOOKS
        if action == "install":
            return install_hooks(repo, names, python, default_python=default_python)
        if action == "uninstall":
            return uninstall_hooks(repo, names)
        return hook_states(repo, DEPLOYMENT_HOOKS + RELEASE_HOOKS)
    finally:
        repo.close()


def write_pid_file(data_dir: Path) -> Path:
    """The running bot's pid, for restart_method = signal and for `status`."""
    from gitrelease.deploy.restart import write_pid_file as write

    return write(data_dir)


def restart_watcher(data_dir: Path, on_request: Any) -> Any:
    """For restart_method = exit: a `RestartWatcher` that hands each request to the bot."""
    from gitrelease.deploy.restart import RestartWatcher

    return RestartWatcher(data_dir, on_request=on_request)


def new_offsite_key(path: Path) -> str:
    """Write a fresh key for offsite_key_file to `path` (0600; an existing file is never
    overwritten); its public id."""
    from gitrelease.state.offsite_crypt import key_id, load_key, new_key_file

    new_key_file(path)
    return key_id(load_key(path))


async def recover_deployment(origin: str, offsite_url: str, directory: Path, *,
                             endpoint: str = "", key_file: Path | None = None,
                             backup_id: str | None = None, actor: str = "system") -> Recovered:
    """A deployment rebuilt in `directory` from `origin` and its offsite copies (the newest
    completed full backup, or `backup_id`): cloned, checked out, restored; a refusal or a
    failure leaves nothing behind."""
    from gitrelease.deploy.recover import recover_deployment as recover

    return await recover(origin, offsite_url, directory, endpoint=endpoint,
                         key_file=key_file, backup_id=backup_id, actor=actor)
