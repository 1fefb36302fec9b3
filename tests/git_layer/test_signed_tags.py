"""require_signed_tags with real SSH signing keys made by ssh-keygen in the fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, World, git


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, env=os.environ.copy())


def keypair(base: Path, name: str) -> Path:
    key = base / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)
    return key


@pytest.fixture
def signers(world: World) -> dict[str, Path]:
    """The release key (trusted by the deployment) and a stranger's key (not trusted)."""
    keys = {"release": keypair(world.base, "release-key"),
            "stranger": keypair(world.base, "stranger-key")}
    allowed = world.base / "allowed_signers"
    allowed.write_text(f"release@example.invalid {keys['release'].with_suffix('.pub').read_text()}")
    git(world.deploy, "config", "gpg.ssh.allowedSignersFile", str(allowed))
    (world.deploy / "data" / "settings.toml").write_text("require_signed_tags = true\n")
    return keys


def signed_release(world: World, version: str, key: Path, *, sign: bool = True) -> None:
    world.commit(f"chore: release {version}", {"VERSION": f"{version}\n"})
    args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "tag"]
    args += ["-s"] if sign else ["-a"]
    git(world.release, *args, f"v{version}", "-m", f"Release {version}", env=world._dates())
    world.push()


def test_a_valid_signature_is_installed(world: World, signers: dict[str, Path]) -> None:
    signed_release(world, "3.0.0", signers["release"])
    check = json.loads(cli(world, "check", "--type", "bot", "--details", "--json").stdout)
    assert check["bot"]["signature"] == "valid"
    assert "Good" in check["bot"]["signature_detail"]
    by_tag = {r["tag"]: r["signature"] for r in check["bot"]["releases"]}
    assert by_tag["v3.0.0"] == "valid" and by_tag["v1.10.0"] == "unsigned"
    result = cli(world, "install", "--type", "bot", "--force", "--json")
    assert result.returncode == 0, result.stderr
    assert world.head() == world.tag_commit("v3.0.0")


@pytest.mark.parametrize("case, state", [
    ("unsigned", "unsigned"), ("stranger", "unknown_key"), ("lightweight", "unsigned"),
])
def test_untrusted_tags_are_refused_with_the_reason(
    world: World, signers: dict[str, Path], case: str, state: str,
) -> None:
    if case == "lightweight":
        world.commit("chore: release 3.0.0", {"VERSION": "3.0.0\n"})
        world.tag("v3.0.0")
        world.push()
    else:
        signed_release(world, "3.0.0", signers["stranger"], sign=case != "unsigned")
    check = json.loads(cli(world, "check", "--type", "bot", "--json").stdout)
    assert check["bot"]["signature"] == state
    assert any("would be refused" in w for w in check["warnings"])
    before = world.state()
    result = cli(world, "install", "--type", "bot", "--force")
    assert result.returncode == 24, result.stderr
    assert f"its signature is {state}" in result.stderr
    after = world.state()
    after["files"].pop("data/gitrelease.lock", None)  # the install ran as far as its lock
    assert after["head"] == before["head"] and after["files"] == before["files"]


def test_a_ref_moved_onto_another_signed_tag_is_refused(
    world: World, signers: dict[str, Path],
) -> None:
    signed_release(world, "3.0.0", signers["release"])
    world.commit("chore: release 4.0.0", {"VERSION": "4.0.0\n"})
    tag_object = git(world.release, "rev-parse", "v3.0.0")  # the signed tag object itself
    git(world.release, "update-ref", "refs/tags/v4.0.0", tag_object)
    world.push()
    check = json.loads(cli(world, "check", "--type", "bot", "--json").stdout)
    assert check["bot"]["tag"] == "v4.0.0" and check["bot"]["signature"] == "name_mismatch"
    result = cli(world, "install", "--type", "bot", "--to", "4.0.0", "--force")
    assert result.returncode == 24 and "name_mismatch" in result.stderr
    assert "the ref was moved onto another tag" in result.stderr
    assert world.head() == world.tag_commit("v1.0.0")


def test_without_the_setting_unsigned_releases_install(world: World) -> None:
    result = cli(world, "install", "--type", "bot", "--to", "1.1.0")
    assert result.returncode == 0, result.stderr


def test_rollback_to_an_unsigned_tag_is_refused_when_required(
    world: World, signers: dict[str, Path],
) -> None:
    signed_release(world, "3.0.0", signers["release"])
    assert cli(world, "install", "--type", "bot", "--force").returncode == 0
    before = world.state()
    result = cli(world, "rollback", "1.0.0", "--yes", "--force")
    assert result.returncode == 24 and "v1.0.0 is refused" in result.stderr
    assert world.state() == before
