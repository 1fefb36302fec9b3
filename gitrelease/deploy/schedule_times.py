"""Update schedules: when they run next, in the configured time zone, across DST.

Times are wall-clock times in the `timezone` setting. A time that does not exist on a day
(the hour skipped when clocks go forward) runs at the next minute that does; a time that
exists twice (clocks go back) runs once, at its first occurrence. Monthly days past a
month's end (the 31st in April, the 30th in February) run on that month's last day.
Cron expressions (custom schedules) go through croniter, the well-kept implementation.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gitrelease.core.errors import InvalidInput
from gitrelease.core.models import ScheduleType, UpdateSchedule, UpdateType

__all__ = ["WEEKDAYS", "ScheduleRequest", "next_run", "parse_request"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_TYPES = ("bot", "packages", "config", "dependencies")


@dataclass(frozen=True)
class ScheduleRequest:
    schedule_type: ScheduleType
    update_time: str
    update_days: list[str]  # weekday names, days of the month as text, or one cron expression
    update_types: list[UpdateType]
    enabled: bool


def parse_request(
    schedule_type: str, update_time: str | None, update_days: str | None, update_types: str,
    enabled: bool, *, default_time: str, allowed_types: list[str],
) -> ScheduleRequest:
    """A schedule as people give it (the slash command's text), checked field by field."""
    try:
        kind = ScheduleType(schedule_type)
    except ValueError:
        raise InvalidInput("schedule_type", schedule_type,
                           [t.value for t in ScheduleType]) from None
    at = update_time if update_time is not None else default_time
    if not isinstance(at, str) or not _HHMM.match(at):
        raise InvalidInput("update_time", update_time, "a time HH:MM, 00:00 to 23:59")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled", enabled, "true or false")
    days = _days(kind, update_days)
    return ScheduleRequest(kind, at, days, _types(update_types, allowed_types), enabled)


def _days(kind: ScheduleType, text: str | None) -> list[str]:
    items = [d.strip().lower() for d in (text or "").split(",") if d.strip()]
    if kind is ScheduleType.DAILY:
        if items:
            raise InvalidInput("update_days", text, "nothing for a daily schedule")
        return []
    if kind is ScheduleType.MONTHLY:
        if not items or not all(d.isdigit() and 1 <= int(d) <= 31 for d in items):
            raise InvalidInput("update_days", text, "days of the month 1-31, e.g. 1,15",
                               reason="" if items else "a monthly schedule needs its days")
        return sorted({str(int(d)) for d in items}, key=int)
    if kind is ScheduleType.CUSTOM and text and len(text.split()) == 5:
        from croniter import croniter

        if not croniter.is_valid(text.strip()):
            raise InvalidInput("update_days", text, "weekday names or a 5-field cron expression")
        return [text.strip()]
    if not items or not all(d in WEEKDAYS for d in items):
        raise InvalidInput("update_days", text, "weekday names, e.g. monday,thursday"
                           + (", or a 5-field cron expression" if kind is ScheduleType.CUSTOM
                              else ""),
                           reason="" if items else f"a {kind.value} schedule needs its days")
    return sorted(set(items), key=WEEKDAYS.index)


def _types(text: str, allowed: list[str]) -> list[UpdateType]:
    items = [t.strip().lower() for t in (text or "").split(",") if t.strip()]
    if items == ["all"]:
        items = [t for t in _TYPES if t in allowed]
    bad = [t for t in items if t not in _TYPES or t not in allowed]
    if not items or bad:
        raise InvalidInput("update_types", text, [*allowed, "all"],
                           reason=f"{bad[0]!r} is not allowed" if bad else "none given")
    return [UpdateType(t) for t in _TYPES if t in items]  # the order they run in


def next_run(schedule: UpdateSchedule, after: datetime, zone: ZoneInfo) -> datetime | None:
    """The first run strictly after `after` (UTC), or None for a schedule that never runs."""
    if not schedule.enabled:
        return None
    days = schedule.update_days
    if schedule.schedule_type is ScheduleType.CUSTOM and len(days) == 1 and " " in days[0]:
        from croniter import croniter

        local = after.astimezone(zone)
        found = croniter(days[0], local).get_next(datetime)
        return found.astimezone(UTC)
    hour, minute = (int(p) for p in (schedule.update_time or "00:00").split(":"))
    wanted: Callable[[date], bool]
    if schedule.schedule_type is ScheduleType.DAILY:
        wanted = _every_day
    elif schedule.schedule_type is ScheduleType.MONTHLY:
        numbers = {int(d) for d in days}

        def wanted(day: date) -> bool:
            last = calendar.monthrange(day.year, day.month)[1]
            return day.day in numbers or (day.day == last and any(n > last for n in numbers))
    else:
        names = {WEEKDAYS.index(d) for d in days}

        def wanted(day: date) -> bool:
            return day.weekday() in names
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(400):
        day += timedelta(days=1)
        if not wanted(day):
            continue
        moment = _local(datetime.combine(day, time(hour, minute)), zone)
        if moment > after:
            return moment
    return None


def _every_day(day: date) -> bool:
    return True


def _local(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time as UTC: the first of two, or the next minute that exists."""
    for _ in range(24 * 60):
        aware = naive.replace(tzinfo=zone, fold=0)
        if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
            return aware.astimezone(UTC)
        naive += timedelta(minutes=1)
    raise ValueError(f"no valid local time near {naive}")
