"""Backup, restore, schedule, status and settings cards, in the shapes of the specification's
usage examples: every line from the locale file, cut to Discord's limits and scrubbed of
secrets (see `card_text`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from gitrelease.core.text import size
from gitrelease_discord.card_text import card as _embed
from gitrelease_discord.card_text import line as _t
from gitrelease_discord.card_text import took as _words
from gitrelease_discord.card_text import when as _when

if TYPE_CHECKING:
    from gitrelease.core.models import Backup, SystemInfo, UpdateSchedule
    from gitrelease.core.reports import RestoreResult

__all__ = ["backup_card", "backups_page", "restore_card", "schedule_card", "status_card"]


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
