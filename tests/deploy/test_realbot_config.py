"""Config sync never invents a value: the placeholder rule, what `check_config` calls
"needs your value", and what `merge_config` adds and says (tests/realbot.py's world, real git).
"""

from __future__ import annotations

import json
import stat
import tomllib

import pytest

from gitrelease.deploy.configsync import check_config, env_value, is_placeholder, merge_config
from gitrelease.git.repo import GitRepo
from tests.conftest import World, git
from tests.realbot import BOT_TOKEN

TEMPLATES = {".env.example": ".env", "config.example.toml": "config.toml"}


@pytest.mark.parametrize("value", [
    "", "   ", '""', "''", "YOUR_BOT_PREFIX_HERE", "your-token-here", "your_api_key",
    "Your Token", "changeme", "CHANGE_ME", "change-me", "replace_me", "REPLACEME", "TODO",
    "todo: set this", "FIXME", "tbd", "placeholder", "<your token>", "<id>", "xxx", "XXXXXXXX",
    "***", "...", "???", "TOKEN_HERE", "put your token here", '"YOUR_KEY"', "change this",
    "fill me in", "setme",
])
def test_placeholders_are_recognised(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", [
    "!", "?", "0", "60", "true", "real-bot-token-value-1234", "https://example.org/hook",
    "Click here", "Welcome to your server", "xx", "sqlite:///data/app.db", "info",
    "yourself.example", "Europe/Berlin", "<b>bold</b>", 60, True, 0, None, ["a"],
])
def test_values_are_not_placeholders(value: object) -> None:
    assert not is_placeholder(value)


@pytest.mark.parametrize("raw, value", [
    ("abc", "abc"), ("  abc  ", "abc"), ('"a # b"', "a # b"), ("'x'", "x"),
    ("abc # a comment", "abc"), ("", ""), ('"unclosed', "unclosed"), ("a#b", "a#b"),
])
def test_env_value_reads_quotes_and_comments(raw: str, value: str) -> None:
    assert env_value(raw) == value


def release(world: World, files: dict[str, str], tag: str) -> str:
    """A release on top of v6.5.0, fetched into the deployment; its commit."""
    world.commit(f"Release {tag}", files)
    world.tag(tag)
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    return world.tag_commit(tag)


def test_check_names_keys_that_need_a_value_and_never_reads_out_values(
    realbot: World,
) -> None:
    world = realbot
    target = release(world, {
        ".env.example": "TOKEN=\nPREFIX=YOUR_BOT_PREFIX_HERE\nOWNER_ID=<your id>\n"
                        "STATS_INTERVAL=60\nLOG_LEVEL=info\n",
        "config.example.toml": 'name = "bot"\ntoken = ""\n[db]\nurl = "changeme"\n'
                               'pool = 5\n',
    }, "v6.6.0")
    (world.deploy / ".env").write_text(
        BOT_TOKEN + "OWNER_ID=zz-owner-1\nSTATS_INTERVAL=\nLOG_LEVEL=replace_me\n")
    (world.deploy / "config.toml").write_text('name = "zz-my-bot"\n[db]\nurl = "zz-dsn"\n')
    repo = GitRepo(world.deploy)
    drifts = {d.live: d for d in check_config(repo, world.deploy, TEMPLATES,
                                               world.tag_commit("5.0"), target)}
    env = drifts[".env"]
    # PREFIX: missing, its template value a placeholder; STATS_INTERVAL: set empty live (the
    # template's 60 would not be added: the key is there); LOG_LEVEL: live value a placeholder.
    # TOKEN has the operator's value, OWNER_ID too although the template's is a placeholder.
    assert env.needs_value == ["PREFIX", "STATS_INTERVAL", "LOG_LEVEL"]
    assert env.missing_in_live == ["PREFIX"]
    toml = drifts["config.toml"]
    assert toml.needs_value == ["token"] and toml.missing_in_live == ["token", "db.pool"]
    shown = json.dumps([d.to_dict() for d in drifts.values()])
    for secret in ("real-bot-token-value", "zz-owner-1", "zz-my-bot", "zz-dsn", "replace_me",
                   "YOUR_BOT_PREFIX_HERE", "changeme"):
        assert secret not in shown


def test_an_empty_template_value_needs_a_value_only_if_the_live_one_is_empty(
    realbot: World,
) -> None:
    world = realbot
    repo = GitRepo(world.deploy)
    at = world.tag_commit("v6.5.0")

    def needs(env: str | None) -> list[str]:
        path = world.deploy / ".env"
        if env is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(env)
        (drift,) = check_config(repo, world.deploy, {".env.example": ".env"}, at, at)
        return drift.needs_value

    assert needs(BOT_TOKEN + "PREFIX=!\n") == []
    assert needs("TOKEN=\nPREFIX=!\n") == ["TOKEN"]
    assert needs('TOKEN=""  # paste it\nPREFIX=!\n') == ["TOKEN"]
    assert needs("PREFIX=!\n") == ["TOKEN"]
    assert needs(None) == ["TOKEN", "PREFIX"]


def test_merge_adds_placeholders_as_the_template_has_them_and_says_so(
    realbot: World,
) -> None:
    world = realbot
    target = release(world, {
        ".env.example": "TOKEN=\nPREFIX=YOUR_BOT_PREFIX_HERE\nSTATS_INTERVAL=60\n",
        "config.example.toml": 'token = ""\nretries = 3\n[db]\nurl = "<postgres url>"\n'
                               'pool = 5\n',
    }, "v6.6.0")
    env = world.deploy / ".env"
    env.chmod(0o640)
    repo = GitRepo(world.deploy)
    added = merge_config(repo, world.deploy, TEMPLATES, target)
    assert added == [".env: PREFIX (needs your value)", ".env: STATS_INTERVAL",
                     "config.toml: token (needs your value)", "config.toml: retries",
                     "config.toml: db.url (needs your value)", "config.toml: db.pool"]
    text = env.read_text()
    assert text.startswith(BOT_TOKEN)  # the operator's value, first and unchanged
    assert "PREFIX=YOUR_BOT_PREFIX_HERE\nSTATS_INTERVAL=60\n" in text
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert tomllib.loads((world.deploy / "config.toml").read_text()) == {
        "token": "", "retries": 3, "db": {"url": "<postgres url>", "pool": 5}}
    # Once there, nothing more is added; the check still names what needs a value.
    assert merge_config(repo, world.deploy, TEMPLATES, target) == []
    drifts = {d.live: d for d in check_config(repo, world.deploy, TEMPLATES, target, target)}
    assert drifts[".env"].needs_value == ["PREFIX"]
    assert drifts["config.toml"].needs_value == ["token", "db.url"]


def test_a_live_file_that_is_not_toml_is_refused_and_left_alone(realbot: World) -> None:
    from gitrelease.deploy.configsync import ConfigError

    world = realbot
    target = release(world, {"config.example.toml": 'token = ""\n'}, "v6.6.0")
    broken = world.deploy / "config.toml"
    broken.write_text("token = = nope\n")
    repo = GitRepo(world.deploy)
    with pytest.raises(ConfigError, match=r"config\.toml"):
        check_config(repo, world.deploy, TEMPLATES, target, target)
    with pytest.raises(ConfigError, match="not valid TOML"):
        merge_config(repo, world.deploy, {"config.example.toml": "config.toml"}, target)
    assert broken.read_text() == "token = = nope\n"
    assert (world.deploy / ".env").read_text() == BOT_TOKEN
