"""Retention of chains: a backup goes only with every backup whose restore reads it, and a
prune deletes those that need a base before it.

The rules are checked on index rows as the store gives them (a manifest summary naming a
base and a chain); the prune itself on real deployments with real incremental backups.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from gitrelease.core.models import (
    ARCHIVE_MISSING,
    Backup,
    BackupStatus,
    BackupType,
    OffsiteState,
    utcnow,
)
from gitrelease.core.settings import Settings
from gitrelease.deploy.offsite_ops import copy_as_backup
from gitrelease.manager import ReleaseManager
from gitrelease.state.offsite import OffsiteCopy, S3Offsite
from gitrelease.state.retention import choose_doomed, deletion_order
from tests.conftest import World
from tests.s3 import S3Server, offsite_settings

NOW = utcnow()


def row(backup_id: str, days: float, chain: tuple[str, ...] = (), *,
        status: BackupStatus = BackupStatus.COMPLETED, keep: bool = False,
        offsite: OffsiteState = OffsiteState.NONE, tag: str | None = None) -> Backup:
    """An index row `days` old whose restore reads `chain` (full backup first) before it."""
    manifest = {"base": chain[-1] if chain else None,
                "chain": [{"id": c, "sha256": "0" * 64} for c in chain]}
    return Backup(
        id=backup_id, name=backup_id, backup_type=BackupType.FULL, status=status,
        file_path=f"/srv/bot/data/backups/{backup_id}.tar.gz", file_size=100,
        compressed_size=10, created_at=NOW - timedelta(days=days), completed_at=None,
        description=None, checksum="0" * 64, auto_created=False,
        metadata={"manifest": manifest}, tag=tag, keep=keep, offsite=offsite)


def chain_a(**middle: object) -> list[Backup]:
    """A0 (full), A1 on it, A2 on A1; N, a newer full backup (the newest)."""
    return [row("A0", 10), row("A1", 9, ("A0",)), row("A2", 8, ("A0", "A1"), **middle),
            row("N", 1)]


def ids(backups: list[Backup]) -> list[str]:
    return [b.id for b in backups]


def test_a_protected_backup_keeps_its_whole_chain_and_an_older_chain_goes_whole() -> None:
    backups = [row("A0", 10), row("A1", 9, ("A0",)), row("A2", 8, ("A0", "A1")),
               row("B0", 2), row("B1", 1, ("B0",))]
    doomed, kept = choose_doomed(backups, [], None, Settings(max_backups=2))
    assert ids(doomed) == ["A0", "A1", "A2"]
    assert kept == {"B1": "newest completed backup", "B0": "base of B1"}


def test_a_base_the_limits_pick_stays_while_a_backup_needing_it_stays() -> None:
    doomed, kept = choose_doomed(chain_a(), [], None, Settings(max_backups=3))
    assert doomed == []  # the limit picked A0, but A1 and A2 stay and read it
    assert kept["A0"] == "base of A2"
    # By age: the full backup is past the retention days, the one on it is not.
    backups = [row("A0", 10), row("A1", 3, ("A0",)), row("N", 1)]
    doomed, kept = choose_doomed(backups, [], None, Settings(backup_retention_days=5))
    assert doomed == [] and kept["A0"] == "base of A1"
    # Once the newest of the chain goes too, the whole chain goes.
    backups = [row("A0", 10), row("A1", 7, ("A0",)), row("N", 1)]
    doomed, _ = choose_doomed(backups, [], None, Settings(backup_retention_days=5))
    assert ids(doomed) == ["A0", "A1"]


@pytest.mark.parametrize("reason", ["keep", "in_use", "tag", "offsite"])
def test_every_protection_protects_the_chain(reason: str) -> None:
    settings = Settings(max_backups=1)
    unprotected, _ = choose_doomed(chain_a(), [], "v1", settings)
    assert ids(unprotected) == ["A0", "A1", "A2"]  # without it, the chain would go
    middle: dict[str, object] = {"keep": reason == "keep"}
    in_use = ["A2"] if reason == "in_use" else []
    if reason == "tag":
        middle["tag"] = "v1"
    if reason == "offsite":
        middle["offsite"] = OffsiteState.QUEUED
        settings = Settings(max_backups=1, offsite="after_backup",
                            offsite_url="s3://bucket/bot")
    doomed, kept = choose_doomed(chain_a(**middle), in_use, "v1", settings)
    assert doomed == []
    assert kept["A1"] == kept["A0"] == "base of A2"
    assert kept["A2"] == {"keep": "marked keep", "in_use": "needed by an unfinished update",
                          "tag": "newest backup of the deployed tag v1",
                          "offsite": "not copied offsite yet"}[reason]


def test_a_protected_base_lets_the_newer_backups_on_it_go() -> None:
    backups = [row("A0", 10), row("A1", 9, ("A0",), keep=True), row("A2", 8, ("A0", "A1")),
               row("N", 1)]
    doomed, kept = choose_doomed(backups, [], None, Settings(max_backups=1))
    assert ids(doomed) == ["A2"]
    assert kept == {"N": "newest completed backup", "A1": "marked keep", "A0": "base of A1"}


def test_a_failed_attempt_needs_no_base() -> None:
    backups = [row("A0", 10), row("F", 9, ("A0",), status=BackupStatus.FAILED), row("N", 1)]
    doomed, kept = choose_doomed(backups, [], None, Settings(max_backups=1))
    assert ids(doomed) == ["A0"] and "A0" not in kept


def test_what_the_caller_holds_keeps_its_chain() -> None:
    backups = [row("A0", 10), row("A1", 9, ("A0",)), row("N", 1)]
    doomed, kept = choose_doomed(backups, [], None, Settings(max_backups=1),
                                 held=lambda b: "held here" if b.id == "A1" else None)
    assert doomed == []
    assert kept["A1"] == "held here" and kept["A0"] == "base of A1"


def test_a_backup_left_only_offsite_keeps_the_local_base_that_is_not_offsite() -> None:
    backups = [row("A0", 10), row("A1", 9, ("A0",), offsite=OffsiteState.UPLOADED),
               row("N", 1)]
    doomed, kept = choose_doomed(backups, [], None, Settings(max_backups=1))
    assert ids(doomed) == ["A1"]  # its archive goes here, its offsite copy reads A0
    assert kept["A0"] == "base of A1"
    backups[0].offsite = OffsiteState.UPLOADED  # the base is offsite too: both may go
    doomed, _ = choose_doomed(backups, [], None, Settings(max_backups=1))
    assert ids(doomed) == ["A0", "A1"]
    # Pruned here before: an offsite-only row still needs a base that is only here.
    gone = row("A1", 9, ("A0",), status=BackupStatus.CORRUPTED,
               offsite=OffsiteState.UPLOADED)
    gone.problem = ARCHIVE_MISSING
    doomed, kept = choose_doomed([row("A0", 10), gone, row("N", 1)], [], None,
                                 Settings(max_backups=1))
    assert doomed == [] and kept["A0"] == "base of A1"


def test_the_offsite_copies_keep_their_chains_by_the_same_rule() -> None:
    backups = [row("A0", 10), row("A1", 9, ("A0",)), row("B0", 2), row("B1", 1, ("B0",))]
    copies = [copy_as_backup(OffsiteCopy(b.id, "0" * 64, 10, b.to_dict())) for b in backups]
    assert [c.chain for c in copies] == [b.chain for b in backups]  # as pushed, read back
    assert [c.base_id for c in copies] == [None, "A0", None, "B0"]
    settings = Settings(max_backups=50, offsite_max_backups=2)
    doomed, kept = choose_doomed(copies, [], None, settings, offsite=True)
    assert ids(doomed) == ["A0", "A1"]
    assert kept == {"B1": "newest completed backup", "B0": "base of B1"}
    doomed, kept = choose_doomed(copies, [], None, Settings(offsite_max_backups=3),
                                 offsite=True)
    assert doomed == [] and kept["A0"] == "base of A1"


def test_a_base_is_deleted_after_the_backups_that_need_it_whatever_their_times() -> None:
    backups = [row("A0", 1), row("A1", 9, ("A0",)), row("A2", 8, ("A0", "A1")), row("X", 5)]
    # A0's recorded time is the newest, yet it goes last: A1 and A2 read it.
    assert ids(deletion_order(backups)) == ["X", "A2", "A1", "A0"]
    assert ids(deletion_order([row("P", 3), row("Q", 2), row("R", 1)])) == ["R", "Q", "P"]


# -- on a real deployment --------------------------------------------------------------------


def write_settings(world: World, text: str) -> None:
    (world.deploy / "data" / "settings.toml").write_text(textwrap.dedent(text))


async def test_a_prune_keeps_a_chain_while_it_is_needed_then_deletes_it_newest_first(
    world: World,
) -> None:
    write_settings(world, "max_backups = 3\nauto_cleanup = false\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        chain = [await manager.create_backup("config") for _ in range(3)]
        full = await manager.create_backup("config", {"full": True})
        assert [b.base_id for b in chain] == [None, chain[0].id, chain[1].id]
        assert full.base_id is None
        result = await manager.prune_backups()
        assert result.deleted == []  # one over max_backups, but the chain goes whole
        assert all(Path(b.file_path or "").exists() for b in chain)
    write_settings(world, "max_backups = 1\nauto_cleanup = false\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        dry = await manager.prune_backups(dry_run=True)
        assert ids(dry.deleted) == [chain[2].id, chain[1].id, chain[0].id]
        assert all(Path(b.file_path or "").exists() for b in chain)
        result = await manager.prune_backups()
        left = await manager.list_backups({"time_range": "all"})
    assert ids(result.deleted) == [chain[2].id, chain[1].id, chain[0].id]
    assert ids(left) == [full.id]
    assert not any(Path(b.file_path or "").exists() for b in chain)


async def test_the_offsite_prune_keeps_a_chain_then_deletes_it_whole(
    world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path,
) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key",
                     extra="offsite_max_backups = 1\nauto_cleanup = false\n")
    offsite = S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint)
    async with await ReleaseManager.open(world.deploy) as manager:
        chain = [await manager.create_backup("config") for _ in range(3)]
        assert [c.backup_id for c in offsite.copies()] == ids(chain)
        result = await manager.prune_offsite()
        assert result.deleted == []
        assert result.kept[chain[0].id] == result.kept[chain[1].id] == f"base of {chain[2].id}"
        assert [c.backup_id for c in offsite.copies()] == ids(chain)
        full = await manager.create_backup("config", {"full": True})
        result = await manager.prune_offsite()
    assert sorted(ids(result.deleted)) == sorted(ids(chain))
    assert [c.backup_id for c in offsite.copies()] == [full.id]


def test_the_newest_kept_is_one_whose_chain_is_whole() -> None:
    """An incremental whose base is damaged is no way back: the older whole chain is kept
    as the newest completed backup, not pruned for it."""
    rows = [row("A0", 10), row("A1", 9, ("A0",)), row("A2", 8, ("A0", "A1")),
            row("B0", 2, status=BackupStatus.CORRUPTED), row("B1", 1, ("B0",))]
    doomed, kept = choose_doomed(rows, [], None,
                                 Settings(max_backups=50, backup_retention_days=5))
    assert kept.get("A2") == "newest completed backup"
    assert kept.get("A0") == kept.get("A1") == "base of A2"
    assert not {"A0", "A1", "A2"} & set(ids(doomed))
