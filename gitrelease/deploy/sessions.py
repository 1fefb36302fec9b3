"""Discord's session starts, as a rollout has to count them.

Every start of a shard (a restart, a rollback's restart) costs one of the bot's daily session
starts, and at most `max_concurrency` shards may log in per 5 seconds. The bot hears its
numbers from Discord (GET /gateway/bot) and the extension keeps them in
``data/session_starts.json`` (`save_session_starts`), whence every report of the deployment
carries them to the shared index (`read_session_starts`), from inside the bot or beside it.
A rollout is refused when what a bot has left would not cover restarting, and rolling back,
every shard it touches (`check_session_starts`); each restart of a rollout waits for its
shards' turn to log in (`deploy.agent`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.fleet import Instance, SessionStarts
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import utcnow

__all__ = ["SESSION_FILE", "NotEnoughSessionStarts", "check_session_starts",
           "read_session_starts", "save_session_starts"]

SESSION_FILE = "session_starts.json"


class NotEnoughSessionStarts(GitReleaseError):
    """The bot would run out of session starts before the rollout could be undone."""

    code = "not_enough_session_starts"
    exit_code = 2
    default_hint = ("wait for the daily reset, or roll out to fewer instances (a smaller "
                    "fleet on this index)")


def save_session_starts(data_dir: Path, limit: Mapping[str, Any], bot_id: str | None,
                        *, now: datetime | None = None) -> SessionStarts:
    """Keep Discord's `session_start_limit` (total, remaining, reset_after in ms,
    max_concurrency) as the bot heard it; returns it as read."""
    now = now or utcnow()
    try:
        starts = SessionStarts(
            total=int(limit["total"]), remaining=int(limit["remaining"]),
            reset_at=now + timedelta(milliseconds=int(limit["reset_after"])),
            max_concurrency=max(1, int(limit.get("max_concurrency") or 1)), seen_at=now,
            bot_id=bot_id)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a session_start_limit: {exc}") from None
    atomic_write(data_dir / SESSION_FILE, (json.dumps(starts.to_dict()) + "\n").encode())
    return starts


def read_session_starts(data_dir: Path) -> SessionStarts | None:
    """What the bot last heard, or None (no Discord bot has told it yet, or the file is not
    one of ours)."""
    try:
        return SessionStarts.from_dict(json.loads((data_dir / SESSION_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_session_starts(touched: list[Instance], now: datetime | None = None) -> str:
    """Refuse (`NotEnoughSessionStarts`) when a bot's starts left would not cover a restart
    and a rollback's restart of every shard of it the rollout touches; else say what was
    counted, for the rollout's audit trail. An instance whose bot has not reported its
    starts is named as not counted."""
    now = now or utcnow()
    bots: dict[str | None, list[Instance]] = {}
    unknown = [i.id for i in touched if i.session_starts is None]
    for i in touched:
        if i.session_starts is not None:
            bots.setdefault(i.session_starts.bot_id, []).append(i)
    said = []
    for bot, members in sorted(bots.items(), key=lambda kv: str(kv[0])):
        freshest = max((i.session_starts for i in members if i.session_starts),
                       key=lambda s: s.seen_at)
        shards = sum(max(1, len(i.shards)) for i in members)
        needed, left = 2 * shards, freshest.left(now)
        who = f"bot {bot}" if bot else "the bot"
        if left < needed:
            raise NotEnoughSessionStarts(
                f"{who} has {left} session starts left (of {freshest.total} a day, until "
                f"{freshest.reset_at:%Y-%m-%d %H:%M} UTC); restarting and rolling back the "
                f"{shards} shard(s) of {', '.join(i.id for i in members)} needs {needed}")
        said.append(f"{who}: {needed} of {left} session starts needed")
    if unknown:
        said.append(f"session starts not known for {', '.join(unknown)} (no report from "
                    "its bot)")
    return "; ".join(said)
