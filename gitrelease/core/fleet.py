"""The records of a rollout: one release taken across a fleet in waves.

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

from gitrelease.core.models import isoformat

__all__ = ["ACTIVE", "ENDED", "Assignment", "Rollout", "RolloutOptions"]

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

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance_id, "wave": self.wave, "baseline": self.baseline,
                "state": self.state, "detail": self.detail,
                "started_at": isoformat(self.started_at),
                "healthy_since": isoformat(self.healthy_since)}


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

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "status": self.status,
                "options": self.options.to_dict(), "created_by": self.created_by,
                "created_at": self.created_at.isoformat(), "reason": self.reason,
                "assignments": [a.to_dict() for a in self.assignments]}
