"""The two operations that move the code: install an update, roll back to a release.

Each checks its input before anything opens or locks, then runs under `guard.exclusive`.
The facade and the operations that start one of their own (the scheduler's runs, boot-check's
rollback of a crash loop) call these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitrelease.core.models import Progress, UpdateSession, parse_update_type
from gitrelease.core.reports import InstallPlan
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.deploy.guard import exclusive
from gitrelease.deploy.install import Installer
from gitrelease.deploy.install_options import InstallOptions
from gitrelease.deploy.rollback import Rollback, RollbackOptions

__all__ = ["install_updates", "rollback_to_version"]


async def install_updates(
    d: Deployment, update_type: str,
    options: InstallOptions | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> UpdateSession | InstallPlan:
    """Install an update of one type, or all of them in one session; a dry run returns
    the plan instead (see `ReleaseManager.install_updates`)."""
    kind = parse_update_type(update_type)
    opts = options if isinstance(options, InstallOptions) else InstallOptions.from_mapping(
        options or {})
    if opts.to_version is not None:
        # Bad input changes nothing: refuse it before anything runs.
        Installer(d).wanted_version(opts.to_version)
    if opts.dry_run:
        return await in_thread(Installer(d).plan, opts, kind)
    async with exclusive(d, "install", opts.initiated_by, opts.to_version) as store:
        session = await Installer(d).run(store, opts, progress, kind)
    await _upload_after(d, opts.initiated_by)
    return session


async def rollback_to_version(
    d: Deployment, target_version: str,
    options: RollbackOptions | Mapping[str, Any] | None = None, *,
    progress: Progress | None = None, commit: str | None = None,
    backup_id: str | None = None,
) -> UpdateSession:
    """Back to an older release (a version, `previous` or `last_backup`), data included.
    `commit` pins where `target_version` is (boot-check's way back to what ran before)."""
    opts = options if isinstance(options, RollbackOptions) else \
        RollbackOptions.from_mapping(options or {})
    rollback = Rollback(d)
    if commit is None:
        rollback.check_target(target_version)
    async with exclusive(d, "rollback", opts.initiated_by, target_version) as store:
        session = await rollback.run(store, target_version, opts, progress, commit=commit,
                                     backup_id=backup_id)
    await _upload_after(d, opts.initiated_by)
    return session


async def _upload_after(d: Deployment, actor: str) -> None:
    """The backup the operation took goes offsite now (offsite = "after_backup"), after the
    lock is let go: an upload never holds up the next operation."""
    if d.settings.offsite == "after_backup":
        from gitrelease.deploy.offsite_ops import upload_after

        await upload_after(d, actor=actor)
