"""Offsite copies of a deployment's backups (settings `offsite`, `offsite_url`,
`offsite_endpoint`): `push_backup` copies one backup's archive to the S3-compatible storage
(`gitrelease.state.offsite`), audited. The local backup is never changed by a push, whether it
lands or fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitrelease.core.errors import GitReleaseError
from gitrelease.deploy.backup_ops import get_backup
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.state.archives import archive_store
from gitrelease.state.verification import sha256_file

if TYPE_CHECKING:
    from gitrelease.state.offsite import OffsiteCopy, S3Offsite

__all__ = ["OffsiteOff", "offsite_store", "push_backup"]


class OffsiteOff(GitReleaseError):
    """Offsite copies are not configured."""

    code = "offsite_off"
    exit_code = 2
    default_hint = "set offsite = \"manual\" and offsite_url = \"s3://bucket/prefix\""


def offsite_store(d: Deployment) -> S3Offsite:
    """The deployment's offsite storage, or `OffsiteOff`."""
    settings = d.settings
    if settings.offsite == "off" or not settings.offsite_url:
        raise OffsiteOff("offsite copies are off for this deployment")
    from gitrelease.state.offsite import S3Offsite

    return S3Offsite(settings.offsite_url, settings.offsite_endpoint)


async def push_backup(d: Deployment, backup_id: str, *, actor: str = "system") -> OffsiteCopy:
    """Copy the backup (by id or name) offsite: its archive once, by its digest, then its
    record. Run again after a failure, it completes what is missing."""
    offsite = await in_thread(offsite_store, d)
    backup = await get_backup(d, backup_id)
    if backup.file_path is None:
        raise GitReleaseError(f"backup {backup.id} has no archive to push")
    record = {key: value for key, value in backup.to_dict().items()
              if key not in ("file_path",)}  # a server path stays on the server
    store = await d.index()
    async with archive_store(d.layout()).reading(backup.file_path) as path:
        if not path.is_file():
            raise GitReleaseError(f"the archive of backup {backup.id} is missing",
                                  hint="gitrelease backup verify shows what is wrong")
        digest = await in_thread(sha256_file, path)
        if backup.checksum and digest != backup.checksum:
            raise GitReleaseError(f"the archive of backup {backup.id} no longer matches its "
                                  "checksum: it is not pushed",
                                  hint="gitrelease backup verify marks it; push another")
        try:
            copy = await in_thread(offsite.push, backup.id, path, record, digest)
        except GitReleaseError as exc:
            await store.audit(actor, "backup_push", backup.id, "failed",
                              {"error": exc.message})
            raise
    await store.audit(actor, "backup_push", backup.id, "completed",
                      {"to": offsite.shown, "sha256": copy.sha256})
    return copy
