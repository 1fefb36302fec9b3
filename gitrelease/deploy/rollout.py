"""Rollouts: one release across the fleet, canary first, in waves, each gated on health.

`start` writes a rollout and each running instance's part (its wave, the version it runs now)
to the shared index, once the bots' session starts are known to cover it; `drive` is the
coordinator: it assigns a wave, waits until every instance in it has installed (each on its
own host, by its agent (`deploy.agent`), with all of the local guarantees: backup first,
health check, automatic local rollback) and then reported the target while running for
`min_healthy_seconds`, and only then assigns the next. An instance that fails, or is not
healthy within `healthy_deadline_seconds` of being assigned, halts the rollout: the waves not
reached never move; with `auto_revert` every instance the rollout moved goes back to the last
version on which the whole fleet was healthy (a rollback: code and data).

All of the state is in the index and every change of it is a compare-and-set. One process
coordinates at a time: it holds an advisory lock for as long as it lives, and each time one
takes a rollout on, the rollout's epoch goes up and fences off every write of the one before
(`Fenced`), so a coordinator that lost its connection cannot act on what it read. Any other
`drive` watches, and takes over from the index as soon as the lock is let go of: no wave is
assigned twice.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import InvalidInput, NoSuchVersion
from gitrelease.core.fleet import ACTIVE, Assignment, Instance, Rollout, RolloutOptions
from gitrelease.core.models import utcnow
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.deploy.fleet import fleet_store, stale_after
from gitrelease.deploy.sessions import check_session_starts

if TYPE_CHECKING:
    from gitrelease.index.store import FleetStore

__all__ = ["Fenced", "abort", "drive", "pause", "start"]

#: Parts that hold a wave back while they are in them.
_WAITING = ("pending", "assigned", "installing", "installed")


def _waves(instances: list[Any], opts: RolloutOptions) -> list[list[Any]]:
    """The canary (a group, else the first `canary`, "canary"-group instances first), then
    the rest in waves of at most `max_parallel`."""
    ordered = sorted(instances, key=lambda i: (i.group != "canary", i.group, i.id))
    if opts.canary_group is not None:
        canary = [i for i in ordered if i.group == opts.canary_group]
        if not canary:
            raise InvalidInput("--canary-group", opts.canary_group,
                               sorted({i.group for i in ordered}),
                               reason="no running instance is in that group")
    else:
        canary = ordered[:opts.canary]
    rest = [i for i in ordered if i not in canary]
    return [canary] + [rest[n:n + opts.max_parallel]
                       for n in range(0, len(rest), opts.max_parallel)]


async def start(d: Deployment, target: str, opts: RolloutOptions, *, actor: str) -> Rollout:
    """Plan a rollout of `target` (a release tag or version) over the running instances and
    write it; `RolloutConflict` while another is active."""
    from gitrelease.deploy.resolve import named_release

    store = await fleet_store(d)
    await in_thread(d.fetch)  # the release may be newer than this checkout knows
    release = named_release(d, await in_thread(d.snapshot), target)
    now, stale = utcnow(), stale_after(d)
    everyone = await store.list_instances()
    running = [i for i in everyone if i.state(now, stale) == "running"]
    left = [f"{i.id} ({i.state(now, stale)})" for i in everyone if i not in running]
    if not running:
        raise NoSuchVersion("no instance of the fleet is running to roll out to"
                            + (f" (left out: {', '.join(left)})" if left else ""),
                            hint="start the bots (and their agents), then try again")
    waves = _waves(running, opts)
    counted = check_session_starts([i for i in running if i.commit != release.commit], now)
    back = await _fleet_healthy(store, running) if opts.auto_revert else None
    rollout = Rollout(f"rol_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(3)}", release.tag,
                      "running", opts, actor, now)
    for wave, members in enumerate(waves):
        for i in members:
            there = i.commit == release.commit
            rollout.assignments.append(Assignment(
                rollout.id, i.id, wave, i.tag or i.version, "healthy" if there else "pending",
                "already at the release" if there else "", revert_to=back))
    await store.create_rollout(rollout)
    said = [f"to {release.tag}", f"left out: {', '.join(left)}" if left
            else "every instance is in it"]
    if opts.auto_revert:
        said.append(f"a revert goes to {back}, the last version the whole fleet ran healthy"
                    if back else "a revert takes each instance to the version it runs now")
    await store.rollout_audit(rollout.id, actor, "started",
                              "; ".join(said + ([counted] if counted else [])))
    return rollout


async def _fleet_healthy(store: FleetStore, running: list[Instance]) -> str | None:
    """The last version on which the whole fleet was healthy, when it is not simply where
    every instance is now (then None: each goes back to its own): the target of the latest
    rollout that succeeded."""
    if len({i.commit for i in running}) <= 1:
        return None
    done = [r for r in await store.latest_rollouts(50) if r.status == "succeeded"]
    return done[0].target if done else None


async def _chosen(store: FleetStore, rollout_id: str | None) -> Rollout | None:
    """The rollout named, else the active one."""
    return await (store.get_rollout(rollout_id) if rollout_id else store.active_rollout())


async def abort(d: Deployment, rollout_id: str | None, *, actor: str, why: str) -> Rollout:
    """End the active rollout (or `rollout_id`) where it is: nothing more is assigned."""
    store = await fleet_store(d)
    rollout = await _chosen(store, rollout_id)
    if rollout is None or rollout.status not in ACTIVE:
        raise NoSuchVersion("no active rollout" + (f" {rollout_id}" if rollout_id else ""))
    await store.set_rollout(rollout.id, "aborted", why, ACTIVE)
    await store.rollout_audit(rollout.id, actor, "aborted", why)
    return await store.get_rollout(rollout.id) or rollout


async def pause(d: Deployment, rollout_id: str | None, *, actor: str, why: str,
                promote: bool = False) -> Rollout:
    """Hold the running rollout (nothing new is assigned), or with `promote` let a paused
    one go on."""
    store = await fleet_store(d)
    rollout = await _chosen(store, rollout_id)
    wanted, then = ("paused", "running") if promote else ("running", "paused")
    if rollout is None or rollout.status != wanted:
        raise NoSuchVersion(f"no {wanted} rollout" + (f" {rollout_id}" if rollout_id else "")
                            + (f" ({rollout.id} is {rollout.status})" if rollout else ""))
    await store.set_rollout(rollout.id, then, why, (wanted,))
    await store.rollout_audit(rollout.id, actor, "promoted" if promote else "paused", why)
    return await store.get_rollout(rollout.id) or rollout


async def drive(d: Deployment, rollout_id: str, *, actor: str, poll: float = 0.5,
                on_change: Callable[[Rollout], None] | None = None) -> Rollout:
    """Coordinate the rollout until it ends; returns it as it ended. Safe to run again (or
    elsewhere) after a coordinator died: everything it does is decided from the index."""
    from gitrelease.deploy.resolve import named_release

    store = await fleet_store(d)
    seen: list[Any] = []
    commit: str | None = None
    epoch: int | None = None  # while this process is the rollout's coordinator
    try:
        while True:
            rollout = await store.get_rollout(rollout_id)
            if rollout is None:
                raise NoSuchVersion(f"no rollout {rollout_id}")
            shown = [(a.instance_id, a.state) for a in rollout.assignments] + [rollout.status]
            if on_change is not None and shown != seen:
                on_change(rollout)
            seen = shown
            if rollout.status not in ACTIVE:
                return rollout
            if epoch is not None and (rollout.epoch != epoch or not await store.coordinating()):
                epoch = None  # another took it on, or the lock went with the connection
            if epoch is None:
                # The coordinator is whoever holds the lock; the others watch, and take
                # over as soon as it is let go of (its process or its connection died).
                epoch = await store.take_rollout(rollout.id, f"{actor}@{socket.gethostname()}")
                if epoch is not None:
                    await store.rollout_audit(rollout.id, actor, "coordinating",
                                              f"epoch {epoch} on {socket.gethostname()}")
                    continue  # read it again under the new epoch
            if epoch is None or rollout.status == "paused":
                pass  # not ours to move; or nothing new is assigned while paused
            elif rollout.status == "reverting":
                await _revert_step(Fenced(store, rollout, actor, epoch))
            else:
                if commit is None:
                    await in_thread(d.fetch)
                    commit = named_release(d, await in_thread(d.snapshot),
                                           rollout.target).commit
                await _wave_step(d, Fenced(store, rollout, actor, epoch), commit)
            await store.fleet_changed(poll)  # woken by the agents' reports, else polled
    finally:
        await store.let_go()


@dataclass
class Fenced:
    """The coordinator's writes for one look at the rollout: each lands only while the
    rollout is still at the coordinator's epoch, and is in the trail only if it landed."""

    store: FleetStore
    rollout: Rollout
    actor: str
    epoch: int

    async def part(self, instance_id: str, state: str, expect: tuple[str, ...], *,
                   said: str | None = None, **changes: Any) -> bool:
        audit = None if said is None else (self.actor, said, instance_id)
        return await self.store.set_assignment(self.rollout.id, instance_id, state, expect,
                                               epoch=self.epoch, audit=audit, **changes)

    async def end(self, status: str, why: str | None, expect: tuple[str, ...],
                  said: str) -> bool:
        return await self.store.set_rollout(self.rollout.id, status, why, expect,
                                            epoch=self.epoch,
                                            audit=(self.actor, status, said))


async def _wave_step(d: Deployment, f: Fenced, target: str) -> None:
    rollout, opts = f.rollout, f.rollout.options
    failed = [a for a in rollout.assignments if a.state == "failed"]
    if failed:
        await _halt(f, failed[0])
        return
    waiting = [a for a in rollout.assignments if a.state in _WAITING]
    if not waiting:
        await f.end("succeeded", None, ("running",), f"every instance runs {rollout.target}")
        return
    wave = min(a.wave for a in waiting)
    if wave == 1 and opts.pause_after_canary and all(
            a.state == "pending" for a in rollout.assignments if a.wave == 1) and not any(
            e["action"] == "promoted" for e in await f.store.rollout_trail(rollout.id)):
        why = "the canary is healthy: waiting for gitrelease fleet promote"
        await f.end("paused", why, ("running",), why)
        return
    now, stale = utcnow(), stale_after(d)
    instances = {i.id: i for i in await f.store.list_instances()}
    for a in (a for a in rollout.assignments if a.wave == wave):
        if a.state == "pending":
            await f.part(a.instance_id, "assigned", ("pending",), said="assigned", started=True)
            continue
        if a.state not in ("assigned", "installing", "installed"):
            continue
        late = a.started_at is not None and (now - a.started_at).total_seconds() > \
            opts.healthy_deadline_seconds
        if late:
            await f.part(a.instance_id, "failed", (a.state,),
                         detail=f"not healthy within {opts.healthy_deadline_seconds:g} s")
            continue
        if a.state != "installed":
            continue
        me = instances.get(a.instance_id)
        healthy = me is not None and me.commit == target and me.state(now, stale) == "running"
        if not healthy:
            if a.healthy_since is not None:  # it went down again: the clock starts over
                await f.part(a.instance_id, "installed", ("installed",), healthy_since=None)
        elif a.healthy_since is None:
            await f.part(a.instance_id, "installed", ("installed",), healthy_since=now)
        elif (now - a.healthy_since).total_seconds() >= opts.min_healthy_seconds:
            await f.part(a.instance_id, "healthy", ("installed",), said="healthy")


def _to_revert(rollout: Rollout) -> list[Assignment]:
    """The parts a revert takes back: each the rollout moved (and any that failed away from
    where the revert goes: its own rollback took it to its baseline, not there)."""
    return [a for a in rollout.assignments
            if (a.state in ("installed", "healthy") and a.detail != "already at the release")
            or (a.state == "failed" and a.revert_to not in (None, a.baseline))]


async def _halt(f: Fenced, failed: Assignment) -> None:
    """Stop where it is: the waves not reached never move; with auto_revert the instances it
    moved go back."""
    rollout = f.rollout
    why = f"{failed.instance_id} failed: {failed.detail or 'no reason given'}"
    for a in rollout.assignments:
        if a.state in ("pending", "assigned"):
            await f.part(a.instance_id, "skipped", ("pending", "assigned"))
    moved = _to_revert(rollout)
    if rollout.options.auto_revert and moved:
        for a in moved:
            await f.part(a.instance_id, "revert", (a.state,))
        await f.end("reverting", why, ("running",), why)
        return
    await f.end("failed", why, ("running",), why)


async def _revert_step(f: Fenced) -> None:
    rollout = f.rollout
    if any(a.state in ("revert", "reverting", "installing") for a in rollout.assignments):
        return  # the agents are on their way back
    late = _to_revert(rollout)  # those still installing when the rollout halted
    if late:
        for a in late:
            await f.part(a.instance_id, "revert", (a.state,))
        return
    undone = [a.instance_id for a in rollout.assignments if a.state == "revert_failed"]
    status = "failed" if undone else "reverted"
    why = (f"could not go back: {', '.join(undone)}" if undone else None)
    await f.end(status, why, ("reverting",), why or "every moved instance is back at "
                + _where_back(rollout))


def _where_back(rollout: Rollout) -> str:
    wanted = {a.revert_to for a in rollout.assignments if a.revert_to}
    return (f"{wanted.pop()}, the last version the whole fleet ran healthy" if len(wanted) == 1
            else "the version it ran before")
