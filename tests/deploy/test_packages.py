"""Packages, dependencies and config: a real virtual environment, wheels built here, no index.

The wheels are written by the fixture (a wheel is a zip with a dist-info), pip installs them
with --no-index --find-links, so nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gitrelease.core.errors import PythonVersionMismatch
from gitrelease.core.models import UpdateStatus
from gitrelease.core.reports import InstallPlan
from gitrelease.deploy.command_runner import CommandFailed
from gitrelease.manager import ReleaseManager
from tests.conftest import World, git

SECRET = "DISCORD_TOKEN=keep-this-secret-value"


def build_wheel(directory: Path, name: str, version: str, requires: list[str] = ()) -> None:
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\n"
                                              b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"  # noqa: E501
              for path, data in files.items()]
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)


def make_venv(venv: Path, wheels: Path, *requirements: str) -> Path:
    """A virtual environment at `venv` holding `requirements`, from the local `wheels` only."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-index", "--find-links", str(wheels), *requirements], check=True)
    return venv


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wheels")
    build_wheel(directory, "tinyalpha", "1.0")
    build_wheel(directory, "tinyalpha", "2.0")
    build_wheel(directory, "tinybeta", "1.0")
    return directory


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv") / "env", wheels, "tinyalpha==1.0",
                     "tinybeta==1.0")


@pytest.fixture
def deployment(world: World, base_venv: Path, wheels: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> tuple[World, Path]:
    venv = tmp_path / "env"
    shutil.copytree(base_venv, venv, symlinks=True)
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    world.commit("feat: packages and templates", {
        "requirements.txt": "tinyalpha>=1.0\n-r requirements/extra.txt\n",
        "requirements/extra.txt": "tinybeta  # needed by the stats cog\n",
        ".env.example": "# Discord\nDISCORD_TOKEN=\n",
    })
    world.tag("v1.11.0", "packages")
    world.commit("feat: alpha 2 and a new setting", {
        "requirements.txt": "tinyalpha>=2.0\n-r requirements/extra.txt\n",
        ".env.example": "# Discord\nDISCORD_TOKEN=\n# Stats\nSTATS_INTERVAL=60\n",
    })
    world.tag("v1.12.0", "alpha 2")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.deploy, "checkout", "--quiet", "v1.11.0")
    (world.deploy / ".env").write_text(f"# the bot's own secrets\n{SECRET}\n")
    (world.deploy / "data" / "settings.toml").write_text(
        f'python_executable = "{venv / "bin" / "python"}"\nrequire_confirmation = false\n')
    return world, venv


def freeze(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"],
                          capture_output=True, text=True, check=True).stdout


async def test_check_reports_packages_dependencies_and_config(
    deployment: tuple[World, Path],
) -> None:
    world, _venv = deployment
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("all")
    data = report.to_dict()
    assert data["errors"] == {}
    alpha = next(p for p in data["packages"] if p["package"] == "tinyalpha")
    assert alpha["current_version"] == "1.0" and alpha["latest_version"] == "2.0"
    assert alpha["required_current"] == ">=1.0" and alpha["required_target"] == ">=2.0"
    assert alpha["satisfied"] is False and alpha["update_available"] is True
    assert alpha["security"] is None  # not checked, never "no vulnerabilities"
    assert any("security: not checked" in w for w in data["warnings"])
    beta = next(p for p in data["packages"] if p["package"] == "tinybeta")
    assert beta["satisfied"] is True and beta["required_target"] == ""
    fine = [p for p in data["packages"]
            if p["satisfied"] and not p["update_available"]]
    assert fine  # tinybeta: installed, allowed, nothing newer
    # The release, each package to change, the requirement changes and the config: packages
    # that are fine and facts such as pip's conflicts are not counted as updates.
    assert data["total_updates"] == (1 + len(data["packages"]) - len(fine) + 1 + 1), data
    (requirements,) = [d for d in data["dependencies"] if d["kind"] == "requirements"]
    assert requirements["changed"] == [{"name": "tinyalpha", "from": "tinyalpha>=1.0",
                                        "to": "tinyalpha>=2.0"}]
    config = data["config"]
    (env,) = config["files"]
    assert env["added_in_target"] == ["STATS_INTERVAL"]
    assert env["missing_in_live"] == ["STATS_INTERVAL"]
    assert "keep-this-secret-value" not in json.dumps(data)


async def test_unreachable_index_is_reported_not_fatal(
    deployment: tuple[World, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _venv = deployment
    monkeypatch.setenv("PIP_FIND_LINKS", str(world.base / "no-such-dir"))
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("packages")
    assert report.errors == {}
    assert any("package index could not be asked" in w for w in report.warnings)
    alpha = next(p for p in report.packages if p["package"] == "tinyalpha")
    assert alpha["latest_version"] is None and alpha["current_version"] == "1.0"


async def test_install_all_moves_code_packages_and_config_together(
    deployment: tuple[World, Path],
) -> None:
    world, venv = deployment
    async with await ReleaseManager.open(world.deploy) as manager:
        session = await manager.install_updates("all", {})
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    assert world.head() == world.tag_commit("v1.12.0")
    assert "tinyalpha==2.0" in freeze(venv)
    env = (world.deploy / ".env").read_text()
    assert env.startswith(f"# the bot's own secrets\n{SECRET}\n")
    assert "STATS_INTERVAL=60" in env
    assert (world.deploy / ".env").stat().st_mode & 0o777 == 0o644  # as it was
    assert any("config: added .env: STATS_INTERVAL" in s for s in session.steps_completed)


async def test_install_all_that_fails_rolls_back_as_one(
    deployment: tuple[World, Path],
) -> None:
    world, venv = deployment
    (world.deploy / "data" / "settings.toml").write_text(
        (world.deploy / "data" / "settings.toml").read_text()
        + f'health_check_command = ["{sys.executable}", "-c", "raise SystemExit(4)"]\n')
    packages_before = freeze(venv)
    env_before = (world.deploy / ".env").read_text()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(CommandFailed):
            await manager.install_updates("all", {})
        session, _ = await manager.journal()
    assert world.head() == world.tag_commit("v1.11.0")
    assert freeze(venv) == packages_before
    assert (world.deploy / ".env").read_text() == env_before
    assert session.status is UpdateStatus.FAILED
    assert "packages put back as they were" in (session.error_message or "")


async def test_packages_alone_upgrade_within_the_requirements(
    deployment: tuple[World, Path],
) -> None:
    world, venv = deployment
    async with await ReleaseManager.open(world.deploy) as manager:
        session = await manager.install_updates("packages", {})
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    assert world.head() == world.tag_commit("v1.11.0")
    assert "tinyalpha==2.0" in freeze(venv)  # >=1.0 allows the newest


async def test_unsatisfiable_requirements_fail_and_change_nothing(
    deployment: tuple[World, Path],
) -> None:
    world, venv = deployment
    world.commit("needs alpha 9", {"requirements.txt": "tinyalpha>=9\n"})
    world.tag("v1.13.0", "impossible")
    world.push()
    before = freeze(venv)
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(Exception) as caught:
            await manager.install_updates("all", {"to": "1.13.0"})
    assert getattr(caught.value, "code", "") == "package_error"
    assert freeze(venv) == before
    assert world.head() == world.tag_commit("v1.11.0")


async def test_config_alone_merges_and_keeps_values_and_comments(
    deployment: tuple[World, Path],
) -> None:
    world, _venv = deployment
    git(world.deploy, "checkout", "--quiet", "v1.12.0")
    os.chmod(world.deploy / ".env", 0o600)
    async with await ReleaseManager.open(world.deploy) as manager:
        session = await manager.install_updates("config", {})
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    env = (world.deploy / ".env").read_text()
    assert env == (f"# the bot's own secrets\n{SECRET}\n"
                   "# added by gitrelease from .env.example\nSTATS_INTERVAL=60\n")
    assert (world.deploy / ".env").stat().st_mode & 0o777 == 0o600
    assert "keep-this-secret-value" not in json.dumps(session.to_dict())


async def test_toml_config_merge_keeps_comments_and_order(
    deployment: tuple[World, Path],
) -> None:
    world, _venv = deployment
    template = '[bot]\nprefix = "!"\nshards = 1\n\n[stats]\nenabled = true\n'
    world.commit("toml template", {"config.example.toml": template})
    world.tag("v1.12.1", "toml")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.deploy, "checkout", "--quiet", "v1.12.1")
    (world.deploy / "config.toml").write_text("# mine\n[bot]\nprefix = \"?\"  # keep\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("config", {})
    text = (world.deploy / "config.toml").read_text()
    assert text.startswith("# mine\n[bot]\nprefix = \"?\"  # keep\nshards = 1\n")
    assert "[stats]\nenabled = true" in text


async def test_requires_python_mismatch_is_refused(deployment: tuple[World, Path]) -> None:
    world, venv = deployment
    world.commit("python 4", {"pyproject.toml": '[project]\nname = "bot"\nversion = "0"\n'
                                                'requires-python = ">=4"\n'})
    world.tag("v1.14.0", "future")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.deploy, "checkout", "--quiet", "v1.14.0")
    before = freeze(venv)
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(PythonVersionMismatch):
            await manager.install_updates("dependencies", {})
    assert freeze(venv) == before


async def test_rollback_brings_back_the_package_set_of_the_backup(
    deployment: tuple[World, Path],
) -> None:
    world, venv = deployment
    before = freeze(venv)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("all", {})
        assert "tinyalpha==2.0" in freeze(venv)
        session = await manager.rollback_to_version("previous", {"confirm": True})
    assert world.head() == world.tag_commit("v1.11.0")
    assert freeze(venv) == before
    assert session.steps_completed[-1] == "packages"
