"""What an operator reads, beside the specification's usage examples: the whole check report,
the plan shown before an install and what changed after, the cards of backups, restores,
schedules, status and settings, and the suggestions offered while typing.

Driven through the real extension against the stand-in of Discord, on a deployment laid out
as a real bot's (`realbot_packages`: botlib 2.0 installed, the newest release pins 1.5 and
adds a key to .env) and on the plain test world (`h`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from gitrelease.core.models import UpdateType
from gitrelease.core.reports import CheckReport
from gitrelease.manager import ReleaseManager
from gitrelease_discord.report_card import check_card
from tests.conftest import World
from tests.discord_ext.harness import ADMIN, ADMIN_ID, Harness, body, harness, title
from tests.discord_stub import autocomplete, custom_ids, press
from tests.realbot import BOT_TOKEN, DATABASE

TOKEN_VALUE = BOT_TOKEN.split("=", 1)[1].strip()
BOTH_TIMES = re.compile(r"<t:\d+:R> \(<t:\d+:F>\)")


@pytest.fixture
async def rb(realbot_packages: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    async with harness(realbot_packages, monkeypatch) as ready:
        yield ready


def _everything(result: object) -> str:
    """Every embed and content the bot sent for this interaction, as one text."""
    return json.dumps([r.json for r in result.requests], ensure_ascii=False)  # type: ignore[attr-defined]


# -- 3. the check card carries the whole report ------------------------------------------------


async def test_the_check_card_carries_dependencies_config_keys_and_an_honest_count(
        rb: Harness) -> None:
    result = await rb.owner("update_check", {"check_type": "all", "show_details": True,
                                             "include_security": False})
    card = body(result)
    assert title(result) == "🔍 Update Check Results"
    async with await ReleaseManager.open(rb.world.deploy) as manager:
        report = await manager.check_for_updates("all", include_security=False)
    total = report.to_dict()["total_updates"]
    assert f"### Available Updates: {total}" in card
    # What the count counts is all on the card: the release, the package and the requirement
    # change, the key to add.
    assert "### Bot Update" in card and "v6.5.0" in card
    assert "### Package Updates" in card and "**botlib**" in card
    assert "### Dependency Updates" in card and "botlib==1.5" in card
    assert "PREFIX" in card  # the key, by name
    assert "YOUR_BOT_PREFIX_HERE" not in card and TOKEN_VALUE not in _everything(result)
    # No audit ran: never a "0" beside a warning.
    assert "• **Security Updates**: not checked" in card
    assert "• **Security Updates**: 0" not in card


def test_a_vulnerable_package_is_named_with_its_advisory_ids() -> None:
    report = CheckReport(UpdateType.PACKAGES, datetime(2026, 1, 2, tzinfo=UTC), "1.0.0",
                         packages=[{"package": "requests", "current_version": "2.28.0",
                                    "latest_version": "2.28.1", "update_available": True,
                                    "security": ["GHSA-j8r2-6x86-q33q"],
                                    "required_target": ">=2.0", "required_current": ">=2.0",
                                    "satisfied": True}])
    card = check_card(report, "en_US").description or ""
    assert "1. **requests** 2.28.0 → 2.28.1 (Security Update: GHSA-j8r2-6x86-q33q)" in card
    assert "### Available Updates: 1" in card and "### Package Updates (1)" in card
    assert "• **Security Updates**: 1" in card


# -- 4 and 9. the plan first, then the result; buttons gone once pressed ------------------------


async def test_the_confirm_card_shows_the_plan_and_the_result_what_changed(
        rb: Harness) -> None:
    result = await rb.owner("update_install", {"update_type": "all"}, wait=False)
    asking = None
    for _ in range(600):
        asking = rb.fake.final_for(result.token)
        if asking and "gitrelease:confirm" in custom_ids(asking):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no confirmation was asked: {asking}")
    shown = json.dumps(asking["embeds"], ensure_ascii=False)
    assert "**botlib** 2.0 → 1.5 ⬇️ **downgrade**" in shown
    assert "Config Keys to Add (1)" in shown and "`.env`: PREFIX" in shown
    assert "The Backup Before the Update Will Hold" in shown and DATABASE in shown
    assert "pip would downgrade botlib 2.0 → 1.5" in shown  # why it asks
    assert TOKEN_VALUE not in shown

    pressed = await press(rb.bot, asking, "gitrelease:confirm", user_id=rb.fake.owner_id,
                          guild_id=rb.fake.guild_id)
    assert not pressed.errors, pressed.errors
    await result.wait(timeout=300)
    final = rb.fake.final_for(result.token)
    assert final is not None and not custom_ids(final), "the buttons stayed after the press"
    card = body(result)
    assert title(result) == "🎉 Update Finished Successfully", card
    assert "• Updated packages: 1" in card and "**botlib** 2.0 → 1.5" in card
    assert "• Total time: " in card and "• System restarted: " in card
    # The progress named the product's steps, never the engine's raw sentences.
    progress = [json.dumps(r.json, ensure_ascii=False) for r in result.requests
                if r.method == "PATCH"]
    assert any("✅ Creating pre-update backup" in p for p in progress), progress
    assert not any("✅ restart:" in p or "✅ config:" in p for p in progress)


async def test_status_flags_a_restart_pending_while_the_bot_runs_older_code(
        h: Harness) -> None:
    before = body(await h.admin("update_status"))
    assert "Restart pending" not in before
    await h.owner("update_install", {"update_type": "bot"})
    after = body(await h.admin("update_status"))
    assert "⚠️ **Restart pending**: the bot still runs commit " in after
    assert h.world.tag_commit("v1.0.0")[:12] in after


# -- 6. cards as in the specification's examples -----------------------------------------------


async def test_the_schedule_card_has_its_time_zone_and_automatic_actions(h: Harness) -> None:
    (h.world.deploy / "data" / "settings.toml").write_text(
        'timezone = "Europe/Berlin"\nrestart_method = "none"\n')
    result = await h.owner("update_schedule", {
        "schedule_type": "weekly", "update_time": "15:30", "update_days": "sunday,wednesday",
        "update_types": "packages,bot"})
    card = body(result)
    assert title(result) == "⏰ Update Schedule Saved"  # no internal id in the title
    assert "sch" not in title(result).lower().replace("schedule", "")
    for line in ("• Type: Weekly updates", "• Time: 15:30 (3:30 PM) · time zone Europe/Berlin",
                 "• Days: Wednesday, Sunday", "• Updates: Bot release, Python packages",
                 "• Status: ✅ Enabled", "### Automatic Actions",
                 "• Create backup before update: Yes", "• Restart bot if needed: No",
                 "• Notify on completion: No (no notify_channels are set)",
                 "This schedule will automatically update your bot weekly."):
        assert line in card, card
    assert BOTH_TIMES.search(card.split("• Next Run: ")[1]), card


async def test_backups_read_as_people_name_them(h: Harness) -> None:
    created = await h.admin("backup_create", {"backup_type": "data_only",
                                              "backup_name": "just_data"})
    card = body(created)
    assert title(created) == "📦 Backup Complete"
    assert "• Type: Data only" in card and "data_only" not in card
    assert "• Origin: made by hand" in card and BOTH_TIMES.search(card)
    progress = [json.dumps(r.json, ensure_ascii=False) for r in created.requests]
    assert any("💾 Creating Data only Backup" in p for p in progress), progress

    await h.owner("update_install", {"update_type": "bot"})  # takes a pre-update backup
    listed = await h.admin("backup_list", {"time_range": "7d"})
    assert title(listed) == "📂 Available Backups (Last 7 days)"
    assert "📊 Full backup of v1.0.0" in body(listed) and "· taken before an update" in body(listed)


async def test_a_restore_says_how_far_back_it_goes_and_how_long_it_took(h: Harness) -> None:
    async with await ReleaseManager.open(h.world.deploy) as manager:
        await manager.create_backup("config", {"backup_name": "cfg"})
    result = await h.owner("backup_restore", {"backup_id": "cfg", "confirm": True,
                                              "restore_type": "config"})
    progress = [json.dumps(r.json, ensure_ascii=False) for r in result.requests
                if r.method == "PATCH"]
    assert any("🔄 Restoring Backup" in p and "This brings the state back to <t:" in p
               for p in progress), progress
    card = body(result)
    assert title(result) == "🎉 Restore Completed Successfully"
    assert "• Restoration time: " in card and "• Restore type: Config only" in card


async def test_an_unknown_backup_is_one_private_reply_before_anything_is_public(
        h: Harness) -> None:
    result = await h.owner("backup_restore", {"backup_id": "no_such", "confirm": True})
    assert result.ephemeral and "no_such" in json.dumps(result.final)
    assert result.response_type == 4  # answered, never deferred in public first


# -- 7. settings as in the specification's example ---------------------------------------------


async def test_a_changed_setting_is_shown_beside_its_category(h: Harness) -> None:
    result = await h.owner("update_settings", {"setting_category": "backup",
                                               "setting_name": "max_backups",
                                               "setting_value": "15"})
    card = body(result)
    assert title(result) == "⚙️ Settings Updated"
    assert "### Backup Settings" in card
    assert "• **Max Backups** (`max_backups`): 15 (previously: 50)" in card
    assert "• Compression Level: 6" in card and "• Auto Cleanup: true" in card
    about = "\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16}"
    assert f"{about} backups kept before the oldest are pruned" in card
    assert "⏱️ Takes effect: with the next backup or prune" in card
    assert "Settings have been applied successfully." in card
    assert str(h.world.deploy) not in _everything(result)  # no server path

    again = await h.owner("update_settings", {"setting_category": "backup",
                                              "setting_name": "max_backups",
                                              "setting_value": "15"})
    assert title(again) == "⚙️ Setting Unchanged" and "15 (unchanged)" in body(again)

    flag = await h.owner("update_settings", {"setting_category": "backup",
                                             "setting_name": "auto_cleanup",
                                             "setting_value": "no"})
    assert "(`auto_cleanup`): false (previously: true)" in body(flag)


async def test_a_setting_without_a_value_is_shown_and_left_as_it_is(h: Harness) -> None:
    settings = h.world.deploy / "data" / "settings.toml"
    before = settings.read_text() if settings.exists() else None
    result = await h.owner("update_settings", {"setting_category": "update",
                                               "setting_name": "restart_method"})
    card = body(result)
    assert result.ephemeral and title(result) == "⚙️ Setting restart_method"
    assert "(`restart_method`): " in card and "previously" not in card
    assert "when the bot restarts" in card
    assert (settings.read_text() if settings.exists() else None) == before


async def test_a_mistyped_setting_is_answered_privately_with_the_nearest_names(
        h: Harness) -> None:
    result = await h.owner("update_settings", {"setting_category": "backup",
                                               "setting_name": "max_backup",
                                               "setting_value": "3"})
    assert result.ephemeral and result.response_type == 4
    assert "max_backups" in json.dumps(result.final)
    assert not (h.world.deploy / "data" / "settings.toml").exists()


# -- 8. suggestions before sending --------------------------------------------------------------


async def test_setting_values_are_suggested_by_type(h: Harness) -> None:
    flags = await autocomplete(h.bot, "update_settings", {
        "setting_category": "backup", "setting_name": "auto_cleanup", "setting_value": ""},
        "setting_value", user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    assert [c["value"] for c in flags] == ["true", "false"]
    kinds = await autocomplete(h.bot, "update_settings", {
        "setting_category": "backup", "setting_name": "compression", "setting_value": "zs"},
        "setting_value", user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    assert [c["value"] for c in kinds] == ["zstd"]
    secret = await autocomplete(h.bot, "update_settings", {
        "setting_category": "update", "setting_name": "restart_command", "setting_value": ""},
        "setting_value", user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    assert secret == []


async def test_backups_are_suggested_with_their_age_version_and_origin(h: Harness) -> None:
    async with await ReleaseManager.open(h.world.deploy) as manager:
        await manager.create_backup("database", {"backup_name": "before_tests"})
    found = await autocomplete(h.bot, "backup_restore", {"backup_id": "before",
                                                         "confirm": True},
                               "backup_id", user_id=h.fake.owner_id,
                               guild_id=h.fake.guild_id)
    assert len(found) == 1
    assert found[0]["name"] == "before_tests · Database · v1.0.0 · just now · made by hand"
    refused = await autocomplete(h.bot, "backup_restore", {"backup_id": "", "confirm": True},
                                 "backup_id", user_id=ADMIN_ID, guild_id=h.fake.guild_id,
                                 permissions=ADMIN)
    assert refused == []  # restoring is the owner's: an admin is offered nothing
