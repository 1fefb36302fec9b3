"""Install as a transaction: a release's own post-update command and health check, undo on
failure, bad releases, and kill -9 at every step settled at the next start."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitrelease.core.errors import ConfirmationRequired
from gitrelease.core.models import UpdateStatus
from gitrelease.core.reports import InstallPlan
from gitrelease.deploy.command_runner import CommandFailed
from gitrelease.manager import ReleaseManager
from tests.conftest import World, guilds, kill_at

REPO_ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def release_with(world: World, version: str, **commands: object) -> None:
    """A release whose pyproject.toml carries [tool.gitrelease] commands."""
    lines = ['[project]', 'name = "bot"', 'version = "0"', 'requires-python = ">=3.11"', '',
             '[tool.gitrelease]']
    lines += [f"{key} = {json.dumps(value)}" for key, value in commands.items()]
    world.commit(f"release {version}", {"pyproject.toml": "\n".join(lines) + "\n",
                                        "VERSION": f"{version}\n"})
    world.tag(f"v{version}", f"Release {version}")
    world.push()
    # The release side's history holds 2.0.0rc1's "feat!:" commit: not what these tests are
    # about, so the breaking-change confirmation is switched off on the deployment.
    settings = world.deploy / "data" / "settings.toml"
    text = settings.read_text() if settings.exists() else ""
    settings.write_text(text + "require_confirmation = false\n")


def fingerprint(world: World) -> dict[str, str]:
    names = [".env", "data/app.db", "bot.py", "pyproject.toml"]
    return {n: hashlib.sha256((world.deploy / n).read_bytes()).hexdigest() for n in names}



async def test_passing_commands_complete_the_install_and_are_logged(world: World) -> None:
    script = ("import os, pathlib; pathlib.Path('data/migrated').write_text("
              "os.environ['GITRELEASE_TO_VERSION']); print('migrated')")
    release_with(world, "1.11.0", post_update_command=[PY, "-c", script],
                 health_check_command=f"{PY} -c \"print('healthy')\"")
    async with await ReleaseManager.open(world.deploy) as manager:
        session = await manager.install_updates("bot", {})
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    assert session.steps_completed[-3:-1] == ["post_update", "health_check"]
    assert (world.deploy / "data" / "migrated").read_text() == "1.11.0"
    log = (world.deploy / "data" / "update_logs" / f"{session.id}.log").read_text()
    assert "migrated" in log and "healthy" in log
    assert (world.deploy / "data" / "update_logs" / f"{session.id}.log").stat().st_mode \
        & 0o777 == 0o600


async def test_failing_health_check_rolls_back_and_marks_the_release_bad(
    world: World,
) -> None:
    release_with(world, "1.11.0", health_check_command=[
        PY, "-c", "import sys; print('cannot reach the database'); sys.exit(3)"])
    before = fingerprint(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(CommandFailed) as caught:
            await manager.install_updates("bot", {})
        (session,) = (await manager.get_update_status(show_history=True)).recent_sessions
        report = await manager.check_for_updates("bot")
        with pytest.raises(ConfirmationRequired):
            await manager.install_updates("bot", {"to": "1.11.0"})
    assert "exited with status 3" in caught.value.message
    assert "cannot reach the database" in caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")
    assert fingerprint(world) == before
    assert session.status is UpdateStatus.FAILED
    assert "cannot reach the database" in (session.error_message or "")
    assert "rolled back" in (session.error_message or "")
    assert report.bot is not None and report.bot.version == "1.10.0"  # v1.11.0 is skipped
    assert any("v1.11.0 is skipped" in w for w in report.warnings)


async def test_named_bad_release_installs_only_with_force(world: World) -> None:
    release_with(world, "1.11.0", health_check_command=f"{PY} -c 'import sys; sys.exit(1)'")
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(CommandFailed):
            await manager.install_updates("bot", {})
    with (world.deploy / "data" / "settings.toml").open("a") as handle:
        handle.write('health_check_command = ""\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        session = await manager.install_updates("bot", {"to": "1.11.0", "force_update": True})
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    assert world.head() == world.tag_commit("v1.11.0")


async def test_post_update_command_that_breaks_the_database_is_undone(world: World) -> None:
    script = ("import sqlite3; c = sqlite3.connect('data/app.db'); "
              "c.execute('DELETE FROM guilds'); c.commit(); print('migration 7 failed'); "
              "raise SystemExit(1)")
    release_with(world, "1.11.0", post_update_command=[PY, "-c", script])
    before = fingerprint(world)
    bot = sqlite3.connect(world.deploy / "data" / "app.db")  # the bot's open connection
    try:
        async with await ReleaseManager.open(world.deploy) as manager:
            with pytest.raises(CommandFailed) as caught:
                await manager.install_updates("bot", {})
        assert bot.execute("SELECT COUNT(*) FROM guilds").fetchone() == (2,)
    finally:
        bot.close()
    assert "migration 7 failed" in caught.value.message
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert world.head() == world.tag_commit("v1.0.0")
    after = fingerprint(world)
    assert after[".env"] == before[".env"] and after["bot.py"] == before["bot.py"]


async def test_hanging_health_check_times_out_and_rolls_back(world: World) -> None:
    release_with(world, "1.11.0", health_check_command=[PY, "-c", "import time; time.sleep(60)"],
                 health_check_timeout=1)
    started = time.monotonic()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(CommandFailed) as caught:
            await manager.install_updates("bot", {})
    assert time.monotonic() - started < 30
    assert "timed out after 1 s" in caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")


async def test_rollback_on_failure_off_leaves_the_release_in_place(world: World) -> None:
    release_with(world, "1.11.0", health_check_command=[PY, "-c", "raise SystemExit(1)"])
    with (world.deploy / "data" / "settings.toml").open("a") as handle:
        handle.write("rollback_on_failure = false\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(CommandFailed) as caught:
            await manager.install_updates("bot", {})
    assert world.head() == world.tag_commit("v1.11.0")
    assert caught.value.message  # and the session says it was left in place:
    async with await ReleaseManager.open(world.deploy) as manager:
        session, _ = await manager.journal()
    assert "rollback_on_failure is off" in (session.error_message or "")


@pytest.mark.parametrize(("point", "status", "head_tag"), [
    ("install:verify", "failed", "v1.0.0"),
    ("install:checkout:done", "failed", "v1.0.0"),
    ("install:verify:done", "failed", "v1.0.0"),  # the post-update command never ran
    ("install:post_update", "failed", "v1.0.0"),
    ("install:post_update:done", "completed", "v1.11.0"),
    ("install:health_check", "completed", "v1.11.0"),
    ("install:health_check:done", "completed", "v1.11.0"),
])
def test_kill_9_at_each_step_after_the_checkout_is_settled(
    world: World, point: str, status: str, head_tag: str
) -> None:
    script = ("import sqlite3; c = sqlite3.connect('data/app.db'); "
              "c.execute(\"UPDATE guilds SET prefix = 'migrated'\"); c.commit()")
    release_with(world, "1.11.0", post_update_command=[PY, "-c", script],
                 health_check_command=[PY, "-c", "print('ok')"])
    kill_at(world.deploy, point, "install", "--type", "bot")
    result = subprocess.run(
        [PY, "-m", "gitrelease", "--root", str(world.deploy), "--json", "status", "--history",
         "--no-metrics"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    (session,) = json.loads(result.stdout)["recent_sessions"]
    assert session["status"] == status, session
    assert world.head() == world.tag_commit(head_tag)
    expected = [(1, "migrated"), (2, "migrated")] if status == "completed" else [
        (1, "!"), (2, "?")]
    assert guilds(world.deploy) == expected
    from gitrelease.deploy.quarantine import load_bad

    assert load_bad(world.deploy / "data") == {}  # a crash says nothing against the release


async def test_dry_run_lists_no_release_commands(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        plan = await manager.install_updates("bot", {"dry_run": True})
    assert isinstance(plan, InstallPlan)
    assert plan.steps == ["preflight", "fetch", "resolve", "backup", "checkout", "verify"]
