"""The fleet: the deployments that share one index, each reporting where it runs and what it
is at, so any of them (and the operator) can see all of them.

A deployment reports itself (`report`): its instance_id, host, group, shards, the release its
checkout is at, whether its bot is running, and the session starts its bot last heard of
from Discord (`deploy.sessions`): the bot's extension reports from inside the
bot (and "stopped" as it unloads), `gitrelease agent` from beside it, by the bot's pid file.
A report older than three heartbeats reads "stale". Only a
shared index (PostgreSQL) has a fleet; the embedded SQLite index answers that there is none.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fleet import Instance
from gitrelease.core.models import utcnow
from gitrelease.deploy.context import Deployment, in_thread
from gitrelease.deploy.sessions import read_session_starts

if TYPE_CHECKING:
    from gitrelease.index.store import FleetStore

__all__ = ["NoFleet", "fleet_store", "instances", "report", "stale_after"]


class NoFleet(GitReleaseError):
    """The index is the deployment's own (SQLite): there is no fleet to show or report to."""

    code = "no_fleet"
    exit_code = 2
    default_hint = ("set index_url (or GITRELEASE_INDEX_URL) to a PostgreSQL server that the "
                    "deployments share")


async def fleet_store(d: Deployment) -> FleetStore:
    """The shared index, or `NoFleet` when the deployment keeps its own (which is then
    neither opened nor created)."""
    if not d.index_location()[0]:
        raise NoFleet("this deployment's index is its own SQLite file: there is no fleet")
    return await d.index()  # type: ignore[return-value]  # PostgresStore: a FleetStore


def stale_after(d: Deployment) -> float:
    """Seconds without a report after which an instance reads "stale"."""
    return 3.0 * d.settings.fleet_heartbeat_seconds


def _bot_alive(d: Deployment, this_process_is_bot: bool
               ) -> tuple[bool, int | None, datetime | None]:
    """Whether the bot's process is alive (this one, or the one its pid file names), its pid
    and when it started."""
    import psutil

    from gitrelease.deploy.host import _bot_process

    process = psutil.Process() if this_process_is_bot else _bot_process(d.data_dir)
    if process is None:
        return False, None, None
    try:
        return True, process.pid, datetime.fromtimestamp(process.create_time(), UTC)
    except psutil.Error:
        return False, None, None


async def report(d: Deployment, *, health: str | None = None, shards: list[int] | None = None,
                 this_process_is_bot: bool = False) -> Instance:
    """Write this deployment's report to the shared index. `health` None: told from the bot's
    pid file ("running" or "down"); the bot itself reports "running" (or "stopped" as it
    ends). `shards`: what the bot says it runs, else the shard_ids setting."""
    store = await fleet_store(d)
    snap = await in_thread(d.snapshot)
    alive, pid, started = await in_thread(_bot_alive, d, this_process_is_bot)
    _url, scope = d.index_location()
    instance = Instance(
        id=scope, host=socket.gethostname(), group=d.settings.instance_group,
        shards=list(shards if shards is not None else d.settings.shard_ids),
        version=snap.current.text, tag=snap.current.tag, commit=snap.current.commit,
        health=health or ("running" if alive else "down"), pid=pid, started_at=started,
        heartbeat_at=utcnow(), session_starts=read_session_starts(d.data_dir))
    await store.save_instance(instance)
    return instance


async def instances(d: Deployment) -> list[Instance]:
    """Every deployment on the shared index, by group then id."""
    return await (await fleet_store(d)).list_instances()
