"""The text `check` on a bot laid out as real ones are (tests/realbot.py): every source the
JSON form carries, counted per category as the JSON counts them, keys named and never valued.

The world: deployed at bare `5.0`, botlib 2.0 installed, v6.5.0 pins botlib==1.5 and adds
PREFIX=YOUR_BOT_PREFIX_HERE to .env.example; `.env` holds the bot's token.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, World, git
from tests.realbot import BOT_TOKEN

SECRET = BOT_TOKEN.split("=", 1)[1].strip()
CATEGORIES = {"all": ["bot", "packages", "dependencies", "config"], "packages": ["packages"],
              "config": ["config"], "dependencies": ["dependencies"]}


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr  # no .env value, ever
    return result


def check(world: World, kind: str, *extra: str) -> tuple[str, dict[str, Any]]:
    text = cli(world, "check", "--type", kind, *extra).stdout
    data = json.loads(cli(world, "--json", "check", "--type", kind, *extra).stdout)
    return text, data


def counted(text: str, data: dict[str, Any], kind: str) -> None:
    """The header counts what the JSON counts, per category, and the parts add up."""
    by_category = data["updates_by_category"]
    assert sum(by_category.values()) == data["total_updates"]
    per = ", ".join(f"{name} {by_category[name]}" for name in CATEGORIES[kind])
    assert f"  available updates: {data['total_updates']} ({per})\n" in text, text


@pytest.mark.parametrize("kind", ["all", "packages", "dependencies", "config"])
def test_text_check_shows_every_source_it_checked(realbot_packages: World, kind: str) -> None:
    text, data = check(realbot_packages, kind)
    counted(text, data, kind)
    shows_packages = kind in ("all", "packages")
    shows_dependencies = kind in ("all", "dependencies")
    shows_config = kind in ("all", "config")
    # Packages: installed -> latest, what the target wants (and wanted before), unsatisfied.
    line = re.search(r"^  botlib: .*$", text, re.MULTILINE)
    assert (line is not None) == shows_packages, text
    if line is not None:
        assert ("botlib: installed 2.0, latest 2.0, target wants ==1.5 (was >=1.0)"
                in line.group(0))
        assert "NOT SATISFIED" in line.group(0)
        if importlib.util.find_spec("pip_audit") is None:
            assert "security: not checked" in line.group(0)
        assert data["updates_by_category"]["packages"] == 1
    # Dependencies: the requirement change of the target.
    assert ("requirements in v6.5.0:\n    changed: botlib>=1.0 -> botlib==1.5" in text) \
        == shows_dependencies, text
    # Config: keys by name, the placeholder one as needing the operator's value.
    assert ("  .env.example -> .env:\n    added in v6.5.0: PREFIX\n    missing in .env: PREFIX"
            "\n    needs your value: PREFIX\n" in text) == shows_config, text
    if shows_config:
        (env,) = data["config"]["files"]
        assert env["needs_value"] == ["PREFIX"]  # TOKEN has the operator's value
        assert "YOUR_BOT_PREFIX_HERE" not in json.dumps(data)  # names, never values
    assert ("Bot release v6.5.0" in text) == (kind == "all")
    assert "What a backup would hold\n  databases: database/database.db" in text
    assert "Bot: up to date" not in text


def test_security_not_checked_is_never_zero(realbot_packages: World) -> None:
    if importlib.util.find_spec("pip_audit") is not None:
        pytest.skip("pip-audit is installed here: package security is checked")
    text, data = check(realbot_packages, "all")
    assert data["security_updates"] is None and data["security_unchecked"] == ["packages"]
    assert "  security: not checked (packages)   breaking: 1\n" in text
    assert not re.search(r"security: 0\b", text)
    # Not asked for at all: every "security" says "not checked".
    text, data = check(realbot_packages, "all", "--no-security")
    assert data["security_updates"] is None
    assert "  security: not checked   breaking:" in text
    assert "  security: not checked   breaking: yes" in text  # the bot release's own line


def test_a_value_only_the_operator_has_is_named_not_counted(realbot_packages: World) -> None:
    """At v6.5.0 with PREFIX set and TOKEN left empty: nothing for an install to do, but
    the text says TOKEN needs a value, and the count does not call it an update."""
    world = realbot_packages
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v6.5.0")
    (world.deploy / ".env").write_text("TOKEN=\nPREFIX=zz-operator-prefix\n")
    text, data = check(world, "config")
    counted(text, data, "config")
    assert data["updates_by_category"]["config"] == 0 and data["total_updates"] == 0
    (env,) = data["config"]["files"]
    assert env["needs_value"] == ["TOKEN"] and env["missing_in_live"] == []
    assert data["config"]["update_available"] is False
    assert "    needs your value: TOKEN\n" in text
    assert "zz-operator-prefix" not in text + json.dumps(data)


def test_an_unknown_version_and_unknown_breaking_read_as_unknown(
    realbot_packages: World,
) -> None:
    world = realbot_packages
    initial = git(world.deploy, "rev-list", "--max-parents=0", "HEAD")
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", initial)
    text, data = check(world, "bot")
    assert data["version_known"] is False and data["breaking_unknown"] == 1
    assert f"  current version: unknown (0+untagged.g{initial[:7]})\n" in text
    assert "breaking: unknown" in text and not re.search(r"breaking: no\b", text)
    assert f"  available updates: {data['total_updates']} (bot 1)\n" in text


def test_a_tag_hint_replaces_up_to_date(realbot: World) -> None:
    settings = realbot.deploy / "data"
    settings.mkdir(exist_ok=True)
    (settings / "settings.toml").write_text('tag_pattern = "release-*"\n')
    text, data = check(realbot, "bot")
    hint = data["tag_hint"]
    assert hint and data["bot"] is None
    assert "Bot: up to date" not in text
    assert f"\n  {hint}\n" in text and text.count(hint) == 1  # said once, in its place


def test_install_that_merges_a_placeholder_says_it_needs_your_value(
    realbot_packages: World,
) -> None:
    world = realbot_packages
    done = cli(world, "install", "--type", "all", "--force", "--no-backup")
    assert "config: added .env: PREFIX (needs your value)" in done.stdout, done.stdout
    # Added as the template has it (so the bot finds the key); the token is untouched.
    env = (world.deploy / ".env").read_text()
    assert env.startswith(BOT_TOKEN) and "PREFIX=YOUR_BOT_PREFIX_HERE\n" in env
    text, data = check(world, "config")
    (live,) = data["config"]["files"]
    assert live["missing_in_live"] == [] and live["needs_value"] == ["PREFIX"]
    assert "    needs your value: PREFIX\n" in text
