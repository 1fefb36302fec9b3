"""Result embeds in the shapes of the specification's usage examples.

Markdown for Discord (headings, bullets, bold names, relative timestamps that each reader sees
in their own time zone), every line from the locale file; the CLI keeps its plain text
(`gitrelease.cli.render`). Everything here is cut to Discord's limits by `fit`, and scrubbed of
secrets.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from gitrelease.core.text import size
from gitrelease_discord.embeds import COLOURS, LIMITS, cut, fit, scrub
from gitrelease_discord.i18n import label, text

if TYPE_CHECKING:
    from gitrelease.core.models import Backup, SystemInfo, UpdateSchedule, UpdateSession
    from gitrelease.core.reports import CheckReport, RestoreResult

__all__ = ["backup_card", "backups_page", "breaking_notes", "check_card", "confirm_card",
           "progress_text", "restore_card",
           "schedule_card", "session_card", "status_card", "step_label"]


def _t(locale: str, key: str, **values: Any) -> str:
    return text(f"cards.{key}", locale, **values)


def _when(moment: datetime | str | None, locale: str) -> str:
    """A Discord timestamp ("2 hours ago", in the reader's own locale and zone)."""
    if moment is None:
        return _t(locale, "never")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return f"<t:{int(moment.timestamp())}:R>"


def _flag(value: bool | None, locale: str, *, unknown: str = "not_checked") -> str:
    return _t(locale, unknown if value is None else ("yes" if value else "no"))


def _embed(title: str, lines: list[str], colour: str, locale: str) -> discord.Embed:
    body = "\n".join(line for line in lines if line is not None)
    return fit(discord.Embed(title=cut(scrub(title), LIMITS["title"]),
                             description=cut(scrub(body), LIMITS["description"]),
                             colour=COLOURS[colour]), locale)


def _words(seconds: float | None, locale: str) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    plain = _t(locale, "second" if rest == 1 else "seconds", seconds=rest)
    return _t(locale, "minutes", minutes=minutes, seconds=plain) if minutes else plain


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


# -- backups -----------------------------------------------------------------------------------


def _state(backup: Backup, locale: str) -> str:
    if backup.status.value == "completed":
        return _t(locale, "backup_verified" if backup.verified_at else "backup_unverified")
    return _t(locale, "backup_bad", status=backup.status.value.upper(),
              problem=f": {backup.problem}" if backup.problem else "")


def backup_card(backup: Backup, title: str, locale: str) -> discord.Embed:
    lines = [
        _t(locale, "backup_id", id=backup.id),
        _t(locale, "backup_name", name=backup.name),
        _t(locale, "backup_type", type=backup.backup_type.value.capitalize()),
        _t(locale, "backup_size", size=size(backup.file_size),
           compressed=size(backup.compressed_size)),
        _t(locale, "backup_checksum", checksum=backup.checksum[:16] + "…"
           if backup.checksum else "-"),
        _t(locale, "backup_version", version=backup.tag or (backup.commit or "-")[:12]),
    ]
    if backup.description:
        lines.append(_t(locale, "backup_description", description=backup.description))
    lines.append(_state(backup, locale))
    ok = backup.status.value == "completed"
    return _embed(title, lines, "ok" if ok else "error", locale)


def backups_page(backups: list[Backup], first: int, count: int, title: str,
                 locale: str) -> discord.Embed:
    """Entries `first` .. `first + count` of `backups`, numbered as in the whole list, with
    the whole list's totals."""
    lines = []
    for number, backup in enumerate(backups[first:first + count], start=first + 1):
        lines += [
            _t(locale, "list_entry", n=number, name=backup.name, id=backup.id,
               when=_when(backup.created_at, locale)),
            _t(locale, "list_sizes", type=backup.backup_type.value.capitalize(),
               size=size(backup.file_size), compressed=size(backup.compressed_size),
               version=backup.tag or (backup.commit or "-")[:12]),
            _state(backup, locale),
        ]
    stored = sum(b.compressed_size or 0 for b in backups)
    lines.append(_t(locale, "list_total", count=len(backups), stored=size(stored)))
    return _embed(title, lines, "info", locale)


def restore_card(result: RestoreResult, title: str, locale: str) -> discord.Embed:
    backup = result.backup
    lines = [
        _t(locale, "restore_from", name=backup.name, id=backup.id,
           when=_when(backup.created_at, locale)),
        _t(locale, "restore_type", type=result.restore_type),
        _t(locale, "restore_version", version=backup.tag or (backup.commit or "-")[:12]),
        _t(locale, "restore_files", count=len(result.restored),
           files=", ".join(result.restored[:10]) + ("…" if len(result.restored) > 10 else "")),
    ]
    if result.safety_backup is not None:
        lines.append(_t(locale, "restore_safety", id=result.safety_backup.id))
    return _embed(title, lines, "ok", locale)


# -- schedule and status -----------------------------------------------------------------------


def schedule_card(schedule: UpdateSchedule, title: str, locale: str) -> discord.Embed:
    lines = [
        _t(locale, "schedule_type", type=schedule.schedule_type.value),
        _t(locale, "schedule_time", time=schedule.update_time or "-"),
        _t(locale, "schedule_days", days=", ".join(schedule.update_days) or "-"),
        _t(locale, "schedule_updates", types=", ".join(t.value for t in schedule.update_types)),
        _t(locale, "schedule_status", status=_t(
            locale, "enabled" if schedule.enabled else "disabled")),
        _t(locale, "schedule_next", when=_when(schedule.next_run, locale)
           if schedule.next_run else "-"),
        _t(locale, "schedule_keep", count=schedule.max_backups_to_keep),
    ]
    return _embed(title, lines, "ok", locale)


def status_card(info: SystemInfo, title: str, locale: str) -> discord.Embed:
    stats, backups = info.update_statistics, info.backup_statistics
    rate = stats.get("success_rate")
    lines = [
        _t(locale, "status_version", version=info.version,
           tag=f" ({info.tag})" if info.tag else "", commit=(info.commit or "-")[:12]),
        _t(locale, "status_python", python=info.python_version,
           gitrelease=info.gitrelease_version or "-"),
        _t(locale, "status_uptime", uptime=str(info.uptime).split(".")[0],
           source=info.uptime_source),
        _t(locale, "status_last_update", when=_when(info.last_update, locale)),
        _t(locale, "status_updates_heading", range=stats.get("time_range", "-")),
        _t(locale, "status_updates", total=stats.get("total", 0),
           completed=stats.get("completed", 0), failed=stats.get("failed", 0),
           rate="-" if rate is None else f"{rate}%"),
        _t(locale, "status_durations",
           mean=_words(stats.get("mean_duration_seconds"), locale),
           longest=_words(stats.get("longest_duration_seconds"), locale)),
        _t(locale, "status_next_run", when=_when(stats.get("next_scheduled_run"), locale)),
    ]
    if backups:
        lines += [_t(locale, "status_backups_heading"),
                  _t(locale, "status_backups", count=backups.get("completed", 0),
                     stored=size(backups.get("stored_bytes")),
                     latest=backups.get("latest") or "-")]
        if backups.get("corrupted"):
            lines.append(_t(locale, "warning_line", text=_t(
                locale, "status_corrupted", count=backups["corrupted"])))
    if info.disk_usage or info.memory_usage:
        lines.append(_t(locale, "status_system_heading"))
    if info.disk_usage:
        d = info.disk_usage
        lines.append(_t(locale, "status_disk", free=size(d.get("free_bytes")),
                        total=size(d.get("total_bytes")), data=size(d.get("data_dir_bytes"))))
    if info.memory_usage:
        m = info.memory_usage
        lines.append(_t(locale, "status_memory", available=size(m.get("available_bytes")),
                        total=size(m.get("total_bytes"))))
    if info.recent_sessions:
        lines.append(_t(locale, "status_recent_heading"))
        for session in info.recent_sessions[:10]:
            lines.append(_t(locale, "status_recent", when=_when(session.started_at, locale),
                            status=session.status.value, kind=session.update_type.value,
                            current=session.current_version, target=session.target_version))
    lines += [_t(locale, "warning_line", text=w) for w in info.warnings[:10]]
    return _embed(title, lines, "info", locale)


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
