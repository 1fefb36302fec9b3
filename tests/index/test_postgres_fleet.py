"""The fleet's tables on a real PostgreSQL: one coordinator at a time, fenced by its epoch, and
the restart slots that keep a rollout's logins to Discord's pace."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import psycopg

from gitrelease.core.fleet import Assignment, Instance, Rollout, RolloutOptions, SessionStarts
from gitrelease.core.models import utcnow
from gitrelease.index.postgres import PostgresStore


def _rollout(*instances: str) -> Rollout:
    now = utcnow()
    rollout = Rollout("rol_test", "v2.0.0", "running", RolloutOptions(), "test", now)
    rollout.assignments = [Assignment(rollout.id, name, 0, "v1.0.0", "pending")
                           for name in instances]
    return rollout


def _instance(name: str, shards: list[int], bot: str | None = None) -> Instance:
    now = utcnow()
    starts = SessionStarts(1000, 990, now + timedelta(hours=20), 1, now, bot)
    return Instance(name, "host", "prod", shards, "1.0.0", "v1.0.0", "c" * 40, "running",
                    1, now, now, session_starts=starts if bot else None)


async def _terminate_lease(url: str) -> None:
    """What a coordinator losing its connection looks like to the server: its session ends,
    and the advisory lock with it."""
    held = ("FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> "
            "pg_backend_pid() AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"SELECT pg_terminate_backend(pid) {held}")
        for _ in range(100):  # the backend ends a moment after it is told to
            if not await (await conn.execute(f"SELECT 1 {held}")).fetchall():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the coordinator's session did not end")


async def test_one_coordinator_at_a_time_and_a_stale_one_is_fenced_off(pg_url: str) -> None:
    first = await PostgresStore.open(pg_url, "host-a")
    second = await PostgresStore.open(pg_url, "host-b")
    try:
        await first.create_rollout(_rollout("prod-1", "prod-2"))
        assert await first.take_rollout("rol_test", "a") == 1
        assert await second.take_rollout("rol_test", "b") is None  # a holds it
        assert await first.set_assignment("rol_test", "prod-1", "assigned", ("pending",),
                                          epoch=1)
        # a's connection is cut: the lock goes with it, b takes the rollout on.
        await _terminate_lease(pg_url)
        assert not await first.coordinating()
        assert await second.take_rollout("rol_test", "b") == 2
        taken = await second.get_rollout("rol_test")
        assert taken is not None and (taken.epoch, taken.coordinator) == (2, "b")
        # What a still believes it may do lands nowhere, and changes nothing.
        assert not await first.set_assignment("rol_test", "prod-2", "assigned", ("pending",),
                                              epoch=1)
        assert not await first.set_rollout("rol_test", "succeeded", None, ("running",),
                                           epoch=1)
        after = await second.get_rollout("rol_test")
        assert after is not None and after.status == "running"
        assert {a.instance_id: a.state for a in after.assignments} == {
            "prod-1": "assigned", "prod-2": "pending"}
        # b, at the epoch it holds, moves it; an agent's own writes are not fenced.
        assert await second.set_assignment("rol_test", "prod-2", "assigned", ("pending",),
                                           epoch=2)
        assert await first.set_assignment("rol_test", "prod-2", "installing", ("assigned",))
        # a takes it again only once b lets go, and b is then fenced off in turn.
        assert await first.take_rollout("rol_test", "a") is None
        await second.let_go()
        assert await first.take_rollout("rol_test", "a") == 3
        assert not await second.set_assignment("rol_test", "prod-1", "failed", ("assigned",),
                                               epoch=2)
    finally:
        await first.close()
        await second.close()


async def test_a_move_and_its_trail_entry_land_together_or_not_at_all(pg_url: str) -> None:
    """A coordinator cancelled right after it moved a part left the move without its trail
    entry (a wave seemed never assigned); the entry now comes with the move, one statement."""
    store = await PostgresStore.open(pg_url, "host-a")
    try:
        await store.create_rollout(_rollout("prod-1"))
        assert await store.take_rollout("rol_test", "a") == 1
        said = ("a", "assigned", "prod-1")
        assert await store.set_assignment("rol_test", "prod-1", "assigned", ("pending",),
                                          epoch=1, audit=said)
        # Not moved (wrong state, or fenced off by a newer epoch): no entry either.
        assert not await store.set_assignment("rol_test", "prod-1", "assigned", ("pending",),
                                              epoch=1, audit=said)
        assert not await store.set_rollout("rol_test", "succeeded", None, ("running",),
                                           epoch=7, audit=("a", "succeeded", "no"))
        assert await store.set_rollout("rol_test", "succeeded", None, ("running",),
                                       epoch=1, audit=("a", "succeeded", "done"))
        trail = [(e["actor"], e["action"], e["detail"])
                 for e in await store.rollout_trail("rol_test")]
        assert trail == [said, ("a", "succeeded", "done")]
    finally:
        await store.close()


async def test_restarts_take_turns_by_discord_bucket(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url, "coordinator")
    try:
        await store.create_rollout(_rollout("a", "b", "c", "other-bot"))
        for name, shards, bot in (("a", [0, 1], "111"), ("b", [2], "111"), ("c", [3], "111"),
                                  ("other-bot", [0], "222")):
            scoped = await PostgresStore.open(pg_url, name)
            await scoped.save_instance(_instance(name, shards, bot))
            await scoped.close()
        start = utcnow()
        # max_concurrency 2: a's shards 0 and 1 take buckets 0 and 1 for 5 s each.
        at_a = await store.restart_slot("rol_test", "a", [0, 1], 2, "111")
        assert (at_a - start).total_seconds() < 1
        at_b = await store.restart_slot("rol_test", "b", [2], 2, "111")  # bucket 0: after a
        assert abs((at_b - at_a).total_seconds() - 5) < 0.01
        at_c = await store.restart_slot("rol_test", "c", [3], 2, "111")  # bucket 1: after a
        assert abs((at_c - at_a).total_seconds() - 5) < 0.01
        # Another bot's logins are its own: no wait for this one's.
        at_other = await store.restart_slot("rol_test", "other-bot", [0], 2, "222")
        assert (at_other - start).total_seconds() < 1
        # Asked again with max_concurrency 1 (one bucket): after a's two logins (10 s) and
        # c's one (given at +5 s, so also done at +10 s).
        again = await store.restart_slot("rol_test", "b", [2], 1, "111")
        assert abs((again - at_a).total_seconds() - 10) < 0.01
        kept = await store.get_rollout("rol_test")
        assert kept is not None and all(a.restart_at for a in kept.assignments)
    finally:
        await store.close()


async def test_an_instance_reports_its_bots_session_starts(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url, "prod-1")
    try:
        await store.save_instance(_instance("prod-1", [0, 1], "111"))
        (seen,) = await store.list_instances()
        assert seen.session_starts is not None
        assert (seen.session_starts.remaining, seen.session_starts.bot_id) == (990, "111")
        assert json.loads(json.dumps(seen.to_dict()))["session_starts"]["total"] == 1000
    finally:
        await store.close()
