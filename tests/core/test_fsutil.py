"""Folder sizes for /update_status: the data folder walked once, its backup folder left out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitrelease.core.fsutil import dir_size


def test_size_of_a_folder_without_following_symlinks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "backups" / "old").mkdir(parents=True)
    (data / "app.db").write_bytes(b"x" * 100)
    (data / "backups" / "a.tar.gz").write_bytes(b"x" * 30)
    (data / "backups" / "old" / "b.tar.gz").write_bytes(b"x" * 7)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.tar.zst").write_bytes(b"x" * 5)
    os.symlink(elsewhere, data / "link")  # not followed
    assert dir_size(data) == 137
    assert dir_size(tmp_path / "nothing") == 0


def test_a_skipped_folder_is_not_walked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "backups").mkdir(parents=True)
    (data / "app.db").write_bytes(b"x" * 100)
    (data / "backups" / "a.tar.gz").write_bytes(b"x" * 30)
    assert dir_size(data, skip=data / "backups") == 100
    assert dir_size(data, skip=tmp_path / "elsewhere") == 130


def test_status_leaves_the_backup_folder_out_when_the_data_folder_is_a_symlink(
        tmp_path: Path) -> None:
    """`data` a symlink to /srv/x and backup_path /srv/x/backups: the archives are not walked
    (status adds their bytes from the index), however the two paths are spelled."""
    from gitrelease.deploy.host import disk_usage

    real = tmp_path / "srv" / "x"
    (real / "backups").mkdir(parents=True)
    (real / "app.db").write_bytes(b"x" * 100)
    (real / "backups" / "a.tar.gz").write_bytes(b"x" * 30)
    link = tmp_path / "data"
    os.symlink(real, link)
    for data_dir, backups in ((link, real / "backups"), (real, link / "backups"),
                              (link, link / "backups")):
        assert disk_usage(tmp_path, data_dir, skip=backups)["data_dir_bytes"] == 100


def test_a_few_files_get_an_fsync_each_and_many_one_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gitrelease.core import fsutil

    if not sys.platform.startswith("linux"):
        pytest.skip("syncfs(2) is Linux's")
    calls: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(fsutil.os, "fsync", counted)
    few = [tmp_path / f"few-{n}" for n in range(3)]
    many = [tmp_path / f"many-{n}" for n in range(fsutil.SYNCFS_FROM + 1)]
    for path in few + many:
        path.write_bytes(b"x")
    fsutil.make_durable(tmp_path, few)
    assert len(calls) == len(few)
    fsutil.make_durable(tmp_path, many)
    assert len(calls) == len(few)  # one syncfs, no fsync
    fsutil.make_durable(tmp_path, [])
    assert all(p.read_bytes() == b"x" for p in few + many)
