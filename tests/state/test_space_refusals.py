"""A refusal for want of disk space names what refused: the space a backup needs against
what is free, not a setting that played no part; the install's own minimum
(min_disk_space_mb) is named when it is what refused."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitrelease.core.errors import InsufficientDiskSpace
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.tmpfs import mounted


@pytest.fixture
def small_backups(world: World) -> Iterator[Path]:
    """The backups folder on a real 1 MiB file system, and a 2 MiB database to back up."""
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("CREATE TABLE blobs (b BLOB)")
        db.execute("INSERT INTO blobs VALUES (?)", (os.urandom(2 * 2**20),))
    db.close()
    backups = world.deploy / "data" / "backups"
    backups.mkdir()
    yield from mounted(backups)


async def test_the_backup_space_refusal_names_the_space_not_a_setting(
        world: World, small_backups: Path) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(InsufficientDiskSpace) as caught:
            await manager.create_backup("database")
    error = caught.value
    assert "needs up to" in error.message and "free" in error.message
    assert str(small_backups) in error.message
    assert "min_disk_space_mb" not in error.message + error.hint
    assert list(small_backups.iterdir()) == []  # nothing left behind


async def test_the_install_minimum_is_named_when_it_refused(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text("min_disk_space_mb = 10000000\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(InsufficientDiskSpace) as caught:
            await manager.install_updates("bot", {"backup_before": False})
    assert "min_disk_space_mb" in caught.value.message + caught.value.hint
