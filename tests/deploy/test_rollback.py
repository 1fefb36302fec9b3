"""Rollback: code and data back to an older release, as one."""

from __future__ import annotations

import json
import sqlite3

import pytest

from gitrelease.cli.main import main
from gitrelease.core.errors import ConfirmationRequired, InvalidInput, NoSuchVersion, TargetChanged
from gitrelease.core.models import UpdateStatus, UpdateType
from gitrelease.manager import ReleaseManager
from tests.conftest import ENV_SECRET, World, git, guilds, kill_at

YES = {"confirm": True}



async def installed_then_changed(world: World) -> None:
    """v1.0.0 -> v1.10.0 (a pre-update backup at v1.0.0), then the bot changes its data."""
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("bot", {})
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (3, '$')")
        db.execute("UPDATE guilds SET prefix = 'new'")
    db.close()
    (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")


@pytest.mark.parametrize("target", ["previous", "last_backup", "1.0.0", "v1.0.0"])
async def test_rollback_brings_back_code_and_data(world: World, target: str) -> None:
    await installed_then_changed(world)
    bot = sqlite3.connect(world.deploy / "data" / "app.db")  # open throughout, like the bot's
    try:
        async with await ReleaseManager.open(world.deploy) as manager:
            session = await manager.rollback_to_version(target, {**YES, "initiated_by": "ops"})
        assert bot.execute("SELECT * FROM guilds ORDER BY id").fetchall() == [(1, "!"), (2, "?")]
    finally:
        bot.close()
    assert world.head() == world.tag_commit("v1.0.0")
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert session.update_type is UpdateType.ROLLBACK
    assert session.status is UpdateStatus.COMPLETED
    assert session.initiated_by == "ops"
    assert session.steps_completed == ["preflight", "backup", "checkout", "verify", "restore"]


async def test_keeping_todays_config(world: World) -> None:
    await installed_then_changed(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.rollback_to_version("previous", {**YES, "restore_config": False})
    assert guilds(world.deploy) == [(1, "!"), (2, "?")]
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"


async def test_no_backup_of_the_target_needs_force(world: World) -> None:
    await installed_then_changed(world)
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.rollback_to_version("1.9.0", YES)
        assert "leave the data as it is now" in caught.value.message
        assert caught.value.details["commit"] == world.tag_commit("v1.9.0")
        assert world.head() == world.tag_commit("v1.10.0")
        before = world.state()
        with pytest.raises(TargetChanged):  # confirmed for another commit: nothing is done
            await manager.rollback_to_version("1.9.0", {
                **YES, "force": True, "expect_commit": world.tag_commit("v1.0.0")})
        assert world.state() == before
        session = await manager.rollback_to_version("1.9.0", {
            **YES, "force": True, "expect_commit": caught.value.details["commit"]})
    assert world.head() == world.tag_commit("v1.9.0")
    assert guilds(world.deploy)[0] == (1, "new")  # the data stayed
    assert any("data was left as it was" in w for w in session.warnings)


async def test_previous_needs_a_history(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(NoSuchVersion):
            await manager.rollback_to_version("previous", YES)
        with pytest.raises(NoSuchVersion):
            await manager.rollback_to_version("last_backup", YES)


@pytest.mark.parametrize(("target", "options"), [
    ("1.0.0", {}), ("1.0.0", {"confirm": False}), ("1.0.0", {"confirm": "yes"}),
    ("1.0.0", {"confirm": True, "force": "yes"}), ("1.0.0", {"confirm": True, "colour": 1}),
    ("--upload-pack=x", YES), ("", YES), ("latest!", YES),
    ("1.0.0", {**YES, "expect_commit": "HEAD"}), ("1.0.0", {**YES, "expect_commit": 1}),
])
async def test_bad_rollback_requests_change_nothing(
    world: World, target: str, options: dict
) -> None:
    await installed_then_changed(world)
    before = world.state()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(InvalidInput):
            await manager.rollback_to_version(target, options)
    assert world.state() == before


async def test_failed_restore_undoes_the_rollback(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await installed_then_changed(world)
    from gitrelease.state import placing

    def broken(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(placing, "_apply", broken)
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(Exception):  # noqa: B017 - the restore's own error, whichever
            await manager.rollback_to_version("previous", YES)
        session, _ = await manager.journal()
    assert world.head() == world.tag_commit("v1.10.0")
    assert guilds(world.deploy)[0] == (1, "new")
    assert session.status is UpdateStatus.FAILED
    assert "undone" in (session.error_message or "")


def test_rollback_cli(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(world.deploy), "install", "--type", "bot"]) == 0
    capsys.readouterr()
    code = main(["--root", str(world.deploy), "--json", "rollback", "previous"])
    assert code == 15  # says what a rollback does and how to go ahead, not "invalid --yes"
    assert json.loads(capsys.readouterr().out)["error"]["message"].startswith(
        "rollback changes the code and data: add --yes")
    assert main(["--root", str(world.deploy), "--json", "rollback", "previous", "--yes"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert world.head() == world.tag_commit("v1.0.0")
    assert main(["--root", str(world.deploy), "status", "--history"]) == 0
    assert "rollback 1.10.0 -> 1.0.0" in capsys.readouterr().out
    git(world.deploy, "status")


@pytest.mark.parametrize("point", ["rollback:verify:done", "rollback:restore", "rollback:checkout"])
def test_kill_9_during_a_rollback_is_undone_at_the_next_start(world: World, point: str) -> None:
    import asyncio

    asyncio.run(installed_then_changed(world))
    kill_at(world.deploy, point, "rollback", "previous", "--yes")
    assert main(["--root", str(world.deploy), "--json", "status", "--history",
                 "--no-metrics"]) == 0
    assert world.head() == world.tag_commit("v1.10.0")
    assert guilds(world.deploy)[0] == (1, "new")  # the data is as it was before the rollback
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"
