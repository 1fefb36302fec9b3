"""The PostgreSQL index against a real server: migrations applied once under concurrency, one
deployment's rows invisible to another's, a schedule's run claimed by exactly one runner on
any host, a clear error (never a password) when the server cannot be used, and a deployment
that keeps its whole index there."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest

from gitrelease.core.errors import IndexStoreError
from gitrelease.core.models import (
    BackupType,
    ScheduleType,
    UpdateSchedule,
    UpdateStatus,
    UpdateType,
    utcnow,
)
from gitrelease.index.postgres import PostgresStore
from gitrelease.index.postgres_schema import MIGRATIONS
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.index.backends import Backend
from tests.index.test_store import make_session
from tests.index.test_store_queries import make_backup


def _schedule(schedule_id: str, due: object) -> UpdateSchedule:
    return UpdateSchedule(schedule_id, "nightly", ScheduleType.DAILY, "03:00", [],
                          [UpdateType.ALL], True, "test", utcnow(), None, due,  # type: ignore[arg-type]
                          10)


async def test_deployments_starting_at_once_migrate_the_server_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(pg_url, f"host-{n}:/srv/bot")
                                    for n in range(6)))
    for store in stores:
        await store.close()
    backend = Backend("postgres", pg_url)
    assert backend.read_elsewhere("SELECT one, version FROM gitrelease_schema") == [
        (1, len(MIGRATIONS))]
    again = await PostgresStore.open(pg_url, "host-0:/srv/bot")  # nothing applied twice
    await again.close()


async def test_a_server_with_a_newer_schema_is_refused(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url, "a")
    await store.close()
    Backend("postgres", pg_url).write_elsewhere("UPDATE gitrelease_schema SET version = 99")
    with pytest.raises(IndexStoreError) as caught:
        await PostgresStore.open(pg_url, "a")
    assert "newer" in caught.value.message and "upgrade gitrelease" in caught.value.hint


async def test_each_deployment_sees_only_its_own_rows(pg_url: str) -> None:
    one = await PostgresStore.open(pg_url, "host-a:/srv/bot")
    other = await PostgresStore.open(pg_url, "host-b:/srv/bot")
    try:
        before = await other.change_stamp()
        await one.create_session(make_session("s1", UpdateStatus.INSTALLING, timedelta(0)))
        await one.add_step("s1", "fetch", "started")
        await one.save_backup(make_backup(1, utcnow(), kind=BackupType.FULL, size=5,
                                          name="same_name"))
        await one.save_schedule(_schedule("sch_1", utcnow()))
        await one.audit("cli", "install", "1.1.0", "completed")
        assert await other.get_session("s1") is None and await other.unfinished_sessions() == []
        assert await other.list_backups() == [] and await other.list_schedules() == []
        assert await other.audit_entries() == [] and await other.steps("s1") == []
        assert (await other.backup_summary()).total == 0
        assert await other.change_stamp() == before  # another scope's writes are not ours
        # The same names in another deployment are its own.
        await other.save_backup(make_backup(1, utcnow(), kind=BackupType.CONFIG, size=1,
                                            name="same_name"))
        assert (await one.get_backup("same_name")).backup_type is BackupType.FULL  # type: ignore[union-attr]
        assert (await other.get_backup("same_name")).backup_type is BackupType.CONFIG  # type: ignore[union-attr]
    finally:
        await one.close()
        await other.close()


async def test_a_due_run_is_claimed_by_exactly_one_runner(pg_url: str) -> None:
    due = utcnow().replace(microsecond=0)
    runners = [await PostgresStore.open(pg_url, "host-a:/srv/bot") for _ in range(5)]
    try:
        await runners[0].save_schedule(_schedule("sch_1", due))
        following = due + timedelta(days=1)
        won = await asyncio.gather(*(r.claim_schedule("sch_1", due, following)
                                     for r in runners))
        assert sorted(won) == [False, False, False, False, True]
        (stored,) = await runners[3].list_schedules()
        assert stored.next_run == following
    finally:
        for runner in runners:
            await runner.close()


async def test_an_unreachable_server_is_a_clear_error_without_its_password() -> None:
    url = "postgresql://bot:hunter2-secret@127.0.0.1:1/fleet"
    with pytest.raises(IndexStoreError) as caught:
        await PostgresStore.open(url, "a", timeout=2)
    shown = caught.value.message + caught.value.hint
    assert "postgresql://bot@127.0.0.1:1/fleet" in shown
    assert "hunter2" not in shown and "index_url" in shown


async def test_a_deployment_keeps_its_whole_index_on_the_server(
        world: World, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", pg_url)
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("config", {"backup_name": "on_the_server"})
        session = await manager.install_updates("bot", {"initiated_by": "test"})
        assert session.status is UpdateStatus.COMPLETED
        store = await manager.index()
        assert isinstance(store, PostgresStore)
    assert not (world.deploy / "data" / "update_manager.db").exists()  # no SQLite beside it
    async with await ReleaseManager.open(world.deploy) as manager:  # what another process sees
        listed = await manager.list_backups({"time_range": "all"})
        assert backup.id in [b.id for b in listed]
        status = await manager.get_update_status("7d", show_history=True)
        assert session.id in [s.id for s in status.recent_sessions]
    scopes = Backend("postgres", pg_url).read_elsewhere(
        "SELECT DISTINCT scope FROM update_sessions")
    assert scopes == [(f"{socket.gethostname()}:{world.deploy}",)]


async def test_an_unreachable_index_stops_an_install_before_it_changes_anything(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITRELEASE_INDEX_URL", "postgresql://bot@127.0.0.1:1/fleet")
    head = world.head()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(IndexStoreError):
            await manager.install_updates("bot", {"initiated_by": "test"})
    assert world.head() == head
    assert not list((world.deploy / "data").glob("backups/*"))
