"""A backup's `pip freeze` is remembered while the interpreter's packages stay as they are,
and read again as soon as a distribution is installed or removed (a real venv, real pip)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitrelease.state.freeze import PipFreeze


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _settle(folder: Path) -> None:
    """As if the folder had last changed a minute ago."""
    moment = time.time() - 60
    os.utime(folder, (moment, moment))


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    # Its own site-packages, with pip from the interpreter the tests run on.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(tmp_path / "venv")], check=True)
    return tmp_path / "venv" / "bin" / "python"


def test_the_freeze_is_remembered_until_a_distribution_comes_or_goes(
        venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = _site_packages(venv)
    _settle(site)
    first = PipFreeze(str(venv))
    assert first._process is not None  # nothing remembered yet: pip runs
    listed = first.result()
    assert listed is not None and "pip==" in listed
    (kept,) = (tmp_path / "cache" / "gitrelease").iterdir()
    assert kept.stat().st_mode & 0o777 == 0o600
    again = PipFreeze(str(venv))
    assert again._process is None and again.result() == listed  # no pip this time
    # A distribution is installed: its dist-info folder changes site-packages, and the very
    # next backup sees it (the folder has not settled: pip runs, nothing is remembered).
    info = site / "botdep-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: botdep\nVersion: 1.2\n")
    (info / "RECORD").write_text("")
    fresh = PipFreeze(str(venv))
    assert fresh._process is not None and "botdep==1.2" in (fresh.result() or "")
    _settle(site)
    settled = PipFreeze(str(venv))
    assert settled._process is not None and "botdep==1.2" in (settled.result() or "")
    assert PipFreeze(str(venv))._process is None  # remembered once it had settled
    # And removed again.
    for child in info.iterdir():
        child.unlink()
    info.rmdir()
    _settle(site)
    gone = PipFreeze(str(venv))
    assert gone._process is not None and "botdep" not in (gone.result() or "")


def test_an_unwritable_cache_means_pip_runs_every_time(
        venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _settle(_site_packages(venv))
    for _ in range(2):
        freeze = PipFreeze(str(venv))
        assert freeze._process is not None and "pip==" in (freeze.result() or "")
