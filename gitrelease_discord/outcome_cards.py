"""What a failed install or rollback left, and an update's log: the cards an owner reads when
something went wrong.

A failure says what state the bot is in: whether the engine undid the update, which version
the checkout is at now, and the update's id, which `/update_status update_id:` opens with the
log's last lines (to the owner only). Never a server path: the engine's hint names the log
file on the server, so it is left out, and every line is scrubbed (paths shown from the
deployment's folder, no secret).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord

from gitrelease.core.errors import GitReleaseError
from gitrelease_discord.card_text import card, kind_name, line, when
from gitrelease_discord.cards import step_label
from gitrelease_discord.embeds import LIMITS, scrub

__all__ = ["failed_card", "log_card", "undo_state"]


def undo_state(error: GitReleaseError) -> str:
    """What the failure left: "unchanged" (it failed before changing anything), "undone",
    "partly" (something could not be put back) or "left" (rollback_on_failure is off)."""
    if not error.details.get("changed"):
        return "unchanged"
    undo = str(error.details.get("undo") or "")
    if undo.startswith("left as it is"):
        return "left"
    return "partly" if "NOT" in undo else "undone"


def _failed_step(steps: Sequence[Any]) -> str | None:
    failed = [s.step for s in steps if s.state == "failed"]
    if failed:
        return failed[-1]
    started = [s.step for s in steps if s.state in ("started", "done")]
    return started[-1] if started else None


def failed_card(error: GitReleaseError, session: Any, steps: Sequence[Any], locale: str, *,
                rollback: bool = False) -> discord.Embed:
    """A failed install (or rollback, `rollback`): what went wrong, whether it was undone,
    what the checkout is at now, and the id to ask /update_status about."""
    state = undo_state(error)
    undo = str(error.details.get("undo") or "")
    for prefix in ("rolled back: ", "undone: "):
        undo = undo.removeprefix(prefix)
    at_now = session.target_version if state == "left" else session.current_version
    step = _failed_step(steps)
    title = line(locale, f"failed_title_{state}" if not rollback
                 else f"rollback_failed_title_{state}")
    lines = [
        line(locale, "failed_what", kind=kind_name(session.update_type, "update_types", locale),
             current=session.current_version, target=session.target_version),
        line(locale, "failed_step", step=step_label(step, locale)) if step else None,
        line(locale, "failed_error", error=error.message),
        line(locale, f"failed_state_{state}", version=at_now),
        line(locale, "failed_undo", undo=undo) if undo and state != "unchanged" else None,
        line(locale, "failed_left_hint", version=at_now) if state == "left" else None,
        line(locale, "failed_id", id=session.id),
        line(locale, "failed_log", id=session.id),
    ]
    return card(title, lines, "error", locale)


def log_card(session: Any, tail: list[str], locale: str) -> discord.Embed:
    """One update, as the owner asks for it by id: its outcome and the last lines of its
    log, as the commands printed them (scrubbed)."""
    lines = [
        line(locale, "log_session", kind=kind_name(session.update_type, "update_types", locale),
             current=session.current_version, target=session.target_version,
             status=line(locale, f"outcome_{session.status.value}")),
        line(locale, "log_started", when=when(session.started_at, locale)),
        line(locale, "log_by", by=session.initiated_by),
        line(locale, "log_id", id=session.id),
    ]
    if session.error_message:
        lines.append(line(locale, "failed_error", error=session.error_message))
    embed = card(line(locale, "log_title"), lines, "info", locale)
    shown = scrub("\n".join(tail)).replace("```", "`\u200b``")
    # The end of a log says most: what is cut is its beginning.
    value = f"```\n{shown[-(LIMITS['field_value'] - 8):]}\n```" if tail \
        else line(locale, "log_empty")
    embed.add_field(name=line(locale, "log_tail", count=len(tail)), value=value, inline=False)
    return embed
