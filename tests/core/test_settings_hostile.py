"""Settings files broken in every way an operator's editor, a full disk or a stray command can
break them: each is named by its own path (the live file, never a template), with the line
and column where TOML can give one, in words; nothing changes on disk or in the index.

Wrong types and unknown keys are in `test_settings.py`; here: files that do not parse or
cannot be read, and a live config file (a `config_templates` target) that does not parse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrelease.cli.main import main
from gitrelease.core.errors import InvalidSetting
from gitrelease.core.settings import Settings, load_settings
from tests.conftest import World

# (case, what the file holds; None: a directory stands there, what the message must say)
BROKEN = [
    ("unterminated_array", b'tag_pattern = ["v*",\n',
     ["line 1", "tag_pattern", "never closed"]),
    ("unterminated_array_later", b'channel = "stable"\nnotify_channels = [1,\n2,\n',
     ["line 2", "notify_channels", "never closed"]),
    ("unclosed_array_before_next_key",
     b"max_backups = 3\nnotify_channels = [1, 2\nchannel = 'pre'\n",
     ["line 3, column 1", "Unclosed array"]),
    ("unterminated_string", b'channel = "stab\n', ["line 1, column 16"]),
    ("unclosed_inline_table", b"config_templates = {a = 'b'\n", ["line 1"]),
    ("duplicate_key", b'channel = "pre"\nchannel = "stable"\n', ["line 2"]),
    ("nul_byte", b'channel = "stable"\x00\n', ["line 1, column 19"]),
    ("missing_value", b"channel = \n", ["line 1, column 11"]),
    ("binary_garbage", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", ["not UTF-8 text", "line 1"]),
    ("utf16_with_bom", '\ufeffchannel = "pre"\n'.encode("utf-16"), ["not UTF-8 text"]),
    ("directory", None, ["is a directory, not a file"]),
]
IDS = [case for case, _content, _expected in BROKEN]


def _put(path: Path, content: bytes | None) -> None:
    if content is None:
        path.mkdir()
        (path / "inside").write_text("x")
    else:
        path.write_bytes(content)


@pytest.mark.parametrize(("case", "content", "expected"), BROKEN, ids=IDS)
@pytest.mark.parametrize("layer", ["settings.toml", "pyproject.toml"])
def test_a_broken_file_is_named_with_where_and_what(
    tmp_path: Path, layer: str, case: str, content: bytes | None, expected: list[str]
) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / ("data/settings.toml" if layer == "settings.toml" else "pyproject.toml")
    if layer == "pyproject.toml" and content is not None:
        content = b"[tool.gitrelease]\n" + content if content.isascii() else content
        expected = [e.replace("line 3", "line 4").replace("line 2", "line 3")
                    .replace("line 1", "line 2") if content.isascii() else e for e in expected]
    _put(path, content)
    with pytest.raises(InvalidSetting) as caught:
        load_settings(tmp_path, tmp_path / "data")
    message = caught.value.message
    assert message.startswith(f"{path} "), message
    for words in expected:
        assert words in message, message
    assert "\\x00" not in message and "'(file)'" not in message, message
    assert str(path) in caught.value.hint


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# only a comment\n"])
def test_an_empty_file_means_the_defaults(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "settings.toml").write_bytes(content)
    assert load_settings(tmp_path, tmp_path / "data").settings == Settings()


@pytest.mark.parametrize(("case", "content", "expected"),
                         [b for b in BROKEN if b[0] in ("unterminated_array", "binary_garbage",
                                                        "directory")],
                         ids=["unterminated_array", "binary_garbage", "directory"])
@pytest.mark.parametrize("command", [["check", "--type", "bot"],
                                     ["settings", "set", "backup", "max_backups", "3"],
                                     ["install", "--type", "bot", "--no-backup"]])
def test_every_command_names_the_live_file_and_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str], command: list[str], case: str,
    content: bytes | None, expected: list[str],
) -> None:
    path = world.deploy / "data" / "settings.toml"
    _put(path, content)
    before = world.state()
    code = main(["--root", str(world.deploy), "--json", *command])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 78
    assert error["code"] == "invalid_setting"
    assert error["message"].startswith(str(path))
    for words in expected:
        assert words in error["message"]
    assert world.state() == before
    assert content is None or path.read_bytes() == content
    assert not (world.deploy / "data" / "update_manager.db").exists()


def test_a_broken_live_config_file_is_named_not_its_template(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A release brings config.example.toml; the live config.toml has an open array."""
    world.commit("feat: a config template", {"config.example.toml": "prefix = '!'\n"})
    world.release_version("1.11.0", "Config template")
    (world.deploy / "data" / "settings.toml").write_text(
        'config_templates = {"config.example.toml" = "config.toml"}\n')
    live = world.deploy / "config.toml"
    live.write_text("prefix = '?'\nowners = [1,\n")
    code = main(["--root", str(world.deploy), "--json", "check", "--type", "config"])
    report = json.loads(capsys.readouterr().out)
    assert code == 21  # the config source's error
    message = report["errors"]["config"]["message"]
    assert message.startswith("config.toml is not valid TOML at line 2"), message
    assert "owners" in message and "never closed" in message
    assert "\\x00" not in message and "config.example.toml" not in message
    # An install merges the release's template into it: the live file is named again.
    from gitrelease.deploy.configsync import ConfigError, merge_config
    from gitrelease.git.repo import GitRepo

    repo = GitRepo(world.deploy)
    try:
        with pytest.raises(ConfigError) as caught:
            merge_config(repo, world.deploy, {"config.example.toml": "config.toml"},
                         world.tag_commit("v1.11.0"))
    finally:
        repo.close()
    assert caught.value.message.startswith("config.toml is not valid TOML at line 2")
    assert "\\x00" not in caught.value.message
    assert live.read_text() == "prefix = '?'\nowners = [1,\n"
