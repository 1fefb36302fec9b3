"""Restarts, the post-checkout hook, confirmation and boot-check, on real repos and processes.

The "bot" is a real child process (tests/botproc.py): it writes data/bot.pid, and exits on
SIGTERM or, with restart_method = exit, on a restart request, with status 75.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitrelease.deploy.restart import PENDING_FILE, RESTART_EXIT_CODE, write_pid_file
from gitrelease.git.hooks import render_hook
from tests.conftest import REPO_ROOT, SIGTERM_EXIT, Bot, World, git, guilds


def cli(world: World, *args: str, check: bool = True, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), *args],
        cwd=cwd or REPO_ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})},
        timeout=180)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def settings(world: World, text: str) -> None:
    (world.deploy / "data" / "settings.toml").write_text(text)


def recorder(world: World) -> tuple[str, Path]:
    """A restart_command (TOML) that appends the reason and version it was run for."""
    log = world.base / "restarts.log"
    code = ("import os, sys; open(sys.argv[1], 'a').write("
            "os.environ['GITRELEASE_RESTART_REASON'] + ' ' + "
            "os.environ.get('GITRELEASE_VERSION', '-') + '\\n')")
    command = json.dumps([sys.executable, "-c", code, str(log)])
    return f'restart_method = "command"\nrestart_command = {command}\n', log


REQUIRED = 'start_confirmation = "required"\n'  # these bots confirm their starts


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- the hook ------------------------------------------------------------------------------


def test_post_checkout_restarts_on_a_tag_checkout_and_not_on_a_file_checkout(
    world: World,
) -> None:
    text, log = recorder(world)
    settings(world, text)
    cli(world, "hooks", "install")
    hook = world.deploy / ".git" / "hooks" / "post-checkout"
    assert os.access(hook, os.X_OK)
    assert sys.executable in hook.read_text()

    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.1.0")
    assert lines(log) == ["checkout 1.1.0"]
    pending = json.loads((world.deploy / "data" / PENDING_FILE).read_text())
    assert pending["target_commit"] == world.tag_commit("v1.1.0")
    assert pending["from_version"] == "v1.0.0" and pending["reason"] == "checkout"

    git(world.deploy, "checkout", "v1.0.0", "--", "bot.py")  # files only: third argument 0
    git(world.deploy, "checkout", "--quiet", "HEAD", "--", "bot.py")
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.1.0")
    assert lines(log) == ["checkout 1.1.0"]  # HEAD did not move: no restart


def test_post_checkout_does_not_restart_in_the_middle_of_a_rebase(world: World) -> None:
    text, log = recorder(world)
    settings(world, text)
    git(world.deploy, "switch", "--quiet", "-c", "local")
    (world.deploy / "notes.txt").write_text("a local change\n")
    git(world.deploy, "add", "notes.txt")
    git(world.deploy, "commit", "--quiet", "-m", "local notes")
    cli(world, "hooks", "install")
    git(world.deploy, "rebase", "--quiet", "v1.1.0")
    assert git(world.deploy, "merge-base", "HEAD", "v1.1.0") == world.tag_commit("v1.1.0")
    assert lines(log) == []  # git ran post-checkout for the new base, mid-rebase
    assert not (world.deploy / "data" / PENDING_FILE).exists()
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.1.0")
    assert lines(log) == ["checkout 1.1.0"]  # a checkout by hand still restarts


def test_hook_restart_failure_is_reported_by_git_checkout(world: World) -> None:
    settings(world, 'restart_method = "signal"\n')  # no data/bot.pid: the bot is not running
    cli(world, "hooks", "install")
    result = subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "v1.1.0"],
                            cwd=world.deploy, capture_output=True, text=True)
    assert result.returncode != 0
    assert "restart_method is signal but there is no" in result.stderr
    assert world.head() == world.tag_commit("v1.1.0")  # the checkout itself stands


def test_install_restarts_once_after_its_checks_not_at_its_checkout(world: World) -> None:
    text, log = recorder(world)
    settings(world, text)
    cli(world, "hooks", "install")
    session = json.loads(cli(world, "install", "--type", "bot", "--to", "1.1.0",
                             "--json").stdout)
    assert lines(log) == ["install 1.1.0"]  # not "checkout": the hook left it to the install
    assert session["status"] == "restarting"
    assert session["restart_needed"] is True
    confirmed = json.loads(cli(world, "confirm", "--json").stdout)
    assert confirmed["action"] == "confirmed"
    journal = json.loads(cli(world, "journal", session["id"], "--json").stdout)
    assert journal["session"]["status"] == "completed"
    assert journal["session"]["restart_needed"] is False
    assert not (world.deploy / "data" / PENDING_FILE).exists()


def test_chains_an_existing_hook_and_puts_it_back(world: World) -> None:
    hooks = world.deploy / ".git" / "hooks"
    mine = hooks / "post-checkout"
    marker = world.base / "mine.log"
    mine.write_text(f'#!/bin/sh\necho "mine $1 $2 $3" >> {marker}\nexit 0\n')
    mine.chmod(0o755)
    original = mine.read_bytes()
    text, log = recorder(world)
    settings(world, text)

    first = json.loads(cli(world, "hooks", "install", "--json").stdout)["hooks"][0]
    assert first["action"] == "chained the existing hook"
    again = json.loads(cli(world, "hooks", "install", "--json").stdout)["hooks"][0]
    assert again["action"] == "unchanged" and again["chained"].endswith("post-checkout.chained")
    assert (hooks / "post-checkout.chained").read_bytes() == original

    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.1.0")
    assert len(lines(marker)) == 1 and lines(marker)[0].endswith(" 1")
    assert lines(log) == ["checkout 1.1.0"]

    status = cli(world, "hooks", "status").stdout
    assert "post-checkout: installed" in status and "pre-push: absent" in status
    removed = json.loads(cli(world, "hooks", "uninstall", "--json").stdout)["hooks"][0]
    assert removed["action"].startswith("removed; the chained hook is back")
    assert mine.read_bytes() == original and not (hooks / "post-checkout.chained").exists()
    assert json.loads(cli(world, "hooks", "uninstall", "--json").stdout)["hooks"][0][
        "action"] == "not ours: left alone"


def test_refuses_to_chain_when_both_hook_and_chained_exist(world: World) -> None:
    hooks = world.deploy / ".git" / "hooks"
    for name in ("post-checkout", "post-checkout.chained"):
        (hooks / name).write_text("#!/bin/sh\nexit 0\n")
    before = world.state()
    result = cli(world, "hooks", "install", check=False)
    assert result.returncode != 0 and "cannot be chained" in result.stderr
    assert world.state() == before


def test_installed_hook_is_the_shipped_script_with_the_interpreter(world: World) -> None:
    cli(world, "hooks", "install", "--release")
    installed = (world.deploy / ".git" / "hooks" / "pre-push").read_bytes()
    assert installed == render_hook("pre-push", sys.executable)
    shipped = (REPO_ROOT / "hooks" / "post-checkout").read_text()
    assert "gitrelease restart --hook" in shipped.replace('"$GITRELEASE_PYTHON" -m ', "gitrelease ")


# -- restart methods against a real process ------------------------------------------------


def test_signal_restarts_the_bot_by_its_pid_file(world: World, bots: list[Bot]) -> None:
    settings(world, 'restart_method = "signal"\n')
    bot = Bot(world, "signal")
    bots.append(bot)
    out = cli(world, "restart").stdout
    assert f"sent SIGTERM to the bot (pid {bot.process.pid})" in out
    assert bot.wait() == SIGTERM_EXIT


def test_signal_never_hits_a_process_that_reused_the_pid(world: World, bots: list[Bot]) -> None:
    settings(world, 'restart_method = "signal"\n')
    bot = Bot(world, "signal")
    bots.append(bot)
    pid_file = world.deploy / "data" / "bot.pid"
    old = time.time() - 3600
    os.utime(pid_file, (old, old))  # written long before this process began
    result = cli(world, "restart", check=False)
    assert result.returncode != 0 and "it is not the bot" in result.stderr
    assert bot.process.poll() is None


def test_exit_asks_the_running_bot_to_exit_with_75(world: World, bots: list[Bot]) -> None:
    settings(world, 'restart_method = "exit"\n')
    bot = Bot(world, "exit")
    bots.append(bot)
    cli(world, "restart")
    assert bot.wait() == RESTART_EXIT_CODE
    assert not (world.deploy / "data" / "restart_request.json").exists()


def test_exit_request_older_than_the_bot_is_ignored(world: World, bots: list[Bot]) -> None:
    settings(world, 'restart_method = "exit"\n')
    cli(world, "restart")  # no bot running: the request waits, stale
    request = world.deploy / "data" / "restart_request.json"
    assert request.exists()
    old = json.loads(request.read_text())
    old["requested_at"] -= 60
    request.write_text(json.dumps(old))
    bot = Bot(world, "exit")
    bots.append(bot)
    time.sleep(0.5)
    assert bot.process.poll() is None  # it did not exit for its predecessor's request
    assert not request.exists()


def test_command_restarts_through_the_configured_command(world: World, bots: list[Bot]) -> None:
    bot = Bot(world, "signal")
    bots.append(bot)
    command = json.dumps([sys.executable, "-c",
                          "import os, signal; os.kill(int(open('data/bot.pid').read()), "
                          "signal.SIGTERM)"])
    settings(world, f'restart_method = "command"\nrestart_command = {command}\n')
    cli(world, "restart")
    assert bot.wait() == SIGTERM_EXIT


def test_failing_restart_command_is_a_clear_error(world: World) -> None:
    command = json.dumps([sys.executable, "-c", "import sys; print('unit not found'); "
                          "sys.exit(5)"])
    settings(world, f'restart_method = "command"\nrestart_command = {command}\n')
    result = cli(world, "restart", check=False)
    assert result.returncode == 23
    assert "exited with status 5" in result.stderr and "unit not found" in result.stderr


def test_none_restarts_nothing_and_says_so(world: World) -> None:
    out = cli(world, "restart").stdout
    assert "restart_method is none" in out


# -- the update's restart, confirmation and boot-check --------------------------------------


def test_install_with_signal_restart_completes_only_when_the_new_bot_confirms(
    world: World, bots: list[Bot],
) -> None:
    settings(world, 'restart_method = "signal"\n' + REQUIRED)
    old_bot = Bot(world, "signal")
    bots.append(old_bot)
    session = json.loads(cli(world, "install", "--type", "bot", "--to", "1.1.0",
                             "--json").stdout)
    assert session["status"] == "restarting" and session["completed_at"] is None
    assert old_bot.wait() == SIGTERM_EXIT

    assert "start 1 of 1.1.0" in cli(world, "boot-check").stdout
    new_bot = Bot(world, "confirm")  # the new process confirms once it is up
    bots.append(new_bot)
    assert new_bot.wait() == 0
    status = json.loads(cli(world, "journal", session["id"], "--json").stdout)["session"]
    assert status["status"] == "completed"
    assert any("came up at 1.1.0" in step for step in status["steps_completed"])
    assert "nothing_pending" in cli(world, "boot-check", "--json").stdout


def test_restart_failure_does_not_undo_the_installed_release(world: World) -> None:
    settings(world, 'restart_method = "signal"\n')  # and no bot running
    session = json.loads(cli(world, "install", "--type", "bot", "--to", "1.1.0",
                             "--json").stdout)
    assert session["status"] == "completed" and session["restart_needed"] is True
    assert any("was not restarted" in w for w in session["warnings"])
    assert world.head() == world.tag_commit("v1.1.0")


def test_boot_check_rolls_back_after_max_unconfirmed_starts(world: World) -> None:
    text, log = recorder(world)
    settings(world, text + "max_boot_failures = 2\n" + REQUIRED)
    cli(world, "install", "--type", "bot", "--to", "1.1.0")
    git_log = lines(log)
    assert git_log == ["install 1.1.0"]
    with __import__("sqlite3").connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (3, 'written by the crashing version')")
    db.close()

    for start in (1, 2):
        check = json.loads(cli(world, "boot-check", "--json").stdout)
        assert check["action"] == "counted" and check["pending"]["starts"] == start
    assert world.head() == world.tag_commit("v1.1.0")
    rolled = json.loads(cli(world, "boot-check", "--json").stdout)
    assert rolled["action"] == "rolled_back", rolled
    assert world.head() == world.tag_commit("v1.0.0")
    assert len(guilds(world.deploy)) == 2  # the data from before the update is back
    bad = json.loads((world.deploy / "data" / "bad_releases.json").read_text())
    assert bad[world.tag_commit("v1.1.0")]["tag"] == "v1.1.0"
    assert lines(log) == git_log  # boot-check runs before the start: it restarts nothing
    sessions = json.loads(cli(world, "status", "--json").stdout)
    history = sessions.get("recent_sessions") or sessions.get("update_history") or []
    assert any(s.get("status") == "failed" and "without confirming" in (s.get("error_message")
               or "") for s in history) or history == []
    # A plain install no longer picks the bad release.
    check = json.loads(cli(world, "check", "--type", "bot", "--json").stdout)
    assert any("v1.1.0 is skipped" in w for w in check["warnings"])
    assert "nothing_pending" in cli(world, "boot-check", "--json").stdout


def test_boot_check_forgets_a_start_when_head_moved_elsewhere(world: World) -> None:
    text, _log = recorder(world)
    settings(world, text)
    cli(world, "install", "--type", "bot", "--to", "1.1.0")
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.9.0")
    result = json.loads(cli(world, "boot-check", "--json").stdout)
    assert result["action"] == "stale"
    assert world.head() == world.tag_commit("v1.9.0")


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["restart", "--hook"], "both --old and --new"),
    (["restart", "--hook", "--old", "abc", "--new", "def"], "a full commit id"),
    (["restart", "--hook", "--old=-rf", "--new", "0" * 40], "a full commit id"),
    (["restart", "--old", "0" * 40], "only with --hook"),
    (["hooks", "reinstall"], "allowed: install, uninstall, status"),
    (["hooks", "install", "--python", "python3"], "absolute path"),
    (["hooks", "install", "--python", "/nonexistent/python"], "absolute path"),
    (["hooks"], "required"),
])
def test_bad_input_changes_nothing(world: World, args: list[str], message: str) -> None:
    before = world.state()
    result = cli(world, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert world.state() == before


def test_hook_restart_with_a_new_commit_that_is_not_head_changes_nothing(world: World) -> None:
    before = world.state()
    result = cli(world, "restart", "--hook", "--old", world.head(),
                 "--new", world.tag_commit("v1.1.0"), check=False)
    assert result.returncode != 0 and "HEAD is not where the checkout says" in result.stderr
    assert world.state() == before


@pytest.mark.parametrize("text, message", [
    ('restart_method = "reboot"\n', "restart_method"),
    ("restart_method = 1\n", "restart_method"),
    ("restart_command = 5\n", "restart_command"),
    ("max_boot_failures = 0\n", "max_boot_failures"),
    ("restart_timeout = -1\n", "restart_timeout"),
])
def test_bad_restart_settings_are_refused(world: World, text: str, message: str) -> None:
    settings(world, text)
    before = world.state()
    result = cli(world, "restart", check=False)
    assert result.returncode != 0 and message in result.stderr
    assert world.state() == before


def test_pid_file_is_written_atomically_by_the_bot_helper(tmp_path: Path) -> None:
    path = write_pid_file(tmp_path, 4242)
    assert path.read_text() == "4242\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_signal_refuses_a_pid_file_without_a_pid(world: World) -> None:
    settings(world, 'restart_method = "signal"\n')
    (world.deploy / "data" / "bot.pid").write_text("1\n")
    before = world.state()
    result = cli(world, "restart", check=False)
    assert result.returncode == 23 and "does not hold a process id" in result.stderr
    assert world.state() == before


def test_sigterm_exit_code_is_what_the_bot_returns() -> None:
    assert SIGTERM_EXIT == 128 + signal.SIGTERM


# -- found by review: the way back after a crash loop, and where hooks may act ---------------


def insert_row(world: World, row: int) -> None:
    import sqlite3

    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (?, 'new')", (row,))
    db.close()


def test_crash_loop_after_a_hand_checkout_goes_back_in_code_alone(world: World) -> None:
    text, _log = recorder(world)
    settings(world, text + "max_boot_failures = 1\n")
    cli(world, "install", "--type", "bot", "--to", "1.1.0")  # leaves a backup at v1.0.0
    confirm = cli(world, "confirm", "--json")
    assert json.loads(confirm.stdout)["action"] == "confirmed"
    cli(world, "hooks", "install")
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.9.0")
    insert_row(world, 7)  # written after the only backup at v1.1.0... there is none: code only
    cli(world, "boot-check")
    rolled = json.loads(cli(world, "boot-check", "--json").stdout)
    assert rolled["action"] == "rolled_back", rolled
    assert world.head() == world.tag_commit("v1.1.0")
    assert [row[0] for row in guilds(world.deploy)] == [1, 2, 7]  # no older data restored


def test_pending_start_is_never_backed_up_or_restored(world: World) -> None:
    text, _log = recorder(world)
    settings(world, text + "max_boot_failures = 1\n" + REQUIRED)
    cli(world, "install", "--type", "bot", "--to", "1.1.0")
    cli(world, "boot-check")
    assert json.loads(cli(world, "boot-check", "--json").stdout)["action"] == "rolled_back"
    cli(world, "rollback", "1.1.0", "--yes", "--force")
    assert not (world.deploy / "data" / PENDING_FILE).exists()
    insert_row(world, 9)
    assert json.loads(cli(world, "boot-check", "--json").stdout)["action"] == "nothing_pending"
    assert 9 in [row[0] for row in guilds(world.deploy)]


def test_rollback_previous_works_while_the_install_waits_for_its_restart(world: World) -> None:
    text, _log = recorder(world)
    settings(world, text)
    session = json.loads(cli(world, "install", "--type", "bot", "--to", "1.1.0",
                             "--json").stdout)
    assert session["status"] == "restarting"
    cli(world, "rollback", "previous", "--yes")
    assert world.head() == world.tag_commit("v1.0.0")
    ended = json.loads(cli(world, "journal", session["id"], "--json").stdout)["session"]
    assert ended["status"] == "failed" and "before the bot confirmed" in ended["error_message"]
    assert not (world.deploy / "data" / PENDING_FILE).exists()


def test_boot_check_lets_the_bot_start_when_its_rollback_is_refused(world: World) -> None:
    text, _log = recorder(world)
    settings(world, text + "max_boot_failures = 1\n" + REQUIRED)
    cli(world, "install", "--type", "bot", "--to", "1.1.0")
    cli(world, "boot-check")
    (world.deploy / "bot.py").write_text("print('edited on the server')\n")  # a dirty tree
    result = cli(world, "boot-check", "--json")
    assert json.loads(result.stdout)["action"] == "rollback_failed"
    assert "refused" in json.loads(result.stdout)["detail"]
    assert world.head() == world.tag_commit("v1.1.0")


def test_clone_and_worktree_checkouts_restart_nothing(world: World) -> None:
    text, log = recorder(world)
    settings(world, text)
    cli(world, "hooks", "install")
    git(world.deploy, "worktree", "add", "--quiet", "--detach", str(world.base / "wt"), "v1.1.0")
    assert lines(log) == []
    hook = world.deploy / ".git" / "hooks" / "post-checkout"
    subprocess.run([str(hook), "0" * 40, world.tag_commit("v1.1.0"), "1"], cwd=world.deploy,
                   check=True)
    assert lines(log) == []


def test_a_hooks_path_shared_beyond_the_repository_is_refused(world: World) -> None:
    shared = world.base / "shared-hooks"
    shared.mkdir()
    git(world.deploy, "config", "core.hooksPath", str(shared))
    before = world.state()
    result = cli(world, "hooks", "install", check=False)
    assert result.returncode != 0 and "outside this repository" in result.stderr
    assert list(shared.iterdir()) == [] and world.state() == before


def test_hooks_status_does_not_depend_on_how_gitrelease_was_started(world: World) -> None:
    other = world.base / "python with space"
    other.write_text("#!/bin/sh\nexec python3 \"$@\"\n")
    other.chmod(0o755)
    cli(world, "hooks", "install", "--python", str(other))
    status = json.loads(cli(world, "hooks", "status", "--json").stdout)["hooks"][0]
    assert status["state"] == "installed" and status["python"] == str(other)
    again = json.loads(cli(world, "hooks", "install", "--json").stdout)["hooks"][0]
    assert again["action"] == "unchanged" and again["python"] == str(other)


def test_hooks_find_the_deployment_through_gitrelease_root(world: World, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gitrelease", "hooks", "install"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "GITRELEASE_ROOT": str(world.deploy)})
    assert result.returncode == 0, result.stderr
    assert (world.deploy / ".git" / "hooks" / "post-checkout").exists()


def test_install_restarts_with_the_new_releases_restart_settings(world: World) -> None:
    log = world.base / "restarts.log"
    code = "import sys; open(sys.argv[1], 'a').write('restarted\\n')"
    pyproject = (world.release / "pyproject.toml").read_text() + (
        f"\n[tool.gitrelease]\nrestart_method = \"command\"\n"
        f"restart_command = {json.dumps([sys.executable, '-c', code, str(log)])}\n")
    world.commit("feat: restart by command", {"pyproject.toml": pyproject})
    world.release_version("2.1.0", "Restarts itself")
    session = json.loads(cli(world, "install", "--type", "bot", "--to", "2.1.0", "--force",
                             "--json").stdout)
    assert lines(log) == ["restarted"] and session["status"] == "restarting"
