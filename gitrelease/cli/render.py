"""Text forms of results for people: the CLI prints these (and the demo shows them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitrelease.cli.render_check import render_check
from gitrelease.core.text import counted, size

if TYPE_CHECKING:
    from gitrelease.core.models import Backup, SystemInfo, UpdateSession
    from gitrelease.core.reports import InstallPlan

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

#: Why a backup the product took was taken, as `backup list` says it.
_ORIGINS = {"pre_update": "taken before an install", "pre_rollback": "taken before a rollback",
            "safety": "safety copy before a restore", "scheduled": "taken by a scheduled update"}


def _package_moves(title: str, moves: list[dict[str, Any]]) -> list[str]:
    """One line per package: from -> to, downgrades marked."""
    return [f"  {title}:"] + [
        f"    {m['name']} {m['from'] or '(not installed)'} -> {m['to'] or '(removed)'}"
        + ("  DOWNGRADE" if m.get("downgrade") else "") for m in moves] if moves else []


def render_plan(plan: InstallPlan) -> str:
    info = plan.update
    if info is None and not plan.steps:
        lines = [f"Dry run: already at {plan.current_version}; nothing would be installed"]
    elif info is None:
        lines = [f"Dry run: {plan.update_type.value} update at {plan.current_version} (the "
                 "code stays as it is)", f"  steps: {', '.join(plan.steps)}"]
    else:
        lines = [
            f"Dry run: would install {plan.target_tag} ({plan.current_version} -> "
            f"{plan.target_version})",
            f"  commit {plan.from_commit[:12]} -> {plan.to_commit[:12]}; {info.commit_count} "
            f"commits, {info.files_changed} files, {size(info.size)}",
            f"  steps: {', '.join(plan.steps)}",
        ]
    lines += _package_moves("packages that would move", plan.package_changes)
    if plan.config_keys:  # names only: the live files hold secrets
        lines += ["  config keys that would be added:"] + [
            f"    {live}: {', '.join(keys)}" for live, keys in plan.config_keys.items()]
    if plan.backup_holds:
        lines += ["  the backup before the update would hold:"] + [
            f"    {kind}: {', '.join(names) if names else 'none found'}"
            for kind, names in plan.backup_holds.items()]
    if plan.needs_confirmation:
        lines += ["  the install would ask first (install with --force, or confirm it in "
                  "Discord):"] + [f"    - {reason}" for reason in plan.needs_confirmation]
    if plan.steps or info is not None:
        lines.append("  nothing was changed")
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
    lines += _package_moves("packages moved", s.get("package_changes") or [])
    lines += [f"  warning: {w}" for w in s.get("warnings", [])]
    if s.get("restart_needed") and s["status"] == "completed":
        # An install leaves the bot on the older code, a rollback on the newer one: either
        # way it runs what it ran when the session began.
        lines.append(f"  the running bot still runs {s['current_version']} until it is "
                     "restarted")
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
    if info.backup_holds:
        lines.append("  a full backup would hold:")
        lines += [f"    {kind}: {', '.join(names) if names else 'none found'}"
                  for kind, names in info.backup_holds.items()]
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


_WHERE = {"local": "here only", "both": "here and offsite", "offsite": "offsite only",
          "queued": "here; its offsite upload is queued",
          "uploading": "here; uploading offsite", "none": "nowhere"}


def _where(backup: Backup) -> str:
    """Where the backup can be restored from (and how its offsite copy stands)."""
    if backup.location == "failed":
        return (f"here; its offsite upload failed {backup.offsite_attempts}x and is retried"
                + (f" ({backup.offsite_error})" if backup.offsite_error else ""))
    return _WHERE[backup.location]


def _sizes(backup: Backup, *, listed: bool) -> str:
    """A full backup's sizes, raw -> compressed; an incremental one's base, its own archive
    and what a restore of it reads (its chain's archives too). `listed`: its chain size was
    worked out from the whole index, so an unknown one means a member is not there."""
    if backup.base_id is None:
        return f"{size(backup.file_size)} -> {size(backup.compressed_size)}, full"
    reads = size(backup.chain_size)
    if backup.chain_size is None and listed:
        reads += " (part of its chain is not in the index)"
    return (f"incremental on {backup.base_id}: own {size(backup.compressed_size)}, restore "
            f"reads {reads}")


def render_backup(backup: Backup, *, verbose: bool = True, listed: bool = False) -> str:
    """One backup: a few lines (`verbose`: with its description, checksum, file and chain).
    `listed`: it comes from a listing, which works out its chain size."""
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
        f"{_sizes(backup, listed=listed)}"
        + (", kept" if backup.keep else "")
        + (f", {_ORIGINS[backup.origin.value]}" if backup.origin.value in _ORIGINS else ""),
        f"  {state}; {_where(backup)}",
    ]
    if verbose:
        if backup.description:
            lines.append(f"  description: {backup.description}")
        if backup.checksum:
            lines.append(f"  sha256: {backup.checksum}")
        if backup.file_path:
            lines.append(f"  file: {backup.file_path}")
        if backup.base_id is not None:
            chain = [link["id"] for link in backup.chain] or [backup.base_id]
            lines += [f"  base: {backup.base_id}",
                      f"  chain: {' -> '.join(chain)} -> this one (what a restore reads)"]
    lines += [f"  warning: {w}" for w in backup.warnings]
    return "\n".join(lines)


def render_push(result: Any) -> str:
    """A `backup push`: one copy (`OffsiteCopy`), or what `--queued` did (`QueueReport`)."""
    if hasattr(result, "backup_id"):
        return (f"Pushed {result.backup_id} offsite: {size(result.size)}, sha256 "
                f"{result.sha256[:16]}" + (", encrypted" if result.encrypted else ""))
    if result.busy:
        return "Another process of this deployment is uploading now; nothing was done."
    lines = [f"Uploaded {b}" for b in result.uploaded]
    lines += [f"FAILED {b}: {why} (it stays queued)" for b, why in result.failed.items()]
    lines += [f"waiting {b}: retried after {when}" for b, when in result.waiting.items()]
    return "\n".join(lines) or "Nothing is queued for offsite."


def render_offsite_check(result: dict[str, Any]) -> str:
    """`backup verify --offsite`: each copy checked, and those the index misses there."""
    checked = result["checked"]
    lines = [f"{'ok    ' if problem is None else 'FAILED'} {backup_id}"
             + (f": {problem}" if problem else "") for backup_id, problem in checked.items()]
    lines += [f"MISSING {b}: the index says it is offsite, the storage has no copy (queued "
              "again)" for b in result["missing"]]
    bad = sum(1 for p in checked.values() if p) + len(result["missing"])
    lines.append(f"Checked {len(checked)} of {result['total']} offsite copies: "
                 + ("all whole." if not bad else f"{bad} with problems."))
    return "\n".join(lines)


def render_backups(backups: list[Backup], *, first: int = 0,
                   count: int | None = None) -> str:
    """`count` of `backups` from index `first` (a page; default all), numbered as in the whole
    list, with the totals of the whole list."""
    if not backups:
        return "No backups match."
    shown = backups[first:first + count] if count is not None else backups[first:]
    stored = sum(b.compressed_size or 0 for b in backups)
    body = "\n".join(f"{n}. " + render_backup(b, verbose=False, listed=True) for n, b in
                     enumerate(shown, start=first + 1))
    return f"{body}\nTotal backups: {len(backups)} (stored: {size(stored)})"


def render_restore(result: Any) -> str:
    """What a restore replaced, what it left as it was, and where the state before it is."""
    lines = [f"Restored {counted(len(result.restored), 'file')} from {result.backup.id} "
             f"({result.restore_type})" + (":" if result.restored else ".")]
    lines += [f"  {name}" for name in result.restored]
    if result.unchanged:
        lines.append(f"{counted(result.unchanged, 'file')} already as backed up, left as "
                     f"{'it was' if result.unchanged == 1 else 'they were'}.")
    lines += [f"warning: {w}" for w in result.warnings]
    if result.safety_backup is not None:
        lines.append(f"The state before the restore is in {result.safety_backup.id}.")
    return "\n".join(lines)
