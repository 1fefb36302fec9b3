"""Changing settings: typed, validated, comments kept, layered, audited."""

from __future__ import annotations

import json

import pytest

from gitrelease.cli.main import main
from gitrelease.core.errors import InvalidInput
from gitrelease.manager import ReleaseManager
from tests.conftest import World


async def test_set_and_reset_keep_comments_and_show_the_lower_layer(world: World) -> None:
    (world.deploy / "pyproject.toml").write_text(
        (world.deploy / "pyproject.toml").read_text() + "\n[tool.gitrelease]\nmax_backups = 7\n")
    settings = world.deploy / "data" / "settings.toml"
    settings.write_text("# operator's notes\nmax_backups = 10  # ten is enough\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        change = await manager.change_setting("backup", "max_backups", "15", actor="ops")
        assert (change.previous, change.new) == (10, 15)
        assert settings.read_text() == "# operator's notes\nmax_backups = 15  # ten is enough\n"
        assert settings.stat().st_mode & 0o777 == 0o600
        assert manager.settings.max_backups == 15
        reset = await manager.change_setting("backup", "max_backups", None, actor="ops")
        assert (reset.previous, reset.new) == (15, 7)
        assert reset.source.endswith("pyproject.toml")
        assert settings.read_text() == "# operator's notes\n"
        entries = await (await manager.index()).audit_entries()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("ops", "settings_reset", "backup.max_backups"),
        ("ops", "settings_set", "backup.max_backups")]


@pytest.mark.parametrize(("category", "name", "text", "expected"), [
    ("update", "auto_restart", "off", False),
    ("update", "channel", "pre", "pre"),
    ("update", "health_check_command", '["python", "-m", "bot.check"]',
     ["python", "-m", "bot.check"]),
    ("update", "health_check_command", "python -m bot.check", "python -m bot.check"),
    ("notification", "notify_channels", "1, 2,3", [1, 2, 3]),
    ("schedule", "allowed_update_types", "bot,packages", ["bot", "packages"]),
    ("schedule", "default_time", "04:30", "04:30"),
    ("backup", "compression_level", "9", 9),
])
async def test_each_type_is_parsed(
    world: World, category: str, name: str, text: str, expected: object
) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        change = await manager.change_setting(category, name, text)
    assert change.new == expected


@pytest.mark.parametrize(("category", "name", "text", "field"), [
    ("update", "auto_restart", "maybe", "setting_value"),
    ("backup", "max_backups", "0", "setting_value"),
    ("backup", "max_backups", "ten", "setting_value"),
    ("backup", "max_backups", "1.5", "setting_value"),
    ("update", "channel", "nightly", "setting_value"),
    ("update", "remote", "--upload-pack=x", "setting_value"),
    ("update", "timezone", "Mars/Base", "setting_value"),
    ("schedule", "default_time", "25:00", "setting_value"),
    ("notification", "notify_channels", "general", "setting_value"),
    ("update", "health_check_command", "-rf /", "setting_value"),
    ("update", "health_check_command", "[1, 2]", "setting_value"),
    ("backup", "compression", "brotli", "setting_value"),
    ("backup", "max_backup", "3", "setting_name"),
    ("update", "max_backups", "3", "setting_name"),
    ("general", "max_backups", "3", "setting_category"),
])
async def test_bad_values_change_nothing(
    world: World, category: str, name: str, text: str, field: str
) -> None:
    settings = world.deploy / "data" / "settings.toml"
    settings.write_text("# keep me\n")
    before = world.state()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.change_setting(category, name, text)
    assert caught.value.field == field
    assert world.state() == before
    assert settings.read_text() == "# keep me\n"


def test_cli_settings(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--root", str(world.deploy)]
    assert main([*root, "--json", "settings", "set", "backup", "max_backups", "12"]) == 0
    assert json.loads(capsys.readouterr().out)["new"] == 12
    assert main([*root, "--json", "settings", "show", "backup"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["max_backups"]["value"] == 12
    assert rows["max_backups"]["source"].endswith("settings.toml")
    assert rows["compression"]["source"] == "default"
    assert main([*root, "--json", "settings", "set", "backup", "max_backup", "1"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["message"].startswith("invalid NAME:") and "max_backups" in error["hint"]
    assert main([*root, "--json", "settings", "show", "everything"]) == 2
    assert main([*root, "settings", "reset", "backup", "max_backups"]) == 0
    assert "12 -> 50 (now from default)" in capsys.readouterr().out


def test_a_refused_command_value_is_never_repeated() -> None:
    from gitrelease.core.settings import schema
    from gitrelease.core.settings_edit import parse_value

    for text in ('["--token=s3cret-value"]', '["unterminated s3cret-value'):
        with pytest.raises(InvalidInput) as caught:
            parse_value(schema()["restart_command"], text)
        assert "s3cret-value" not in caught.value.message
        assert "s3cret-value" not in str(caught.value.to_dict())
