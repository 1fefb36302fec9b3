"""boot-check on a bot laid out as real ones are, which never confirms a start.

The bot (tests/realbot.py) loads no cog and never runs ``gitrelease confirm``; systemd runs
``gitrelease boot-check`` before each start. A healthy release must not be rolled back for
the confirmations it was never going to send: with ``start_confirmation = auto`` (the default)
and no ``data/confirms_starts``, a start is taken (or confirmed by a passing health check), and
counted only once the deployment has confirmed a start before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gitrelease.deploy.restart import CONFIRMS_FILE, PENDING_FILE
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.realbot import cli


def settings(world: World, text: str) -> None:
    data = world.deploy / "data"
    data.mkdir(exist_ok=True)
    log = world.base / "restarts.log"
    code = "import sys; open(sys.argv[1], 'a').write('restarted\\n')"
    restart = json.dumps([sys.executable, "-c", code, str(log)])
    (data / "settings.toml").write_text(
        f'restart_method = "command"\nrestart_command = {restart}\n{text}')


def health_check(world: World) -> tuple[str, Path]:
    """A health_check_command (TOML) that fails while `broken` exists (outside the tree)."""
    broken = world.base / "broken"
    code = ("import os, sys; print('checked', os.environ.get('GITRELEASE_TO_VERSION')); "
            "sys.exit(3 if os.path.exists(sys.argv[1]) else 0)")
    return f"health_check_command = {json.dumps([sys.executable, '-c', code, str(broken)])}\n", \
        broken


def install(world: World, version: str = "5.1.0") -> dict:
    session = json.loads(cli(world, "install", "--type", "bot", "--to", version,
                             "--json").stdout)
    assert session["status"] == "restarting", session
    return session


def boot_check(world: World) -> dict:
    return json.loads(cli(world, "boot-check", "--json").stdout)


def session_of(world: World, session_id: str) -> dict:
    return json.loads(cli(world, "journal", session_id, "--json").stdout)["session"]


def bad_releases(world: World) -> dict:
    path = world.deploy / "data" / "bad_releases.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_bot_that_never_confirms_is_never_rolled_back_for_it(realbot: World) -> None:
    settings(realbot, "")  # start_confirmation: auto, by default
    session = install(realbot)
    first = boot_check(realbot)
    assert first["action"] == "accepted" and first["confirmation"] == "start", first
    assert "nothing counted" in first["detail"] and "never confirmed" in first["detail"]
    assert not (realbot.deploy / "data" / PENDING_FILE).exists()
    for _start in (2, 3, 4):  # systemd restarts it again and again: nothing left to count
        assert boot_check(realbot)["action"] == "nothing_pending"
    assert realbot.head() == realbot.tag_commit("v5.1.0")
    assert bad_releases(realbot) == {}
    ended = session_of(realbot, session["id"])
    assert ended["status"] == "completed" and ended["restart_needed"] is False
    assert not (realbot.deploy / "data" / CONFIRMS_FILE).exists()


def test_the_text_form_says_the_start_was_not_counted(realbot: World) -> None:
    settings(realbot, 'start_confirmation = "off"\n')
    cli(realbot, "confirm")  # a confirmation once: off still never counts
    install(realbot)
    out = cli(realbot, "boot-check").stdout
    assert out.startswith("gitrelease boot-check: 5.1.0 starts without a confirmation")
    assert "start_confirmation is off" in out and "rolled back" not in out


def test_a_passing_health_check_confirms_the_start(realbot: World) -> None:
    text, _broken = health_check(realbot)
    settings(realbot, text)
    session = install(realbot)
    result = boot_check(realbot)
    assert result["action"] == "confirmed" and result["confirmation"] == "health_check"
    assert "health check of 5.1.0 passed" in result["detail"]
    assert session_of(realbot, session["id"])["status"] == "completed"
    log = realbot.deploy / "data" / "update_logs" / f"{session['id']}.log"
    assert "checked 5.1.0" in log.read_text()
    assert boot_check(realbot)["action"] == "nothing_pending"


def test_a_failing_health_check_counts_and_rolls_back_after_max(realbot: World) -> None:
    text, broken = health_check(realbot)
    settings(realbot, text + "max_boot_failures = 2\n")
    session = install(realbot)  # its health check passes at the install
    broken.write_text("the new version cannot reach its database\n")
    first = boot_check(realbot)
    assert first["action"] == "counted" and first["rollback_after"] == 1, first
    assert "health check of 5.1.0 failed" in first["detail"]
    assert "will roll back after 1 more failed health check, to 5.0" in first["detail"]
    assert "rolled back" not in first["detail"]
    assert realbot.head() == realbot.tag_commit("v5.1.0")
    second = boot_check(realbot)
    assert second["action"] == "rolled_back" and second["rollback_after"] == 0, second
    assert "failed 2 time(s) in a row" in second["detail"]
    assert realbot.head() == realbot.tag_commit("5.0")
    assert bad_releases(realbot)[realbot.tag_commit("v5.1.0")]["tag"] == "v5.1.0"
    assert session_of(realbot, session["id"])["status"] == "failed"
    assert boot_check(realbot)["action"] == "nothing_pending"


def test_once_the_bot_has_confirmed_auto_counts_like_required(realbot: World) -> None:
    settings(realbot, "max_boot_failures = 2\n")
    confirmed = json.loads(cli(realbot, "confirm", "--json").stdout)
    assert confirmed["action"] == "nothing_pending"
    marker = realbot.deploy / "data" / CONFIRMS_FILE
    assert json.loads(marker.read_text())["by"].startswith("cli:")
    install(realbot)
    first, second = boot_check(realbot), boot_check(realbot)
    assert [first["action"], second["action"]] == ["counted", "counted"]
    assert first["confirmation"] == "required"
    assert "start 1 of 5.1.0" in first["detail"]
    assert "will roll back after 2 more unconfirmed starts, to 5.0" in first["detail"]
    assert "will roll back after 1 more unconfirmed start, to 5.0" in second["detail"]
    assert realbot.head() == realbot.tag_commit("v5.1.0")
    text = cli(realbot, "boot-check").stdout
    assert "started 2 times without confirming" in text and "rolled back to 5.0" in text
    assert realbot.head() == realbot.tag_commit("5.0")


def test_required_counts_even_before_any_confirmation(realbot: World) -> None:
    settings(realbot, 'start_confirmation = "required"\nmax_boot_failures = 1\n')
    install(realbot)
    assert boot_check(realbot)["action"] == "counted"
    assert boot_check(realbot)["action"] == "rolled_back"
    assert realbot.head() == realbot.tag_commit("5.0")


async def test_confirm_start_writes_the_marker_once_atomically(realbot: World) -> None:
    async with await ReleaseManager.open(realbot.deploy) as manager:
        await manager.confirm_start(actor="bot")
        marker = realbot.deploy / "data" / CONFIRMS_FILE
        first = marker.read_bytes()
        await manager.confirm_start(actor="someone else")
    assert marker.read_bytes() == first and json.loads(first)["by"] == "bot"
    assert not [p for p in marker.parent.iterdir() if p.name.startswith(f".{CONFIRMS_FILE}")]


@pytest.mark.parametrize("value", ['"sometimes"', "true", '["auto"]', '"Required"'])
def test_bad_start_confirmation_is_refused_and_changes_nothing(
    realbot: World, value: str,
) -> None:
    settings(realbot, "")
    install(realbot)
    path = realbot.deploy / "data" / "settings.toml"
    path.write_text(path.read_text() + f"start_confirmation = {value}\n")
    before = realbot.state()
    result = cli(realbot, "boot-check", check=False)
    assert result.returncode != 0 and "start_confirmation" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert realbot.state() == before


def test_settings_set_refuses_a_bad_start_confirmation(realbot: World) -> None:
    settings(realbot, "")
    cli(realbot, "settings", "show")  # the first use sets up data/
    before = realbot.state()
    result = cli(realbot, "settings", "set", "update", "start_confirmation", "maybe",
                 check=False)
    assert result.returncode == 2
    assert "invalid update.start_confirmation: 'maybe'" in result.stderr
    assert "auto, required, off" in result.stderr
    assert realbot.state() == before


def test_boot_check_rolls_back_an_install_that_carried_edits_keeping_them(
        realbot: World) -> None:
    settings(realbot, 'start_confirmation = "required"\nmax_boot_failures = 1\n')
    config = realbot.deploy / "config.json"
    config.write_text(config.read_text().replace('"sync_commands_globally": false',
                                                 '"sync_commands_globally": true'))
    session = json.loads(cli(realbot, "install", "--type", "bot", "--to", "v6.0.0",
                             "--keep-local-changes", "--force", "--json").stdout)
    assert "carry" in session["steps_completed"]
    assert boot_check(realbot)["action"] == "counted"
    assert boot_check(realbot)["action"] == "rolled_back"
    assert realbot.head() == realbot.tag_commit("5.0")
    assert '"sync_commands_globally": true' in config.read_text()  # the edit came back too


def test_boot_check_does_not_carry_edits_made_after_a_plain_install(realbot: World) -> None:
    settings(realbot, 'start_confirmation = "required"\nmax_boot_failures = 1\n')
    install(realbot)
    assert boot_check(realbot)["action"] == "counted"
    (realbot.deploy / "bot.py").write_text("print('edited on the server')\n")
    result = boot_check(realbot)
    assert result["action"] == "rollback_failed" and "refused" in result["detail"]
    assert realbot.head() == realbot.tag_commit("v5.1.0")
