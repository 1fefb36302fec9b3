"""Schedules in the index, and the runner that installs what is due.

`run_due` is what a cron job or systemd timer calls (`gitrelease schedule run-due`) and what
the bot's loop will call: each due schedule is claimed in the index first (compare-and-set
on its `next_run`), so two runners started together never run one schedule twice. A run
missed by more than `schedule_grace_minutes` (the bot was down) is skipped and logged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gitrelease.core.errors import GitReleaseError, InvalidInput
from gitrelease.core.models import UpdateSchedule, UpdateStatus, UpdateType, utcnow
from gitrelease.core.reports import ScheduleEvent, ScheduleListener, Stage
from gitrelease.deploy.schedule_times import ScheduleRequest, next_run, parse_request
from gitrelease.deploy.updates import install_updates

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment

__all__ = ["RunReport", "ScheduleEvent", "ScheduleListener", "Scheduler", "Stage"]

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    now: datetime
    ran: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "ran": self.ran, "skipped": self.skipped}


class Scheduler:
    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.d.settings.timezone)

    async def check(
        self, schedule_type: str, update_time: str | None, update_days: str | None,
        update_types: str, enabled: bool,
    ) -> ScheduleRequest:
        """The schedule as asked, checked field by field and against max_schedules; nothing
        is written (a front-end asks this before it shows that work has started)."""
        settings = self.d.settings
        request = parse_request(schedule_type, update_time, update_days, update_types,
                                enabled, default_time=settings.default_time,
                                allowed_types=settings.allowed_update_types)
        store = await self.d.existing_index()
        existing = await store.list_schedules() if store is not None else []
        if len(existing) >= settings.max_schedules:
            raise InvalidInput("schedule_type", schedule_type,
                               f"at most {settings.max_schedules} schedules (max_schedules)",
                               reason="remove one first")
        return request

    async def add(
        self, schedule_type: str, update_time: str | None, update_days: str | None,
        update_types: str, enabled: bool, actor: str,
    ) -> UpdateSchedule:
        settings = self.d.settings
        request = await self.check(schedule_type, update_time, update_days, update_types,
                                   enabled)
        store = await self.d.index()
        now = utcnow()
        schedule = UpdateSchedule(
            id=f"sch_{uuid.uuid4().hex[:8]}", name=f"{request.schedule_type.value} "
            f"{request.update_time}", schedule_type=request.schedule_type,
            update_time=request.update_time, update_days=request.update_days,
            update_types=request.update_types, enabled=request.enabled, created_by=actor,
            created_at=now, last_run=None, next_run=None,
            max_backups_to_keep=settings.max_backups)
        schedule.next_run = next_run(schedule, now, self.zone)
        await store.save_schedule(schedule)
        await store.audit(actor, "schedule_add", schedule.id, "completed", schedule.to_dict())
        return schedule

    async def get(self, schedule_id: str) -> UpdateSchedule:
        store = await self.d.existing_index()
        found = [s for s in (await store.list_schedules() if store else [])
                 if s.id == schedule_id]
        if not found:
            raise InvalidInput("schedule_id", schedule_id, "an id listed by `schedule list`",
                               reason="no such schedule")
        return found[0]

    async def set_enabled(self, schedule_id: str, enabled: bool, actor: str) -> UpdateSchedule:
        schedule = await self.get(schedule_id)
        schedule.enabled = enabled
        schedule.next_run = next_run(schedule, utcnow(), self.zone)
        store = await self.d.index()
        await store.save_schedule(schedule)
        await store.audit(actor, "schedule_enable" if enabled else "schedule_disable",
                          schedule.id, "completed")
        return schedule

    async def remove(self, schedule_id: str, actor: str) -> UpdateSchedule:
        schedule = await self.get(schedule_id)
        store = await self.d.index()
        await store.delete_schedule(schedule.id)
        await store.audit(actor, "schedule_remove", schedule.id, "completed")
        return schedule

    async def run_due(self, now: datetime | None = None, *,
                      listener: ScheduleListener | None = None) -> RunReport:
        """Run what is due at `now`; `listener` hears each run start and end (never raising
        into the run: a listener's failure is logged)."""
        moment = now or utcnow()
        report = RunReport(moment)
        store = await self.d.existing_index()
        if store is None or not self.d.settings.scheduling_enabled:
            return report
        grace = timedelta(minutes=self.d.settings.schedule_grace_minutes)

        async def tell(stage: Stage, schedule: UpdateSchedule, detail: str = "") -> None:
            if listener is not None:
                try:
                    await listener(ScheduleEvent(stage, schedule, detail))
                except Exception:  # an announcement never stops an update
                    log.exception("schedule listener failed on %s", stage.value)

        for schedule in await store.list_schedules():
            due = schedule.next_run
            if not schedule.enabled or due is None or due > moment:
                continue
            schedule.next_run = next_run(schedule, moment, self.zone)
            if not await store.claim_schedule(schedule.id, due, schedule.next_run):
                continue  # another runner took it
            if moment - due > grace:
                late = int((moment - due).total_seconds() // 60)
                schedule.last_outcome = f"skipped: missed by {late} minutes"
                report.skipped.append({"schedule": schedule.id, "due": due.isoformat()})
                final, ok = Stage.SKIPPED, False
            else:
                schedule.last_run = moment
                await tell(Stage.STARTED, schedule)
                schedule.last_outcome, ok = await self._run(schedule)
                report.ran.append({"schedule": schedule.id, "due": due.isoformat(),
                                   "outcome": schedule.last_outcome})
                final = Stage.COMPLETED if ok else Stage.FAILED
            # Recorded before it is announced: an update that asks for a restart may end the
            # process while the announcement is posted, and the run must not be lost then.
            await store.save_schedule(schedule)
            await store.audit(f"schedule:{schedule.id}", "schedule_run", schedule.id,
                              schedule.last_outcome or "")
            await tell(final, schedule, schedule.last_outcome or "")
        return report

    async def run_forever(self, stop: asyncio.Event, *, wake: asyncio.Event | None = None,
                          listener: ScheduleListener | None = None,
                          longest_sleep: float = 3600.0) -> None:
        """The bot's runner: run what is due (a run missed while the bot was down, within
        the grace period, runs now), then sleep until the next run is due, not polling.
        Setting `wake` (a schedule was added or changed) ends the sleep at once; it also
        wakes at least every `longest_sleep` seconds, and reads the settings again each
        time, so scheduling_enabled, timezone and the rest are seen as they are now."""
        while not stop.is_set():
            if wake is not None:
                wake.clear()
            with suppress(GitReleaseError):
                await self.d.in_thread(self.d.reload_settings)
            # A failing run is recorded in the schedule and the audit log; the loop goes on,
            # and an error nobody foresaw is logged, not allowed to end scheduling for good.
            retry = False
            try:
                await self.run_due(listener=listener)
            except GitReleaseError as exc:
                log.warning("scheduled run: %s", exc.message)
                retry = True
            except Exception:
                log.exception("scheduled run failed unexpectedly; trying again later")
                retry = True
            upcoming: list[datetime] = []
            try:
                store = await self.d.existing_index()
                upcoming = [s.next_run for s in (await store.list_schedules() if store else [])
                            if s.enabled and s.next_run]
            except Exception:
                log.exception("could not read the schedules; trying again later")
                retry = True
            delay = longest_sleep
            if self.d.settings.scheduling_enabled:
                if upcoming:
                    until = (min(upcoming) - utcnow()).total_seconds()
                    # Still due after run_due: it could not start; try again in a while
                    # rather than spinning.
                    delay = min(delay, until if until > 0 else _RETRY_BUSY)
                if retry:
                    delay = min(delay, _RETRY_BUSY)
            await _first_of(stop, wake, timeout=max(delay, 1.0))

    async def _run(self, schedule: UpdateSchedule) -> tuple[str, bool]:
        """Install each of the schedule's types in turn (bot first); stop at a failure.
        The outcome as text, and whether every install completed."""
        outcomes, ok = [], True
        for kind in schedule.update_types:
            if kind is UpdateType.ALL:
                continue
            try:
                session = await install_updates(self.d, kind.value, {
                    "backup_before": self.d.settings.require_backup_before_schedule,
                    "initiated_by": f"schedule:{schedule.id}"})
            except GitReleaseError as exc:
                outcomes.append(f"{kind.value}: failed ({exc.code})")
                ok = False
                break
            status = session.status  # type: ignore[union-attr]
            outcomes.append(f"{kind.value}: {status.value}")
            if status in (UpdateStatus.FAILED, UpdateStatus.CANCELLED):
                ok = False
                break
        return "; ".join(outcomes), ok


_RETRY_BUSY = 30.0  # seconds before a due run that could not start is tried again


async def _first_of(stop: asyncio.Event, wake: asyncio.Event | None, *, timeout: float) -> None:
    """Sleep until `stop` or `wake` is set, or `timeout` seconds have passed."""
    waiters = [asyncio.create_task(event.wait(), name="gitrelease-schedule-sleep")
               for event in (stop, wake) if event]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
