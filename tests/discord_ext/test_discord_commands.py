"""Who is offered the commands, what a failed install or rollback says, typos answered before
anything is public, and the suggestions the update commands make as you type (issue 16,
points 1, 2, 5 and 8) — through the real discord.py against the local stand-in of Discord.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from gitrelease.manager import ReleaseManager
from tests.discord_ext.harness import ADMIN, ADMIN_ID, Harness, body, refusal, title
from tests.discord_stub import autocomplete, press

FAILING_CHECK = json.dumps(["python3", "-c", "print('checking the guilds table'); "
                                             "print('table guilds: 2 rows'); raise SystemExit(3)"])


def _settings(h: Harness, text: str) -> int:
    """Write data/settings.toml with a notify channel and `text`; the channel's id."""
    channel = h.fake.add_channel(guild_id=h.fake.guild_id)
    (h.world.deploy / "data" / "settings.toml").write_text(
        f"notify_channels = [{channel}]\n{text}")
    return channel


async def _posted(h: Harness, channel: int, *, settle: float = 0.5) -> list[str]:
    await asyncio.sleep(settle)  # announcements are posted in the background
    return [r.json["content"] for r in h.fake.calls("POST", f"/channels/{channel}/")]


def _sent(h: Harness) -> str:
    return json.dumps([r.json for r in h.fake.requests], ensure_ascii=False)


async def _schedules(h: Harness) -> int:
    async with await ReleaseManager.open(h.world.deploy) as manager:
        return len(await manager.list_schedules())


# -- 1. who sees the commands ------------------------------------------------------------------


async def test_commands_are_registered_for_servers_and_offered_to_administrators(
        h: Harness) -> None:
    await h.bot.tree.sync()
    registered = h.fake.commands[None]
    assert len(registered) == 10  # the specification's nine and /update_fleet
    for command in registered:
        assert command["dm_permission"] is False, command["name"]
        assert command["contexts"] == [0], command["name"]  # guilds only
        assert str(command["default_member_permissions"]) == str(ADMIN), command["name"]


async def test_the_owner_only_commands_still_refuse_an_administrator(h: Harness) -> None:
    result = await h.admin("update_install", {"update_type": "bot"})
    assert "Only the bot's owner" in refusal(result)
    assert h.world.head() == h.world.tag_commit("v1.0.0")


# -- 2. a failed install says what state the bot is in -----------------------------------------


async def test_a_failed_install_says_it_was_undone_what_runs_and_its_id(h: Harness) -> None:
    channel = _settings(h, f"health_check_command = {FAILING_CHECK}\n")
    result = await h.owner("update_install", {"update_type": "bot"})
    assert title(result) == "❌ Update Failed — undone"
    shown = body(result)
    assert "• Update: Bot release, 1.0.0 → 1.10.0" in shown
    assert "• Failed at: Running the health check" in shown
    assert "back at **1.0.0**, as before" in shown
    assert "health check exited with status 3" in shown
    found = re.search(r"• Update ID: (upd_\w+)", shown)
    assert found, shown
    assert f"/update_status update_id: {found[1]}" in shown
    assert h.world.head() == h.world.tag_commit("v1.0.0")
    # Never a server path: not the log file's, not the deployment's.
    assert str(h.world.base) not in _sent(h)
    posted = await _posted(h, channel)
    failed = [p for p in posted if p.startswith("Update failed")]
    assert len(failed) == 1 and found[1] in failed[0] and "undone" in failed[0], posted

    log = await h.owner("update_status", {"update_id": found[1]})
    assert log.ephemeral, "the log is for the owner alone"
    assert title(log) == "📜 Update Log" and f"• Update ID: {found[1]}" in body(log)
    assert "table guilds: 2 rows" in body(log) and "```" in body(log)
    assert str(h.world.base) not in _sent(h)

    admin = await h.admin("update_status", {"update_id": found[1]})
    assert "Only the bot's owner" in refusal(admin)
    unknown = await h.owner("update_status", {"update_id": "upd_nope"})
    assert "no such session" in refusal(unknown)


async def test_a_failed_install_left_as_it_is_says_so(h: Harness) -> None:
    _settings(h, f"health_check_command = {FAILING_CHECK}\nrollback_on_failure = false\n")
    result = await h.owner("update_install", {"update_type": "bot"})
    assert title(result) == "❌ Update Failed — NOT undone"
    assert "the checkout is left at **1.10.0**" in body(result)
    assert "/update_rollback target_version: previous" in body(result)
    assert h.world.head() == h.world.tag_commit("v1.10.0")


async def test_a_release_that_failed_before_is_asked_about_not_skipped_silently(
        h: Harness) -> None:
    (h.world.deploy / "data" / "settings.toml").write_text(
        f"health_check_command = {FAILING_CHECK}\n")
    await h.owner("update_install", {"update_type": "bot"})  # v1.10.0 fails, is marked bad
    (h.world.deploy / "data" / "settings.toml").write_text("")
    result = await h.owner("update_install", {"update_type": "bot"}, wait=False)
    await h.fake.wait_for_request("PATCH", "@original", start=len(h.fake.requests) - 1)
    for _ in range(200):
        final = h.fake.final_for(result.token)
        if final and "gitrelease:cancel" in json.dumps(final):
            break
        await asyncio.sleep(0.05)
    card = body(result)
    assert "v1.10.0 failed to install before" in card
    assert "this install would skip it and install v1.9.0" in card
    await press(h.bot, h.fake.final_for(result.token), "gitrelease:cancel",
                user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    await asyncio.sleep(0.2)
    assert h.world.head() == h.world.tag_commit("v1.0.0")


# -- 5. bad input never looks like a failure in public -----------------------------------------


@pytest.mark.parametrize(("options", "said"), [
    ({"schedule_type": "weekly", "update_types": "bot"},
     "invalid update_days: nothing (a weekly schedule needs its days)"),
    ({"schedule_type": "daily", "update_types": "bot", "update_time": "25:00"},
     "invalid update_time: '25:00'"),
    ({"schedule_type": "monthly", "update_types": "bot", "update_days": "40"},
     "invalid update_days: '40'"),
    ({"schedule_type": "daily", "update_types": "bots"}, "invalid update_types: 'bots'"),
])
async def test_a_schedule_typo_is_one_private_reply_and_nothing_public(
        h: Harness, options: dict[str, str], said: str) -> None:
    channel = _settings(h, "")
    result = await h.owner("update_schedule", options)
    assert result.response_type == 4 and result.ephemeral, "answered at once, privately"
    assert len(result.messages) == 1
    assert said in refusal(result) and "None" not in refusal(result)
    assert await _schedules(h) == 0
    assert await _posted(h, channel) == []


async def test_a_refusal_after_deferring_leaves_nothing_public_and_is_not_announced(
        h: Harness) -> None:
    channel = _settings(h, "")
    (h.world.deploy / "bot.py").write_text("edited on the server\n")
    result = await h.owner("update_install", {"update_type": "bot"})
    assert "tracked files have local changes: bot.py" in refusal(result)
    public = [m for m in result.messages if not int(m.get("flags") or 0) & 64]
    assert public == [], public  # the "thinking" reply is gone, no "failed" line
    assert await _posted(h, channel) == []
    assert h.world.head() == h.world.tag_commit("v1.0.0")


async def test_a_real_failure_is_still_announced(h: Harness) -> None:
    channel = _settings(h, "")
    (h.world.deploy / "data" / "backups").write_text("a file where the backups folder goes\n")
    await h.admin("backup_create", {"backup_type": "full"})
    posted = await _posted(h, channel)
    assert any(p.startswith("/backup_create failed: ") for p in posted), posted


# -- 8. options that help before sending -------------------------------------------------------


async def test_string_options_carry_their_limits_and_choices_readable_names(h: Harness) -> None:
    payloads = {c.name: c.to_dict(h.bot.tree) for c in h.bot.tree.get_commands()}

    def option(command: str, name: str) -> dict:
        return next(o for o in payloads[command]["options"] if o["name"] == name)

    assert option("update_install", "backup_name")["max_length"] == 64
    assert option("update_rollback", "target_version")["max_length"] == 100
    assert option("update_schedule", "update_days")["max_length"] == 100
    assert option("update_status", "update_id")["max_length"] == 64
    ranges = {c["value"]: c["name"] for c in option("update_status", "time_range")["choices"]}
    assert ranges == {"1d": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
    types = {c["value"]: c["name"] for c in option("update_install", "update_type")["choices"]}
    assert types["all"] == "Everything" and types["bot"] == "Bot release"
    for name in ("update_types", "update_days", "update_time"):
        assert option("update_schedule", name)["autocomplete"] is True


async def _suggest(h: Harness, name: str, options: dict, focused: str) -> list[dict]:
    return await autocomplete(h.bot, name, options, focused, user_id=h.fake.owner_id,
                              guild_id=h.fake.guild_id)


async def test_schedule_options_are_suggested_as_typed(h: Harness) -> None:
    types = await _suggest(h, "update_schedule", {"schedule_type": "weekly",
                                                  "update_types": "packages,"}, "update_types")
    assert {"name": "Python packages, Bot release", "value": "packages,bot"} in types
    assert all(c["value"].startswith("packages,") for c in types)

    days = await _suggest(h, "update_schedule", {"schedule_type": "weekly",
                                                 "update_days": "monday,t"}, "update_days")
    assert [c["value"] for c in days] == ["monday,tuesday", "monday,thursday"]
    assert days[0]["name"] == "Monday, Tuesday"
    monthly = await _suggest(h, "update_schedule", {"schedule_type": "monthly",
                                                    "update_days": "1"}, "update_days")
    assert monthly[0] == {"name": "Day 1 of the month", "value": "1"}
    assert await _suggest(h, "update_schedule", {"schedule_type": "daily",
                                                 "update_days": ""}, "update_days") == []

    times = await _suggest(h, "update_schedule", {"schedule_type": "daily",
                                                  "update_time": "0"}, "update_time")
    assert times[0]["value"] == "03:00" and "(UTC) · the default" in times[0]["name"]
    quarter = await _suggest(h, "update_schedule", {"schedule_type": "daily",
                                                    "update_time": "04"}, "update_time")
    assert [c["value"] for c in quarter][:4] == ["04:00", "04:15", "04:30", "04:45"]


async def test_versions_are_suggested_marked_current_newer_or_older(h: Harness) -> None:
    found = await _suggest(h, "update_rollback", {"target_version": "", "confirm": True},
                           "target_version")
    names = {c["value"]: c["name"] for c in found}
    assert names["previous"].startswith("previous · ")
    assert names["v1.10.0"] == "v1.10.0 · newer"
    assert names["v1.0.0"] == "v1.0.0 · running now"
    await h.owner("update_install", {"update_type": "bot"})
    found = await _suggest(h, "update_rollback", {"target_version": "v1.", "confirm": True},
                           "target_version")
    names = {c["value"]: c["name"] for c in found}
    assert names["v1.0.0"] == "v1.0.0 · older" and names["v1.10.0"] == "v1.10.0 · running now"
    assert "previous" not in names  # filtered by what was typed
    member = await autocomplete(h.bot, "update_rollback", {"target_version": ""},
                                "target_version", user_id=ADMIN_ID, guild_id=h.fake.guild_id,
                                permissions=ADMIN)
    assert member == []
