"""What the engine's steps are called for people, and whether the bot was restarted.

An update's `steps_completed` holds the journal's step names ("backup", "checkout", ...) and a
few sentences the engine adds ("already at 1.0.0", "config: added .env: PREFIX", "restart:
by command; waiting ..."). A card shows each in the product's words from the locale file,
never the engine's text with a ✅ in front; a restart step never shows the operator's command
(the engine's sentence may quote it), only how the restart went. A step this module does not
know is shown as it is, as a value, never as a template: it may hold braces.
"""

from __future__ import annotations

from typing import Any

from gitrelease_discord.card_text import line
from gitrelease_discord.i18n import label

__all__ = ["restart_line", "step_label", "step_line"]

#: How the engine marks an added key whose value is a placeholder (configsync.NEEDS_VALUE,
#: which a front-end does not import: it is the engine's operations layer).
_NEEDS_VALUE = " (needs your value)"

#: "restart: ..." sentences, by how they begin, and what each says happened.
_RESTARTS = (
    ("restart: skipped as asked", "skipped"),
    ("restart: restart_method is none", "method_none"),
    ("restart: auto_restart is off", "auto_off"),
    ("restart: failed", "failed"),
    ("restart: confirmed:", "confirmed"),
    ("restart: accepted:", "accepted"),
)
#: Restart outcomes after which the bot is restarted (or restarting) into the new code.
_RESTARTED = frozenset({"requested", "waiting", "confirmed", "accepted", "done"})


def step_label(step: str, locale: str) -> str:
    """What an engine step ("backup", "checkout", ...) is called for people; a step with no
    label is shown as it is."""
    return label(f"steps.{step}", locale) or step


def _restart_kind(step: str) -> tuple[str, str]:
    """How a "restart: ..." sentence went, and the restart_method it names (if any)."""
    for prefix, kind in _RESTARTS:
        if step.startswith(prefix):
            return kind, ""
    if step.startswith("restart: by "):
        method, _, rest = step.removeprefix("restart: by ").partition(";")
        return ("waiting" if rest else "requested"), method.strip()
    return "done", ""  # ran the command, sent the signal, asked the bot to exit


def _key(added: str, locale: str) -> str:
    if added.endswith(_NEEDS_VALUE):
        return line(locale, "needs_value_marker", name=added.removesuffix(_NEEDS_VALUE))
    return added


def step_line(step: str, locale: str) -> str:
    """One finished step as a card line, in the product's words."""
    known = label(f"steps.{step}", locale)
    if known is not None:
        return line(locale, "step_done", step=known)
    if step.startswith("already at "):
        return line(locale, "step_already", version=step.removeprefix("already at "))
    if step == "config: nothing missing":
        return line(locale, "step_config_none")
    if step.startswith("config: added "):
        keys = step.removeprefix("config: added ").split(", ")
        return line(locale, "step_config_added", keys=", ".join(_key(k, locale) for k in keys))
    if step.startswith("local changes carried over: "):
        paths = step.removeprefix("local changes carried over: ").split(" (a copy: ")[0]
        return line(locale, "step_carried", paths=paths)
    if step.startswith("recovery: "):
        return line(locale, "step_recovered")
    if step.startswith("restart: "):
        kind, method = _restart_kind(step)
        return line(locale, f"step_restart_{kind}", method=method)
    return line(locale, "step_done", step=step)


def restart_line(session: Any, locale: str) -> str:
    """"System restarted: Yes", or No and why, from what the session recorded: RESTARTING
    is a restart set off and underway; COMPLETED with restart_needed leaves the bot running
    the code it started with, for the reason its last restart step gives."""
    status = session.status.value
    version = session.target_version
    if status == "restarting":
        return line(locale, "restarted_underway", version=version)
    if status != "completed":
        return line(locale, "restarted_not_finished")
    restarts = [_restart_kind(s)[0] for s in session.steps_completed
                if s.startswith("restart: ")]
    last = restarts[-1] if restarts else None
    if not session.restart_needed:
        return line(locale, "restarted_yes" if last in _RESTARTED else "restarted_not_needed")
    why = {"skipped": "restarted_no_asked", "method_none": "restarted_no_method",
           "auto_off": "restarted_no_auto", "failed": "restarted_no_failed"}
    return line(locale, why.get(last or "", "restarted_no"), version=version)
