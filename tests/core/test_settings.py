"""The settings schema and its layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitrelease.core.errors import InvalidSetting
from gitrelease.core.settings import CATEGORIES, Settings, load_settings, schema


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path


def test_every_setting_has_category_description_and_a_valid_default() -> None:
    specs = schema()
    assert {"remote", "tag_pattern", "channel", "min_disk_space_mb", "max_backups",
            "compression_level", "notify_channels", "default_time", "python_executable",
            "restart_method", "config_templates", "database_paths"} <= set(specs)
    for spec in specs.values():
        assert spec.category in CATEGORIES
        assert spec.description
        assert spec.validate(spec.default, "defaults") == spec.default


def test_defaults_when_no_file(root: Path) -> None:
    loaded = load_settings(root, root / "data")
    assert loaded.settings == Settings()
    assert set(loaded.sources.values()) == {"default"}


def test_layers_runtime_over_pyproject_over_defaults(root: Path) -> None:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bot"\n\n[tool.gitrelease]\nchannel = "pre"\n'
        'min_disk_space_mb = 10\nnotify_channels = [123, 456]\n')
    (root / "data" / "settings.toml").write_text(
        "# runtime overrides\nmin_disk_space_mb = 20\n")
    loaded = load_settings(root, root / "data")
    assert loaded.settings.channel == "pre"
    assert loaded.settings.min_disk_space_mb == 20
    assert loaded.settings.notify_channels == [123, 456]
    assert loaded.sources["channel"] == str(root / "pyproject.toml")
    assert loaded.sources["min_disk_space_mb"] == str(root / "data" / "settings.toml")
    assert loaded.sources["remote"] == "default"


@pytest.mark.parametrize(("line", "key", "reason"), [
    ("min_disk_space_mb = -1", "min_disk_space_mb", "allowed: an integer in 0..10000000"),
    ("min_disk_space_mb = true", "min_disk_space_mb", "must be an integer"),
    ('min_disk_space_mb = "1024"', "min_disk_space_mb", "must be an integer"),
    ('channel = "nightly"', "channel", "allowed: stable, pre"),
    ('tag_pattern = "v**"', "tag_pattern", "exactly one '*'"),
    ('remote = "--upload-pack=x"', "remote", "a remote name"),
    ('default_time = "25:00"', "default_time", "HH:MM"),
    ("compression_level = 0", "compression_level", "1..9"),
    ("zstd_level = 20", "zstd_level", "1..19"),
    ("full_every = 0", "full_every", "1..100"),
    ("full_every = 101", "full_every", "1..100"),
    ('full_every = "7"', "full_every", "must be an integer"),
    ("full_every = 2.5", "full_every", "must be an integer"),
    ('notify_channels = ["general"]', "notify_channels", "a list of an integer"),
    ("auto_restart = 1", "auto_restart", "must be true or false"),
    ("min_disk_space = 5", "min_disk_space", "did you mean 'min_disk_space_mb'?"),
    ("[backup]\nmax_backups = 3", "backup", "is not a setting"),
])
def test_bad_values_on_disk_name_file_key_and_reason(
    root: Path, line: str, key: str, reason: str
) -> None:
    path = root / "data" / "settings.toml"
    path.write_text(line + "\n")
    with pytest.raises(InvalidSetting) as caught:
        load_settings(root, root / "data")
    message = caught.value.message
    assert message.startswith(f"{path}: setting {key!r}")
    assert reason in message


def test_bad_pyproject_table_is_named(root: Path) -> None:
    (root / "pyproject.toml").write_text("[tool.gitrelease]\nchanel = 'pre'\n")
    with pytest.raises(InvalidSetting) as caught:
        load_settings(root, root / "data")
    assert "pyproject.toml" in caught.value.message
    assert "did you mean 'channel'" in caught.value.message


def test_unparsable_toml(root: Path) -> None:
    (root / "data" / "settings.toml").write_text("channel = \n")
    with pytest.raises(InvalidSetting) as caught:
        load_settings(root, root / "data")
    assert "is not valid TOML" in caught.value.message


def test_settings_are_immutable_and_lists_not_shared() -> None:
    a, b = Settings(), Settings()
    assert a.notify_channels is not b.notify_channels
    with pytest.raises(AttributeError):
        a.channel = "pre"  # type: ignore[misc]
