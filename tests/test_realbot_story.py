"""The whole story on a bot laid out as real ones are, through the CLI, in text and JSON.

Check, a refused install, a dry run, the install (packages downgraded, a placeholder key
added, an edited tracked config carried over), the bot writing to its database outside
``data/``, a rollback that brings code, data and packages back, and a restore: each step's
text says what happened, and ``git status`` stays clean throughout.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess

from tests.conftest import World, git
from tests.realbot import BOT_TOKEN, DATABASE, cli, users

TOKEN_VALUE = BOT_TOKEN.split("=", 1)[1].strip()


def run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli(world, *args, check=False)
    assert TOKEN_VALUE not in result.stdout + result.stderr
    return result


def botlib(world: World) -> str:
    settings = (world.deploy / "data" / "settings.toml").read_text()
    python = settings.split('"')[1]
    return subprocess.run([python, "-c", "import botlib; print(botlib.VERSION)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_check_install_rollback_restore_read_true(realbot_packages: World) -> None:
    world = realbot_packages
    deploy = world.deploy
    config = deploy / "config.json"
    edited = config.read_text().replace('"sync_commands_globally": false',
                                        '"sync_commands_globally": true')
    config.write_text(edited)

    report = run(world, "check", "--type", "all")
    text = report.stdout
    assert "current version: 5.0" in text
    assert "v6.5.0" in text
    assert "botlib" in text and "NOT SATISFIED" in text
    assert "PREFIX" in text and "needs your value" in text
    assert DATABASE in text  # what a backup would hold
    assert "up to date" not in text
    data = json.loads(run(world, "check", "--type", "all", "--json").stdout)
    assert data["current_version"] == "5.0" and data["version_known"] is True
    assert data["bot"]["tag"] == "v6.5.0"
    assert DATABASE in data["backup_holds"]["databases"]
    assert sum(data["updates_by_category"].values()) == data["total_updates"]

    refused = run(world, "install", "--type", "all")
    assert refused.returncode != 0
    assert "config.json" in refused.stderr and "--keep-local-changes" in refused.stderr
    assert git(deploy, "describe", "--tags") == "5.0"

    plan = run(world, "install", "--type", "all", "--keep-local-changes", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "botlib 2.0 -> 1.5" in plan.stdout and "DOWNGRADE" in plan.stdout
    assert "the install would ask first" in plan.stdout  # 5.0 -> 6.5.0: a major version
    assert "v6.5.0 has breaking changes" in plan.stdout
    assert botlib(world) == "2.0"

    done = run(world, "install", "--type", "all", "--keep-local-changes", "--force")
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    assert "botlib 2.0 -> 1.5" in done.stdout
    assert "PREFIX (needs your value)" in done.stdout
    assert "warning: needs your value: .env: PREFIX" in done.stdout
    assert "local changes carried over: config.json" in done.stdout
    assert git(deploy, "describe", "--tags") == "v6.5.0"
    assert botlib(world) == "1.5"
    assert '"sync_commands_globally": true' in config.read_text()
    assert '"prefix"' not in config.read_text()
    assert "PREFIX=" in (deploy / ".env").read_text()

    with sqlite3.connect(deploy / DATABASE) as db:  # the bot, at v6.5.0, writes a row
        db.execute("INSERT INTO users VALUES (3, 'linus')")
    db.close()

    rolled = run(world, "rollback", "previous", "--yes", "--keep-local-changes")
    assert rolled.returncode == 0, rolled.stderr
    assert "6.5.0 -> 5.0" in rolled.stdout
    assert "old code" not in rolled.stdout
    assert git(deploy, "describe", "--tags") == "5.0"
    assert users(deploy) == [(1, "ada"), (2, "grace")]
    assert (deploy / ".env").read_text() == BOT_TOKEN
    assert botlib(world) == "2.0"
    assert '"sync_commands_globally": true' in config.read_text()
    assert '"prefix": "!"' in config.read_text()

    listed = json.loads(run(world, "backup", "list", "--json").stdout)
    pre_update = next(b for b in listed if b["tag"] == "5.0")
    with sqlite3.connect(deploy / DATABASE) as db:
        db.execute("DELETE FROM users")
    db.close()
    restored = run(world, "backup", "restore", pre_update["id"], "--yes", "--type", "database")
    assert restored.returncode == 0, restored.stderr
    assert DATABASE in restored.stdout and "root/" not in restored.stdout
    assert "1 files" not in restored.stdout
    assert users(deploy) == [(1, "ada"), (2, "grace")]

    status = json.loads(run(world, "status", "--history", "--json").stdout)
    assert status["version"] == "5.0"
    # Only the operator's edit, unstaged as it was: no data/ (its own .gitignore), no stash.
    assert git(deploy, "status", "--short", "--untracked-files=all") == "M config.json"
    assert git(deploy, "diff", "--name-only") == "config.json"
    assert git(deploy, "diff", "--cached", "--name-only") == ""
    assert git(deploy, "stash", "list") == ""
