"""The nine slash commands through the real discord.py, against a local stand-in of Discord.

A real deployment (the `world` fixture), the real extension loaded with
`bot.load_extension("gitrelease_discord")`, Discord-shaped interaction payloads injected into
discord.py, and every REST request it makes recorded by tests/discord_stub.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest

from gitrelease.manager import ReleaseManager
from gitrelease_discord.i18n import FileTranslator, text
from tests.conftest import World, git
from tests.discord_ext.harness import (
    ADMIN,
    ADMIN_ID,
    MEMBER_ID,
    Harness,
    _described,
    body,
    refusal,
    title,
)
from tests.discord_stub import (
    FakeDiscord,
    InteractionResult,
    autocomplete,
    custom_ids,
    press,
    slash,
    start_bot,
    stop_bot,
)

# -- happy paths ---------------------------------------------------------------------------


async def test_update_check_as_admin(h: Harness) -> None:
    result = await h.admin("update_check", {"check_type": "bot", "show_details": True})
    assert not result.errors, result.errors
    assert result.first_response_at is not None and result.first_response_at < 0.5
    assert title(result) == "🔍 Update Check Results"
    assert "v1.10.0" in body(result)


async def test_update_install_moves_head_and_reports_progress(h: Harness) -> None:
    result = await h.owner("update_install", {"update_type": "bot", "backup_before": True})
    assert not result.errors, result.errors
    assert h.world.head() == h.world.tag_commit("v1.10.0")
    assert title(result) == "🎉 Update Finished Successfully"
    edits = [r for r in result.requests if r.method == "PATCH" and "@original" in r.path]
    progress = [r for r in edits
                if "🚀 Installing Updates" in json.dumps(r.json, ensure_ascii=False)]
    assert progress, "the install reported no progress"


async def test_update_status(h: Harness) -> None:
    result = await h.admin("update_status", {"show_history": True, "time_range": "30d"})
    assert not result.errors and title(result) == "📊 Update Status"
    assert "1.0.0" in body(result)


async def test_results_have_the_shapes_of_the_specification(h: Harness) -> None:
    """Check results, installing progress, update finished, backup complete, backup list,
    restore, status: the markdown of the specification's usage examples."""
    check = _described(await h.owner("update_check", {"check_type": "bot"}))
    for line in ("### Available Updates: 1", "• **Breaking Changes**: 0", "• **Last Check**: <t:",
                 "### Bot Update", "• Version: v1.10.0 (current: 1.0.0)", "• Release: <t:"):
        assert line in check, check

    install = await h.owner("update_install", {"update_type": "bot"})
    shown = [json.dumps(r.json, ensure_ascii=False) for r in install.requests
             if r.method == "PATCH" and "@original" in r.path]
    assert any("Progress: " in edit for edit in shown), shown
    finished = _described(install)
    assert "• Version: 1.0.0 → 1.10.0 (v1.10.0)" in finished
    assert "✅ Creating pre-update backup" in finished and "• Total time: " in finished
    assert "Use /update_status to view detailed information." in finished

    created = _described(await h.admin("backup_create", {"backup_type": "config",
                                                         "backup_name": "pre_v2"}))
    for line in ("• Name: pre_v2", "• Type: Config", "• Size: ", "(compressed: ",
                 "• Checksum: ", "• Origin: made by hand"):
        assert line in created, created

    listed = _described(await h.admin("backup_list", {"time_range": "all"}))
    assert "1. **pre_v2** (" in listed and "📊 Config backup of v1.10.0" in listed
    assert "· made by hand" in listed and "· taken before an update" in listed
    assert "Total backups: 2 (Stored: " in listed

    restored = _described(await h.owner("backup_restore", {
        "backup_id": "pre_v2", "confirm": True, "restore_type": "config"}))
    assert "• Restored from: **pre_v2** (" in restored and "• Restored (" in restored
    assert "• Restoration time: " in restored and "• Restore type: Config only" in restored

    status = _described(await h.admin("update_status", {"show_history": True}))
    for line in ("• Version: **1.10.0** (v1.10.0)", "### Updates (Last 7 days)", "### Backups",
                 "### Recent Updates", "Bot release 1.0.0 → 1.10.0: completed"):
        assert line in status, status


async def test_update_rollback(h: Harness) -> None:
    await h.owner("update_install", {"update_type": "bot"})
    result = await h.owner("update_rollback", {"target_version": "previous", "confirm": True})
    assert not result.errors, result.errors
    assert h.world.head() == h.world.tag_commit("v1.0.0")
    assert title(result) == "🔄 Rolled back to 1.0.0 (v1.0.0)"
    progress = [json.dumps(r.json, ensure_ascii=False) for r in result.requests
                if r.method == "PATCH"]
    assert any("🔄 Rolling back to 1.0.0 (v1.0.0)" in p for p in progress), progress


async def test_update_schedule(h: Harness) -> None:
    result = await h.owner("update_schedule", {
        "schedule_type": "weekly", "update_time": "03:00", "update_days": "sunday",
        "update_types": "packages,bot"})
    assert not result.errors, result.errors
    assert title(result) == "⏰ Update Schedule Saved"
    assert "• Type: Weekly updates" in body(result) and "• Days: Sunday" in body(result)
    async with await ReleaseManager.open(h.world.deploy) as manager:
        assert len(await manager.list_schedules()) == 1


async def test_a_new_schedule_wakes_the_loop_and_scheduled_runs_are_announced(
        h: Harness) -> None:
    channel = h.fake.add_channel(guild_id=h.fake.guild_id)
    (h.world.deploy / "data" / "settings.toml").write_text(f"notify_channels = [{channel}]\n")
    first = await h.owner("update_schedule", {"schedule_type": "daily", "update_time": "03:00",
                                              "update_types": "bot"})
    assert not first.errors, first.errors
    await asyncio.sleep(0.5)  # the loop started and sleeps until 03:00
    async with await ReleaseManager.open(h.world.deploy) as manager:
        (daily,) = await manager.list_schedules()
        daily.next_run = datetime.now(UTC) - timedelta(minutes=1)
        await (await manager.index()).save_schedule(daily)
    second = await h.owner("update_schedule", {"schedule_type": "weekly",
                                               "update_time": "04:00", "update_days": "sunday",
                                               "update_types": "bot"})
    assert not second.errors, second.errors
    posted = await _announced(h, channel, "Scheduled update finished", within=60)
    assert posted[0] == f"Scheduled update started ({daily.name}): bot"
    assert posted[1] == f"Scheduled update finished ({daily.name}): bot: completed"
    assert h.world.head() == h.world.tag_commit("v1.10.0")


async def _announced(h: Harness, channel: int, prefix: str, *, within: float) -> list[str]:
    """What was posted to `channel` once a message starting with `prefix` is among it."""
    posted: list[str] = []
    for _ in range(int(within / 0.05)):
        posted = [r.json["content"] for r in h.fake.calls("POST", f"/channels/{channel}/")]
        if any(text.startswith(prefix) for text in posted):
            return posted
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing starting {prefix!r} was announced: {posted}")


async def test_rollback_and_restore_are_announced_without_pinging_anyone(h: Harness) -> None:
    channel = h.fake.add_channel(guild_id=h.fake.guild_id)
    (h.world.deploy / "data" / "settings.toml").write_text(
        f"notify_channels = [{channel}]\nupdate_progress_notifications = true\n")
    async with await ReleaseManager.open(h.world.deploy) as manager:
        await manager.create_backup("config", {"backup_name": "cfg"})
    await h.owner("update_install", {"update_type": "bot"})
    await h.owner("update_rollback", {"target_version": "previous", "confirm": True})
    await h.owner("backup_restore", {"backup_id": "cfg", "confirm": True,
                                     "restore_type": "config"})
    owner = h.fake.owner_id
    wanted = [f"Update started: Bot release by <@{owner}>",
              f"Rollback completed: now at 1.0.0 (by <@{owner}>)",
              f"Restore of cfg (config) completed (by <@{owner}>)",
              "🚀 Installing Updates (Bot release): ✅ Creating pre-update backup (65%)"]
    for _ in range(200):
        sent = [r.json for r in h.fake.calls("POST", f"/channels/{channel}/messages")]
        if all(any(m["content"] == w for m in sent) for w in wanted):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"not announced: {[m['content'] for m in sent]}")
    assert all(m["allowed_mentions"]["parse"] == [] for m in sent), sent


async def test_backup_create_and_notification(h: Harness) -> None:
    channel = h.fake.add_channel(guild_id=h.fake.guild_id)
    (h.world.deploy / "data" / "settings.toml").write_text(f"notify_channels = [{channel}]\n")
    result = await h.admin("backup_create", {"backup_type": "database",
                                             "backup_name": "from_discord"})
    assert not result.errors, result.errors
    assert title(result) == "📦 Backup Complete"
    assert list((h.world.deploy / "data" / "backups").glob("*.tar.zst"))
    posted = await h.fake.wait_for_request("POST", f"/channels/{channel}/messages")
    assert "from_discord" in posted.json["content"]


async def test_backup_list_pages_with_buttons(h: Harness) -> None:
    async with await ReleaseManager.open(h.world.deploy) as manager:
        for index in range(11):
            await manager.create_backup("config", {"backup_name": f"b{index:02d}"})
    result = await h.admin("backup_list", {"limit": 20, "time_range": "all"})
    assert not result.errors, result.errors
    assert title(result) == "📂 Available Backups (All time)"
    message = result.final
    assert message is not None
    assert "gitrelease:page:next" in custom_ids(message)
    footer = message["embeds"][0]["footer"]["text"]
    assert footer == "Page 1 of 2"
    turned = await press(h.bot, message, "gitrelease:page:next", user_id=ADMIN_ID,
                         guild_id=h.fake.guild_id, permissions=ADMIN)
    assert turned.final is not None
    assert turned.final["embeds"][0]["footer"]["text"] == "Page 2 of 2"
    second = turned.final["embeds"][0]["description"]
    assert "11. " in second and "\n1. " not in second  # numbered as in the whole list
    assert "Total backups: 11" in second
    other = await press(h.bot, h.fake.message(message["id"]), "gitrelease:page:previous",
                        user_id=MEMBER_ID, guild_id=h.fake.guild_id)
    assert other.ephemeral and "Only <@" in (other.final or {}).get("content", "")


async def test_backup_list_buttons_are_disabled_when_they_expire(h: Harness) -> None:
    h.cog.page_timeout = 0.5
    async with await ReleaseManager.open(h.world.deploy) as manager:
        for index in range(11):
            await manager.create_backup("config", {"backup_name": f"b{index:02d}"})
    result = await h.admin("backup_list", {"time_range": "all"})
    assert result.final is not None
    for _ in range(100):
        message = h.fake.final_for(result.token) or {}
        buttons = [c for row in message.get("components", []) for c in row["components"]]
        if buttons and all(b.get("disabled") for b in buttons):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the page buttons stayed enabled: {message}")
    assert message["embeds"][0]["footer"]["text"] == "Page 1 of 2"


async def test_backup_restore(h: Harness) -> None:
    async with await ReleaseManager.open(h.world.deploy) as manager:
        backup = await manager.create_backup("config", {"backup_name": "cfg"})
    (h.world.deploy / ".env").write_text("DISCORD_TOKEN=changed\n")
    result = await h.owner("backup_restore", {"backup_id": "cfg", "confirm": True,
                                              "restore_type": "config"})
    assert not result.errors, result.errors
    assert title(result) == "🎉 Restore Completed Successfully"
    assert (h.world.deploy / ".env").read_text().startswith("DISCORD_TOKEN=super-secret")
    assert "super-secret" not in json.dumps([r.json for r in h.fake.requests])
    assert backup.id


async def test_update_settings_set_and_reset(h: Harness) -> None:
    result = await h.owner("update_settings", {"setting_category": "backup",
                                               "setting_name": "max_backups",
                                               "setting_value": "15"})
    assert not result.errors and result.ephemeral
    assert "• **Max Backups** (`max_backups`): 15 (previously: 50)" in body(result)
    result = await h.owner("update_settings", {"setting_category": "backup",
                                               "setting_name": "max_backups",
                                               "reset_to_default": True})
    assert title(result) == "⚙️ Setting Reset to Default"
    assert "• **Max Backups** (`max_backups`): 50 (previously: 15)" in body(result)


# -- permissions ---------------------------------------------------------------------------

OWNER_ONLY = {
    "update_install": {"update_type": "bot"},
    "update_rollback": {"target_version": "1.0.0", "confirm": True},
    "update_schedule": {"schedule_type": "daily", "update_time": "03:00",
                        "update_types": "all"},
    "backup_restore": {"backup_id": "nothing", "confirm": True},
    "update_settings": {"setting_category": "backup", "setting_name": "max_backups",
                        "setting_value": "3"},
}
ADMIN_LEVEL = {
    "update_check": {}, "update_status": {}, "backup_create": {"backup_type": "config"},
    "backup_list": {},
}


@pytest.mark.parametrize("name", sorted(OWNER_ONLY))
async def test_owner_commands_refuse_admins_and_members(h: Harness, name: str) -> None:
    before = h.world.state()
    for result in (await h.admin(name, OWNER_ONLY[name]),
                   await h.member(name, OWNER_ONLY[name])):
        assert result.ephemeral
        assert f"Only the bot's owner may use /{name}." in body(result)
    assert h.world.state() == before


@pytest.mark.parametrize("name", sorted(ADMIN_LEVEL))
async def test_admin_commands_refuse_members_and_dms(h: Harness, name: str) -> None:
    before = h.world.state()
    result = await h.member(name, ADMIN_LEVEL[name])
    assert result.ephemeral and "Administrator permission" in body(result)
    result = await h.member(name, ADMIN_LEVEL[name], guild=False)
    assert result.ephemeral and "In direct messages, only the bot's owner" in body(result)
    assert h.world.state() == before


# -- bad values ----------------------------------------------------------------------------

# Discord checks option types itself; choices, ranges and text are what a modified client can
# get past it, so those are what the cog must check again.
BAD_VALUES = [
    ("update_check", {"check_type": "everything"}, "check_type"),
    ("update_install", {"update_type": "kernel"}, "update_type"),
    ("update_install", {"update_type": "bot", "backup_name": "../../etc"}, "backup_name"),
    ("update_install", {"update_type": "bot", "backup_name": "x" * 65}, "backup_name"),
    ("update_status", {"time_range": "1y"}, "time_range"),
    ("update_rollback", {"target_version": "--force", "confirm": True}, "target_version"),
    ("update_rollback", {"target_version": "9.9.9", "confirm": True}, "9.9.9"),
    ("update_schedule", {"schedule_type": "hourly", "update_types": "all"}, "schedule_type"),
    ("update_schedule", {"schedule_type": "daily", "update_time": "25:00",
                         "update_types": "all"}, "update_time"),
    ("update_schedule", {"schedule_type": "weekly", "update_time": "03:00",
                         "update_days": "someday", "update_types": "all"}, "update_days"),
    ("update_schedule", {"schedule_type": "daily", "update_time": "03:00",
                         "update_types": "kernel"}, "update_types"),
    ("backup_create", {"backup_type": "everything"}, "backup_type"),
    ("backup_create", {"backup_name": "a b/c"}, "backup_name"),
    ("backup_create", {"description": "x" * 501}, "description"),
    ("backup_list", {"backup_type": "everything"}, "backup_type"),
    ("backup_list", {"time_range": "1y"}, "time_range"),
    ("backup_list", {"limit": 0}, "limit"),
    ("backup_list", {"limit": 51}, "limit"),
    ("backup_list", {"sort_by": "colour"}, "sort_by"),
    ("backup_restore", {"backup_id": "no_such_backup", "confirm": True}, "no_such_backup"),
    ("backup_restore", {"backup_id": "x", "confirm": True, "restore_type": "full"},
     "restore_type"),
    ("update_settings", {"setting_category": "misc", "setting_name": "x",
                         "setting_value": "1"}, "setting_category"),
    ("update_settings", {"setting_category": "backup", "setting_name": "no_such",
                         "setting_value": "1"}, "no_such"),
    ("update_settings", {"setting_category": "backup", "setting_name": "max_backups",
                         "setting_value": "many"}, "an integer in 1..10000"),
    # A required option left out (a modified client, or commands not synced since an upgrade)
    ("update_settings", {"setting_category": "backup"}, "a required option is missing"),
    ("backup_restore", {"confirm": True}, "a required option is missing"),
]


@pytest.mark.parametrize("name, options, named", BAD_VALUES,
                         ids=[f"{n}-{'-'.join(o)}" for n, o, _ in BAD_VALUES])
async def test_bad_values_are_refused_and_change_nothing(
    h: Harness, name: str, options: dict[str, Any], named: str,
) -> None:
    before = h.world.state()
    result = await h.owner(name, options)
    answer = refusal(result)
    assert named in answer, answer
    assert "see the bot's logs" not in answer
    assert h.world.state() == before


@pytest.mark.parametrize("name, options", [
    ("update_rollback", {"target_version": "1.0.0", "confirm": False}),
    ("backup_restore", {"backup_id": "x", "confirm": False}),
])
async def test_confirm_false_is_refused_and_changes_nothing(
    h: Harness, name: str, options: dict[str, Any],
) -> None:
    before = h.world.state()
    result = await h.owner(name, options)
    assert result.ephemeral and "confirm must be true" in body(result)
    assert h.world.state() == before


async def test_engine_hints_are_worded_for_discord_not_the_cli(h: Harness) -> None:
    result = await h.owner("update_rollback", {"target_version": "9.9.9", "confirm": True})
    said = refusal(result)
    assert "9.9.9" in said and "/update_check" in said
    assert "gitrelease " not in said and "--" not in said


def _engine_errors() -> list[type]:
    """Every GitReleaseError class of the engine, wherever it is defined."""
    import importlib
    import pkgutil

    import gitrelease
    from gitrelease.core.errors import GitReleaseError

    for module in pkgutil.iter_modules(gitrelease.__path__):
        if module.name != "__main__":
            importlib.import_module(f"gitrelease.{module.name}")
    found, todo = [], [GitReleaseError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def test_every_discord_hint_names_an_engine_error_code_and_cli_hints_have_one() -> None:
    import gitrelease_discord

    errors = _engine_errors()
    path = (Path(gitrelease_discord.__file__).parent / "translations" / "en_US" / "commands"
            / "update_manager.json")
    hints = json.loads(path.read_text())["hints"]
    assert set(hints) <= {error.code for error in errors}, set(hints) - {e.code for e in errors}
    # An engine hint that tells a person to run gitrelease or pass a flag is no help in
    # Discord: each such error has its Discord wording.
    cli_worded = {error.code for error in errors
                  if re.search(r"`gitrelease |(^|\s|\()--[a-z]", error.default_hint)}
    assert cli_worded <= set(hints), cli_worded - set(hints)


# -- the confirm buttons ---------------------------------------------------------------------


async def _install_waiting_for_confirmation(h: Harness) -> InteractionResult:
    result = await h.owner("update_install", {"update_type": "bot", "force_update": True},
                           wait=False)
    await _waiting_for_buttons(h, result)
    return result


async def test_confirm_button_installs(h: Harness) -> None:
    result = await _install_waiting_for_confirmation(h)
    message = h.fake.final_for(result.token)
    assert message is not None and "Install v1.10.0?" in json.dumps(message)
    await press(h.bot, message, "gitrelease:confirm", user_id=h.fake.owner_id,
                guild_id=h.fake.guild_id)
    await result.wait()
    assert h.world.head() == h.world.tag_commit("v1.10.0")


async def test_cancel_and_someone_else_pressing_install_nothing(h: Harness) -> None:
    before = h.world.head()
    result = await _install_waiting_for_confirmation(h)
    message = h.fake.final_for(result.token)
    other = await press(h.bot, message, "gitrelease:confirm", user_id=ADMIN_ID,
                        guild_id=h.fake.guild_id, permissions=ADMIN)
    assert other.ephemeral and h.world.head() == before
    await press(h.bot, h.fake.final_for(result.token), "gitrelease:cancel",
                user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    await result.wait()
    assert "Cancelled: nothing was installed." in body(result)
    assert h.world.head() == before


async def test_confirmation_expires_and_nothing_happens(h: Harness) -> None:
    h.cog.confirm_timeout = 0.5
    before = h.world.state()
    result = await _install_waiting_for_confirmation(h)
    await result.wait()
    assert "No answer in time: nothing was installed." in body(result)
    assert h.world.head() == before["head"]


async def _waiting_for_buttons(h: Harness, result: InteractionResult) -> dict[str, Any]:
    await result.acked()
    for _ in range(400):
        message = h.fake.final_for(result.token)
        if message and "gitrelease:confirm" in custom_ids(message):
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"no confirmation was asked: {h.fake.final_for(result.token)}")


async def test_a_release_larger_than_allowed_is_shown_with_the_reason_first(h: Harness) -> None:
    """max_update_size_mb makes the engine refuse without force: Discord asks instead."""
    h.world.commit("feat: bundled assets", {"assets.txt": os.urandom(1 << 20).hex()})
    h.world.release_version("1.11.0", "Assets release")
    (h.world.deploy / "data" / "settings.toml").write_text("max_update_size_mb = 1\n")
    result = await h.owner("update_install", {"update_type": "bot"}, wait=False)
    message = await _waiting_for_buttons(h, result)
    shown = json.dumps(message)
    assert "Install v1.11.0?" in shown and "more than max_update_size_mb (1)" in shown
    assert h.world.head() == h.world.tag_commit("v1.0.0")  # nothing moved while asking
    await press(h.bot, message, "gitrelease:confirm", user_id=h.fake.owner_id,
                guild_id=h.fake.guild_id)
    await result.wait()
    assert not result.errors, result.errors
    assert h.world.head() == h.world.tag_commit("v1.11.0")


async def test_a_rollback_with_no_backup_asks_and_cancel_changes_nothing(h: Harness) -> None:
    (h.world.deploy / "data" / "settings.toml").write_text(
        "require_backup_before_update = false\n")
    await h.owner("update_install", {"update_type": "bot", "backup_before": False})
    installed = h.world.head()
    result = await h.owner("update_rollback", {"target_version": "previous",
                                               "confirm": True}, wait=False)
    message = await _waiting_for_buttons(h, result)
    assert "no backup was taken at" in json.dumps(message)
    await press(h.bot, message, "gitrelease:cancel", user_id=h.fake.owner_id,
                guild_id=h.fake.guild_id)
    await result.wait()
    assert "Cancelled: nothing was rolled back." in body(result)
    assert h.world.head() == installed


async def test_a_rollback_with_no_backup_rolls_the_code_back_once_confirmed(
        h: Harness) -> None:
    (h.world.deploy / "data" / "settings.toml").write_text(
        "require_backup_before_update = false\n")
    await h.owner("update_install", {"update_type": "bot", "backup_before": False})
    result = await h.owner("update_rollback", {"target_version": "previous",
                                               "confirm": True}, wait=False)
    message = await _waiting_for_buttons(h, result)
    await press(h.bot, message, "gitrelease:confirm", user_id=h.fake.owner_id,
                guild_id=h.fake.guild_id)
    await result.wait()
    assert not result.errors, result.errors
    assert title(result) == "🔄 Rolled back to 1.0.0 (v1.0.0)"
    assert h.world.head() == h.world.tag_commit("v1.0.0")


# -- behaviour -------------------------------------------------------------------------------


async def test_acknowledged_fast_while_a_large_backup_runs(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitrelease.state.backups import BackupService

    # The archive is written for real (64 MB of random bytes); the writing thread then waits
    # at a gate before the backup can finish, so every command below is answered while the
    # backup still holds the deployment, however fast the machine compresses. The commands
    # start once the backup is writing: its acknowledgement comes before it takes the lock.
    started, gate, real_write = threading.Event(), threading.Event(), BackupService._write

    def gated_write(self: BackupService, *args: Any, **kwargs: Any) -> Any:
        started.set()
        written = real_write(self, *args, **kwargs)
        gate.wait(timeout=60)
        return written

    monkeypatch.setattr(BackupService, "_write", gated_write)
    (h.world.deploy / "data" / "blob.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    backup = await slash(h.bot, "backup_create", {"backup_type": "full"},
                         user_id=h.fake.owner_id, guild_id=h.fake.guild_id, wait=False)
    await backup.acked()
    assert await asyncio.to_thread(started.wait, 60), "the backup never started writing"
    every_command = [  # each of the nine, with values that leave the deployment as it is
        ("update_check", {}), ("update_status", {"show_metrics": False}),
        ("update_install", {"update_type": "config"}),
        ("update_rollback", {"target_version": "9.9.9", "confirm": True}),
        ("update_schedule", {"schedule_type": "daily", "update_time": "03:00",
                             "update_types": "bot", "enabled": False}),
        ("backup_create", {"backup_type": "config"}), ("backup_list", {}),
        ("backup_restore", {"backup_id": "no_such_backup", "confirm": True}),
        ("update_settings", {"setting_category": "backup", "setting_name": "max_backups",
                             "setting_value": "not a number"})]
    times, results = {}, {}
    try:
        for name, options in every_command:
            results[name] = await slash(h.bot, name, options, user_id=h.fake.owner_id,
                                        guild_id=h.fake.guild_id, wait=False)
            times[name] = await results[name].acked()
            assert not any("Backup Complete" in json.dumps(r.json, ensure_ascii=False)
                           for r in backup.requests), \
                f"the backup finished before /{name} was answered"
    finally:
        gate.set()
    await backup.wait(timeout=120)
    for result in results.values():
        await result.wait(timeout=120)
    assert title(backup) == "📦 Backup Complete", body(backup)
    assert max(times.values()) < 0.5, times
    assert title(results["update_check"]) == "🔍 Update Check Results"
    assert "an integer in 1..10000" in body(results["update_settings"])
    assert "no_such_backup" in body(results["backup_restore"])


async def test_unexpected_errors_say_failed_see_logs_with_an_id(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("DISCORD_TOKEN=super-secret-token-value went wrong")

    monkeypatch.setattr(ReleaseManager, "get_update_status", broken)
    result = await h.admin("update_status")
    match = re.search(r"/update_status failed, see the bot's logs \(error id (\w+)\)",
                      refusal(result))
    assert match, refusal(result)
    assert any("sent to you privately" in (m.get("content") or "") for m in result.messages)
    assert "super-secret" not in json.dumps([r.json for r in h.fake.requests])
    assert match.group(1) in caplog.text


async def test_autocomplete_offers_tags_backups_and_setting_names(h: Harness) -> None:
    async with await ReleaseManager.open(h.world.deploy) as manager:
        await manager.create_backup("config", {"backup_name": "nightly_cfg"})
    tags = await autocomplete(h.bot, "update_rollback", {"target_version": "v1."},
                              "target_version", user_id=h.fake.owner_id,
                              guild_id=h.fake.guild_id)
    assert [c["value"] for c in tags][:2] == ["v1.10.0", "v1.9.0"]
    backups = await autocomplete(h.bot, "backup_restore", {"backup_id": "nightly"},
                                 "backup_id", user_id=h.fake.owner_id,
                                 guild_id=h.fake.guild_id)
    assert len(backups) == 1 and "nightly_cfg" in backups[0]["name"]
    names = await autocomplete(h.bot, "update_settings", {"setting_category": "backup",
                                                          "setting_name": "max"},
                               "setting_name", user_id=h.fake.owner_id,
                               guild_id=h.fake.guild_id)
    assert {c["value"] for c in names} >= {"max_backups"}
    assert all(c["value"] != "remote" for c in names)


async def test_now_running_is_posted_after_an_updates_restart(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = 777000000000000001
    command = json.dumps(["true"])
    (world.deploy / "data" / "settings.toml").write_text(
        f'notify_channels = [{channel}]\nrestart_method = "command"\n'
        f"restart_command = {command}\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        session = await manager.install_updates("bot", {"backup_before": False})
    assert session.status.value == "restarting"
    monkeypatch.setenv("GITRELEASE_ROOT", str(world.deploy))
    async with FakeDiscord() as fake:
        bot = await start_bot(fake, setup=lambda b: b.load_extension("gitrelease_discord"))
        try:
            posted = await fake.wait_for_request("POST", f"/channels/{channel}/messages")
            assert posted.json["content"] == "Now running 1.10.0"
        finally:
            await stop_bot(bot)
    assert (world.deploy / "data" / "bot.pid").read_text().strip() == str(os.getpid())
    async with await ReleaseManager.open(world.deploy) as manager:
        confirmed, _steps = await manager.journal(session.id)
    assert confirmed.status.value == "completed"


# -- the command tree ------------------------------------------------------------------------


async def test_command_tree_payloads_are_within_discords_limits(h: Harness) -> None:
    payloads = [c.to_dict(h.bot.tree) for c in h.bot.tree.get_commands()]
    assert sorted(p["name"] for p in payloads) == sorted([
        "update_check", "update_install", "update_status", "update_rollback",
        "update_schedule", "backup_create", "backup_list", "backup_restore",
        "update_settings", "update_fleet"])
    for payload in payloads:
        assert re.match(r"^[-_a-z0-9]{1,32}$", payload["name"])
        assert 1 <= len(payload["description"]) <= 100
        options = payload["options"]
        assert len(options) <= 25
        required = [o.get("required", False) for o in options]
        assert required == sorted(required, reverse=True), payload["name"]
        for option in options:
            assert re.match(r"^[-_a-z0-9]{1,32}$", option["name"])
            assert 1 <= len(option["description"]) <= 100, option
            assert len(option.get("choices") or []) <= 25
    limit = next(o for p in payloads if p["name"] == "backup_list" for o in p["options"]
                 if o["name"] == "limit")
    assert (limit["min_value"], limit["max_value"]) == (1, 50)


async def test_translator_uses_locale_files_and_falls_back(h: Harness) -> None:
    translator = FileTranslator()
    string = discord.app_commands.locale_str("x", key="commands.update_check.description")
    assert await translator.translate(string, discord.Locale.american_english, None) is None
    assert await translator.translate(string, discord.Locale.german, None) is None
    assert text("confirm", "de_DE") == "Confirm"  # no German file yet: English


# -- gitrelease bot --------------------------------------------------------------------------


@pytest.mark.parametrize("args, message, code", [
    (["bot"], "no Discord token", 78),
    (["bot", "--sync", "--guild", "12"], "a Discord guild id", 2),
    (["bot", "--guild", "123456789012345678"], "only with --sync", 2),
])
def test_gitrelease_bot_refuses_clearly(world: World, args: list[str], message: str,
                                        code: int) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    (world.deploy / ".env").write_text("OTHER=1\n")
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    before = world.state()
    result = subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                             *args], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == code and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and world.state() == before


def test_token_comes_from_the_environment_or_env_file(world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from gitrelease_discord.bot import discord_token

    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert discord_token(world.deploy) == "super-secret-token-value"
    (world.deploy / ".env").write_text("DISCORD_TOKEN=abc.def  # the bot's token\n")
    assert discord_token(world.deploy) == "abc.def"
    (world.deploy / ".env").write_text("DISCORD_TOKEN='quoted.value' # c\n")
    assert discord_token(world.deploy) == "quoted.value"
    # python-dotenv (and so the bot's own code) reads the last of a key given twice.
    (world.deploy / ".env").write_text('DISCORD_TOKEN=old.one\nDISCORD_TOKEN="new\\"one"\n')
    assert discord_token(world.deploy) == 'new"one'
    monkeypatch.setenv("DISCORD_TOKEN", "from-env")
    assert discord_token(world.deploy) == "from-env"


# -- found by review ---------------------------------------------------------------------------


async def test_no_secret_reaches_discord_even_when_a_command_prints_it(h: Harness) -> None:
    channel = h.fake.add_channel(guild_id=h.fake.guild_id)
    leak = json.dumps(["python3", "-c", "print(open('.env').read()); raise SystemExit(1)"])
    (h.world.deploy / "data" / "settings.toml").write_text(
        f"notify_channels = [{channel}]\nhealth_check_command = {leak}\n")
    result = await h.owner("update_install", {"update_type": "bot"})
    assert "health check" in body(result)
    await h.fake.wait_for_request("POST", f"/channels/{channel}/messages")
    sent = json.dumps([r.json for r in h.fake.requests])
    assert "super-secret-token-value" not in sent and "***" in sent


async def test_settings_never_show_a_commands_value(h: Harness) -> None:
    secret = json.dumps(["curl", "-H", "Authorization: Bot very-secret-value", "x"])
    result = await h.owner("update_settings", {"setting_category": "update",
                                               "setting_name": "restart_command",
                                               "setting_value": secret})
    assert "(`restart_command`): (set) (previously: (not set))" in body(result)
    assert "very-secret-value" not in json.dumps([r.json for r in h.fake.requests])


async def test_confirm_installs_the_release_shown_not_a_newer_one(h: Harness) -> None:
    result = await _install_waiting_for_confirmation(h)
    h.world.release_version("3.0.0", "Published while the owner was reading")
    await press(h.bot, h.fake.final_for(result.token), "gitrelease:confirm",
                user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    await result.wait()
    assert h.world.head() == h.world.tag_commit("v1.10.0")


async def test_autocomplete_offers_nothing_to_whom_may_not_run_the_command(h: Harness) -> None:
    for name, options, focused in (
            ("update_rollback", {"target_version": ""}, "target_version"),
            ("backup_restore", {"backup_id": ""}, "backup_id"),
            ("update_settings", {"setting_category": "backup", "setting_name": ""},
             "setting_name")):
        choices = await autocomplete(h.bot, name, options, focused, user_id=ADMIN_ID,
                                     guild_id=h.fake.guild_id, permissions=ADMIN)
        assert choices == []


async def test_a_refused_rollback_is_told_privately_and_not_announced(h: Harness) -> None:
    channel = h.fake.add_channel(guild_id=h.fake.guild_id)
    (h.world.deploy / "data" / "settings.toml").write_text(f"notify_channels = [{channel}]\n")
    await h.owner("update_install", {"update_type": "bot"})
    (h.world.deploy / "bot.py").write_text("edited on the server\n")  # refuses the rollback
    result = await h.owner("update_rollback", {"target_version": "previous", "confirm": True})
    assert "tracked files have local changes: bot.py" in refusal(result)
    await asyncio.sleep(0.5)
    posted = [r.json["content"] for r in h.fake.calls("POST", f"/channels/{channel}/")]
    assert not any("failed" in p for p in posted), posted


async def test_confirm_refuses_when_a_new_reason_came_up_while_it_was_shown(
        h: Harness) -> None:
    result = await _install_waiting_for_confirmation(h)
    git(h.world.deploy, "commit", "-q", "--allow-empty", "-m", "hotfix made on the server")
    before = h.world.state()
    await press(h.bot, h.fake.final_for(result.token), "gitrelease:confirm",
                user_id=h.fake.owner_id, guild_id=h.fake.guild_id)
    await result.wait()
    said = refusal(result)
    assert "since the release was shown" in said and "nothing was installed" in said, said
    assert "commit(s)" in said and "breaking" not in said  # only the reason nobody saw
    after = h.world.state()
    assert {k: after[k] for k in ("head", "refs", "files")} == \
        {k: before[k] for k in ("head", "refs", "files")}
    # The engine refused under its lock: the attempt is on record, cancelled, as a refusal
    # of the CLI's would be.
    with sqlite3.connect(h.world.deploy / "data" / "update_manager.db") as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM update_sessions")]
        audit = [row[0] for row in db.execute("SELECT outcome FROM audit_log")]
    db.close()
    assert statuses == ["cancelled"] and audit == ["refused"], (statuses, audit)


@pytest.mark.parametrize("force_update", [True, False])
async def test_a_breaking_release_is_shown_confirmed_and_installed(
        h: Harness, force_update: bool) -> None:
    """The reason shown (breaking changes) is the reason Confirm overrides, whether or not
    force_update was given: confirming installs it."""
    h.world.release_version("1.11.0", "Slash commands only", "feat!: drop the ! prefix")
    result = await h.owner("update_install", {"update_type": "bot",
                                              "force_update": force_update}, wait=False)
    message = await _waiting_for_buttons(h, result)
    shown = json.dumps(message["embeds"])
    assert "v1.11.0 has breaking changes" in shown and "feat!: drop the ! prefix" in shown
    await press(h.bot, message, "gitrelease:confirm", user_id=h.fake.owner_id,
                guild_id=h.fake.guild_id)
    await result.wait()
    assert not result.errors, result.errors
    assert h.world.head() == h.world.tag_commit("v1.11.0"), body(result)
