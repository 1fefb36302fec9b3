"""`gitrelease recover`: a deployment rebuilt on a new host from its origin and its offsite
copies, when the host it ran on (and every backup kept there) is gone.

In order, so that a refusal writes nothing: the offsite storage is read and the backup to
bring back chosen (the newest completed full backup, or the one named), its key checked
(an encrypted copy needs the key it was sealed with); only then is the origin cloned into
the new directory, the backup's commit checked out, the offsite settings written, the
archive fetched into the backups folder (checked against its digest), the index rebuilt
from it, and its files restored. A failure after the clone removes what it made.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitrelease.core.beside import in_thread
from gitrelease.core.errors import GitReleaseError, InvalidInput
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import OffsiteState

if TYPE_CHECKING:
    from gitrelease.state.offsite import OffsiteCopy

__all__ = ["Recovered", "recover_deployment"]


@dataclass
class Recovered:
    """What a recovery did."""

    root: Path
    backup_id: str
    taken_at: str
    tag: str | None
    commit: str
    restored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "backup_id": self.backup_id, "taken_at": self.taken_at,
                "tag": self.tag, "commit": self.commit, "restored": self.restored,
                "notes": self.notes}


def _chosen(copies: list[OffsiteCopy], backup_id: str | None) -> OffsiteCopy:
    """The named backup, or the newest completed full one."""
    if backup_id is not None:
        named = [c for c in copies if backup_id in (c.backup_id, c.record.get("name"))]
        if not named:
            raise InvalidInput("--backup", backup_id, sorted(c.backup_id for c in copies)
                               or "a backup the offsite storage holds",
                               reason="the offsite storage holds no such backup")
        return named[0]
    held = {c.backup_id: c.sha256 for c in copies}
    good = [c for c in copies if c.record.get("status", "completed") == "completed"
            and c.record.get("backup_type", "full") == "full" and c.record.get("commit")
            and _chain_held(c, held)]
    if not good:
        raise GitReleaseError("the offsite storage holds no completed full backup to recover "
                              "from", hint="gitrelease backup push ID copies one there")
    return max(good, key=lambda c: (str(c.record.get("created_at", "")), c.backup_id))


async def recover_deployment(
    origin: str, offsite_url: str, directory: Path, *, endpoint: str = "",
    key_file: Path | None = None, backup_id: str | None = None, actor: str = "system",
) -> Recovered:
    """Bring a deployment back into `directory` (new, or empty) from `origin` and the offsite
    copies at `offsite_url`; see the module's docstring for the order of things."""
    from gitrelease.deploy.offsite_ops import copy_as_backup
    from gitrelease.git.clone import check_origin, clone
    from gitrelease.state.archives import ARCHIVE_NAME
    from gitrelease.state.offsite import S3Offsite
    from gitrelease.state.offsite_crypt import OffsiteKeyError, key_id, load_key

    check_origin(origin)
    if backup_id is not None and (not isinstance(backup_id, str) or not backup_id
                                  or len(backup_id) > 100):
        raise InvalidInput("--backup", backup_id, "a backup id or name")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidInput("DIR", str(directory), "a new or empty directory",
                           reason="it is not empty")
    offsite = S3Offsite(offsite_url, endpoint)
    key = await in_thread(load_key, key_file) if key_file is not None else None
    copies = await in_thread(offsite.copies)
    chosen = _chosen(copies, backup_id)
    if chosen.encrypted:
        wanted = chosen.record.get("key_id", "?")
        if key is None:
            raise OffsiteKeyError(f"backup {chosen.backup_id} is encrypted (key {wanted}): "
                                  "give its key with --key-file", hint="the key file that was "
                                  "offsite_key_file on the old host")
        if key_id(key) != wanted:
            raise OffsiteKeyError(f"backup {chosen.backup_id} was encrypted with key {wanted}; "
                                  f"{key_file} holds key {key_id(key)}")
    by_id = {c.backup_id: c for c in copies}
    for link in copy_as_backup(chosen).chain:  # each archive of its chain opens with this key
        copy = by_id[link["id"]]  # held: `_chosen` took only a backup whose chain is
        if copy.encrypted and (key is None or key_id(key) != copy.record.get("key_id")):
            raise OffsiteKeyError(
                f"backup {chosen.backup_id} needs {copy.backup_id} (its chain), which was "
                f"encrypted with key {copy.record.get('key_id', '?')}"
                + (f"; {key_file} holds key {key_id(key)}" if key is not None else
                   ": give its key with --key-file"),
                hint="the key file that was offsite_key_file when that backup was taken")
    file_name = str(chosen.record.get("file_name") or "")
    commit = str(chosen.record.get("commit") or "")
    if not ARCHIVE_NAME.match(file_name) or not commit:
        raise GitReleaseError(f"the offsite record of {chosen.backup_id} names no archive "
                              "file or commit: it cannot be recovered from")
    made = not directory.exists()
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        return await _rebuild(clone, offsite, chosen, origin, directory, endpoint, key_file,
                              key, file_name, commit, actor, copies)
    except BaseException:
        if made:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in list(directory.iterdir()) if directory.exists() else []:
                (shutil.rmtree if child.is_dir() and not child.is_symlink()
                 else Path.unlink)(child)
        raise


def _chain_held(copy: OffsiteCopy, held: dict[str, str]) -> bool:
    """Whether the storage holds every archive `copy`'s chain needs, as it was."""
    from gitrelease.deploy.offsite_ops import copy_as_backup

    return all(held.get(link["id"]) == link["sha256"] for link in copy_as_backup(copy).chain)


async def _fetch_chain(offsite: Any, folder: Path, fetched: Path, copies: list[OffsiteCopy],
                       key: bytes | None) -> list[str]:
    """The archives an incremental backup is restored from besides its own (its manifest's
    chain), fetched beside it; a link the storage does not hold as it was is `ChainBroken`."""
    from gitrelease.state.archive import read_manifest
    from gitrelease.state.archives import ARCHIVE_NAME
    from gitrelease.state.incremental import ChainBroken

    manifest = await in_thread(read_manifest, fetched)
    by_id = {c.backup_id: c for c in copies}
    notes = []
    for link in manifest.get("chain") or []:
        copy = by_id.get(str(link.get("id")))
        name = str(copy.record.get("file_name") or "") if copy is not None else ""
        named = ARCHIVE_NAME.match(name)
        if copy is None or copy.sha256 != link.get("sha256") or named is None \
                or named.group(1) != copy.backup_id:  # never over another's archive
            raise ChainBroken(f"backup {manifest.get('backup_id')} needs {link.get('id')}, "
                              f"which {offsite.shown} does not hold as it was")
        await in_thread(offsite.fetch, copy.backup_id, folder / name, key=key, copy=copy)
        notes.append(f"fetched {copy.backup_id}, of its chain ({copy.size} bytes, sha256 "
                     "checked)")
    return notes


async def _rebuild(clone: Any, offsite: Any, chosen: OffsiteCopy, origin: str,
                   directory: Path, endpoint: str, key_file: Path | None, key: bytes | None,
                   file_name: str, commit: str, actor: str,
                   copies: list[OffsiteCopy]) -> Recovered:
    from gitrelease.deploy.backup_ops import restore_backup
    from gitrelease.deploy.context import Deployment

    repo = await in_thread(clone, origin, directory)
    try:
        await in_thread(repo.checkout_detached, commit)
    finally:
        repo.close()
    notes: list[str] = [f"cloned {origin} and checked out {commit[:12]}"]
    d = await in_thread(Deployment.open, directory, None)
    try:
        folder = d.layout().backup_dir
        folder.mkdir(parents=True, exist_ok=True)
        await in_thread(offsite.fetch, chosen.backup_id, folder / file_name, key=key,
                        copy=chosen)
        notes.append(f"fetched {chosen.backup_id} from {offsite.shown} "
                     f"({chosen.size} bytes, sha256 checked)")
        notes += await _fetch_chain(offsite, folder, folder / file_name, copies, key)
        result = await restore_backup(d, chosen.backup_id,
                                      {"confirm": True, "restore_type": "all"}, actor=actor)
        store = await d.index()
        await store.set_offsite(chosen.backup_id, OffsiteState.UPLOADED)
        settings = d.data_dir / "settings.toml"
        if settings.exists():
            notes.append(f"the settings came back with the backup: check that "
                         f"offsite_key_file names {key_file or 'the key'} on this host")
        else:  # the deployment's copies stay where they were found
            import tomlkit

            values = {"offsite": "manual", "offsite_url": offsite.shown}
            if endpoint:
                values["offsite_endpoint"] = endpoint
            if key_file is not None:  # a path with quotes or backslashes stays one string
                values["offsite_key_file"] = str(Path(key_file).resolve())
            await in_thread(atomic_write, settings, tomlkit.dumps(values).encode())
            notes.append(f"wrote {settings.name}: offsite copies at {offsite.shown}")
        await store.audit(actor, "recover", chosen.backup_id, "completed",
                          {"from": offsite.shown, "commit": commit})
    finally:
        await d.close()
    notes.append("not done: the bot's packages (gitrelease install --type packages) and "
                 "starting the bot")
    return Recovered(directory.resolve(), chosen.backup_id,
                     str(chosen.record.get("created_at", "")), chosen.record.get("tag"),
                     commit, list(result.restored), notes)
