"""Check, install and rollback cards in the shapes of the specification's usage examples.

Markdown for Discord (headings, bullets, bold names, timestamps that each reader sees in their
own time zone), every line from the locale file; the CLI keeps its plain text
(`gitrelease.cli.render`). The check card is `report_card`'s, the steps' words are
`step_text`'s; backups, restores, schedules, status and settings have theirs in
`state_cards`. Everything here is cut to Discord's limits by `fit`, and scrubbed of secrets.

An install shows its plan first (the packages pip would move, downgrades marked; the config
keys it would add; what the backup would hold), on the confirm card and above the progress,
and then its result: what changed, how long it took, and whether the bot was restarted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from gitrelease_discord.card_text import card as _embed
from gitrelease_discord.card_text import kind_name
from gitrelease_discord.card_text import line as _t
from gitrelease_discord.card_text import took as _words
from gitrelease_discord.embeds import COLOURS, LIMITS, cut, fit, scrub
from gitrelease_discord.i18n import text
from gitrelease_discord.report_card import check_card, holds_lines
from gitrelease_discord.step_text import restart_line, step_label, step_line

if TYPE_CHECKING:
    from gitrelease.core.models import UpdateSession
    from gitrelease.core.reports import InstallPlan

__all__ = ["breaking_notes", "check_card", "confirm_card", "plan_lines", "progress_text",
           "session_card", "step_label", "step_line"]

_MOVES_SHOWN = 20
#: Kinds of install that move packages, and that merge config.
_MOVES_PACKAGES = frozenset({"packages", "all", "dependencies"})
_MERGES_CONFIG = frozenset({"config", "all"})


# -- progress ----------------------------------------------------------------------------------


def progress_text(done: list[str], step: str, percent: int, locale: str) -> str:
    """✅ for each step done, then the one running: "Progress: 30% - Fetching releases…"."""
    lines = [step_line(name, locale) for name in done[-12:]]
    if step not in done:
        lines.append(_t(locale, "progress", percent=percent, step=step_label(step, locale)))
    return "\n".join(lines)


# -- the plan: what an install would change besides the code ------------------------------------


def _move(move: dict[str, Any], locale: str) -> str:
    """One package: "**botlib** 2.0 → 1.5 ⬇️ downgrade", newly installed, or removed."""
    name, old, new = move["name"], move.get("from"), move.get("to")
    if old is None:
        return _t(locale, "move_new", name=name, to=new)
    if new is None:
        return _t(locale, "move_removed", name=name, old=old)
    return _t(locale, "move_down" if move.get("downgrade") else "move_line", name=name,
              old=old, to=new)


def _moves(moves: list[dict[str, Any]], item: str, locale: str) -> list[str]:
    lines = [_t(locale, item, item=_move(m, locale)) for m in moves[:_MOVES_SHOWN]]
    if len(moves) > _MOVES_SHOWN:
        lines.append(_t(locale, "and_more", count=len(moves) - _MOVES_SHOWN))
    return lines


def _plan_sections(plan: InstallPlan, locale: str) -> list[tuple[str, list[str]]]:
    """(heading, lines) for each part of the plan that this kind of install has."""
    kind = plan.update_type.value
    sections = []
    if plan.package_changes or kind in _MOVES_PACKAGES:
        sections.append((_t(locale, "plan_packages", count=len(plan.package_changes)),
                         _moves(plan.package_changes, "plan_item", locale)
                         or [_t(locale, "plan_no_moves")]))
    if plan.config_keys or kind in _MERGES_CONFIG:
        count = sum(len(keys) for keys in plan.config_keys.values())
        sections.append((_t(locale, "plan_keys", count=count), [
            _t(locale, "plan_keys_line", live=live, keys=", ".join(keys))
            for live, keys in plan.config_keys.items()] or [_t(locale, "plan_no_keys")]))
    if "backup" in plan.steps:
        sections.append((_t(locale, "plan_backup"), holds_lines(plan.backup_holds, locale)
                         or [_t(locale, "plan_backup_unlisted")]))
    elif plan.steps:
        sections.append((_t(locale, "plan_backup"), [_t(locale, "plan_no_backup")]))
    return sections


def plan_lines(plan: InstallPlan, locale: str) -> list[str]:
    """The plan as card lines, each part under its heading: shown above an install's
    progress, so that what it does is in view while it runs."""
    lines: list[str] = []
    for heading, body in _plan_sections(plan, locale):
        lines += [_t(locale, "plan_heading", heading=heading), *body]
    return lines


# -- install and rollback ----------------------------------------------------------------------


def _title_key(session: UpdateSession) -> str:
    """The card line that titles a result other than "completed"."""
    status = session.status.value
    undone = status == "failed" and any(
        f"; {word}" in (session.error_message or "") for word in ("rolled back", "undone"))
    return "session_title_undone" if undone else f"session_title_{status}"


def session_card(session: UpdateSession, locale: str, *,
                 title: str | None = None) -> discord.Embed:
    """An install's (or, with its own `title`, a rollback's) result: the versions, what
    changed ("Updated packages: 2" and the moves), the time taken, whether the bot was
    restarted (and why not), the steps in words, then the backup, error and warnings."""
    if title is None:
        title = text("install_done_title", locale) if session.status.value == "completed" \
            else _t(locale, _title_key(session), status=session.status.value)
    ok = session.status.value in ("completed", "restarting")
    took = None
    if session.completed_at is not None:
        took = (session.completed_at - session.started_at).total_seconds()
    current, target = session.current_version or "-", session.target_version
    tag = f" ({session.target_tag})" if session.target_tag else ""
    kind = session.update_type.value
    lines: list[str | None] = [
        _t(locale, "session_versions", current=current, target=target, tag=tag)
        if current != target or tag else _t(locale, "session_version_same", version=target),
        # A rollback's title says what it is.
        _t(locale, "session_kind", kind=kind_name(kind, "update_types", locale))
        if kind != "rollback" else None,
    ]
    if session.package_changes or kind in _MOVES_PACKAGES:
        lines.append(_t(locale, "session_packages", count=len(session.package_changes)))
        lines += _moves(session.package_changes, "sub_item", locale)
    lines += [_t(locale, "session_time", time=_words(took, locale)),
              restart_line(session, locale), _t(locale, "session_id", id=session.id)]
    lines += [step_line(step, locale) for step in session.steps_completed[:15]]
    if session.backup_id:
        lines.append(_t(locale, "session_backup", id=session.backup_id))
    if session.error_message:
        lines.append(_t(locale, "session_error", error=session.error_message))
    lines += [_t(locale, "warning_line", text=w) for w in session.warnings[:10]]
    lines.append(_t(locale, "session_more"))
    return _embed(title, lines, "ok" if ok else "error", locale)


# -- confirmation ------------------------------------------------------------------------------

# Conventional-commit breaking markers: "feat!: ...", "fix(api)!: ...", "BREAKING CHANGE: ...".
_BREAKING = re.compile(r"^\W*[a-z]+(\([^)]*\))?!:|BREAKING[ -]CHANGE", re.IGNORECASE)


def _plain(changelog: str) -> str:
    """A changelog cannot close or open a code block, or ping, inside the card."""
    return changelog.replace("```", "`\u200b``").replace("@", "@\u200b")


def breaking_notes(changelog: str | None) -> list[str]:
    """The changelog's lines that announce a breaking change."""
    return [line.strip() for line in (changelog or "").splitlines()
            if _BREAKING.search(line)]


def confirm_card(plan: InstallPlan, locale: str) -> discord.Embed:
    """Install this? Breaking notes first, the changelog, then the plan (package moves,
    config keys to add, what the backup will hold) and the engine's warnings (those that a
    forced run would add about the reasons already listed are left out). The reasons and
    the prompt are the description, written by whoever asks."""
    info = plan.update
    title = _t(locale, "confirm_title", tag=plan.target_tag) if plan.target_tag else \
        _t(locale, "confirm_title_kind", version=plan.current_version,
           kind=kind_name(plan.update_type, "update_types", locale))
    embed = discord.Embed(title=cut(scrub(title), LIMITS["title"]), colour=COLOURS["warn"])
    fields: list[tuple[str, str]] = []
    if info is not None:
        breaking = breaking_notes(info.changelog)
        if breaking:
            fields.append((_t(locale, "confirm_breaking"), _plain("\n".join(breaking))))
        fields.append((_t(locale, "confirm_changelog"), _plain(info.changelog or "-")))
    fields += [(heading, "\n".join(body)) for heading, body in _plan_sections(plan, locale)]
    shown = [w for w in plan.warnings if not w.startswith("installed with --force although")]
    fields += [(_t(locale, "confirm_warning"), _plain(w)) for w in shown[:5]]
    if len(shown) > 5:
        fields.append((_t(locale, "confirm_warning"), _t(locale, "and_more",
                                                         count=len(shown) - 5)))
    for name, value in fields:
        embed.add_field(name=cut(scrub(name), LIMITS["field_name"]), inline=False,
                        value=cut(scrub(value), LIMITS["field_value"]))
    return fit(embed, locale)
