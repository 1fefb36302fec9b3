"""A deployment laid out as real bots are, not as gitrelease would lay one out.

Modelled on a public discord.py bot that nobody here wrote: lightweight tags that switched
scheme (bare ``1.0.0`` … ``5.0``, then ``v5.1.0`` … ``v6.5.0``), its SQLite database in
``database/database.db`` (ignored, not under ``data/``), a tracked ``config.json`` that the
bot's README tells operators to edit, ``.env`` with ``TOKEN=``, and a last release that moves
the prefix from ``config.json`` into ``.env`` (with a placeholder value) and pins a package
below the installed one. No ``pyproject.toml``, no ``data/`` folder: gitrelease has to find
its way in a checkout it did not shape.

Fixtures: ``realbot`` (a World whose deployment is checked out at the bare tag ``5.0``) and
``realbot_packages`` (the same, with its own virtual environment holding ``botlib 2.0``, built
here, and ``python_executable`` pointing at it).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, World, copy_world, git, new_world

__all__ = ["BOT_TOKEN", "CONFIG_V5", "DATABASE", "cli", "realbot", "realbot_packages", "users"]

BOT_TOKEN = "TOKEN=real-bot-token-value-1234\n"
DATABASE = "database/database.db"
CONFIG_V5 = {"prefix": "!", "owners": [1234], "sync_commands_globally": False}


def cli(world: World, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`gitrelease --root DEPLOY ARGS` as a process; with `check`, it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def users(deploy: Path) -> list[tuple]:
    """The rows of the bot's own database."""
    with sqlite3.connect(deploy / DATABASE) as db:
        rows = db.execute("SELECT * FROM users ORDER BY id").fetchall()
    db.close()
    return rows


def _build(base: Path) -> World:
    world = new_world(base)
    world.commit("Initial commit", {
        ".gitignore": ".env\n__pycache__/\ndatabase/*.db\n",
        "bot.py": "print('bot')\n",
        "config.json": json.dumps(CONFIG_V5, indent=4) + "\n",
        ".env.example": "TOKEN=\n",
        "requirements.txt": "botlib>=1.0\n",
        "database/schema.sql": "CREATE TABLE IF NOT EXISTS users (id INTEGER, name TEXT);\n",
    })
    for version in ("1.0.0", "1.1.0", "2.0", "5.0"):  # bare, lightweight
        world.commit(f"Version {version}", {"CHANGES": f"{version}\n"})
        world.tag(version)
    world.commit("Switch to v-prefixed tags", {"CHANGES": "5.1.0\n"})
    world.tag("v5.1.0")
    world.commit("Slash commands everywhere", {"CHANGES": "6.0.0\n"})
    world.tag("v6.0.0")
    world.commit("Move the prefix to .env, pin botlib", {
        "config.json": json.dumps({k: v for k, v in CONFIG_V5.items() if k != "prefix"},
                                  indent=4) + "\n",
        ".env.example": "TOKEN=\nPREFIX=YOUR_BOT_PREFIX_HERE\n",
        "requirements.txt": "botlib==1.5\n",
    })
    world.tag("v6.5.0")
    world.push()
    git(base, "clone", "--quiet", str(world.origin), str(world.deploy))
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "5.0")
    (world.deploy / ".env").write_text(BOT_TOKEN)
    with sqlite3.connect(world.deploy / DATABASE) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO users VALUES (?, ?)", [(1, "ada"), (2, "grace")])
    db.close()
    return world


@pytest.fixture(scope="session")
def realbot_template(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _build(tmp_path_factory.mktemp("realbot"))


@pytest.fixture
def realbot(realbot_template: World, tmp_path: Path) -> Iterator[World]:
    """A private copy of the real-bot world, remotes pointing at the copy's own origin."""
    yield copy_world(realbot_template, tmp_path / "realbot")


@pytest.fixture(scope="session")
def realbot_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.deploy.test_packages import build_wheel

    directory = tmp_path_factory.mktemp("realbot-wheels")
    for version in ("1.0", "1.5", "2.0"):
        build_wheel(directory, "botlib", version)
    return directory


@pytest.fixture(scope="session")
def realbot_venv(tmp_path_factory: pytest.TempPathFactory, realbot_wheels: Path) -> Path:
    from tests.deploy.test_packages import make_venv

    return make_venv(tmp_path_factory.mktemp("realbot-venv") / "env", realbot_wheels,
                     "botlib==2.0")


@pytest.fixture
def realbot_packages(realbot: World, realbot_venv: Path, realbot_wheels: Path, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> World:
    """The real-bot world with its own environment (botlib 2.0 installed; v6.5.0 pins 1.5)."""
    venv = tmp_path / "env"
    shutil.copytree(realbot_venv, venv, symlinks=True)
    monkeypatch.setenv("PIP_FIND_LINKS", str(realbot_wheels))
    data = realbot.deploy / "data"
    data.mkdir(exist_ok=True)
    (data / "settings.toml").write_text(f'python_executable = "{venv / "bin" / "python"}"\n')
    return realbot
