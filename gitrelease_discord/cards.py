"""Check, install and rollback cards in the shapes of the specification's usage examples.

Markdown for Discord (headings, bullets, bold names, timestamps that each reader sees in their
own time zone), every line from the locale file; the CLI keeps its plain text
(`gitrelease.cli.render`). Backups, restores, schedules, status and settings have theirs in
`state_cards`. Everything here is cut to Discord's limits by `fit`, and scrubbed of secrets.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord

from gitrelease.core.text import size
from gitrelease_discord.card_text import card as _embed
from gitrelease_discord.card_text import flag as _flag
from gitrelease_discord.card_text import line as _t
from gitrelease_discord.card_text import took as _words
from gitrelease_discord.card_text import when as _when
from gitrelease_discord.embeds import COLOURS, LIMITS, cut, fit, scrub
from gitrelease_discord.i18n import label

if TYPE_CHECKING:
    from gitrelease.core.models import UpdateSession
    from gitrelease.core.reports import CheckReport

__all__ = ["breaking_notes", "check_card", "confirm_card", "progress_text", "session_card",
           "step_label"]


# -- progress ----------------------------------------------------------------------------------


def step_label(step: str, locale: str) -> str:
    """What an engine step ("backup", "checkout", ...) is called for people."""
    # Steps are the engine's words (a restart step carries its command, braces and all): a
    # step with no label is shown as it is, never used as a template.
    return label(f"steps.{step}", locale) or step


def progress_text(done: list[str], step: str, percent: int, locale: str) -> str:
    """✅ for each step done, then the one running: "Progress: 30% - Fetching releases…"."""
    lines = [_t(locale, "step_done", step=step_label(name, locale)) for name in done[-12:]]
    if step not in done:
        lines.append(_t(locale, "progress", percent=percent, step=step_label(step, locale)))
    return "\n".join(lines)


# -- check -------------------------------------------------------------------------------------


def check_card(report: CheckReport, title: str, locale: str, *,
               details: bool = False) -> discord.Embed:
    data = report.to_dict()
    security = data["security_updates"]
    lines = [
        _t(locale, "check_available", count=data["total_updates"]),
        _t(locale, "check_security", count=_t(locale, "not_checked") if security is None
           else security),
        _t(locale, "check_breaking", count=data["breaking_updates"]),
        _t(locale, "check_last", when=_when(report.last_check, locale)),
    ]
    bot = report.bot
    if bot is not None:
        changelog = (bot.changelog or "-").strip()
        if not details:
            changelog = cut(changelog.splitlines()[0] if changelog else "-", 200)
        lines += [
            _t(locale, "bot_heading"),
            _t(locale, "bot_version", tag=bot.tag or bot.version, current=bot.current_version),
            _t(locale, "bot_size", size=size(bot.size), commits=bot.commit_count,
               files=bot.files_changed),
            _t(locale, "bot_changelog", changelog=cut(changelog, 1500)),
            _t(locale, "bot_security", value=_flag(bot.security_update, locale)),
            _t(locale, "bot_breaking", value=_flag(bot.breaking_changes, locale,
                                                        unknown="unknown")),
            _t(locale, "bot_signature", value=bot.signature or "-"),
            _t(locale, "bot_released", when=_when(bot.release_date, locale)),
        ]
        if details and len(bot.releases) > 1:
            lines.append(_t(locale, "bot_newer", tags=", ".join(
                str(r["tag"]) for r in bot.releases[:20])))
    elif "bot" not in report.errors and report.check_type.value in ("all", "bot"):
        lines += [_t(locale, "bot_heading"),
                  _t(locale, "bot_up_to_date", version=report.current_version)]
    updates = [p for p in report.packages if p.get("update_available")]
    if updates:
        lines.append(_t(locale, "packages_heading", count=len(updates)))
        for number, package in enumerate(updates[:15], start=1):
            marker = _t(locale, "security_marker") if package.get("security") else ""
            lines.append(_t(locale, "package_line", n=number, name=package["package"],
                            current=package.get("current_version") or "-",
                            latest=package.get("latest_version") or "-", marker=marker))
        if len(updates) > 15:
            lines.append(_t(locale, "and_more", count=len(updates) - 15))
    if report.config:
        config = report.config
        lines += [_t(locale, "config_heading"),
                  _t(locale, "config_version", version=config.get("version", "-")),
                  _t(locale, "config_changes", changes="; ".join(config.get("changes", []))
                     or "-"),
                  _t(locale, "config_restart",
                     value=_flag(bool(config.get("requires_restart")), locale))]
    for source, error in report.errors.items():
        lines.append(_t(locale, "warning_line", text=f"{source}: {error.message}"))
    lines += [_t(locale, "warning_line", text=w) for w in report.warnings[:10]]
    colour = "warn" if report.errors or data["total_updates"] else "ok"
    return _embed(title, lines, colour, locale)


# -- install and rollback ----------------------------------------------------------------------


def session_card(session: UpdateSession, title: str, locale: str) -> discord.Embed:
    s = session.to_dict()
    status = s["status"]
    ok = status in ("completed", "restarting")
    took = None
    if session.completed_at is not None:
        took = (session.completed_at - session.started_at).total_seconds()
    lines = [
        _t(locale, "session_versions", current=s["current_version"] or "-",
           target=s["target_version"], tag=f" ({s['target_tag']})" if s.get("target_tag")
           else ""),
        _t(locale, "session_time", time=_words(took, locale)),
        _t(locale, "session_id", id=s["id"]),
    ]
    lines += [_t(locale, "step_done", step=step_label(step, locale))
              for step in s["steps_completed"][:15]]
    if s.get("backup_id"):
        lines.append(_t(locale, "session_backup", id=s["backup_id"]))
    if s["error_message"]:
        lines.append(_t(locale, "session_error", error=s["error_message"]))
    lines += [_t(locale, "warning_line", text=w) for w in s.get("warnings", [])[:10]]
    if status == "restarting":
        lines.append(_t(locale, "session_restarting"))
    elif s.get("restart_needed") and status == "completed":
        lines.append(_t(locale, "session_restart_needed"))
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


def confirm_card(tag: str, changelog: str | None, warnings: list[str],
                 locale: str) -> discord.Embed:
    """Install `tag`? Breaking notes first, then the changelog and the engine's warnings
    (those that a forced run would add about the reasons already listed are left out). The
    reasons and the prompt are the description, written by whoever asks."""
    embed = discord.Embed(title=cut(scrub(_t(locale, "confirm_title", tag=tag)),
                                    LIMITS["title"]), colour=COLOURS["warn"])
    breaking = breaking_notes(changelog)
    if breaking:
        embed.add_field(name=_t(locale, "confirm_breaking"), inline=False,
                        value=cut(scrub(_plain("\n".join(breaking))), LIMITS["field_value"]))
    embed.add_field(name=_t(locale, "confirm_changelog"), inline=False,
                    value=cut(scrub(_plain(changelog or "-")), LIMITS["field_value"]))
    shown = [w for w in warnings if not w.startswith("installed with --force although")]
    for warning in shown[:5]:
        embed.add_field(name=_t(locale, "confirm_warning"), inline=False,
                        value=cut(scrub(_plain(warning)), LIMITS["field_value"]))
    if len(shown) > 5:
        embed.add_field(name=_t(locale, "confirm_warning"), inline=False,
                        value=_t(locale, "and_more", count=len(shown) - 5))
    return fit(embed, locale)
