"""A dry run shows what an install asks the operator to agree to besides the code: the
config keys it would add (names only) and what the backup before it would hold."""

from __future__ import annotations

import json

from gitrelease.cli.render import render_plan
from gitrelease.core.reports import InstallPlan
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.realbot import BOT_TOKEN, DATABASE, cli


async def test_a_plan_of_all_names_the_keys_to_add_and_what_the_backup_holds(
        realbot_packages: World) -> None:
    world = realbot_packages
    before = (world.deploy / ".env").read_text()
    async with await ReleaseManager.open(world.deploy) as manager:
        plan = await manager.install_updates("all", {"dry_run": True, "force": True})
    assert isinstance(plan, InstallPlan)
    assert plan.config_keys == {".env": ["PREFIX"]}
    assert DATABASE in plan.backup_holds["databases"]
    assert ".env" in plan.backup_holds["config"]
    shown = plan.to_dict()
    assert shown["config_keys"] == {".env": ["PREFIX"]}
    assert shown["backup_holds"] == plan.backup_holds
    # Names, never values: the live file's token is nowhere in the plan.
    assert BOT_TOKEN.split("=", 1)[1].strip() not in json.dumps(shown)
    assert (world.deploy / ".env").read_text() == before  # a dry run adds nothing

    text = render_plan(plan)
    assert "config keys that would be added:\n    .env: PREFIX" in text
    assert "the backup before the update would hold:" in text and DATABASE in text


async def test_no_backup_no_holds_and_a_bot_install_adds_no_keys(
        realbot_packages: World) -> None:
    world = realbot_packages
    (world.deploy / "data" / "settings.toml").write_text(
        (world.deploy / "data" / "settings.toml").read_text()
        + "require_backup_before_update = false\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        plan = await manager.install_updates("all", {"dry_run": True, "force": True,
                                                     "backup_before": False})
        bot = await manager.install_updates("bot", {"dry_run": True, "force": True})
    assert isinstance(plan, InstallPlan) and isinstance(bot, InstallPlan)
    assert "backup" not in plan.steps and plan.backup_holds == {}
    assert plan.config_keys == {".env": ["PREFIX"]}
    assert bot.config_keys == {}  # a bot install merges no config
    assert DATABASE in bot.backup_holds["databases"]  # it takes the backup by default


def test_the_cli_dry_run_shows_both_in_json(realbot_packages: World) -> None:
    # At 5.0 the template has only TOKEN, which the live file has: a config update adds
    # nothing, and says so rather than leaving the field out.
    plan = json.loads(cli(realbot_packages, "--json", "install", "--type", "config",
                          "--dry-run").stdout)
    assert plan["config_keys"] == {}
    assert DATABASE in plan["backup_holds"]["databases"]

