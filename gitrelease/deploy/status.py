"""`status`: what a deployment runs, on what host, and how its updates and backups went.

git, the host's facts and the index each wait on something of their own, so they are read
together; the statistics are SQL over the index (none without one, never creating it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from gitrelease.core.choices import STATUS_RANGES
from gitrelease.core.errors import GitReleaseError, InvalidInput, InvalidSetting
from gitrelease.core.models import SystemInfo, UpdateSession, UpdateStatus, utcnow
from gitrelease.core.text import redact
from gitrelease.deploy.check import last_check
from gitrelease.deploy.context import Deployment, in_thread, own_version
from gitrelease.deploy.guard import reconcile_if_idle
from gitrelease.deploy.holds import backup_holds

if TYPE_CHECKING:
    from gitrelease.git.releases import ReleaseSnapshot
    from gitrelease.index.store import BackupSummary, JournalStep

__all__ = ["get_update_status", "journal", "log_tail"]


async def get_update_status(
    d: Deployment, time_range: str = "7d", *, show_history: bool = False,
    show_metrics: bool = True,
) -> SystemInfo:
    """The deployment's version, host, update and backup statistics (see the facade)."""
    if time_range not in STATUS_RANGES:
        raise InvalidInput("time_range", time_range, list(STATUS_RANGES))
    since = utcnow() - STATUS_RANGES[time_range]
    import asyncio

    from gitrelease.deploy.lock import stale_note

    # Before anything settles under the lock (which would overwrite the note unseen).
    stale = await in_thread(stale_note, d.data_dir)

    layout_problems: list[str] = []
    try:
        backup_dir: Path | None = d.layout().backup_dir
    except GitReleaseError as exc:  # a bad backup_path: status still answers, and says so
        backup_dir = None
        layout_problems.append(exc.message)
    # Whatever a crash left half-way is settled first: what is read below (HEAD above all)
    # is the state after that recovery, never the one it found.
    store = await d.existing_index()
    if store is not None:
        await reconcile_if_idle(d, store)
    # git, the host's facts and the index each wait on something of their own: together.
    snap, host, (stats, summary, last, recent), holds = await asyncio.gather(
        in_thread(d.snapshot),
        in_thread(_host_facts, d, show_metrics, backup_dir),
        _index_statistics(d, since, show_history),
        in_thread(backup_holds, d))
    disk = host.disk
    if disk:  # the archives' sizes come from the index, which reconcile keeps true
        archives = summary.archive_bytes if summary else 0
        inside = backup_dir is not None and \
            backup_dir.resolve().is_relative_to(d.data_dir.resolve())
        disk = {**disk, "backups_bytes": archives,
                "data_dir_bytes": disk["data_dir_bytes"] + (archives if inside else 0)}
    stats = {"time_range": time_range, **stats,
             "last_check": await in_thread(last_check, d)}
    version_file, agrees, warnings = await in_thread(_version_file, d, snap)
    warnings += layout_problems + host.warnings + d.inert_settings() + ([stale] if stale else [])
    return SystemInfo(
        version=snap.current.text, python_version=host.python,
        bot_version=version_file, last_update=last.completed_at if last else None,
        uptime=host.uptime, disk_usage=disk, memory_usage=host.memory,
        update_statistics=stats, backup_statistics=_backup_statistics(summary),
        tag=snap.current.tag, commit=snap.current.commit,
        version_file_agrees=agrees, uptime_source=host.uptime_source,
        gitrelease_version=own_version(), recent_sessions=recent, warnings=warnings,
        backup_holds=holds,
    )


async def _index_statistics(
    d: Deployment, since: datetime, show_history: bool
) -> tuple[dict[str, Any], BackupSummary | None, UpdateSession | None, list[UpdateSession]]:
    """The update statistics of `status`, by SQL over the index (none without one)."""
    store = await d.existing_index()  # settled by the caller (`get_update_status`)
    analytics = await store.session_analytics(since) if store else {}
    by_type: dict[str, dict[str, int]] = analytics.get("by_type", {})
    # The counts by status are the analytics' counts summed over the types (the same
    # sessions: those that changed something, since `since`).
    totals: dict[str, int] = {}
    for per_status in by_type.values():
        for status, count in per_status.items():
            totals[status] = totals.get(status, 0) + count
    counts = dict(sorted(totals.items()))
    completed = counts.get(UpdateStatus.COMPLETED.value, 0)
    failed = counts.get(UpdateStatus.FAILED.value, 0)
    finished = completed + failed
    schedules = await store.list_schedules() if store else []
    upcoming = min((s.next_run for s in schedules if s.enabled and s.next_run),
                   default=None)
    stats = {
        "total": sum(counts.values()),
        "by_status": counts,
        "completed": completed,
        "failed": failed,
        "success_rate": round(completed / finished * 100, 1) if finished else None,
        "by_type": by_type,
        "rollbacks": sum(by_type.get("rollback", {}).values()),
        "mean_duration_seconds": analytics.get("mean_duration_seconds"),
        "longest_duration_seconds": analytics.get("longest_duration_seconds"),
        "next_scheduled_run": upcoming.isoformat() if upcoming else None,
    }
    if store is None:
        return stats, None, None, []
    recent = await store.list_sessions(since, limit=10) if show_history else []
    return stats, await store.backup_summary(), await store.last_completed(), recent


def _host_facts(d: Deployment, show_metrics: bool, backup_dir: Path | None) -> _HostFacts:
    from gitrelease.deploy import host

    python, warnings = _python_text(d)
    uptime, source = host.uptime(d.data_dir, this_process_is_bot=d.this_process_is_bot)
    if not show_metrics:
        return _HostFacts(python, warnings, uptime, source, {}, {})
    return _HostFacts(
        python, warnings, uptime, source,
        host.disk_usage(d.root, d.data_dir, d.settings.min_disk_space_mb, skip=backup_dir),
        host.memory_usage(d.data_dir))


def _python_text(d: Deployment) -> tuple[str, list[str]]:
    try:
        return str(d.deployment_python()), []
    except InvalidSetting as exc:
        return "unknown", [exc.message]


def _backup_statistics(summary: BackupSummary | None) -> dict[str, Any]:
    counts = summary.by_status if summary else {}
    latest = summary.latest if summary else None
    return {
        "total": summary.total if summary else 0,
        "completed": counts.get("completed", 0),
        "corrupted": counts.get("corrupted", 0),
        "failed": counts.get("failed", 0),
        "stored_bytes": summary.completed_bytes if summary else 0,
        "latest": latest[0] if latest else None,
        "latest_at": latest[1].isoformat() if latest else None,
        "newest_verified": summary.newest_verified if summary else None,
    }


def _version_file(
    d: Deployment, snap: ReleaseSnapshot
) -> tuple[str | None, bool | None, list[str]]:
    try:
        text = (d.root / "VERSION").read_text().strip()
    except OSError:
        return None, None, []
    current = snap.current.version
    try:
        agrees = current is not None and Version(text.removeprefix("v")) == current
    except InvalidVersion:
        agrees = False
    warnings = [] if agrees else [
        f"VERSION says {text!r} but the release tag says {snap.current.text}"]
    return text, agrees, warnings


async def journal(
    d: Deployment, session_id: str | None = None
) -> tuple[UpdateSession | None, list[JournalStep]]:
    """A session (default: the latest) and its journalled steps; with no session asked for
    and none recorded yet, (None, []): an empty listing, not a wrong input."""
    store = await d.existing_index()
    if session_id is None:
        latest = await store.list_sessions(limit=1) if store is not None else []
        if not latest:
            return None, []
        session = latest[0]
    elif store is None:
        raise InvalidInput("session", session_id, "the id of a recorded update session",
                           reason="no update session has been recorded yet")
    else:
        found = await store.get_session(session_id)
        if found is None:
            raise InvalidInput("session", session_id, "an id listed by `status --history`",
                               reason="no such session")
        session = found
    # Notes are stored as written (recovery reads them back); shown, they are text like any
    # other: a `pip freeze` of an editable VCS install names its URL, credentials included.
    hide = d.secrets
    return session, [replace(step, detail=redact(hide(step.detail)))
                     for step in await store.steps(session.id)]


def log_tail(d: Deployment, session: UpdateSession, lines: int = 20) -> list[str]:
    """The last `lines` lines of what the session's commands printed (its log under
    data/update_logs/), the deployment's secrets (`Deployment.secrets`) removed; empty when
    it ran none. The file is named from the session's id as the index holds it, never from
    what a person typed."""
    path = d.layout().logs_dir / f"{session.id}.log"
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [d.secrets(line) for line in text.splitlines() if line.strip()][-lines:]


@dataclass(frozen=True)
class _HostFacts:
    python: str
    warnings: list[str]
    uptime: timedelta
    uptime_source: str
    disk: dict[str, Any]
    memory: dict[str, Any]
