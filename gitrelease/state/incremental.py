"""Backups on a base: which backup a new one stores its changes against, and its chain.

A chain is a full backup and the backups after it, each holding only what changed since the
one before it (its base): a file whose size and sha256 are the base's is recorded as the
base's and not stored; a database whose pages mostly match the base's snapshot is stored as
the pages that differ (`pages`). Every manifest of a chain names its base and the whole chain
(each archive's sha256 as it was when the backup was taken), so a restore and a verify know
what they need from the manifest alone, and a replaced or damaged link is seen, not trusted.

A new backup is incremental when the newest completed backup of its type (not a restore's
safety backup, not a partial one) can be its base: its own chain is whole in the index, and
one more would not make the chain longer than `full_every`. Otherwise, or when asked
(`BackupOptions.full`), it is full and starts a chain.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gitrelease.core.errors import VerificationFailed
from gitrelease.core.models import Backup, BackupOrigin, BackupStatus, BackupType
from gitrelease.index.store import Store
from gitrelease.state.archive import Carried, Member, read_member, sha256_file
from gitrelease.state.pages import examine
from gitrelease.state.retention import restorable

__all__ = ["Base", "Chain", "ChainBroken", "Link", "against_base", "choose_base", "holder",
           "load_chain", "read_base"]


class ChainBroken(VerificationFailed):
    """A backup before this one in its chain is gone, damaged or not the one it was."""

    code = "chain_broken"
    default_hint = ("restore or verify that backup (`gitrelease backup verify ID`), fetch it "
                    "back from offsite, or restore an older full backup")


@dataclass(frozen=True)
class Link:
    """One backup of a chain and its manifest's files, by path."""

    backup: Backup
    files: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Chain:
    """The backups a backup needs, the full one first, itself last."""

    links: tuple[Link, ...]

    @property
    def newest(self) -> Link:
        return self.links[-1]

    def record(self) -> list[dict[str, str]]:
        """The chain as the next backup's manifest records it: every backup it needs."""
        return [{"id": link.backup.id, "sha256": link.backup.checksum or ""}
                for link in self.links]


def choose_base(
    backups: list[Backup], backup_type: BackupType, full_every: int,
) -> Backup | None:
    """The backup a new one of `backup_type` stores its changes against, or None (full)."""
    if full_every <= 1:
        return None
    rows = {b.id: b for b in backups}
    candidates = sorted(
        (b for b in backups if b.status is BackupStatus.COMPLETED and not b.deleting
         and b.backup_type is backup_type and b.origin is not BackupOrigin.SAFETY
         and b.checksum and not b.metadata.get("adopted")),
        key=lambda b: b.created_at, reverse=True)
    if not candidates:
        return None
    base = candidates[0]
    if len(base.chain) + 2 > full_every:
        return None  # the chain is as long as it may be: the next one starts a new one
    if not restorable(base, rows) or any(rows[link["id"]].checksum != link["sha256"]
                                         for link in base.chain):
        return None  # its chain is not whole: a backup on it could not be restored
    return base


async def load_chain(store: Store, backup: Backup,
                     manifest: Mapping[str, Any] | None = None) -> Chain:
    """`backup`'s chain from the index, each link checked to be there, completed and the
    archive it was (its sha256); else `ChainBroken` naming the first link that is not.
    `manifest`: `backup`'s own, when the caller has read it already."""
    links: list[Link] = []
    for record in backup.chain:
        row = await store.get_backup(record["id"])
        if row is None or row.id != record["id"] or row.deleting:  # by id, never a name
            raise ChainBroken(f"backup {backup.id} needs {record['id']}, which is gone")
        if row.status is not BackupStatus.COMPLETED:
            raise ChainBroken(f"backup {backup.id} needs {row.id}, which is "
                              f"{row.status.value}" + (f": {row.problem}" if row.problem
                                                       else ""))
        if row.checksum != record["sha256"]:
            raise ChainBroken(f"backup {backup.id} needs {row.id} as it was when "
                              f"{backup.id} was taken; its archive is another one now")
        links.append(await _link(store, row))
    links.append(await _link(store, backup, manifest))
    return Chain(tuple(links))


async def _link(store: Store, backup: Backup,
                manifest: Mapping[str, Any] | None = None) -> Link:
    if manifest is None:
        manifest = await store.backup_manifest(backup)
    return Link(backup, {f["path"]: f for f in manifest.get("files", [])})


def holder(chain: Chain, name: str) -> list[tuple[Link, Mapping[str, Any]]]:
    """Where the bytes of file `name`, as the chain's newest backup holds it, are: the link
    that stores it whole, then each later one storing pages of it, in order (a delta applies
    to the snapshot the backup before it held). `VerificationFailed` when a link says the
    bytes are in the one before it and that one does not have the file."""
    recipe: list[tuple[Link, Mapping[str, Any]]] = []
    for index in range(len(chain.links) - 1, -1, -1):
        link = chain.links[index]
        entry = link.files.get(name)
        if entry is None:
            raise VerificationFailed(
                f"backup {chain.newest.backup.id}: {name} is recorded as the same as in "
                f"{link.backup.id}, which does not hold it")
        stored = entry.get("stored", "here")
        if stored == "base":
            continue
        recipe.append((link, entry))
        if stored == "here":
            return recipe[::-1]
        if stored != "delta":
            raise VerificationFailed(f"backup {link.backup.id}: {name} is stored as "
                                     f"{stored!r}, which this gitrelease does not know")
    raise VerificationFailed(f"backup {chain.newest.backup.id}: no backup of its chain "
                             f"holds {name} whole")


def hashes_holder(chain: Chain, name: str) -> tuple[Link, Mapping[str, Any]] | None:
    """The link holding the page hashes of database `name` as the newest backup has it (the
    last one storing it, whole or as a delta), or None: no hashes were recorded."""
    try:
        link, entry = holder(chain, name)[-1]
    except VerificationFailed:
        return None
    hashes = entry.get("hashes")
    if not isinstance(hashes, dict) or not isinstance(entry.get("page_size"), int):
        return None
    return link, entry


@dataclass(frozen=True)
class Base:
    """What a new backup is compared with: its base's chain, and the page hashes of each
    database the base holds (read from the archives that hold them)."""

    chain: Chain
    page_hashes: Mapping[str, tuple[int, bytes]]  # name -> (page size, hashes)

    @property
    def backup(self) -> Backup:
        return self.chain.newest.backup


def read_base(chain: Chain, paths: Mapping[str, Path]) -> Base:
    """The base's page hashes, each checked against the sha256 its manifest records
    (`VerificationFailed` if one cannot be read: the caller takes a full backup instead).
    `paths`: each link's archive, by backup id. In a thread: it reads archives."""
    hashes: dict[str, tuple[int, bytes]] = {}
    for name, entry in chain.newest.files.items():
        if entry.get("kind") != "database":
            continue
        found = hashes_holder(chain, name)
        if found is None:
            continue  # recorded before page hashes were: stored whole this time
        link, held = found
        record = held["hashes"]
        if not isinstance(record.get("member"), str) or not isinstance(record.get("size"), int):
            raise VerificationFailed(f"backup {link.backup.id}: the page hashes of {name} "
                                     "are recorded wrongly")
        data = read_member(paths[link.backup.id], record["member"], record)
        hashes[name] = (int(held["page_size"]), data)
    return Base(chain, hashes)


def against_base(member: Member, base: Base, work: Path) -> Member:
    """`member` as the incremental backup stores it: carried when its bytes are the
    base's, a database as its pages that differ when most pages are the same, else whole."""
    entry = base.chain.newest.files.get(member.name)
    if entry is None or entry.get("kind") != member.kind:
        return member
    if member.pages is None:
        try:
            status = os.stat(member.source)
            if status.st_size != entry["size"]:
                return member
            digest = sha256_file(member.source)
        except OSError:
            return member  # gone or unreadable since it was listed: the writer says which
        if digest != entry["sha256"]:
            return member
        mode = member.mode if member.mode is not None else stat.S_IMODE(status.st_mode)
        return replace(member, carried=Carried(status.st_size, mode & 0o777, digest))
    known = base.page_hashes.get(member.name)
    if known is None or known[0] != member.pages:
        return member
    delta = work / f"{member.source.name}.delta"
    facts = examine(member.source, known[1], member.pages, delta)
    if facts.sha256 == entry["sha256"]:
        delta.unlink()
        mode = member.mode if member.mode is not None else 0o600
        return replace(member, carried=Carried(facts.size, mode & 0o777, facts.sha256))
    if facts.changed * 2 > facts.page_count:
        delta.unlink()  # most pages differ: the whole snapshot costs about the same
        return member
    return replace(member, source=delta, delta=facts)
