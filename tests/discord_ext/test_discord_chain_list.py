"""/backup_list on a chain of real incremental backups: an incremental one names its base and
gives its own size beside what a restore of it reads; a full one reads as before."""

from __future__ import annotations

from gitrelease.core.text import size
from gitrelease.manager import ReleaseManager
from tests.discord_ext.harness import Harness, _described


async def test_the_list_card_shows_a_backups_base_and_both_sizes(h: Harness) -> None:
    for name in ("first", "second"):
        created = _described(await h.admin("backup_create", {"backup_type": "config",
                                                             "backup_name": name}))
        assert f"• Name: {name}" in created
    async with await ReleaseManager.open(h.world.deploy) as manager:
        full = await manager.get_backup("first")
        incremental = await manager.get_backup("second")
    assert full.base_id is None and incremental.base_id == full.id
    assert incremental.compressed_size and full.compressed_size
    reads = incremental.compressed_size + full.compressed_size
    assert incremental.chain_size == reads

    listed = _described(await h.admin("backup_list", {"time_range": "all"}))
    assert (f"📊 Config backup of {full.tag}, on {full.id}: {size(incremental.compressed_size)} "
            f"own, {size(reads)} to restore · made by hand") in listed
    assert (f"📊 Config backup of {full.tag}, {size(full.file_size)} → "
            f"{size(full.compressed_size)} compressed · made by hand") in listed
    assert "Total backups: 2 (Stored: " in listed
