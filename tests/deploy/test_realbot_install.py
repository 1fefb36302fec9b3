"""Installs on a bot laid out as real ones are: what they change, what the release needs, and
a tracked config the operator edited (carried over the checkout, or refused by name).

The world is `tests.realbot`: bare then v-prefixed lightweight tags, a database outside
data/, a tracked config.json, `.env` with TOKEN=, and v6.5.0 which removes "prefix" from
config.json, adds PREFIX to .env.example and pins botlib==1.5 (botlib 2.0 is installed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitrelease.core.errors import ConfirmationRequired, InvalidInput
from gitrelease.core.models import UpdateStatus
from gitrelease.deploy.install_options import InstallOptions
from gitrelease.deploy.rollback import RollbackOptions
from gitrelease.manager import ReleaseManager
from tests.conftest import World, git, kill_at
from tests.realbot import BOT_TOKEN, CONFIG_V5, users
from tests.state.test_backups import members_of

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = BOT_TOKEN.split("=", 1)[1].strip()
DOWNGRADE = {"name": "botlib", "from": "2.0", "to": "1.5", "downgrade": True}


def cli(deploy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(deploy), *args],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert SECRET not in result.stdout + result.stderr  # no .env value, ever
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def botlib(world: World) -> str:
    python = world.deploy.parent.parent / "env" / "bin" / "python"
    return subprocess.run([str(python), "-c", "import botlib; print(botlib.VERSION)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def edit_config(world: World, **changes: Any) -> str:
    """Edit the tracked config.json as the bot's README says; returns `git diff` after."""
    path = world.deploy / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=4) + "\n")
    return git(world.deploy, "diff")


def tracked_state(world: World) -> dict[str, Any]:
    """What an undone install must leave exactly as it found: HEAD, edits, untracked state."""
    return {"head": world.head(), "diff": git(world.deploy, "diff"),
            "staged": git(world.deploy, "diff", "--cached"),
            "config": (world.deploy / "config.json").read_text(),
            "env": (world.deploy / ".env").read_text(), "users": users(world.deploy),
            "stashes": git(world.deploy, "stash", "list")}


def settings(world: World, text: str) -> None:
    path = world.deploy / "data" / "settings.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + text)


# -- point 8: which packages moved -------------------------------------------------------


def test_dry_run_and_install_all_list_the_downgrade(realbot_packages: World) -> None:
    world = realbot_packages
    deploy = world.deploy
    plan = as_json(cli(deploy, "--json", "install", "--type", "all", "--dry-run", "--force"))
    assert plan["package_changes"] == [DOWNGRADE]
    text = cli(deploy, "install", "--type", "all", "--dry-run", "--force").stdout
    assert "botlib 2.0 -> 1.5  DOWNGRADE" in text and "nothing was changed" in text
    assert world.head() == world.tag_commit("5.0") and botlib(world) == "2.0"

    done = cli(deploy, "install", "--type", "all", "--force")
    assert done.returncode == 0, done.stderr
    assert "packages moved:" in done.stdout
    assert "botlib 2.0 -> 1.5  DOWNGRADE" in done.stdout
    assert botlib(world) == "1.5" and world.head() == world.tag_commit("v6.5.0")
    # Stored with the session: the journal and the history read it back.
    journal = as_json(cli(deploy, "--json", "journal"))
    assert journal["session"]["package_changes"] == [DOWNGRADE]


def test_dry_run_of_packages_alone_lists_what_pip_would_move(realbot_packages: World) -> None:
    world = realbot_packages
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v6.5.0")
    result = cli(world.deploy, "install", "--type", "packages", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Dry run: packages update at 6.5.0" in result.stdout
    assert "botlib 2.0 -> 1.5  DOWNGRADE" in result.stdout
    assert botlib(world) == "2.0"


# -- point 5: a bot install onto a release the setup cannot run ----------------------------


def test_bot_install_that_needs_keys_and_packages_asks_first(realbot_packages: World) -> None:
    world = realbot_packages
    deploy = world.deploy
    before = tracked_state(world)
    refused = cli(deploy, "--json", "install", "--type", "bot", "--to", "v6.5.0")
    assert refused.returncode == 15, refused.stdout
    message = as_json(refused)["error"]["message"]
    assert ("v6.5.0 needs PREFIX in .env and botlib==1.5 (installed 2.0): install with "
            "--type all, or set them") in message
    assert tracked_state(world) == before and botlib(world) == "2.0"

    plan = as_json(cli(deploy, "--json", "install", "--type", "bot", "--to", "v6.5.0",
                       "--dry-run", "--force"))
    assert any("needs PREFIX in .env" in w for w in plan["warnings"])
    all_plan = as_json(cli(deploy, "--json", "install", "--type", "all", "--to", "v6.5.0",
                           "--dry-run", "--force"))
    assert not any("needs" in w for w in all_plan["warnings"])  # `all` does both itself

    done = cli(deploy, "install", "--type", "bot", "--to", "v6.5.0", "--force")
    assert done.returncode == 0, done.stderr
    assert ("warning: installed with --force although v6.5.0 needs PREFIX in .env and "
            "botlib==1.5 (installed 2.0): install with --type all, or set them") in done.stdout
    assert world.head() == world.tag_commit("v6.5.0")
    assert (deploy / ".env").read_text() == BOT_TOKEN and botlib(world) == "2.0"


async def test_a_confirmed_need_is_accepted_like_any_reason(realbot_packages: World) -> None:
    async with await ReleaseManager.open(realbot_packages.deploy) as manager:
        # The dry run shows the plan and the reasons the install would ask about ...
        plan = await manager.install_updates("bot", {"to": "v6.5.0", "dry_run": True})
        assert any("needs PREFIX" in r for r in plan.needs_confirmation)
        # ... the install itself asks them ...
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.install_updates("bot", {"to": "v6.5.0"})
        assert list(caught.value.reasons) == plan.needs_confirmation
        # ... and goes past exactly those once they are accepted.
        session = await manager.install_updates("bot", {"to": "v6.5.0",
                                                        "accept": plan.needs_confirmation})
    assert session.status is UpdateStatus.COMPLETED
    assert any("installed once confirmed although v6.5.0 needs PREFIX" in w
               for w in session.warnings)


# -- point 6: an edited tracked config ------------------------------------------------------


def test_plain_install_refuses_edited_config_naming_the_option(realbot: World) -> None:
    edit_config(realbot, owners=[1234, 5678])
    before = tracked_state(realbot)
    refused = cli(realbot.deploy, "--json", "install", "--type", "bot", "--force")
    assert refused.returncode == 3
    message = as_json(refused)["error"]["message"]
    assert message == ("tracked files have local changes: config.json; install with "
                       '--keep-local-changes (or setting local_changes = "carry") to carry '
                       "them over, or commit/stash them")
    assert tracked_state(realbot) == before


def test_conflicting_edit_undoes_the_whole_install(realbot: World) -> None:
    # v6.5.0 removes the "prefix" line: an edit of that very line cannot be carried.
    edit_config(realbot, prefix="?")
    before = tracked_state(realbot)
    failed = cli(realbot.deploy, "--json", "install", "--type", "bot", "--to", "v6.5.0",
                 "--keep-local-changes", "--force")
    assert failed.returncode == 3, failed.stdout
    message = as_json(failed)["error"]["message"]
    assert message.startswith("the local changes to config.json conflict with v6.5.0")
    assert tracked_state(realbot) == before  # HEAD, the edit, .env, the database, no stash
    (session,) = as_json(cli(realbot.deploy, "--json", "status", "--history",
                             "--no-metrics"))["recent_sessions"]
    assert session["status"] == "failed"
    assert "the local changes put back as they were" in session["error_message"]
    patch = realbot.deploy / "data" / "local_changes" / f"{session['id']}.patch"
    assert '+    "prefix": "?",' in patch.read_text()
    assert patch.stat().st_mode & 0o777 == 0o600
    from gitrelease.deploy.quarantine import load_bad

    assert load_bad(realbot.deploy / "data") == {}  # the edit conflicted, not the release


def test_edit_that_does_not_conflict_is_carried_and_backed_up(realbot: World) -> None:
    diff = edit_config(realbot, sync_commands_globally=True)
    assert diff
    done = cli(realbot.deploy, "--json", "install", "--type", "bot", "--to", "v6.5.0",
               "--keep-local-changes", "--force")
    assert done.returncode == 0, done.stderr
    session = as_json(done)
    assert realbot.head() == realbot.tag_commit("v6.5.0")
    config = json.loads((realbot.deploy / "config.json").read_text())
    assert config == {"owners": [1234], "sync_commands_globally": True}  # release + edit
    assert git(realbot.deploy, "stash", "list") == ""
    assert git(realbot.deploy, "diff", "--cached") == ""  # plain edits, as they were
    assert (realbot.deploy / ".env").read_text() == BOT_TOKEN
    assert users(realbot.deploy) == [(1, "ada"), (2, "grace")]
    assert f"local changes carried over: config.json (a copy: data/local_changes/" \
           f"{session['id']}.patch)" in session["steps_completed"]
    assert session["steps_completed"][:8] == ["preflight", "fetch", "resolve", "backup",
                                              "stash", "checkout", "verify", "carry"]
    # The pre-update backup holds the patch of the edits.
    (backup,) = as_json(cli(realbot.deploy, "--json", "backup", "list"))
    names = members_of(Path(backup["file_path"]))
    assert f"data/local_changes/{session['id']}.patch" in names


def test_setting_carry_carries_without_the_flag(realbot: World) -> None:
    edit_config(realbot, sync_commands_globally=True)
    set_it = cli(realbot.deploy, "settings", "set", "update", "local_changes", "carry")
    assert set_it.returncode == 0, set_it.stderr
    plan = as_json(cli(realbot.deploy, "--json", "install", "--type", "bot", "--to",
                       "v6.0.0", "--dry-run", "--force"))
    assert plan["steps"][-4:] == ["stash", "checkout", "verify", "carry"]
    assert any("local changes to config.json would be carried over" in w
               for w in plan["warnings"])
    done = cli(realbot.deploy, "install", "--type", "bot", "--to", "v6.0.0", "--force")
    assert done.returncode == 0, done.stderr
    assert realbot.head() == realbot.tag_commit("v6.0.0")
    assert json.loads((realbot.deploy / "config.json").read_text())[
        "sync_commands_globally"] is True


def _release_without_config(world: World, *, rename: bool) -> None:
    if rename:
        git(world.release, "mv", "config.json", "settings.json")
    else:
        git(world.release, "rm", "--quiet", "config.json")
    world.commit("Config moves out of the repository", {"CHANGES": "7.0.0\n"})
    world.tag("v7.0.0")
    world.push()


@pytest.mark.parametrize("rename", [False, True])
async def test_release_that_drops_the_edited_file_asks_first(realbot: World,
                                                             rename: bool) -> None:
    _release_without_config(realbot, rename=rename)
    edit_config(realbot, owners=[42])
    (realbot.deploy / "bot.py").write_text("print('bot, patched here')\n")
    before = tracked_state(realbot)
    gone = "renames config.json to settings.json" if rename else "deletes config.json"
    async with await ReleaseManager.open(realbot.deploy) as manager:
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.install_updates("bot", {"to": "v7.0.0", "keep_local_changes": True})
        lost = [r for r in caught.value.reasons if "local changes" in r]
        assert lost == [f"v7.0.0 {gone}, which has local changes: they would not be carried "
                        "over (a copy stays in local_changes/ of the data dir)"]
        assert tracked_state(realbot) == before
        session = await manager.install_updates("bot", {
            "to": "v7.0.0", "keep_local_changes": True, "accept": caught.value.reasons})
    assert session.status is UpdateStatus.COMPLETED
    assert (realbot.deploy / "bot.py").read_text() == "print('bot, patched here')\n"
    assert not (realbot.deploy / "config.json").exists()
    assert any(w.startswith("the local changes to config.json were not carried over")
               for w in session.warnings)
    patch = realbot.deploy / "data" / "local_changes" / f"{session.id}.patch"
    assert "42" in patch.read_text()  # the dropped edit is kept


@pytest.mark.parametrize("point", ["install:stash:done", "install:checkout:done",
                                   "install:carry"])
def test_kill_9_between_stash_and_reapply_puts_the_edits_back(realbot: World,
                                                              point: str) -> None:
    edit_config(realbot, sync_commands_globally=True)
    git(realbot.deploy, "add", "config.json")  # staged, even: put back exactly so
    edit_config(realbot, owners=[7])
    before = tracked_state(realbot)
    kill_at(realbot.deploy, point, "install", "--type", "bot", "--to", "v6.5.0",
            "--keep-local-changes", "--force")
    assert git(realbot.deploy, "diff") != before["diff"] or realbot.head() != before["head"]
    history = as_json(cli(realbot.deploy, "--json", "status", "--history", "--no-metrics"))
    (session,) = history["recent_sessions"]
    assert session["status"] == "failed"
    assert "the local changes put back as they were" in session["error_message"]
    assert tracked_state(realbot) == before


# -- rollback, and bad input ---------------------------------------------------------------


async def test_rollback_over_edited_config_names_the_setting_then_carries(
        realbot: World) -> None:
    assert cli(realbot.deploy, "install", "--type", "bot", "--to", "v6.0.0",
               "--force").returncode == 0
    edit_config(realbot, sync_commands_globally=True)
    refused = cli(realbot.deploy, "--json", "rollback", "previous", "--yes")
    assert refused.returncode == 3
    assert 'local_changes = "carry"' in as_json(refused)["error"]["message"]
    async with await ReleaseManager.open(realbot.deploy) as manager:
        session = await manager.rollback_to_version("previous", {
            "confirm": True, "keep_local_changes": True})
    assert session.status is UpdateStatus.COMPLETED
    assert realbot.head() == realbot.tag_commit("5.0")
    config = json.loads((realbot.deploy / "config.json").read_text())
    assert config == {**CONFIG_V5, "sync_commands_globally": True}
    from gitrelease.cli.render import render_session

    assert "the running bot still runs 6.0.0 until it is restarted" in render_session(session)


async def test_bad_keep_local_changes_values_are_refused_and_change_nothing(
        realbot: World) -> None:
    edit_config(realbot, owners=[9])
    before = tracked_state(realbot)
    for bad in ("yes", 1, None):
        with pytest.raises(InvalidInput) as caught:
            InstallOptions(keep_local_changes=bad)  # type: ignore[arg-type]
        assert caught.value.message.startswith("invalid keep_local_changes")
        with pytest.raises(InvalidInput):
            RollbackOptions(confirm=True, keep_local_changes=bad)  # type: ignore[arg-type]
    async with await ReleaseManager.open(realbot.deploy) as manager:
        with pytest.raises(InvalidInput):
            await manager.install_updates("bot", {"carry_local_changes": "true"})
    flag = cli(realbot.deploy, "install", "--type", "bot", "--keep-local-changes=yes")
    assert flag.returncode == 2 and "--keep-local-changes" in flag.stderr
    setting = cli(realbot.deploy, "--json", "settings", "set", "update", "local_changes",
                  "sometimes")
    assert setting.returncode != 0
    assert "local_changes" in as_json(setting)["error"]["message"]
    assert tracked_state(realbot) == before
    data = realbot.deploy / "data"
    assert "sometimes" not in ((data / "settings.toml").read_text()
                               if (data / "settings.toml").exists() else "")
    assert not (data / "local_changes").exists()  # no install got as far as saving edits
