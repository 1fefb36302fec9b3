"""The fleet's tables of the PostgreSQL index: what each deployment reports of itself, and the
rollouts with each instance's part of them. Read across scopes: they are the fleet's, not one
deployment's. Every change of state is a compare-and-set on the state it expects, so two
processes acting on one rollout (a coordinator and its successor, an agent and a coordinator)
never both move it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, IndexStoreError
from gitrelease.core.fleet import (
    ACTIVE,
    Assignment,
    Instance,
    Rollout,
    RolloutOptions,
    SessionStarts,
)
from gitrelease.core.models import utcnow
from gitrelease.index.postgres_schema import COORDINATOR_LOCK, RESTART_LOCK

__all__ = ["FleetTables", "RolloutConflict"]

_INSTANCE_COLUMNS = ("id", "host", "grp", "shards", "version", "tag", "commit_id", "health",
                     "pid", "started_at", "heartbeat_at", "session_starts")
_ROLLOUT_COLUMNS = ("id", "target", "status", "options", "created_by", "created_at", "reason",
                    "epoch", "coordinator")
_ASSIGNMENT_COLUMNS = ("rollout_id", "instance_id", "wave", "baseline", "state", "detail",
                       "started_at", "healthy_since", "restart_at", "revert_to")
#: A coordinator's write lands only while the rollout's epoch is the one it took it on with.
_FENCE = (" AND (%s::integer IS NULL OR "
          "(SELECT epoch FROM fleet_rollouts WHERE id = %s) = %s)")


Audit = tuple[str, str, str]
"""A trail entry written with the move it records: (actor, action, detail)."""


class RolloutConflict(GitReleaseError):
    """Another rollout is running: one at a time, fleet-wide."""

    code = "rollout_conflict"
    exit_code = 2
    default_hint = "watch it with gitrelease fleet rollouts, or end it with gitrelease fleet abort"


def _at(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _rollout(r: Sequence[Any]) -> Rollout:
    """A rollout from its `_ROLLOUT_COLUMNS`."""
    return Rollout(r[0], r[1], r[2], RolloutOptions(**json.loads(r[3])), r[4],
                   r[5].astimezone(UTC), r[6], epoch=r[7], coordinator=r[8])


def _assignment(r: Sequence[Any]) -> Assignment:
    return Assignment(r[0], r[1], r[2], r[3], r[4], r[5], _at(r[6]), _at(r[7]), _at(r[8]),
                      r[9])


def _buckets(shards: Sequence[int], max_concurrency: int) -> dict[int, int]:
    """How many of these shards log in through each of Discord's buckets (shard id modulo
    max_concurrency); a bot without shard ids is one shard, 0."""
    counts: dict[int, int] = {}
    for shard in shards or [0]:
        counts[shard % max_concurrency] = counts.get(shard % max_concurrency, 0) + 1
    return counts


class FleetTables:
    """Mixed into `PostgresStore`, whose `_run`, `_rows`, `_pool` and `scope` it uses."""

    scope: str
    shown: str
    _pool: Any
    _url: str
    _listener: Any
    _lease: Any  # the connection holding COORDINATOR_LOCK, while this process coordinates

    if TYPE_CHECKING:  # the store's own
        async def _run(self, sql: str, params: Sequence[Any] = ()) -> int: ...
        async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            ...

    # -- instances ---------------------------------------------------------------------------

    async def save_instance(self, instance: Instance) -> None:
        """This deployment's report of itself (its id is always this store's scope)."""
        marks = ", ".join("%s" for _ in _INSTANCE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _INSTANCE_COLUMNS[1:])
        await self._run(
            f"INSERT INTO fleet_instances ({', '.join(_INSTANCE_COLUMNS)}) "  # noqa: S608
            f"VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}",
            (self.scope, instance.host, instance.group, json.dumps(instance.shards),
             instance.version, instance.tag, instance.commit, instance.health, instance.pid,
             instance.started_at, instance.heartbeat_at,
             json.dumps(instance.session_starts.to_dict()) if instance.session_starts
             else None))

    async def list_instances(self) -> list[Instance]:
        found = await self._rows(
            f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM fleet_instances "  # noqa: S608
            "ORDER BY grp, id")
        return [Instance(id=r[0], host=r[1], group=r[2], shards=json.loads(r[3]),
                         version=r[4], tag=r[5], commit=r[6], health=r[7], pid=r[8],
                         started_at=_at(r[9]), heartbeat_at=r[10].astimezone(UTC),
                         session_starts=SessionStarts.from_dict(json.loads(r[11]))
                         if r[11] else None)
                for r in found]

    async def fleet_changed(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a rollout or an assignment to change (NOTIFY on
        a connection of its own, LISTENing); True if one did. A lost connection is made
        again at the next call: the caller's polling covers the gap."""
        import psycopg

        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=5)
                await self._listener.execute("LISTEN gitrelease_fleet")
            async for _note in self._listener.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except (psycopg.Error, OSError):
            if self._listener is not None:
                await self._listener.close()
            self._listener = None
            return False

    # -- rollouts ----------------------------------------------------------------------------

    async def create_rollout(self, rollout: Rollout) -> None:
        """The rollout and every assignment, in one transaction; `RolloutConflict` if
        another is active (a unique index holds one at a time, whoever asks)."""
        import psycopg

        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO fleet_rollouts (id, target, status, options, created_by, "
                    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (rollout.id, rollout.target, rollout.status,
                     json.dumps(rollout.options.to_dict()), rollout.created_by,
                     rollout.created_at, rollout.created_at))
                for a in rollout.assignments:
                    await conn.execute(
                        f"INSERT INTO fleet_assignments ({', '.join(_ASSIGNMENT_COLUMNS)}, "  # noqa: S608
                        f"updated_at) VALUES ({', '.join(['%s'] * 11)})",
                        (a.rollout_id, a.instance_id, a.wave, a.baseline, a.state, a.detail,
                         a.started_at, a.healthy_since, a.restart_at, a.revert_to, utcnow()))
        except psycopg.errors.UniqueViolation:
            active = await self.active_rollout()
            raise RolloutConflict(f"rollout {active.id if active else '?'} to "
                                  f"{active.target if active else '?'} is still "
                                  f"{active.status if active else 'active'}") from None

    async def get_rollout(self, rollout_id: str) -> Rollout | None:
        found = await self._rows(
            f"SELECT {', '.join(_ROLLOUT_COLUMNS)} FROM fleet_rollouts "  # noqa: S608
            "WHERE id = %s", (rollout_id,))
        if not found:
            return None
        rollout = _rollout(found[0])
        rollout.assignments = [_assignment(a) for a in await self._rows(
            f"SELECT {', '.join(_ASSIGNMENT_COLUMNS)} FROM fleet_assignments "  # noqa: S608
            "WHERE rollout_id = %s ORDER BY wave, instance_id", (rollout_id,))]
        return rollout

    async def active_rollout(self) -> Rollout | None:
        found = await self._rows("SELECT id FROM fleet_rollouts WHERE status = ANY(%s)",
                                 (list(ACTIVE),))
        return await self.get_rollout(found[0][0]) if found else None

    async def latest_rollouts(self, limit: int = 10) -> list[Rollout]:
        found = await self._rows("SELECT id FROM fleet_rollouts ORDER BY created_at DESC "
                                 "LIMIT %s", (limit,))
        return [r for r in [await self.get_rollout(row[0]) for row in found] if r]

    async def set_rollout(self, rollout_id: str, status: str, reason: str | None,
                          expect: Sequence[str], *, epoch: int | None = None,
                          audit: Audit | None = None) -> bool:
        """Move the rollout to `status` if it is in one of `expect` (and, for a
        coordinator, still at its `epoch`); `audit` (actor, action, detail) goes into the
        trail in the same statement, so the trail never misses a move."""
        return await self._moved(
            "UPDATE fleet_rollouts SET status = %s, reason = COALESCE(%s, reason), "
            "updated_at = %s WHERE id = %s AND status = ANY(%s) "
            "AND (%s::integer IS NULL OR epoch = %s)",
            (status, reason, utcnow(), rollout_id, list(expect), epoch, epoch),
            rollout_id, audit)

    async def _moved(self, update: str, params: Sequence[Any], rollout_id: str,
                     audit: Audit | None) -> bool:
        """Run one fenced UPDATE of one row; with `audit`, its trail entry is inserted by the
        same statement only when the row moved (one statement: one transaction)."""
        if audit is None:
            return await self._run(update, params) == 1
        return await self._run(
            f"WITH moved AS ({update} RETURNING 1) "  # noqa: S608
            "INSERT INTO fleet_audit (rollout_id, at, actor, action, detail) "
            "SELECT %s, %s, %s, %s, %s FROM moved",
            (*params, rollout_id, utcnow(), *audit)) == 1

    # -- the coordinator's lease -------------------------------------------------------------

    async def take_rollout(self, rollout_id: str, who: str) -> int | None:
        """Become the rollout's coordinator: hold the coordinators' advisory lock on a
        connection of its own (the server lets go of it when this process or its connection
        dies) and bump the rollout's fencing epoch, which is returned. None while another
        process coordinates."""
        import psycopg

        try:
            if self._lease is None or self._lease.closed:
                self._lease = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=5)
            cursor = await self._lease.execute("SELECT pg_try_advisory_lock(%s)",
                                               (COORDINATOR_LOCK,))
            row = await cursor.fetchone()
            if not row or not row[0]:
                return None
            cursor = await self._lease.execute(
                "UPDATE fleet_rollouts SET epoch = epoch + 1, coordinator = %s, "
                "updated_at = %s WHERE id = %s RETURNING epoch", (who, utcnow(), rollout_id))
            row = await cursor.fetchone()
        except (psycopg.Error, OSError) as exc:
            await self.let_go()
            raise self._unusable(exc) from None
        if row is None:
            await self.let_go()
            return None
        return int(row[0])

    async def coordinating(self) -> bool:
        """Whether this process still holds the coordinators' lock (its connection lives)."""
        import psycopg

        if self._lease is None or self._lease.closed:
            return False
        try:
            await self._lease.execute("SELECT 1")
            return True
        except (psycopg.Error, OSError):
            await self._lease.close()
            self._lease = None
            return False

    async def let_go(self) -> None:
        """Stop coordinating: the lock goes with the connection."""
        import psycopg

        if self._lease is not None:
            lease, self._lease = self._lease, None
            # Unlocked first: a closed connection's backend may hold it a moment longer.
            with contextlib.suppress(psycopg.Error, OSError):
                await lease.execute("SELECT pg_advisory_unlock(%s)", (COORDINATOR_LOCK,))
            await lease.close()

    async def restart_slot(self, rollout_id: str, instance_id: str, shards: Sequence[int],
                           max_concurrency: int, bot_id: str | None = None,
                           window: float = 5.0) -> datetime:
        """When this instance's bot may restart, so that its shards' logins and those of the
        rollout's other restarts of the same bot (`bot_id`; not known: taken as the same)
        keep to Discord's `max_concurrency` logins per `window` seconds in each bucket
        (shard id modulo max_concurrency): after every restart already given a slot has
        logged in its shards of the buckets it shares. Handed out one at a time under an
        advisory lock, and kept in the instance's part."""
        import psycopg

        mine = _buckets(shards, max_concurrency)
        try:
            return await self._slot(rollout_id, instance_id, mine, max_concurrency, bot_id,
                                    window)
        except psycopg.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: BaseException) -> IndexStoreError:
        lines = str(exc).strip().splitlines()
        return IndexStoreError(f"the index server {self.shown} could not be used: "
                               f"{lines[0] if lines else type(exc).__name__}")

    async def _slot(self, rollout_id: str, instance_id: str, mine: dict[int, int],
                    max_concurrency: int, bot_id: str | None, window: float) -> datetime:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (RESTART_LOCK,))
            cursor = await conn.execute(
                "SELECT a.restart_at, i.shards, i.session_starts FROM fleet_assignments a "
                "LEFT JOIN "
                "fleet_instances i ON i.id = a.instance_id WHERE a.rollout_id = %s AND "
                "a.instance_id <> %s AND a.restart_at IS NOT NULL",
                (rollout_id, instance_id))
            at = utcnow()
            for restart_at, their_shards, their_starts in await cursor.fetchall():
                their_bot = json.loads(their_starts).get("bot_id") if their_starts else None
                if bot_id and their_bot and their_bot != bot_id:
                    continue  # another bot's logins: its own limits
                theirs = _buckets(json.loads(their_shards or "[]"), max_concurrency)
                for bucket in mine.keys() & theirs.keys():
                    at = max(at, restart_at.astimezone(UTC)
                             + timedelta(seconds=window * theirs[bucket]))
            await conn.execute("UPDATE fleet_assignments SET restart_at = %s "
                               "WHERE rollout_id = %s AND instance_id = %s",
                               (at, rollout_id, instance_id))
        return at

    async def set_assignment(
        self, rollout_id: str, instance_id: str, state: str, expect: Sequence[str], *,
        detail: str | None = None, started: bool = False,
        healthy_since: datetime | bool | None = False, epoch: int | None = None,
        audit: Audit | None = None,
    ) -> bool:
        """Move one instance's part to `state` if it is in one of `expect`; `started` stamps
        when it was assigned, `healthy_since` sets (a moment) or clears (None) the start of
        its healthy time. `epoch`: a coordinator's write, fenced (see `take_rollout`);
        `audit`: its trail entry, written with it (see `set_rollout`)."""
        sets, params = ["state = %s", "updated_at = %s"], [state, utcnow()]
        if detail is not None:
            sets.append("detail = %s")
            params.append(detail)
        if started:
            sets.append("started_at = %s")
            params.append(utcnow())
        if healthy_since is not False:
            sets.append("healthy_since = %s")
            params.append(healthy_since)
        return await self._moved(
            f"UPDATE fleet_assignments SET {', '.join(sets)} "  # noqa: S608
            "WHERE rollout_id = %s AND instance_id = %s AND state = ANY(%s)" + _FENCE,
            (*params, rollout_id, instance_id, list(expect), epoch, rollout_id, epoch),
            rollout_id, audit)

    async def my_assignment(self) -> tuple[Rollout, Assignment] | None:
        """This deployment's part of the active rollout, if it has one: one row read (every
        agent asks each second), the rollout without the other instances' parts."""
        found = await self._rows(
            f"SELECT {', '.join('r.' + c for c in _ROLLOUT_COLUMNS)}, "  # noqa: S608
            f"{', '.join('a.' + c for c in _ASSIGNMENT_COLUMNS)} "
            "FROM fleet_rollouts r JOIN fleet_assignments a ON a.rollout_id = r.id "
            "WHERE r.status = ANY(%s) AND a.instance_id = %s", (list(ACTIVE), self.scope))
        if not found:
            return None
        return _rollout(found[0]), _assignment(found[0][len(_ROLLOUT_COLUMNS):])

    async def rollout_audit(self, rollout_id: str, actor: str, action: str,
                            detail: str = "") -> None:
        await self._run("INSERT INTO fleet_audit (rollout_id, at, actor, action, detail) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (rollout_id, utcnow(), actor, action, detail))

    async def rollout_trail(self, rollout_id: str) -> list[dict[str, Any]]:
        found = await self._rows("SELECT at, actor, action, detail FROM fleet_audit "
                                 "WHERE rollout_id = %s ORDER BY id", (rollout_id,))
        return [{"at": r[0].astimezone(UTC).isoformat(), "actor": r[1], "action": r[2],
                 "detail": r[3]} for r in found]
