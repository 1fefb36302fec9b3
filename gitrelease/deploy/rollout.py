"""Rollouts: one release across the fleet, canary first, in waves, each gated on health.

`start` writes a rollout and each running instance's part (its wave, the version it runs now)
to the shared index; `drive` is the coordinator: it assigns a wave, waits until every instance
in it has installed (each on its own host, by its agent, with all of the local guarantees:
backup first, health check, automatic local rollback) and then reported the target while
running for `min_healthy_seconds`, and only then assigns the next. An instance that fails, or
is not healthy within `healthy_deadline_seconds` of being assigned, halts the rollout: the
waves not reached never move; with `auto_revert` every instance the rollout moved goes back to
the version it ran before (a rollback: code and data). `agent_step` is the agent's side: it
acts on its own part and reports. All of the state is in the index, and every change of it is
a compare-and-set, so the coordinator can be killed and `drive` run again anywhere: it carries
on from the index, and no wave is assigned twice.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, InvalidInput, NoSuchVersion
from gitrelease.core.fleet import ACTIVE, Assignment, Rollout, RolloutOptions
from gitrelease.core.models import utcnow
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.deploy.fleet import fleet_store, report, stale_after

if TYPE_CHECKING:
    from gitrelease.index.store import FleetStore

__all__ = ["abort", "agent", "agent_step", "drive", "pause", "start"]

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
    rollout = Rollout(f"rol_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(3)}", release.tag,
                      "running", opts, actor, now)
    for wave, members in enumerate(_waves(running, opts)):
        for i in members:
            there = i.commit == release.commit
            rollout.assignments.append(Assignment(
                rollout.id, i.id, wave, i.tag or i.version, "healthy" if there else "pending",
                "already at the release" if there else ""))
    await store.create_rollout(rollout)
    await store.rollout_audit(rollout.id, actor, "started", f"to {release.tag}; " + (
        f"left out: {', '.join(left)}" if left else "every instance is in it"))
    return rollout


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
        if rollout.status == "paused":
            pass  # nothing new is assigned; what is underway goes on, on its hosts
        elif rollout.status == "reverting":
            await _revert_step(store, rollout, actor)
        else:
            if commit is None:
                await in_thread(d.fetch)
                commit = named_release(d, await in_thread(d.snapshot), rollout.target).commit
            await _wave_step(d, store, rollout, commit, actor)
        await store.fleet_changed(poll)  # woken by the agents' reports, else polled


async def _wave_step(d: Deployment, store: FleetStore, rollout: Rollout, target: str,
                     actor: str) -> None:
    failed = [a for a in rollout.assignments if a.state == "failed"]
    if failed:
        await _halt(store, rollout, failed[0], actor)
        return
    waiting = [a for a in rollout.assignments if a.state in _WAITING]
    if not waiting:
        if await store.set_rollout(rollout.id, "succeeded", None, ("running",)):
            await store.rollout_audit(rollout.id, actor, "succeeded",
                                      f"every instance runs {rollout.target}")
        return
    wave = min(a.wave for a in waiting)
    if wave == 1 and rollout.options.pause_after_canary and all(
            a.state == "pending" for a in rollout.assignments if a.wave == 1) and not any(
            e["action"] == "promoted" for e in await store.rollout_trail(rollout.id)):
        why = "the canary is healthy: waiting for gitrelease fleet promote"
        if await store.set_rollout(rollout.id, "paused", why, ("running",)):
            await store.rollout_audit(rollout.id, actor, "paused", why)
        return
    now, stale = utcnow(), stale_after(d)
    instances = {i.id: i for i in await store.list_instances()}
    for a in (a for a in rollout.assignments if a.wave == wave):
        if a.state == "pending":
            await store.set_assignment(rollout.id, a.instance_id, "assigned", ("pending",),
                                       started=True)
            await store.rollout_audit(rollout.id, actor, "assigned", a.instance_id)
            continue
        if a.state not in ("assigned", "installing", "installed"):
            continue
        late = a.started_at is not None and (now - a.started_at).total_seconds() > \
            rollout.options.healthy_deadline_seconds
        if late:
            await store.set_assignment(
                rollout.id, a.instance_id, "failed", (a.state,),
                detail=f"not healthy within {rollout.options.healthy_deadline_seconds:g} s")
            continue
        if a.state != "installed":
            continue
        me = instances.get(a.instance_id)
        healthy = me is not None and me.commit == target and me.state(now, stale) == "running"
        if not healthy:
            if a.healthy_since is not None:  # it went down again: the clock starts over
                await store.set_assignment(rollout.id, a.instance_id, "installed",
                                           ("installed",), healthy_since=None)
        elif a.healthy_since is None:
            await store.set_assignment(rollout.id, a.instance_id, "installed", ("installed",),
                                       healthy_since=now)
        elif (now - a.healthy_since).total_seconds() >= rollout.options.min_healthy_seconds:
            await store.set_assignment(rollout.id, a.instance_id, "healthy", ("installed",))
            await store.rollout_audit(rollout.id, actor, "healthy", a.instance_id)


async def _halt(store: FleetStore, rollout: Rollout, failed: Assignment, actor: str) -> None:
    """Stop where it is: the waves not reached never move; with auto_revert the instances it
    moved go back."""
    why = f"{failed.instance_id} failed: {failed.detail or 'no reason given'}"
    for a in rollout.assignments:
        if a.state in ("pending", "assigned"):
            await store.set_assignment(rollout.id, a.instance_id, "skipped",
                                       ("pending", "assigned"))
    moved = [a for a in rollout.assignments
             if a.state in ("installed", "healthy") and a.detail != "already at the release"]
    if rollout.options.auto_revert and moved:
        for a in moved:
            await store.set_assignment(rollout.id, a.instance_id, "revert",
                                       ("installed", "healthy"))
        if await store.set_rollout(rollout.id, "reverting", why, ("running",)):
            await store.rollout_audit(rollout.id, actor, "reverting", why)
        return
    if await store.set_rollout(rollout.id, "failed", why, ("running",)):
        await store.rollout_audit(rollout.id, actor, "failed", why)


async def _revert_step(store: FleetStore, rollout: Rollout, actor: str) -> None:
    if any(a.state in ("revert", "reverting", "installing") for a in rollout.assignments):
        return  # the agents are on their way back
    undone = [a.instance_id for a in rollout.assignments if a.state == "revert_failed"]
    status = "failed" if undone else "reverted"
    why = (f"could not go back: {', '.join(undone)}" if undone else None)
    if await store.set_rollout(rollout.id, status, why, ("reverting",)):
        await store.rollout_audit(rollout.id, actor, status, why or "every moved instance "
                                  "is back at the version it ran before")


async def _install(d: Deployment, version: str, who: str) -> Any:
    from gitrelease.deploy.updates import install_updates

    return await install_updates(d, "bot", {"to_version": version, "initiated_by": who})


async def _rollback(d: Deployment, version: str, who: str) -> Any:
    from gitrelease.deploy.updates import rollback_to_version

    return await rollback_to_version(d, version, {"confirm": True, "initiated_by": who})


async def _settle(d: Deployment, store: FleetStore, rollout: Rollout,
                  part: Assignment) -> bool:
    """A part left "installing" or "reverting" by an agent that died: the local recovery has
    run (`agent`), and the checkout says how it ended: at the version it was going to, or
    not."""
    from gitrelease.deploy.resolve import named_release

    going = rollout.target if part.state == "installing" else part.baseline
    snap = await in_thread(d.snapshot)
    there = snap.current.commit == named_release(d, snap, going).commit
    done, failed = ("installed", "failed") if part.state == "installing" else \
        ("reverted", "revert_failed")
    detail = (f"the agent was interrupted; recovery left the checkout at "
              f"{snap.current.text}")
    await store.set_assignment(rollout.id, part.instance_id, done if there else failed,
                               (part.state,), detail=detail)
    await store.rollout_audit(rollout.id, part.instance_id, "settled", detail)
    return True


async def agent_step(d: Deployment, *, started: bool = False,
                     tell: Callable[[], Awaitable[Any]] | None = None) -> bool:
    """Act on this deployment's part of the active rollout, if it has one to act on: install
    the release with the local engine, as a person would (or, to revert, roll back to where
    it was, data included), and report. True if it acted. `started`: the agent has just
    started, so a part still "installing" (or "reverting") is one a dead agent left. `tell`
    reports this deployment (the agent's way; by default as seen from beside the bot)."""
    tell = tell or (lambda: report(d))
    store = await fleet_store(d)
    mine = await store.my_assignment()
    if mine is None:
        return False
    rollout, part = mine
    if started and part.state in ("installing", "reverting"):
        await _settle(d, store, rollout, part)
        await tell()
        return True
    # What each part's state asks of the agent, in the rollout's state that allows it: the
    # state it moves through, the local work, and where it ends (done, or not).
    acts = {"assigned": ("running", "installing", _install, rollout.target, "installed",
                         "failed"),
            "revert": ("reverting", "reverting", _rollback, part.baseline, "reverted",
                       "revert_failed")}
    if part.state not in acts or rollout.status != acts[part.state][0]:
        return False
    _status, working, work, version, done, failed = acts[part.state]
    if not await store.set_assignment(rollout.id, part.instance_id, working, (part.state,)):
        return False  # another agent process for this deployment took it
    ok, detail = await _attempt(work, d, version, f"rollout:{rollout.id}")
    await store.set_assignment(rollout.id, part.instance_id, done if ok else failed,
                               (working,), detail=detail)
    await store.rollout_audit(rollout.id, part.instance_id,
                              (done if ok else failed).replace("_", " "), detail)
    await tell()
    return True


async def _attempt(work: Callable[..., Any], d: Deployment, version: str,
                   who: str) -> tuple[bool, str]:
    try:
        session = await work(d, version, who)
    except GitReleaseError as exc:
        return False, exc.message[:500]
    status = getattr(getattr(session, "status", None), "value", "")
    if status in ("completed", "restarting"):
        return True, f"{session.id}: {status}"
    return False, f"{getattr(session, 'id', '?')}: {status or 'no session'}"


async def agent(d: Deployment, *, once: bool = False, stop: asyncio.Event | None = None,
                poll: float = 1.0, shards: list[int] | None = None) -> Any:
    """`gitrelease agent`: report this deployment every fleet_heartbeat_seconds and act on
    its part of a rollout as soon as it is assigned (looked for every `poll` seconds), until
    `stop` is set (or once). Beside the bot it tells the bot's health by its pid file, and
    its end says nothing of the bot (its last report stands, and reads "stale" in time);
    inside the bot (the extension) `shards` are the bot's. The index being unreachable is
    waited out (nothing new is started; the next look tries again), never a crash."""
    from gitrelease.core.errors import IndexStoreError
    from gitrelease.deploy.guard import reconcile_if_idle

    async def tell() -> Any:
        return await report(d, shards=shards, this_process_is_bot=d.this_process_is_bot)

    stop = stop or asyncio.Event()
    # What a killed install or rollback left is settled first, as the bot does at start.
    await reconcile_if_idle(d, await fleet_store(d), always=True)
    last = await tell()
    acted = await agent_step(d, started=True, tell=tell)
    if once:
        return await tell() if acted else last
    beat = asyncio.get_running_loop().time()
    store = await fleet_store(d)
    while not stop.is_set():
        # Woken by a change of a rollout (NOTIFY), else a look every `poll` seconds.
        await store.fleet_changed(poll)
        if stop.is_set():
            break
        try:
            acted = await agent_step(d, tell=tell)
            now = asyncio.get_running_loop().time()
            if not acted and now - beat >= d.settings.fleet_heartbeat_seconds:
                last, beat = await tell(), now
        except IndexStoreError:
            continue  # the server is away: nothing new starts; the next look tries again
    return last
