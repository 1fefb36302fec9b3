"""Release side to running bot, end to end: release --sign --push, install, restart, confirm.

Real repositories, a real SSH signing key, real hooks installed by `gitrelease hooks install`,
and a real bot process that is restarted by signal and confirms the version it came up at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, SIGTERM_EXIT, Bot, World, git
from tests.git_layer.test_signed_tags import keypair


def cli_at(root: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(root), *args],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_release_minor_push_is_installed_verified_and_restarted(
    world: World, bots: list[Bot],
) -> None:
    # Release side: a signing key, the pre-push hook, new work since the last release.
    key = keypair(world.base, "release-key")
    git(world.release, "config", "gpg.format", "ssh")
    git(world.release, "config", "user.signingkey", str(key))
    cli_at(world.release, "hooks", "install", "--release")
    world.commit("feat: /uptime command")
    world.commit("fix(security): escape user names in embeds")
    git(world.release, "push", "--quiet", "origin", "main")

    # Deployment: trusts that key, requires signatures, restarts by signal, has the hook.
    allowed = world.base / "allowed_signers"
    allowed.write_text(f"release@example.invalid {key.with_suffix('.pub').read_text()}")
    git(world.deploy, "config", "gpg.ssh.allowedSignersFile", str(allowed))
    (world.deploy / "data" / "settings.toml").write_text(
        'require_signed_tags = true\nrestart_method = "signal"\nchannel = "pre"\n'
        'start_confirmation = "required"\n')  # this bot confirms each start
    cli_at(world.deploy, "hooks", "install")
    old_bot = Bot(world, "signal")
    bots.append(old_bot)

    released = json.loads(cli_at(world.release, "--json", "release", "minor", "--sign",
                                 "--push"))
    assert released["tag"] == "v2.0.0" and released["pushed"] and released["signed"]
    assert git(world.origin, "rev-parse", "v2.0.0") == git(world.release, "rev-parse", "v2.0.0")

    check = json.loads(cli_at(world.deploy, "--json", "check", "--type", "bot"))
    assert check["bot"]["tag"] == "v2.0.0" and check["bot"]["signature"] == "valid"
    assert check["bot"]["security_update"] is True

    session = json.loads(cli_at(world.deploy, "--json", "install", "--type", "bot",
                                "--force"))
    assert world.head() == world.tag_commit("v2.0.0")
    assert session["status"] == "restarting"
    assert old_bot.wait() == SIGTERM_EXIT  # restarted once, after the install's checks

    assert "start 1 of 2.0.0" in cli_at(world.deploy, "boot-check")
    new_bot = Bot(world, "confirm")
    bots.append(new_bot)
    assert new_bot.wait() == 0
    journal = json.loads(cli_at(world.deploy, "--json", "journal", session["id"]))
    assert journal["session"]["status"] == "completed"

    # An operator's own checkout restarts the bot through the post-checkout hook.
    third_bot = Bot(world, "signal")
    bots.append(third_bot)
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.10.0")
    assert third_bot.wait() == SIGTERM_EXIT
