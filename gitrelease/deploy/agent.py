"""The agent: a deployment's side of a rollout (`gitrelease agent`, or inside the bot).

It pulls its part of the active rollout from the shared index (woken by NOTIFY, else a look
every second), does it with the local engine as a person would (an install of the release;
to revert, a rollback with its data), reports each step, and reports the deployment every
heartbeat. Before its bot restarts it takes a slot from the index, so that the rollout's
restarts log in at Discord's pace (`deploy.sessions`). Pull, not push: no host reaches
another. The index being away is waited out: nothing new starts until it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import GitReleaseError, IndexStoreError
from gitrelease.core.fleet import Assignment, Rollout
from gitrelease.core.models import utcnow
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.deploy.fleet import fleet_store, report
from gitrelease.deploy.sessions import read_session_starts

if TYPE_CHECKING:
    from gitrelease.index.store import FleetStore

__all__ = ["agent", "agent_step"]


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

    going = rollout.target if part.state == "installing" else part.revert_to or part.baseline
    snap = await in_thread(d.snapshot)
    there = snap.current.commit == named_release(d, snap, going).commit
    done, failed = ("installed", "failed") if part.state == "installing" else \
        ("reverted", "revert_failed")
    detail = (f"the agent was interrupted; recovery left the checkout at "
              f"{snap.current.text}")
    await store.set_assignment(rollout.id, part.instance_id, done if there else failed,
                               (part.state,), detail=detail,
                               audit=(part.instance_id, "settled", detail))
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
            "revert": ("reverting", "reverting", _rollback, part.revert_to or part.baseline,
                       "reverted", "revert_failed")}
    if part.state not in acts or rollout.status != acts[part.state][0]:
        return False
    _status, working, work, version, done, failed = acts[part.state]
    if not await store.set_assignment(rollout.id, part.instance_id, working, (part.state,)):
        return False  # another agent process for this deployment took it
    d.before_restart = _restart_turn(d, store, rollout, part)
    try:
        ok, detail = await _attempt(work, d, version, f"rollout:{rollout.id}")
    finally:
        d.before_restart = None
    ended = done if ok else failed
    await store.set_assignment(rollout.id, part.instance_id, ended, (working,), detail=detail,
                               audit=(part.instance_id, ended.replace("_", " "), detail))
    await tell()
    return True


def _restart_turn(d: Deployment, store: FleetStore, rollout: Rollout,
                  part: Assignment) -> Callable[[], Awaitable[None]]:
    """What the bot's restart waits for: this instance's slot among the rollout's restarts
    (its shards, in their buckets of the bot's max_concurrency, 1 when the bot has not said),
    slept out here; the wait is in the rollout's trail."""
    async def turn() -> None:
        starts = await in_thread(read_session_starts, d.data_dir)
        concurrency = starts.max_concurrency if starts else 1
        try:
            me = next((i for i in await store.list_instances()
                       if i.id == part.instance_id), None)
            shards = me.shards if me is not None else list(d.settings.shard_ids)
            at = await store.restart_slot(rollout.id, part.instance_id, shards, concurrency,
                                          starts.bot_id if starts else None)
        except IndexStoreError:
            return  # the install is underway: its restart is not held up for the index
        wait = (at - utcnow()).total_seconds()
        if wait > 0.05:
            await store.rollout_audit(
                rollout.id, part.instance_id, "restart waits",
                f"{wait:.1f} s for its shards' turn to log in (max_concurrency {concurrency})")
            await asyncio.sleep(wait)
    return turn


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
