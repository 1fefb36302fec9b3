"""What the CLI tells the operator of a bot laid out as real ones are (tests/realbot.py).

A missing --yes says what the command does and how to go ahead; `settings show` says what
each setting does; a checkout made by hand, which the post-checkout hook restarted the bot
for, is in the history like any update.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import World, git
from tests.realbot import cli

TOKEN = "tok-4f9a-very-secret"


def settings(world: World, text: str) -> None:
    data = world.deploy / "data"
    data.mkdir(exist_ok=True)
    (data / "settings.toml").write_text(text)


def checkout(world: World, ref: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", ref],
                          cwd=world.deploy, capture_output=True, text=True, timeout=120)


def history(world: World) -> list[dict]:
    return json.loads(cli(world, "status", "--history", "--json").stdout)["recent_sessions"]


# -- --yes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, says", [
    (["rollback", "previous"], "rollback changes the code and data: add --yes to go ahead"),
    (["rollback", "5.0", "--force"], "rollback changes the code and data: add --yes"),
    (["backup", "restore", "BACKUP"], "backup restore replaces the live files with the "
                                      "backup's: add --yes to go ahead"),
    (["backup", "restore", "BACKUP", "--type", "database"], "add --yes to go ahead"),
    (["backup", "delete", "BACKUP"], "backup delete cannot be undone: add --yes to go ahead"),
])
def test_a_missing_yes_says_what_the_command_does_and_changes_nothing(
    realbot: World, args: list[str], says: str,
) -> None:
    session = json.loads(cli(realbot, "install", "--type", "bot", "--to", "5.1.0",
                             "--json").stdout)
    backup = session["backup_id"]
    assert backup
    args = [backup if a == "BACKUP" else a for a in args]
    before = realbot.state()
    text = cli(realbot, *args, check=False)
    assert text.returncode == 15 and says in text.stderr, text.stderr
    assert "invalid" not in text.stderr and "False" not in text.stderr
    as_json = cli(realbot, "--json", *args, check=False)
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "confirmation_required" and says in error["message"]
    assert realbot.state() == before


# -- settings show -------------------------------------------------------------------------


def test_settings_show_says_what_each_setting_is_and_where_it_came_from(
    realbot: World,
) -> None:
    restart = json.dumps(["curl", "-H", f"Authorization: {TOKEN}", "http://localhost/restart"])
    settings(realbot, f'restart_method = "command"\nrestart_command = {restart}\n'
                      'start_confirmation = "off"\n')
    out = cli(realbot, "settings", "show").stdout
    assert TOKEN not in out
    assert "[update]" in out and "[backup]" in out and "[notification]" in out
    assert 'start_confirmation = "off"   (data/settings.toml)' in out
    assert "restart_command = (set)   (data/settings.toml)" in out
    assert 'restart_method = "command"   (data/settings.toml)' in out
    assert "max_boot_failures = 3   (default)" in out
    assert "whether boot-check counts unconfirmed starts" in out
    assert "not acted on by this version yet" in out  # an inert setting says so
    assert all(len(line) <= 100 for line in out.splitlines())

    rows = json.loads(cli(realbot, "settings", "show", "--json").stdout)
    assert TOKEN not in json.dumps(rows)
    by_name = {row["name"]: row for row in rows}
    assert all(row["description"] for row in rows)
    assert by_name["restart_command"]["value"] == "(set)"
    assert by_name["start_confirmation"]["source"].endswith("settings.toml")
    assert by_name["start_confirmation"]["description"].startswith("whether boot-check")

    only = cli(realbot, "settings", "show", "backup").stdout
    assert "[backup]" in only and "[update]" not in only


def test_a_bad_settings_value_names_the_setting_and_changes_nothing(realbot: World) -> None:
    settings(realbot, "")
    cli(realbot, "settings", "show")  # the first use sets up data/
    before = realbot.state()
    result = cli(realbot, "settings", "set", "update", "restart_command",
                 f'["a", "{TOKEN}", 5]', check=False)
    assert result.returncode == 2 and "invalid update.restart_command" in result.stderr
    assert TOKEN not in result.stderr + result.stdout
    result = cli(realbot, "settings", "set", "update", "start_confirmation", "sometimes",
                 check=False)
    assert "invalid update.start_confirmation: 'sometimes'" in result.stderr
    assert "auto, required, off" in result.stderr
    assert realbot.state() == before


# -- a checkout by hand ----------------------------------------------------------------------


def test_a_checkout_by_hand_is_in_the_history(realbot: World) -> None:
    settings(realbot, "")  # restart_method none: the hook restarts nothing
    cli(realbot, "hooks", "install")
    old = realbot.head()
    assert checkout(realbot, "v5.1.0").returncode == 0
    [session] = history(realbot)
    assert session["initiated_by"] == "post-checkout hook"
    assert session["update_type"] == "bot" and session["status"] == "completed"
    assert (session["from_commit"], session["to_commit"]) == (old, realbot.head())
    assert (session["current_version"], session["target_version"]) == ("5.0", "5.1.0")
    assert session["restart_needed"] is True
    text = cli(realbot, "status", "--history").stdout
    assert f"{session['id']}  completed 5.0 -> 5.1.0" in text
    # What ran before is known: `rollback previous` goes back to it.
    cli(realbot, "rollback", "previous", "--yes", "--force")
    assert realbot.head() == old


def test_a_hand_checkout_that_restarts_waits_for_the_start(realbot: World) -> None:
    log = realbot.base / "restarts.log"
    code = "import sys; open(sys.argv[1], 'a').write('restarted\\n')"
    settings(realbot, f'restart_method = "command"\nrestart_command = '
                      f'{json.dumps([sys.executable, "-c", code, str(log)])}\n')
    cli(realbot, "hooks", "install")
    install = json.loads(cli(realbot, "install", "--type", "bot", "--to", "5.1.0",
                             "--json").stdout)
    assert install["status"] == "restarting"  # and the operator moves on by hand meanwhile
    assert checkout(realbot, "v6.0.0").returncode == 0
    assert log.read_text() == "restarted\n" * 2
    session, superseded = history(realbot)
    assert session["status"] == "restarting" and session["initiated_by"] == "post-checkout hook"
    assert superseded["id"] == install["id"] and superseded["status"] == "failed"
    assert "checkout by hand moved HEAD to 6.0.0" in superseded["error_message"]
    assert json.loads(cli(realbot, "confirm", "--json").stdout)["action"] == "confirmed"
    done = history(realbot)[0]
    assert done["id"] == session["id"] and done["status"] == "completed"
    assert done["restart_needed"] is False


def test_a_failed_hook_restart_is_recorded_and_still_fails_the_checkout(
    realbot: World,
) -> None:
    settings(realbot, 'restart_method = "signal"\n')  # no data/bot.pid: the bot is not running
    cli(realbot, "hooks", "install")
    result = checkout(realbot, "v5.1.0")
    assert result.returncode != 0 and "restart_method is signal" in result.stderr
    assert realbot.head() == realbot.tag_commit("v5.1.0")  # the checkout itself stands
    [session] = history(realbot)
    assert session["status"] == "completed" and session["restart_needed"] is True
    assert any("was not restarted" in w for w in session["warnings"])


def test_a_checkout_of_files_is_not_a_session(realbot: World) -> None:
    settings(realbot, "")
    cli(realbot, "hooks", "install")
    git(realbot.deploy, "checkout", "v5.1.0", "--", "CHANGES")
    git(realbot.deploy, "checkout", "HEAD", "--", "CHANGES")
    assert history(realbot) == []
