"""Schedules: next runs across DST and month ends, and run-due exactly once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gitrelease.cli.main import main
from gitrelease.core.errors import IndexStoreError, InvalidInput
from gitrelease.core.models import ScheduleType, UpdateSchedule, UpdateType
from gitrelease.deploy.schedule_times import next_run
from gitrelease.manager import ReleaseManager
from tests.conftest import World, git

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def schedule(kind: ScheduleType, at: str, days: list[str]) -> UpdateSchedule:
    return UpdateSchedule("s", "s", kind, at, days, [UpdateType.BOT], True, "t",
                          datetime(2024, 1, 1, tzinfo=UTC), None, None, 10)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "kind", "at", "days", "after", "expected"), [
    # London springs forward 2024-03-31 01:00 -> 02:00: 01:30 does not exist, 02:00 runs.
    (LONDON, ScheduleType.DAILY, "01:30", [], utc(2024, 3, 30, 12), utc(2024, 3, 31, 1, 0)),
    (LONDON, ScheduleType.DAILY, "01:30", [], utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 30)),
    # London falls back 2024-10-27 02:00 -> 01:00: 01:30 happens twice, it runs once.
    (LONDON, ScheduleType.DAILY, "01:30", [], utc(2024, 10, 26, 12), utc(2024, 10, 27, 0, 30)),
    (LONDON, ScheduleType.DAILY, "01:30", [], utc(2024, 10, 27, 0, 30),
     utc(2024, 10, 28, 1, 30)),
    # New York springs forward 2024-03-10 02:00 -> 03:00.
    (NEW_YORK, ScheduleType.DAILY, "02:30", [], utc(2024, 3, 9, 12), utc(2024, 3, 10, 7, 0)),
    (NEW_YORK, ScheduleType.DAILY, "03:00", [], utc(2024, 11, 2, 12), utc(2024, 11, 3, 8, 0)),
    (LONDON, ScheduleType.WEEKLY, "03:00", ["sunday", "wednesday"], utc(2024, 2, 1),
     utc(2024, 2, 4, 3, 0)),
    # The 31st in a month without one runs on its last day, leap year or not.
    (LONDON, ScheduleType.MONTHLY, "03:00", ["31"], utc(2024, 2, 1), utc(2024, 2, 29, 3, 0)),
    (LONDON, ScheduleType.MONTHLY, "03:00", ["30"], utc(2023, 2, 1), utc(2023, 2, 28, 3, 0)),
    (LONDON, ScheduleType.MONTHLY, "03:00", ["1", "31"], utc(2024, 4, 2), utc(2024, 4, 30, 2, 0)),
    (LONDON, ScheduleType.CUSTOM, "04:00", ["monday", "thursday"], utc(2024, 2, 2),
     utc(2024, 2, 5, 4, 0)),
    (NEW_YORK, ScheduleType.CUSTOM, "00:00", ["0 4 * * 1"], utc(2024, 2, 1),
     utc(2024, 2, 5, 9, 0)),
])
def test_next_run(zone: ZoneInfo, kind: ScheduleType, at: str, days: list[str],
                  after: datetime, expected: datetime) -> None:
    assert next_run(schedule(kind, at, days), after, zone) == expected


@pytest.mark.parametrize(("args", "field"), [
    (("hourly", "03:00", None, "bot"), "schedule_type"),
    (("daily", "3am", None, "bot"), "update_time"),
    (("daily", "24:00", None, "bot"), "update_time"),
    (("daily", "03:00", "monday", "bot"), "update_days"),
    (("weekly", "03:00", None, "bot"), "update_days"),
    (("weekly", "03:00", "funday", "bot"), "update_days"),
    (("monthly", "03:00", "0,32", "bot"), "update_days"),
    (("custom", "03:00", "61 * * * *", "bot"), "update_days"),
    (("daily", "03:00", None, "dependencies"), "update_types"),  # not in allowed_update_types
    (("daily", "03:00", None, ""), "update_types"),
    (("daily", "03:00", None, "bot,rollback"), "update_types"),
])
async def test_bad_schedules_change_nothing(
    world: World, args: tuple, field: str
) -> None:
    before = world.state()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.add_schedule(*args)
    assert caught.value.field == field
    assert world.state() == before


async def test_max_schedules(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text("max_schedules = 1\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.add_schedule("daily", "03:00", None, "bot")
        with pytest.raises(InvalidInput):
            await manager.add_schedule("daily", "04:00", None, "bot")


async def test_run_due_runs_each_due_schedule_once_even_with_two_runners(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text('timezone = "Europe/London"\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        daily = await manager.add_schedule("daily", "03:00", None, "bot", actor="ops")
        assert daily.next_run is not None
        due = daily.next_run + timedelta(minutes=5)
        async with await ReleaseManager.open(world.deploy) as other:
            first, second = await asyncio.gather(manager.run_due_schedules(due),
                                                 other.run_due_schedules(due))
        again = await manager.run_due_schedules(due)
        (after,) = await manager.list_schedules()
        info = await manager.get_update_status(show_history=True, show_metrics=False)
    assert len(first.ran) + len(second.ran) == 1
    assert again.ran == [] and again.skipped == []
    assert after.last_run == due and after.next_run == daily.next_run + timedelta(days=1)
    assert after.last_outcome == "bot: completed"
    assert world.head() == world.tag_commit("v1.10.0")
    (session,) = info.recent_sessions
    assert session.initiated_by == f"schedule:{daily.id}"
    assert session.backup_id is not None  # require_backup_before_schedule


async def test_a_run_missed_beyond_the_grace_period_is_skipped(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        daily = await manager.add_schedule("daily", "03:00", None, "bot")
        assert daily.next_run is not None
        report = await manager.run_due_schedules(daily.next_run + timedelta(hours=5))
        (after,) = await manager.list_schedules()
    assert report.ran == [] and len(report.skipped) == 1
    assert (after.last_outcome or "").startswith("skipped: missed by 300 minutes")
    assert world.head() == world.tag_commit("v1.0.0")


async def test_disabled_schedules_never_run(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        added = await manager.add_schedule("daily", "03:00", None, "bot", enabled=False)
        assert added.next_run is None
        report = await manager.run_due_schedules(datetime.now(UTC) + timedelta(days=3))
        enabled = await manager.set_schedule_enabled(added.id, True)
        assert enabled.next_run is not None
        await manager.remove_schedule(added.id)
        assert await manager.list_schedules() == []
    assert report.ran == []


def test_schedule_cli(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--root", str(world.deploy), "--json"]
    assert main([*root, "schedule", "add", "--type", "weekly", "--time", "03:00", "--days",
                 "sunday", "--update-types", "packages,bot"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["update_types"] == ["bot", "packages"] and added["update_days"] == ["sunday"]
    assert main([*root, "schedule", "list"]) == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [added["id"]]
    assert main([*root, "schedule", "disable", added["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["enabled"] is False
    assert main([*root, "schedule", "remove", "sch_nope"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "invalid_input"
    assert main([*root, "schedule", "run-due"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == []
    assert main([*root, "schedule", "add", "--type", "daily", "--update-types", "bot",
                 "--time", "9:00"]) == 2


async def test_status_analytics_over_a_seeded_index(world: World) -> None:
    from gitrelease.core.models import UpdateSession, UpdateStatus, utcnow

    async with await ReleaseManager.open(world.deploy) as manager:
        store = await manager.index()
        now = utcnow()
        seeds = [("bot", UpdateStatus.COMPLETED, 10), ("bot", UpdateStatus.COMPLETED, 30),
                 ("bot", UpdateStatus.FAILED, 20), ("rollback", UpdateStatus.COMPLETED, 40)]
        for n, (kind, status, seconds) in enumerate(seeds):
            started = now - timedelta(hours=n + 1)
            await store.create_session(UpdateSession(
                f"s{n}", UpdateType(kind), status, 100, started,
                started + timedelta(seconds=seconds), "2", "1", None, [], 5, False, "t",
                from_commit="a" * 40, to_commit="b" * 40))
        added = await manager.add_schedule("daily", "03:00", None, "bot")
        await manager.check_for_updates("bot")
        info = await manager.get_update_status("1d")
    stats = info.update_statistics
    assert stats["by_type"] == {"bot": {"completed": 2, "failed": 1},
                                "rollback": {"completed": 1}}
    assert stats["rollbacks"] == 1
    assert stats["success_rate"] == 75.0
    assert stats["mean_duration_seconds"] == pytest.approx(25.0, abs=0.01)
    assert stats["longest_duration_seconds"] == pytest.approx(40.0, abs=0.01)
    assert stats["next_scheduled_run"] == added.next_run.isoformat()  # type: ignore[union-attr]
    assert info.disk_usage["enough_free"] is True
    assert stats["last_check"]["check_type"] == "bot"
    assert stats["last_check"]["total_updates"] == 1


async def test_the_bot_loop_runs_a_run_missed_within_grace_then_sleeps(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        daily = await manager.add_schedule("daily", "03:00", None, "bot")
        store = await manager.index()
        daily.next_run = datetime.now(UTC) - timedelta(minutes=10)  # the bot was down
        await store.save_schedule(daily)
        stop = asyncio.Event()
        loop = asyncio.ensure_future(manager.run_schedules_forever(stop))
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            (current,) = await manager.list_schedules()
            if current.last_run is not None:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(loop, timeout=10)
    assert current.last_outcome == "bot: completed"
    assert current.next_run is not None and current.next_run > datetime.now(UTC)
    assert world.head() == world.tag_commit("v1.10.0")


async def test_a_listener_hears_each_run_start_and_end(world: World) -> None:
    from gitrelease.deploy.scheduler import ScheduleEvent, Scheduler, Stage

    heard: list[ScheduleEvent] = []

    async def listener(event: ScheduleEvent) -> None:
        heard.append(event)
        raise RuntimeError("a broken announcement")  # must not stop the run

    async with await ReleaseManager.open(world.deploy) as manager:
        daily = await manager.add_schedule("daily", "03:00", None, "bot")
        assert daily.next_run is not None
        report = await Scheduler(manager.deployment).run_due(daily.next_run, listener=listener)
    assert [e.stage for e in heard] == [Stage.STARTED, Stage.COMPLETED]
    assert heard[-1].detail == "bot: completed" and heard[-1].schedule.id == daily.id
    assert len(report.ran) == 1
    assert world.head() == world.tag_commit("v1.10.0")


async def test_a_listener_hears_a_failed_and_a_skipped_run(world: World) -> None:
    from gitrelease.deploy.scheduler import ScheduleEvent, Scheduler, Stage

    heard: list[ScheduleEvent] = []

    async def listener(event: ScheduleEvent) -> None:
        heard.append(event)

    tracked = git(world.deploy, "ls-files").split()[0]
    (world.deploy / tracked).write_text("edited by hand\n")  # the install refuses a dirty tree
    async with await ReleaseManager.open(world.deploy) as manager:
        daily = await manager.add_schedule("daily", "03:00", None, "bot")
        assert daily.next_run is not None
        await Scheduler(manager.deployment).run_due(daily.next_run, listener=listener)
        (after,) = await manager.list_schedules()
        assert after.next_run is not None
        await Scheduler(manager.deployment).run_due(after.next_run + timedelta(hours=5),
                                         listener=listener)
    assert [e.stage for e in heard] == [Stage.STARTED, Stage.FAILED, Stage.SKIPPED]
    assert heard[1].detail.startswith("bot: failed (")
    assert heard[2].detail.startswith("skipped: missed by 300 minutes")
    assert world.head() == world.tag_commit("v1.0.0")


async def _until(predicate: object, seconds: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_bot_loop_wakes_for_a_new_schedule_and_reads_settings_again(
        world: World) -> None:
    """The loop sleeps an hour when nothing is due; a wake ends the sleep, and a setting
    changed by another process (scheduling_enabled) is seen on the next turn."""
    from gitrelease.deploy.scheduler import Scheduler

    async with await ReleaseManager.open(world.deploy) as other:
        await other.change_setting("schedule", "scheduling_enabled", "false")
    async with await ReleaseManager.open(world.deploy) as manager:
        stop, wake = asyncio.Event(), asyncio.Event()
        loop = asyncio.ensure_future(Scheduler(manager.deployment).run_forever(stop, wake=wake))
        async with await ReleaseManager.open(world.deploy) as other:
            daily = await other.add_schedule("daily", "03:00", None, "bot")
            store = await other.index()
            daily.next_run = datetime.now(UTC) - timedelta(minutes=1)
            await store.save_schedule(daily)
        wake.set()
        await asyncio.sleep(1.0)
        (current,) = await manager.list_schedules()
        assert current.last_run is None  # scheduling is off: due, but not run
        async with await ReleaseManager.open(world.deploy) as other:
            await other.change_setting("schedule", "scheduling_enabled", "true")
        wake.set()

        async def ran() -> bool:
            return (await manager.list_schedules())[0].last_run is not None

        await _until(ran)
        stop.set()
        await asyncio.wait_for(loop, timeout=10)
    assert world.head() == world.tag_commit("v1.10.0")


async def test_the_bot_loop_does_not_spin_while_scheduling_is_off(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """An overdue schedule that does not run because scheduling is off must not make the loop
    wake every second: it sleeps the long sleep (a wake or a settings change ends it)."""
    from gitrelease.deploy import scheduler
    from gitrelease.deploy.scheduler import Scheduler

    sleeps: list[float] = []
    real_first_of = scheduler._first_of

    async def recorded(stop: asyncio.Event, wake: asyncio.Event | None, *,
                       timeout: float) -> None:
        sleeps.append(timeout)
        if len(sleeps) >= 2:
            stop.set()
        await real_first_of(stop, wake, timeout=0.01)

    monkeypatch.setattr(scheduler, "_first_of", recorded)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.change_setting("schedule", "scheduling_enabled", "false")
        daily = await manager.add_schedule("daily", "03:00", None, "bot")
        store = await manager.index()
        daily.next_run = datetime.now(UTC) - timedelta(minutes=1)
        await store.save_schedule(daily)
        await Scheduler(manager.deployment).run_forever(asyncio.Event(), longest_sleep=600)
        assert sleeps == [600, 600]


@pytest.mark.parametrize("error", [RuntimeError("index went away"),
                                   IndexStoreError("database is locked")])
async def test_the_bot_loop_survives_an_error_and_tries_again_soon(
        world: World, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, error: Exception) -> None:
    """Neither an engine error (a locked index) nor one nobody foresaw ends scheduling or
    puts it to sleep for an hour: the next turn comes after _RETRY_BUSY."""
    from gitrelease.deploy import scheduler
    from gitrelease.deploy.scheduler import Scheduler

    sleeps: list[float] = []
    turns = 0

    async def broken_once(self: Scheduler, **_kwargs: object) -> None:
        nonlocal turns
        turns += 1
        if turns == 1:
            raise error

    async def recorded(stop: asyncio.Event, wake: asyncio.Event | None, *,
                       timeout: float) -> None:
        sleeps.append(timeout)
        if len(sleeps) == 2:
            stop.set()

    monkeypatch.setattr(Scheduler, "run_due", broken_once)
    monkeypatch.setattr(scheduler, "_first_of", recorded)
    async with await ReleaseManager.open(world.deploy) as manager:
        await Scheduler(manager.deployment).run_forever(asyncio.Event(), longest_sleep=600)
    assert turns == 2
    assert sleeps == [scheduler._RETRY_BUSY, 600]
    assert ("database is locked" if isinstance(error, IndexStoreError)
            else "failed unexpectedly") in caplog.text
