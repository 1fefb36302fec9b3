"""The backup operations: create, list, verify, delete, prune and restore.

Each refuses bad input and unknown ids before anything opens, locks or writes, runs under
the operation lock (`guard.exclusive`), and leaves an audit line. What a backup holds and how
it is written is `gitrelease.state`; this is the part that orders those steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gitrelease.core.choices import BACKUP_RANGES
from gitrelease.core.errors import GitReleaseError, InsufficientDiskSpace, InvalidInput
from gitrelease.core.models import Backup, Progress, utcnow
from gitrelease.deploy.context import Deployment
from gitrelease.deploy.guard import audit_failure, exclusive, reconcile_if_idle

if TYPE_CHECKING:
    from gitrelease.deploy.restore import RestoreOptions, RestoreResult
    from gitrelease.index.store import Store
    from gitrelease.state.backup_options import BackupOptions, ListFilters
    from gitrelease.state.retention import PruneResult

__all__ = ["create_backup", "delete_backup", "get_backup", "list_backups", "prune_backups",
           "restore_backup", "verify_backup"]


async def create_backup(
    d: Deployment, backup_type: str = "full",
    options: BackupOptions | Mapping[str, Any] | None = None, *,
    actor: str = "system", progress: Progress | None = None,
) -> Backup:
    """Archive the state git does not version, indexed with the current tag."""
    from gitrelease.state.backup_options import BackupOptions, parse_backup_type

    kind = parse_backup_type(backup_type)
    opts = options if isinstance(options, BackupOptions) else BackupOptions.from_mapping(
        options or {})
    if not d.settings.backup_enabled:
        raise InvalidInput("backup_enabled", False, "true",
                           reason="backups are switched off in the settings")
    async with exclusive(d, "backup", actor) as store:
        service = d.backups(store)
        try:
            backup = await service.create(kind, opts, await d.release_point(), progress)
        except Exception as exc:
            error = _said(exc, "taking a backup")
            if error is exc:
                raise
            raise error from None
        backup.warnings += await _audited(store, actor, "backup_create", backup.id, {
            "type": kind.value, "size": backup.compressed_size})
        if d.settings.auto_cleanup:
            pruned = await service.prune(backup.tag, dry_run=False)
            if pruned.deleted:
                await store.audit(actor, "backup_prune", None, "completed",
                                  {"deleted": [b.id for b in pruned.deleted]})
    if d.settings.offsite == "after_backup":  # outside the lock: an upload may take long
        from gitrelease.deploy.offsite_ops import upload_after

        backup = await upload_after(d, backup, actor=actor) or backup
    return backup


async def list_backups(
    d: Deployment, filters: ListFilters | Mapping[str, Any] | None = None
) -> list[Backup]:
    """The backups as `BackupService.list_backups` picks and orders them, by SQL: only
    the rows shown are read."""
    from gitrelease.state.backup_options import ListFilters
    from gitrelease.state.chain_rows import fill_chain_sizes

    chosen = filters if isinstance(filters, ListFilters) else ListFilters.from_mapping(
        filters or {})
    store = await d.index()
    await reconcile_if_idle(d, store)
    window = BACKUP_RANGES[chosen.time_range]
    # What a restore of each reads: their chains' rows, read by id.
    return await fill_chain_sizes(store, await store.query_backups(
        backup_type=chosen.backup_type, since=utcnow() - window if window else None,
        sort_by=chosen.sort_by, limit=chosen.limit))


async def _known_backup(d: Deployment, backup_id: str) -> None:
    """Refuse an unknown id before anything opens, locks or writes."""
    from gitrelease.state.backups import BackupNotFound

    if not isinstance(backup_id, str) or not backup_id or len(backup_id) > 100:
        raise InvalidInput("backup_id", backup_id, "a backup id or name")
    store = await d.existing_index()
    if store is not None and await store.get_backup(backup_id) is not None:
        return
    # The index may have been lost while the archives were not: rebuild it, then look.
    if (store is None and _has_archives(d)) or store is not None:
        store = await d.index()
        await reconcile_if_idle(d, store)
        if await store.get_backup(backup_id) is not None:
            return
    raise BackupNotFound(f"no backup with id or name {backup_id!r}")


def _has_archives(d: Deployment) -> bool:
    """Whether anything in the archive store looks like a backup (before there is an index
    to ask, so no Store and no BackupService yet)."""
    from gitrelease.state.archives import archive_store

    return any(name.startswith("backup_") for name in archive_store(d.layout()).taken_names())


async def verify_backup(
    d: Deployment, backup_id: str, *, deep: bool = False, actor: str = "system"
) -> Backup:
    """Re-read an archive against its checksums; a mismatch marks it CORRUPTED. `deep`
    also checks every member against the manifest, not only the archive's sha256."""
    await _known_backup(d, backup_id)
    async with exclusive(d, "backup_verify", actor, backup_id) as store:
        service = d.backups(store)
        backup = await service.get(backup_id)
        try:
            return await service.verify(backup, deep=deep)
        finally:
            await store.audit(actor, "backup_verify", backup.id, backup.status.value)


async def delete_backup(
    d: Deployment, backup_id: str, *, confirm: bool = False, actor: str = "system"
) -> Backup:
    if confirm is not True:
        raise InvalidInput("confirm", confirm, "true",
                           reason="deleting a backup cannot be undone")
    await _known_backup(d, backup_id)
    async with exclusive(d, "backup_delete", actor, backup_id) as store:
        service = d.backups(store)
        backup = await service.get(backup_id)
        if backup.id in await store.backups_in_use():
            raise InvalidInput("backup_id", backup_id, "a backup no unfinished update needs",
                               reason="an unfinished update may still need it")
        await service.delete(backup)
        await store.audit(actor, "backup_delete", backup.id, "completed")
        return backup


async def prune_backups(
    d: Deployment, *, dry_run: bool = False, actor: str = "system"
) -> PruneResult:
    """Apply max_backups and backup_retention_days, never touching protected backups."""
    async with exclusive(d, "backup_prune", actor) as store:
        point = await d.release_point()
        result = await d.backups(store).prune(point.tag, dry_run=dry_run)
        if not dry_run:
            await store.audit(actor, "backup_prune", None, "completed",
                              {"deleted": [b.id for b in result.deleted]})
        return result


async def get_backup(d: Deployment, backup_id: str) -> Backup:
    """The backup of that id or name (the index rebuilt first if it was lost), or
    `BackupNotFound`; changes nothing else."""
    await _known_backup(d, backup_id)
    return await d.backups(await d.index()).get(backup_id)


async def restore_backup(
    d: Deployment, backup_id: str,
    options: RestoreOptions | Mapping[str, Any] | None = None, *,
    actor: str = "system", progress: Progress | None = None,
) -> RestoreResult:
    """Verify, take a safety backup, then put the backup's files back in place."""
    from gitrelease.deploy.restore import RestoreOptions, restore

    opts = options if isinstance(options, RestoreOptions) else RestoreOptions.from_mapping(
        options or {})
    await _known_backup(d, backup_id)
    async with exclusive(d, "restore", actor, backup_id) as store:
        service = d.backups(store)
        backup = await service.get(backup_id)
        if backup.only_offsite or backup.chain:
            # Gone from here, or a backup of its chain may be: what is kept only offsite is
            # fetched back first.
            from gitrelease.deploy.offsite_ops import bring_back_chain

            backup = await bring_back_chain(d, store, backup, actor=actor)
        try:
            result = await restore(service, backup, opts, await d.release_point(),
                                   progress)
        except Exception as exc:
            error = _said(exc, f"restoring {backup.id}")
            await audit_failure(store, actor, "restore", backup.id, "failed", error,
                                {"code": getattr(error, "code", "internal_error")})
            if error is exc:
                raise
            raise error from None
        trouble = await _audited(store, actor, "restore", backup.id, {
            "type": opts.restore_type, "files": len(result.restored),
            "safety_backup": result.safety_backup.id if result.safety_backup else None})
        result.warnings += trouble
        return result


def _said(exc: Exception, doing: str) -> Exception:
    """The error as a person is shown it: a disk that filled up (the index's SQLite says
    "database or disk is full") as such, not as an internal error."""
    from gitrelease.state.space import is_disk_full

    if isinstance(exc, GitReleaseError) or not is_disk_full(exc):
        return exc
    return InsufficientDiskSpace(f"disk full while {doing}: {exc}",
                                 hint="free some disk space, then try again")


async def _audited(
    store: Store, actor: str, operation: str, target: str | None, detail: dict[str, Any],
) -> list[str]:
    """Record a completed operation; one done is not made to look failed by an audit row
    that cannot be written: that is said as a warning of it."""
    try:
        await store.audit(actor, operation, target, "completed", detail)
    except Exception as trouble:
        return [f"the audit row could not be written: {trouble}"]
    return []
