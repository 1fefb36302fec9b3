"""Backup, restore, schedule and status cards, in the shapes of the specification's usage
examples: every line from the locale file, cut to Discord's limits and scrubbed of secrets
(see `card_text`). Titles say what happened, never an internal id; types and origins are
read as people name them ("Data only", "taken before an update"); moments are relative
beside absolute.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from gitrelease.core.text import size
from gitrelease_discord.card_text import card as _embed
from gitrelease_discord.card_text import kind_name
from gitrelease_discord.card_text import line as _t
from gitrelease_discord.card_text import took as _words
from gitrelease_discord.card_text import when as _when
from gitrelease_discord.i18n import label, text

if TYPE_CHECKING:
    from gitrelease.core.fleet import Instance
    from gitrelease.core.models import Backup, SystemInfo, UpdateSchedule
    from gitrelease.core.reports import RestoreResult

__all__ = ["backup_card", "backup_choice", "backups_page", "fleet_lines", "restore_card",
           "restore_intro", "schedule_card", "status_card"]


# -- backups -----------------------------------------------------------------------------------


def _state(backup: Backup, locale: str) -> str:
    if backup.status.value == "completed":
        state = _t(locale, "backup_verified" if backup.verified_at else "backup_unverified")
    else:
        state = _t(locale, "backup_bad", status=backup.status.value.upper(),
                   problem=f": {backup.problem}" if backup.problem else "")
    return f"{state} · {_where(backup, locale)}"


def _where(backup: Backup, locale: str) -> str:
    """Where it can be restored from: here, offsite, both, or how its upload stands."""
    return _t(locale, f"where_{backup.location}", attempts=backup.offsite_attempts)


def _origin(backup: Backup, locale: str) -> str:
    """Why it was taken: "by hand", "taken before an update", ..."""
    return _t(locale, f"origin_{backup.origin.value}")


def _version(backup: Backup) -> str:
    return backup.tag or (backup.commit or "-")[:12]


def backup_card(backup: Backup, locale: str) -> discord.Embed:
    """📦 Backup Complete (or why not): what it holds, its size, checksum and origin."""
    ok = backup.status.value == "completed"
    title = text("backup_done_title" if ok else "backup_failed_title", locale,
                 status=backup.status.value)
    lines = [
        _t(locale, "backup_id", id=backup.id),
        _t(locale, "backup_name", name=backup.name),
        _t(locale, "backup_type", type=kind_name(backup.backup_type, "backup_types", locale)),
        _t(locale, "backup_origin", origin=_origin(backup, locale)),
        _t(locale, "backup_size", size=size(backup.file_size),
           compressed=size(backup.compressed_size)),
        _t(locale, "backup_checksum", checksum=backup.checksum[:16] + "…"
           if backup.checksum else "-"),
        _t(locale, "backup_version", version=_version(backup)),
        _t(locale, "backup_taken", when=_when(backup.created_at, locale)),
    ]
    if backup.description:
        lines.append(_t(locale, "backup_description", description=backup.description))
    lines.append(_state(backup, locale))
    lines += [_t(locale, "warning_line", text=w) for w in backup.warnings[:5]]
    return _embed(title, lines, "ok" if ok else "error", locale)


def backups_page(backups: list[Backup], first: int, count: int, time_range: str,
                 locale: str) -> discord.Embed:
    """📂 Available Backups (Last 30 days): entries `first` .. `first + count` of
    `backups`, numbered as in the whole list, with the whole list's totals."""
    lines = []
    for number, backup in enumerate(backups[first:first + count], start=first + 1):
        lines += [
            _t(locale, "list_entry", n=number, name=backup.name, id=backup.id,
               when=_when(backup.created_at, locale)),
            _sizes(backup, locale),
            _state(backup, locale),
        ]
    stored = sum(b.compressed_size or 0 for b in backups)
    lines.append(_t(locale, "list_total", count=len(backups), stored=size(stored)))
    title = text("backup_list_title", locale,
                 range=kind_name(time_range, "backup_ranges", locale))
    return _embed(title, lines, "info", locale)


def _sizes(backup: Backup, locale: str) -> str:
    """A full backup's raw and compressed sizes; an incremental one's base, its own archive
    and what a restore of it reads ("?": part of its chain is not in the index)."""
    kind = kind_name(backup.backup_type, "backup_types", locale)
    if backup.base_id is None:
        return _t(locale, "list_sizes", type=kind, size=size(backup.file_size),
                  compressed=size(backup.compressed_size), version=_version(backup),
                  origin=_origin(backup, locale))
    return _t(locale, "list_sizes_incremental", type=kind, version=_version(backup),
              base=backup.base_id, own=size(backup.compressed_size),
              reads=size(backup.chain_size), origin=_origin(backup, locale))


def backup_choice(backup: Backup, now: datetime, locale: str) -> str:
    """A backup as a suggestion: "pre_v2 · Full · 1.4.0 · 3 days ago · taken before an
    update" (autocomplete names are plain text: no timestamps there)."""
    return _t(locale, "backup_choice", name=backup.name,
              type=kind_name(backup.backup_type, "backup_types", locale),
              version=_version(backup), age=_age(now - backup.created_at, locale),
              origin=_origin(backup, locale), state="" if backup.status.value == "completed"
              else f" · {backup.status.value.upper()}")


def _age(delta: Any, locale: str) -> str:
    """How long ago, in words: "just now", "5 minutes ago", "3 hours ago", "2 days ago"."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, length in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= length:
            count = seconds // length
            return _t(locale, f"ago_{unit}_one" if count == 1 else f"ago_{unit}", count=count)
    return _t(locale, "ago_now")


# -- restore -----------------------------------------------------------------------------------


def restore_intro(backup: Backup, restore_type: str, locale: str) -> str:
    """Said above a restore's progress: what it brings back, from when."""
    return _t(locale, "restore_warning", when=_when(backup.created_at, locale),
              type=kind_name(restore_type, "restore_types", locale), name=backup.name)


def restore_card(result: RestoreResult, seconds: float, locale: str) -> discord.Embed:
    """🎉 Restore Completed Successfully: from which backup, how long it took, the version
    the backup was taken at, what was put back and where the state before it was kept."""
    backup = result.backup
    lines = [
        _t(locale, "restore_from", name=backup.name, id=backup.id,
           when=_when(backup.created_at, locale)),
        _t(locale, "restore_type", type=kind_name(result.restore_type, "restore_types", locale)),
        _t(locale, "restore_time", time=_words(seconds, locale)),
        _t(locale, "restore_version", version=_version(backup)),
        _t(locale, "restore_files", count=len(result.restored),
           files=", ".join(result.restored[:10]) + ("…" if len(result.restored) > 10 else "")),
    ]
    if result.unchanged:
        lines.append(_t(locale, "restore_unchanged", count=result.unchanged))
    if result.safety_backup is not None:
        lines.append(_t(locale, "restore_safety", id=result.safety_backup.id))
    lines += [_t(locale, "warning_line", text=w) for w in result.warnings[:5]]
    lines.append(_t(locale, "restore_closing"))
    return _embed(text("restore_done_title", locale), lines, "ok", locale)


# -- schedule ----------------------------------------------------------------------------------


def _days(schedule: UpdateSchedule, locale: str) -> str:
    if not schedule.update_days:
        return _t(locale, "schedule_every_day") if schedule.schedule_type.value == "daily" \
            else "-"
    return ", ".join(label(f"weekdays.{day}", locale) or _t(locale, "month_day", day=day)
                     for day in schedule.update_days)


def _clock(value: str | None, locale: str) -> str:
    """"03:00 (3:00 AM)" for a time of day; a cron expression as it is."""
    if value is None:
        return "-"
    try:
        moment = datetime.strptime(value, "%H:%M")
    except ValueError:
        return value
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return _t(locale, "clock", time=value, twelve=f"{hour}:{moment.minute:02d} {half}")


def _plain(value: bool, locale: str) -> str:
    return _t(locale, "plain_yes" if value else "plain_no")


def schedule_card(schedule: UpdateSchedule, settings: Any, locale: str) -> discord.Embed:
    """The schedule as set (its time in its time zone, the days, what it updates, when it
    runs next) and what each run will do besides the update (backup first, restart,
    notify, backups kept)."""
    kind = kind_name(schedule.schedule_type, "schedule_types", locale)
    restarts = bool(settings.auto_restart) and settings.restart_method != "none"
    notifies = bool(settings.update_completion_notifications and settings.notify_channels)
    lines = [
        _t(locale, "schedule_heading"),
        _t(locale, "schedule_type", type=kind),
        _t(locale, "schedule_time", time=_clock(schedule.update_time, locale),
           zone=settings.timezone),
        _t(locale, "schedule_days", days=_days(schedule, locale)),
        _t(locale, "schedule_updates", types=", ".join(
            kind_name(t, "update_types", locale) for t in schedule.update_types)),
        _t(locale, "schedule_status", status=_t(
            locale, "enabled" if schedule.enabled else "disabled")),
        _t(locale, "schedule_next", when=_when(schedule.next_run, locale)
           if schedule.next_run and schedule.enabled else _t(locale, "never")),
        _t(locale, "schedule_id", id=schedule.id),
        _t(locale, "actions_heading"),
        _t(locale, "actions_backup", value=_plain(settings.require_backup_before_update,
                                                  locale)),
        _t(locale, "actions_restart", value=_plain(restarts, locale)),
        _t(locale, "actions_notify", value=_plain(notifies, locale)
           if notifies or not settings.update_completion_notifications
           else _t(locale, "actions_no_channels")),
        _t(locale, "schedule_keep", count=schedule.max_backups_to_keep),
        _t(locale, f"schedule_closing_{schedule.schedule_type.value}" if schedule.enabled
           else "schedule_closing_off"),
    ]
    return _embed(text("schedule_title", locale), lines, "ok" if schedule.enabled else "info",
                  locale)


# -- status ------------------------------------------------------------------------------------


def _running(info: SystemInfo, running_commit: str | None, running_since: datetime | None,
             locale: str) -> list[str]:
    """A restart pending: the process runs an older commit than the checkout holds."""
    if not running_commit or not info.commit or running_commit == info.commit:
        return []
    return [_t(locale, "status_restart_pending", running=running_commit[:12],
               since=_when(running_since, locale), version=info.version)]


def status_card(info: SystemInfo, locale: str, *, running_commit: str | None = None,
                running_since: datetime | None = None,
                fleet: tuple[list[Instance], float] | None = None) -> discord.Embed:
    """The version running and checked out (a restart pending when they differ), the
    updates of the time range, the backups, the system and the recent updates."""
    stats, backups = info.update_statistics, info.backup_statistics
    rate = stats.get("success_rate")
    lines = [
        _t(locale, "status_version", version=info.version,
           tag=f" ({info.tag})" if info.tag else "", commit=(info.commit or "-")[:12]),
        *_running(info, running_commit, running_since, locale),
        _t(locale, "status_python", python=info.python_version,
           gitrelease=info.gitrelease_version or "-"),
        _t(locale, "status_uptime", uptime=str(info.uptime).split(".")[0],
           source=info.uptime_source),
        _t(locale, "status_last_update", when=_when(info.last_update, locale)),
        _t(locale, "status_updates_heading", range=kind_name(
            stats.get("time_range", "-"), "time_ranges", locale)),
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
    lines += _system(info, locale)
    lines += fleet_lines(*fleet, locale) if fleet is not None else []
    if info.recent_sessions:
        lines.append(_t(locale, "status_recent_heading"))
        for session in info.recent_sessions[:10]:
            lines.append(_t(locale, "status_recent", when=_when(session.started_at, locale),
                            status=session.status.value, id=session.id,
                            kind=kind_name(session.update_type, "update_types", locale),
                            current=session.current_version, target=session.target_version))
    lines += [_t(locale, "warning_line", text=w) for w in info.warnings[:10]]
    return _embed(text("status_title", locale), lines, "info", locale)


def fleet_lines(instances: list[Instance], stale: float, locale: str) -> list[str]:
    """Every deployment on the shared index: its group, release, state and last report."""
    from gitrelease.core.models import utcnow

    now = utcnow()
    lines = [_t(locale, "fleet_heading", count=len(instances))]
    for i in instances[:20]:
        lines.append(_t(locale, "fleet_line", group=i.group, id=i.id, version=i.version,
                        state=_t(locale, f"fleet_{i.state(now, stale)}"), host=i.host,
                        when=_when(i.heartbeat_at, locale)))
    if len(instances) > 20:
        lines.append(_t(locale, "and_more", count=len(instances) - 20))
    return lines


def _system(info: SystemInfo, locale: str) -> list[str]:
    lines = [_t(locale, "status_system_heading")] if info.disk_usage or info.memory_usage \
        else []
    if info.disk_usage:
        d = info.disk_usage
        lines.append(_t(locale, "status_disk", free=size(d.get("free_bytes")),
                        total=size(d.get("total_bytes")), data=size(d.get("data_dir_bytes"))))
    if info.memory_usage:
        m = info.memory_usage
        lines.append(_t(locale, "status_memory", available=size(m.get("available_bytes")),
                        total=size(m.get("total_bytes"))))
    return lines
