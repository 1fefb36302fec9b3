"""Offsite copies of a deployment's backups (settings `offsite`, `offsite_url`,
`offsite_endpoint`, `offsite_key_file`, `offsite_max_backups`, `offsite_retention_days`).

- `push_backup` copies one backup by hand; `upload_queued` uploads what `offsite =
  "after_backup"` queued in the index (each completed backup is), and what failed before,
  once its wait is over. A failed upload leaves the local backup as it was: only the row's
  offsite columns change, to FAILED with the reason, and it is tried again later.
- `verify_offsite` downloads copies (all, or a sample) and checks them against their digest.
- `prune_offsite` applies the retention rules to the copies, under a lock in the bucket.
- `bring_back` fetches the archive of a backup whose local copy is gone, for a restore or a
  rollback, checked against the digest the index recorded.

Archives that hold config (`.env`, tokens) leave the host only encrypted: without
`offsite_key_file` they are refused. Every upload and download runs in a thread. An
incremental backup's chain travels with it: uploaded first, fetched back with it
(`bring_back_chain`), kept with it by the prune.

Over the ~400-line aim: upload, prune and fetch share the row's offsite state and the
rules for chains; split, each would carry its own reading of both.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, InvalidInput
from gitrelease.core.models import (
    Backup,
    BackupStatus,
    BackupType,
    OffsiteState,
    utcnow,
)
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.state.archives import archive_store, own_archive
from gitrelease.state.retention import PruneResult, choose_doomed, deletion_order, needs
from gitrelease.state.verification import sha256_file

if TYPE_CHECKING:
    from gitrelease.index.store import Store
    from gitrelease.state.offsite import OffsiteCopy, S3Offsite

__all__ = ["OffsiteOff", "QueueReport", "bring_back", "bring_back_chain", "copy_as_backup",
           "offsite_key", "offsite_store", "prune_offsite", "push_backup", "upload_after",
           "upload_queued", "verify_offsite"]

#: How long a failed upload waits before it is tried again, by how often it has failed.
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
               timedelta(hours=1), timedelta(hours=6))
_QUEUE_LOCK = "offsite.lock"


class OffsiteOff(GitReleaseError):
    """Offsite copies are not configured."""

    code = "offsite_off"
    exit_code = 2
    default_hint = "set offsite = \"manual\" (or after_backup) and offsite_url = " \
                   "\"s3://bucket/prefix\""


def offsite_store(d: Deployment) -> S3Offsite:
    """The deployment's offsite storage, or `OffsiteOff`."""
    settings = d.settings
    if settings.offsite == "off" or not settings.offsite_url:
        raise OffsiteOff("offsite copies are off for this deployment")
    from gitrelease.state.offsite import S3Offsite

    return S3Offsite(settings.offsite_url, settings.offsite_endpoint)


def offsite_key(d: Deployment) -> bytes | None:
    """The key of `offsite_key_file`, or None when none is set. A key kept inside the
    deployment is refused: it would be backed up, and uploaded beside what it locks."""
    configured = d.settings.offsite_key_file
    if not configured:
        return None
    from gitrelease.state.offsite_crypt import OffsiteKeyError, load_key

    path = Path(configured)
    if path.resolve().is_relative_to(d.root.resolve()):
        raise OffsiteKeyError(f"offsite_key_file {configured} is inside the deployment: keep "
                              "it outside, or a backup would carry it offsite")
    return load_key(path)


def _config_files(manifest: dict[str, Any]) -> list[str]:
    return [str(f.get("path")) for f in manifest.get("files", []) if f.get("kind") == "config"]


async def _record(store: Store, backup: Backup) -> dict[str, Any]:
    """What the offsite record holds: the backup as `backup list --json` shows it, without
    the server's path, with its archive's file name (a recovery puts it back under it)."""
    record = {k: v for k, v in backup.to_dict().items() if not k.startswith(("file_path",
                                                                             "offsite",
                                                                             "location"))}
    record["file_name"] = Path(backup.file_path or "").name
    record["config"] = bool(_config_files(await store.backup_manifest(backup)))
    return record


async def _upload(d: Deployment, store: Store, backup: Backup, actor: str) -> OffsiteCopy:
    """Upload `backup`, after each backup of its chain not offsite yet (a base taken before
    offsite copies were on, or one whose upload failed): alone, an incremental's copy could
    not be restored."""
    for link in backup.chain:
        row = await store.get_backup(link["id"])
        if row is not None and row.id == link["id"] and row.file_path \
                and row.offsite is not OffsiteState.UPLOADED \
                and row.status is BackupStatus.COMPLETED:
            await _upload_one(d, store, row, actor)
    return await _upload_one(d, store, backup, actor)


async def _upload_one(d: Deployment, store: Store, backup: Backup, actor: str) -> OffsiteCopy:
    """Upload one backup, its row's offsite columns kept up to date; audited."""
    attempts = backup.offsite_attempts
    await store.set_offsite(backup.id, OffsiteState.UPLOADING, attempts=attempts,
                            at=utcnow())
    try:
        offsite = await in_thread(offsite_store, d)
        key = await in_thread(offsite_key, d)
        record = await _record(store, backup)
        if key is None and record["config"]:
            from gitrelease.state.offsite_crypt import OffsiteKeyError

            raise OffsiteKeyError(f"backup {backup.id} holds config (.env, tokens): it goes "
                                  "offsite only encrypted, and offsite_key_file is not set")
        if backup.file_path is None or backup.status is not BackupStatus.COMPLETED:
            raise GitReleaseError(f"backup {backup.id} is {backup.status.value}: it has no "
                                  "archive to upload")
        archives = archive_store(d.layout())
        async with archives.reading(own_archive(archives, backup)) as path:
            if not path.is_file():
                raise GitReleaseError(f"the archive of backup {backup.id} is missing",
                                      hint="gitrelease backup verify shows what is wrong")
            digest = await in_thread(sha256_file, path)
            if backup.checksum and digest != backup.checksum:
                raise GitReleaseError(f"the archive of backup {backup.id} no longer matches "
                                      "its checksum: it is not uploaded",
                                      hint="gitrelease backup verify marks it; push another")
            copy = await in_thread(offsite.push, backup.id, path, record, digest, key=key)
    except Exception as exc:
        # What is not gitrelease's own error is said by its type alone: its text could hold
        # what a library put there (a URL, a header), never to be shown or stored.
        failure = exc if isinstance(exc, GitReleaseError) else GitReleaseError(
            f"the upload of {backup.id} failed: {type(exc).__name__}")
        await store.set_offsite(backup.id, OffsiteState.FAILED, error=failure.message,
                                attempts=attempts + 1, at=utcnow())
        await store.audit(actor, "backup_push", backup.id, "failed",
                          {"error": failure.message})
        if failure is exc:
            raise
        raise failure from None
    except BaseException:
        await store.set_offsite(backup.id, OffsiteState.FAILED, error="interrupted",
                                attempts=attempts + 1, at=utcnow())
        raise
    await store.set_offsite(backup.id, OffsiteState.UPLOADED, at=utcnow())
    await store.audit(actor, "backup_push", backup.id, "completed",
                      {"to": offsite.shown, "encrypted": copy.encrypted})
    return copy


async def push_backup(d: Deployment, backup_id: str, *, actor: str = "system") -> OffsiteCopy:
    """Copy the backup (by id or name) offsite: its archive once, then its record. Run
    again after a failure, it completes what is missing. An incremental backup's chain goes
    first, each archive of it not offsite yet: alone, its copy could not be restored."""
    await in_thread(offsite_store, d)  # OffsiteOff before anything is looked up
    store = await d.index()
    backup = await d.backups(store).get(backup_id)
    if backup.file_path is None:
        raise GitReleaseError(f"backup {backup.id} has no archive to push")
    return await _upload(d, store, backup, actor)


@dataclass
class QueueReport:
    """What `upload_queued` did."""

    uploaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # backup id -> why
    waiting: dict[str, str] = field(default_factory=dict)  # backup id -> when it is retried
    busy: bool = False  # another process of this deployment was uploading

    def to_dict(self) -> dict[str, Any]:
        return {"uploaded": self.uploaded, "failed": self.failed, "waiting": self.waiting,
                "busy": self.busy}


def retry_at(backup: Backup) -> datetime:
    """When a failed upload is due again."""
    wait = RETRY_AFTER[min(max(backup.offsite_attempts, 1), len(RETRY_AFTER)) - 1]
    return (backup.offsite_at or backup.created_at) + wait


async def upload_queued(d: Deployment, *, actor: str = "system", force: bool = False,
                        now: datetime | None = None) -> QueueReport:
    """Upload the queued backups, oldest first, and those whose retry is due (`force`: all
    of them now). The first failure ends the run: the rest wait for the next. One process
    of a deployment does this at a time; another finds it `busy` and leaves it."""
    import filelock

    report = QueueReport()
    if d.settings.offsite == "off" or not d.settings.offsite_url:
        return report
    store = await d.index()
    lock = filelock.FileLock(d.data_dir / _QUEUE_LOCK, mode=0o600, thread_local=False)
    try:
        await in_thread(lock.acquire, timeout=0)
    except filelock.Timeout:
        report.busy = True
        return report
    try:
        moment = now or utcnow()
        for backup in await store.offsite_queue():
            if backup.offsite is OffsiteState.FAILED and not force and \
                    retry_at(backup) > moment:
                report.waiting[backup.id] = retry_at(backup).isoformat(timespec="seconds")
                continue
            try:
                await _upload(d, store, backup, actor)
            except GitReleaseError as exc:
                report.failed[backup.id] = exc.message
                break
            report.uploaded.append(backup.id)
    finally:
        lock.release()
    return report


async def upload_after(d: Deployment, backup: Backup | None = None, *,
                       actor: str = "system") -> Backup | None:
    """After an operation that took a backup, with offsite = "after_backup": upload what is
    queued. Never fails the operation: a failed upload stays queued, and `backup` (re-read,
    its offsite state as it is now) carries a warning that says so."""
    if d.settings.offsite != "after_backup":
        return backup
    try:
        report = await upload_queued(d, actor=actor)
        problem = None if backup is None else report.failed.get(backup.id)
    except GitReleaseError as exc:
        problem = exc.message
    if backup is None:
        return None
    again = await (await d.index()).get_backup(backup.id)
    if again is None:
        return backup
    again.warnings = list(backup.warnings)
    if problem is not None:
        again.warnings.append(f"its offsite upload failed and is retried later: {problem}")
    return again


def copy_as_backup(copy: OffsiteCopy) -> Backup:
    """An offsite copy as retention reads a backup: its id, when, kind, release, keep, and
    the chain its restore reads (so a base is kept while a copy needing it is)."""
    record = copy.record
    metadata = record.get("metadata")
    manifest = metadata.get("manifest") if isinstance(metadata, dict) else None
    chain = {"base": record.get("base"),  # read as `Backup.base_id` and `Backup.chain` do
             "chain": manifest.get("chain") if isinstance(manifest, dict) else None}
    try:
        created = datetime.fromisoformat(str(record.get("created_at")))
    except ValueError:
        created = utcnow()
    kinds = {t.value for t in BackupType}
    return Backup(
        id=copy.backup_id, name=str(record.get("name") or copy.backup_id),
        backup_type=BackupType(record["backup_type"]) if record.get("backup_type") in kinds
        else BackupType.FULL, status=BackupStatus.COMPLETED, file_path=None,
        file_size=copy.size, compressed_size=copy.size, created_at=created, completed_at=None,
        description=record.get("description"), checksum=copy.sha256, auto_created=False,
        metadata={"manifest": chain}, tag=record.get("tag"), commit=record.get("commit"),
        keep=bool(record.get("keep")))


async def prune_offsite(d: Deployment, *, dry_run: bool = False,
                        actor: str = "system") -> PruneResult:
    """Apply offsite_max_backups and offsite_retention_days to the offsite copies, with the
    local rules (the newest, the newest of the deployed tag, those marked keep stay). Under
    a prune lock in the bucket: `OffsiteBusy` while another host uploads."""
    offsite = await in_thread(offsite_store, d)
    copies = await in_thread(offsite.copies)
    store = await d.index()
    tag = (await d.release_point()).tag
    doomed, kept = choose_doomed([copy_as_backup(c) for c in copies], await store.backups_in_use(),
                                 tag, d.settings, offsite=True)
    # What `gitrelease recover` would bring a lost host back from stays, whatever the limits
    # say: the newest full backup with a release, when the newest of all is a partial one.
    full = [c for c in copies if c.record.get("backup_type", "full") == "full"
            and c.record.get("commit")]
    if full:
        newest = max(full, key=lambda c: (str(c.record.get("created_at", "")), c.backup_id))
        kept.setdefault(newest.backup_id, "newest full backup (what recover restores)")
        spared = {newest.backup_id}
        for member in needs(copy_as_backup(newest)):  # and its chain, which recover fetches
            kept.setdefault(member, f"base of {newest.backup_id}")
            spared.add(member)
        doomed = [b for b in doomed if b.id not in spared]
    result = PruneResult(dry_run=dry_run, deleted=doomed, kept=kept)
    if dry_run or not doomed:
        return result
    try:
        # Those that need a base go before it: an interruption leaves no copy without one.
        gone = await in_thread(offsite.prune, [b.id for b in deletion_order(doomed)])
    except GitReleaseError as exc:
        await store.audit(actor, "offsite_prune", None, "failed", {"error": exc.message})
        raise
    for backup_id in gone:
        local = await store.get_backup(backup_id)
        if local is not None and local.id == backup_id:
            if local.only_offsite:  # pruned here before: with its copy, nothing is left
                await store.delete_backup(backup_id)
            else:
                await store.set_offsite(backup_id, OffsiteState.NONE)
    result.deleted = [b for b in doomed if b.id in gone]
    await store.audit(actor, "offsite_prune", None, "completed", {"deleted": gone})
    return result


async def verify_offsite(d: Deployment, *, sample_percent: float = 100.0,
                         actor: str = "system") -> dict[str, Any]:
    """Download the offsite copies (all, or `sample_percent` of them chosen at random, at
    least one) and check each against its digest; a backup the index says is offsite but
    whose copy is gone is queued again. Returns {"checked": {id: problem or None},
    "missing": [ids], "total": n}."""
    if isinstance(sample_percent, bool) or not isinstance(sample_percent, int | float) or \
            not 0 < sample_percent <= 100:
        raise InvalidInput("sample", sample_percent, "a percentage above 0, at most 100")
    offsite = await in_thread(offsite_store, d)
    key = await in_thread(offsite_key, d)
    copies = await in_thread(offsite.copies)
    store = await d.index()
    count = min(len(copies), max(1, math.ceil(len(copies) * sample_percent / 100)))
    chosen = sorted(random.sample(copies, count), key=lambda c: c.backup_id)
    scratch = archive_store(d.layout()).scratch
    scratch.mkdir(parents=True, exist_ok=True)
    checked: dict[str, str | None] = {}
    for copy in chosen:
        try:
            await in_thread(offsite.check, copy, scratch, key=key)
            checked[copy.backup_id] = None
        except GitReleaseError as exc:
            checked[copy.backup_id] = exc.message
    held = {c.backup_id for c in copies}
    missing = []
    for backup in await store.list_backups():
        if backup.offsite is OffsiteState.UPLOADED and backup.id not in held:
            missing.append(backup.id)
            await store.set_offsite(backup.id, OffsiteState.QUEUED, error="its offsite copy "
                                    "was gone", at=utcnow())
    bad = sorted(k for k, v in checked.items() if v)
    await store.audit(actor, "offsite_verify", None, "failed" if bad or missing else
                      "completed", {"checked": len(checked), "bad": bad, "missing": missing})
    return {"checked": checked, "missing": missing, "total": len(copies)}


async def bring_back_chain(d: Deployment, store: Store, backup: Backup, *,
                           actor: str = "system") -> Backup:
    """`bring_back` for `backup` and for each backup of its chain whose local copy is gone
    (an incremental is restored from its chain's archives): the oldest first, and only what
    is missing here. Returns the backup's row, as fetched."""
    for link in backup.chain:
        row = await store.get_backup(link["id"])
        if row is not None and row.only_offsite:
            try:
                await bring_back(d, store, row, actor=actor)
            except GitReleaseError as exc:
                from gitrelease.state.incremental import ChainBroken

                raise ChainBroken(f"backup {backup.id} needs {row.id} (its chain), which "
                                  f"cannot be fetched back: {exc.message}") from None
    return await bring_back(d, store, backup, actor=actor) if backup.only_offsite else backup


async def bring_back(d: Deployment, store: Store, backup: Backup, *,
                     actor: str = "system") -> Backup:
    """Fetch the archive of a backup whose local copy is gone (`Backup.only_offsite`) back
    to where the index says it was, checked against the digest the index recorded; the row
    is COMPLETED again. Nothing is written unless the whole archive matches."""
    offsite = await in_thread(offsite_store, d)
    key = await in_thread(offsite_key, d)
    layout = d.layout()
    if not backup.file_path:
        raise GitReleaseError(f"backup {backup.id} does not name a file in the backups "
                              "folder: it is not fetched")
    target = Path(own_archive(archive_store(layout), backup))
    copy = await in_thread(offsite.copy, backup.id)
    if copy is None or (backup.checksum and copy.sha256 != backup.checksum):
        raise GitReleaseError(f"backup {backup.id} is gone here, and {offsite.shown} holds "
                              "no copy of it" if copy is None else
                              f"the offsite copy of {backup.id} is of another archive "
                              "(its sha256 differs from the index's)")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        await in_thread(offsite.fetch, backup.id, target, key=key,
                        expect=backup.checksum, copy=copy)
    except GitReleaseError as exc:
        await store.audit(actor, "backup_fetch", backup.id, "failed", {"error": exc.message})
        raise
    backup.status, backup.problem = BackupStatus.COMPLETED, None
    await store.save_backup(backup)
    await store.audit(actor, "backup_fetch", backup.id, "completed", {"from": offsite.shown})
    return backup
