"""The fleet's records: an instance (a deployment as a shared index knows it) and a rollout,
one release taken across the fleet in waves.

A rollout's status: "running" (waves going), "paused" (nothing new is assigned until it is
promoted), "reverting" (a wave failed with auto_revert on:
the touched instances go back), and the ends "succeeded", "failed" (halted: no untouched
instance moved), "reverted", "aborted". An assignment is one instance's part: "pending" (its
wave has not come), "assigned" (its agent is to install), "installing", "installed" (its
agent is done; the coordinator waits for it to stay healthy), "healthy", "failed", "skipped"
(a halted rollout never got to it), and on the way back "revert", "reverting", "reverted".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gitrelease.core.models import isoformat, utcnow

__all__ = ["ACTIVE", "ENDED", "Assignment", "Instance", "Rollout", "RolloutOptions",
           "SessionStarts"]

ACTIVE = ("running", "paused", "reverting")
ENDED = ("succeeded", "failed", "reverted", "aborted")


@dataclass(frozen=True)
class RolloutOptions:
    """Nomad's knobs: the canary (a count, or a whole group) first, then waves of at most
    `max_parallel`; each instance must stay healthy `min_healthy_seconds` within
    `healthy_deadline_seconds` of being assigned; `auto_revert` takes every touched
    instance back, data included, when one fails."""

    canary: int = 1
    canary_group: str | None = None
    max_parallel: int = 1
    min_healthy_seconds: float = 30.0
    healthy_deadline_seconds: float = 600.0
    auto_revert: bool = False
    pause_after_canary: bool = False  # wait for `fleet promote` once the canary is healthy

    def to_dict(self) -> dict[str, Any]:
        return {"canary": self.canary, "canary_group": self.canary_group,
                "pause_after_canary": self.pause_after_canary,
                "max_parallel": self.max_parallel,
                "min_healthy_seconds": self.min_healthy_seconds,
                "healthy_deadline_seconds": self.healthy_deadline_seconds,
                "auto_revert": self.auto_revert}


@dataclass
class Assignment:
    rollout_id: str
    instance_id: str
    wave: int
    baseline: str  # the version it ran when the rollout began: where a revert takes it
    state: str
    detail: str = ""
    started_at: datetime | None = None
    healthy_since: datetime | None = None
    restart_at: datetime | None = None  # when its bot may restart (its slot of logins)
    revert_to: str | None = None  # where a revert takes it, if not its baseline

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance_id, "wave": self.wave, "baseline": self.baseline,
                "revert_to": self.revert_to or self.baseline,
                "state": self.state, "detail": self.detail,
                "started_at": isoformat(self.started_at),
                "healthy_since": isoformat(self.healthy_since),
                "restart_at": isoformat(self.restart_at)}


@dataclass
class Rollout:
    id: str
    target: str
    status: str
    options: RolloutOptions
    created_by: str
    created_at: datetime
    reason: str | None = None
    assignments: list[Assignment] = field(default_factory=list)
    # The fencing epoch: bumped each time a coordinator takes the rollout on; a write of a
    # coordinator whose epoch has passed lands nowhere.
    epoch: int = 0
    coordinator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "status": self.status,
                "options": self.options.to_dict(), "created_by": self.created_by,
                "created_at": self.created_at.isoformat(), "reason": self.reason,
                "epoch": self.epoch, "coordinator": self.coordinator,
                "assignments": [a.to_dict() for a in self.assignments]}


@dataclass(frozen=True)
class SessionStarts:
    """The bot's gateway session starts as Discord last told them (GET /gateway/bot): each
    start of a shard costs one of `total` a day (`remaining` left until `reset_at`), and at
    most `max_concurrency` shards may log in per 5 seconds."""

    total: int
    remaining: int
    reset_at: datetime
    max_concurrency: int
    seen_at: datetime
    bot_id: str | None = None  # whose starts they are: a fleet may run several bots

    def left(self, now: datetime) -> int:
        """What is left as of `now`: all of them again once the day has reset."""
        return self.total if now >= self.reset_at else self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "remaining": self.remaining,
                "reset_at": self.reset_at.isoformat(),
                "max_concurrency": self.max_concurrency, "seen_at": self.seen_at.isoformat(),
                "bot_id": self.bot_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionStarts:
        return cls(int(data["total"]), int(data["remaining"]),
                   datetime.fromisoformat(data["reset_at"]), int(data["max_concurrency"]),
                   datetime.fromisoformat(data["seen_at"]), data.get("bot_id"))


@dataclass
class Instance:
    """One deployment as a shared index knows it: where it runs, in which group, the shards
    it serves, the release it is at, and when it last said so (its heartbeat)."""

    id: str  # the deployment's instance_id (its scope in the index)
    host: str
    group: str
    shards: list[int]
    version: str
    tag: str | None
    commit: str | None
    health: str  # "running", "down" (the bot's process is not alive) or "stopped"
    pid: int | None
    started_at: datetime | None  # when the reporting process started
    heartbeat_at: datetime
    session_starts: SessionStarts | None = None  # as the bot last heard them from Discord

    def state(self, now: datetime, timeout_seconds: float) -> str:
        """Its health as of `now`: "stale" when it has not reported for `timeout_seconds`
        while it said it was running."""
        late = (now - self.heartbeat_at).total_seconds() > timeout_seconds
        return "stale" if late and self.health == "running" else self.health

    def to_dict(self, now: datetime | None = None, timeout_seconds: float = 90) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "group": self.group, "shards": self.shards,
                "version": self.version, "tag": self.tag, "commit": self.commit,
                "health": self.health, "pid": self.pid,
                "state": self.state(now or utcnow(), timeout_seconds),
                "started_at": isoformat(self.started_at),
                "heartbeat_at": self.heartbeat_at.isoformat(),
                "session_starts": (self.session_starts.to_dict()
                                   if self.session_starts else None)}
