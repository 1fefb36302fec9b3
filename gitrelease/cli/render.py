"""Text forms of results for people: the CLI prints these (and the demo shows them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitrelease.core.text import size

if TYPE_CHECKING:
    from gitrelease.core.models import Backup, SystemInfo, UpdateSession
    from gitrelease.core.reports import CheckReport, InstallPlan

__all__ = [
    "render_backup",
    "render_backups",
    "render_check",
    "render_plan",
    "render_session",
    "render_session_dict",
    "render_status",
    "size",
]


def _yes_no(value: bool | None) -> str:
    return "not checked" if value is None else ("yes" if value else "no")


def render_check(report: CheckReport, *, details: bool = False) -> str:
    data = report.to_dict()
    lines = [
        "Update check",
        f"  current version: {data['current_version'] or '?'}",
        f"  available updates: {data['total_updates']}   security: "
        f"{'not checked' if data['security_updates'] is None else data['security_updates']}"
        f"   breaking: {data['breaking_updates']}",
    ]
    bot = report.bot
    if bot is not None:
        lines += [
            "", f"Bot release {bot.tag} ({bot.version}, current {bot.current_version})",
            f"  released: {bot.release_date:%Y-%m-%d %H:%M} UTC   commit: {bot.commit}",
            f"  changes: {bot.commit_count} commits, {bot.files_changed} files, "
            f"{size(bot.size)}",
            f"  security: {_yes_no(bot.security_update)}   breaking: "
            f"{_yes_no(bot.breaking_changes)}   signature: {bot.signature}",
        ]
        changelog = bot.changelog or ""
        if not details and changelog.count("\n") > 8:
            changelog = "\n".join(changelog.splitlines()[:8]) + "\n... (--details for all)"
        lines += ["  changelog:"] + [f"    {line}" for line in changelog.splitlines()]
        if details and len(bot.releases) > 1:
            lines += ["  newer releases:"] + [
                f"    {r['tag']}  {r['release_date'][:10]}  signature: {r['signature']}"
                for r in bot.releases]
    elif "bot" not in report.errors and report.check_type.value in ("all", "bot"):
        lines += ["", "Bot: up to date"]
    for source, error in report.errors.items():
        lines.append(f"{source}: {error.message}")
    lines += [f"warning: {w}" for w in report.warnings]
    if details and report.ignored_tags:
        lines.append("ignored tags (not PEP 440 versions): " + ", ".join(report.ignored_tags))
    return "\n".join(lines)


def render_plan(plan: InstallPlan) -> str:
    info = plan.update
    if info is None:
        return f"Dry run: already at {plan.current_version}; nothing would be installed"
    lines = [
        f"Dry run: would install {plan.target_tag} ({plan.current_version} -> "
        f"{plan.target_version})",
        f"  commit {plan.from_commit[:12]} -> {plan.to_commit[:12]}; {info.commit_count} "
        f"commits, {info.files_changed} files, {size(info.size)}",
        f"  steps: {', '.join(plan.steps)}",
        "  nothing was changed",
    ]
    return "\n".join(lines + [f"warning: {w}" for w in plan.warnings])


def render_session(session: UpdateSession) -> str:
    return render_session_dict(session.to_dict())


def render_session_dict(s: dict[str, Any]) -> str:
    lines = [
        f"Update {s['id']}: {s['status']} ({s['progress']}%)",
        f"  {s['current_version']} -> {s['target_version']}"
        + (f" ({s['target_tag']})" if s.get("target_tag") else ""),
        f"  steps: {', '.join(s['steps_completed']) or 'none'}",
    ]
    if s["error_message"]:
        lines.append(f"  error: {s['error_message']}")
    lines += [f"  warning: {w}" for w in s.get("warnings", [])]
    if s.get("restart_needed") and s["status"] == "completed":
        lines.append("  the running bot still runs the old code until it is restarted")
    return "\n".join(lines)


def render_status(info: SystemInfo) -> str:
    stats = info.update_statistics
    rate = stats.get("success_rate")
    lines = [
        "Status",
        f"  version: {info.version}" + (f" (tag {info.tag})" if info.tag else ""),
        f"  commit: {info.commit}",
        f"  VERSION file: {info.bot_version or 'none'}"
        + ("" if info.version_file_agrees is None else
           (" (agrees)" if info.version_file_agrees else " (DISAGREES)")),
        f"  python: {info.python_version}   gitrelease: {info.gitrelease_version}",
        f"  uptime ({info.uptime_source}): {str(info.uptime).split('.')[0]}",
        f"  last update: {info.last_update:%Y-%m-%d %H:%M} UTC" if info.last_update
        else "  last update: never",
        f"  updates in {stats['time_range']}: {stats['total']} "
        f"(completed {stats['completed']}, failed {stats['failed']}, success rate "
        f"{'n/a' if rate is None else f'{rate}%'})",
    ]
    b = info.backup_statistics
    if b:
        latest = f", latest {b['latest']}" if b.get("latest") else ""
        bad = f", {b['corrupted']} CORRUPTED" if b.get("corrupted") else ""
        lines.append(f"  backups: {b['completed']} ({size(b['stored_bytes'])} stored{latest})"
                     f"{bad}")
    if info.disk_usage:
        d = info.disk_usage
        lines.append(f"  disk: {size(d['free_bytes'])} free of {size(d['total_bytes'])}; "
                     f"data dir {size(d['data_dir_bytes'])}")
    if info.memory_usage:
        m = info.memory_usage
        rss = f"; bot {size(m['bot_rss_bytes'])}" if m.get("bot_rss_bytes") else ""
        lines.append(f"  memory: {size(m['available_bytes'])} available of "
                     f"{size(m['total_bytes'])}{rss}")
    if info.recent_sessions:
        lines.append("  recent updates:")
        for s in info.recent_sessions:
            kind = "rollback " if s.update_type.value == "rollback" else ""
            lines.append(f"    {s.started_at:%Y-%m-%d %H:%M}  {s.id}  {s.status.value:<9} "
                         f"{kind}{s.current_version} -> {s.target_version}")
            if s.error_message:
                lines.append(f"      why: {s.error_message}")
    lines += [f"warning: {w}" for w in info.warnings]
    return "\n".join(lines)


def render_backup(backup: Backup, *, verbose: bool = True) -> str:
    created = f"{backup.created_at:%Y-%m-%d %H:%M} UTC"
    if backup.status.value == "completed":
        state = (f"verified {backup.verified_at:%Y-%m-%d %H:%M}" if backup.verified_at
                 else "not verified yet")
    else:
        state = backup.status.value.upper() + (f": {backup.problem}" if backup.problem else "")
    title = backup.name if backup.name == backup.id else f"{backup.name} ({backup.id})"
    lines = [
        f"{title} - {created}",
        f"  {backup.backup_type.value} backup of {backup.tag or backup.commit or '?'}, "
        f"{size(backup.file_size)} -> {size(backup.compressed_size)}"
        + (", kept" if backup.keep else "") + (", automatic" if backup.auto_created else ""),
        f"  {state}",
    ]
    if verbose:
        if backup.description:
            lines.append(f"  description: {backup.description}")
        if backup.checksum:
            lines.append(f"  sha256: {backup.checksum}")
        if backup.file_path:
            lines.append(f"  file: {backup.file_path}")
    return "\n".join(lines)


def render_backups(backups: list[Backup], *, first: int = 0,
                   count: int | None = None) -> str:
    """`count` of `backups` from index `first` (a page; default all), numbered as in the whole
    list, with the totals of the whole list."""
    if not backups:
        return "No backups match."
    shown = backups[first:first + count] if count is not None else backups[first:]
    stored = sum(b.compressed_size or 0 for b in backups)
    body = "\n".join(f"{n}. " + render_backup(b, verbose=False) for n, b in
                     enumerate(shown, start=first + 1))
    return f"{body}\nTotal backups: {len(backups)} (stored: {size(stored)})"
