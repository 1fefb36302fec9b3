"""The handlers of the engine's commands: check, install, status, journal, rollback, schedule,
settings, backup and demo, each a `(args) -> exit status` over one `ReleaseManager` call.

Each validates what argparse cannot (choices, ranges), calls the manager and prints the result:
its ``to_dict()`` with --json, else text. Heavy modules are imported by the command that needs
them, since start-up time is part of the product.

Over the ~400-line aim: one thin handler per command, side by side in one table (`COMMANDS`);
the rendering is in `render`, the parser in `parser`, fleet, release and restart have their own.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gitrelease.cli import fleet as cli_fleet
from gitrelease.cli import release as cli_release
from gitrelease.cli import render
from gitrelease.cli import restart as cli_restart
from gitrelease.cli.common import (
    actor,
    choice,
    number,
    print_json,
    run,
    run_blocking,
)
from gitrelease.cli.parser import (
    BACKUP_RANGES,
    BACKUP_SORTS,
    BACKUP_TYPES,
    RANGES,
    RESTORE_TYPES,
    UPDATE_TYPES,
)
from gitrelease.core.errors import InvalidInput
from gitrelease.core.text import counted

if TYPE_CHECKING:
    from gitrelease.cli.progress import ProgressBar
    from gitrelease.core.models import SystemInfo
    from gitrelease.core.reports import CheckReport
    from gitrelease.manager import ReleaseManager

__all__ = ["COMMANDS"]


def _cmd_check(args: argparse.Namespace) -> int:
    choice("--type", args.type, UPDATE_TYPES)
    report: CheckReport = run_blocking(args, lambda m: m.check_blocking(
        args.type, include_security=not args.no_security))
    if args.json:
        print_json(report.to_dict())
    else:
        print(render.render_check(report, details=args.details))
    return _check_exit_code(report)


def _check_exit_code(report: CheckReport) -> int:
    """A source that could not be checked makes the exit code say so."""
    for error in report.errors.values():
        return error.exit_code
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from gitrelease.cli.progress import terminal_progress
    from gitrelease.manager import InstallOptions

    choice("--type", args.type, UPDATE_TYPES)
    options = InstallOptions(
        to_version=args.to, backup_before=not args.no_backup,
        restart_required=not args.no_restart, force=args.force, backup_name=args.backup_name,
        dry_run=args.dry_run, initiated_by=actor(),
        keep_local_changes=args.keep_local_changes)
    progress = terminal_progress(args.json)
    try:
        result = run(args, lambda m: m.install_updates(args.type, options, progress=progress))
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json(result.to_dict())
    elif args.dry_run:
        print(render.render_plan(result))
    else:
        print(render.render_session(result))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    choice("--range", args.range, RANGES)
    info: SystemInfo = run(args, lambda m: m.get_update_status(
        args.range, show_history=args.history, show_metrics=not args.no_metrics))
    if args.json:
        print_json(info.to_dict())
    else:
        print(render.render_status(info))
    return 0


def _cmd_journal(args: argparse.Namespace) -> int:
    async def work(manager: ReleaseManager) -> dict[str, Any]:
        session, steps = await manager.journal(args.session)
        return {"session": session.to_dict() if session else None, "steps": [
            {"seq": s.seq, "step": s.step, "state": s.state, "at": s.at.isoformat(),
             "detail": s.detail} for s in steps]}

    result = run(args, work)
    if args.json:
        print_json(result)
    elif result["session"] is None:  # an empty listing, as `schedule list` has one
        print("No update session has been recorded yet.")
    else:
        print(render.render_session_dict(result["session"]))
        for s in result["steps"]:
            detail = f"  {s['detail']}" if s["detail"] else ""
            print(f"  {s['seq']:>3}  {s['at'][:19]}  {s['step']:<10} {s['state']:<8}{detail}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from gitrelease.cli.progress import terminal_progress

    _needs_yes(args, "rollback changes the code and data",
               "" if args.no_backup else "it backs up the current state first")
    options = {"confirm": args.yes, "create_backup": not args.no_backup,
               "restore_config": not args.no_restore_config, "force": args.force,
               "keep_local_changes": args.keep_local_changes, "initiated_by": actor()}
    progress = terminal_progress(args.json)
    try:
        session = run(args, lambda m: m.rollback_to_version(args.target, options,
                                                             progress=progress))
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json(session.to_dict())
    else:
        print(render.render_session(session))
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    who = actor()
    work: Callable[[ReleaseManager], Any]
    if args.action == "add":
        work = lambda m: m.add_schedule(  # noqa: E731
            args.type, args.time, args.days, args.update_types, not args.disabled, actor=who)
    elif args.action == "list":
        work = lambda m: m.list_schedules()  # noqa: E731
    elif args.action == "remove":
        work = lambda m: m.remove_schedule(args.id, actor=who)  # noqa: E731
    elif args.action in ("enable", "disable"):
        work = lambda m: m.set_schedule_enabled(  # noqa: E731
            args.id, args.action == "enable", actor=who)
    else:
        work = lambda m: m.run_due_schedules()  # noqa: E731
    result = run(args, work)
    if args.json:
        print_json([s.to_dict() for s in result] if isinstance(result, list)
                    else result.to_dict())
    elif isinstance(result, list):
        for s in result or []:
            state = "enabled" if s.enabled else "disabled"
            print(f"{s.id}  {s.schedule_type.value:<8} {s.update_time} "
                  f"{','.join(s.update_days) or '-':<20} "
                  f"{','.join(t.value for t in s.update_types):<24} {state:<9} next: "
                  f"{s.next_run:%Y-%m-%d %H:%M} UTC" if s.next_run else f"{s.id} {state}")
        if not result:
            print("No schedules.")
    elif args.action == "run-due":
        print(f"ran {len(result.ran)}, skipped {len(result.skipped)}")
        for item in result.ran:
            print(f"  {item['schedule']}: {item['outcome']}")
    else:
        print(f"{result.id}: {args.action} done; next run "
              f"{result.next_run:%Y-%m-%d %H:%M} UTC" if result.next_run else
              f"{result.id}: {args.action} done")
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    async def show(manager: ReleaseManager) -> tuple[Any, list[dict[str, Any]]]:
        return manager.root, manager.settings_view(args.category)

    if args.action == "show":
        root, rows = run(args, show)
        # A command may carry a token: shown as set or not, in either form.
        rows = [{**row, "value": _redacted(row["name"], row["value"]),
                 "default": _redacted(row["name"], row["default"])} for row in rows]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(_render_settings(root, rows))
        return 0
    value = args.value if args.action == "set" else None
    try:
        change = run(args, lambda m: m.change_setting(args.category, args.name, value,
                                                       actor=actor()))
    except InvalidInput as exc:
        if exc.field != "setting_value":
            raise
        # Named as the setting, not as the VALUE argument; a command's text is not repeated.
        from gitrelease.core.settings import is_secret

        shown = "(not shown)" if is_secret(args.name) else exc.value
        raise InvalidInput(f"{args.category}.{args.name}", shown, exc.allowed,
                           reason=exc.reason) from None
    if args.json:
        print_json(change.to_dict())
    else:
        print(f"{change.category}.{change.name}: {_redacted(change.name, change.previous)} -> "
              f"{_redacted(change.name, change.new)} (now from {change.source})")
    return 0


def _render_settings(root: Any, rows: list[dict[str, Any]]) -> str:
    """Each setting with its value, the layer it came from, and what it does."""
    import contextlib
    import textwrap
    from pathlib import Path

    from gitrelease.core.settings import INERT

    lines: list[str] = []
    category = None
    for row in rows:
        if row["category"] != category:
            category = row["category"]
            lines += [""] if lines else []
            lines.append(f"[{category}]")
        source = row["source"]
        if source != "default" and root is not None:
            with contextlib.suppress(ValueError):
                source = str(Path(source).relative_to(root))
        value = row["value"]
        shown = value if value == "(set)" else json.dumps(value)
        lines.append(f"  {row['name']} = {shown}   ({source})")
        description = row["description"] + (" (not acted on by this version yet)"
                                            if row["name"] in INERT else "")
        lines += textwrap.wrap(description, width=92, initial_indent="      ",
                               subsequent_indent="      ")
    return "\n".join(lines)


def _redacted(name: str, value: Any) -> Any:
    from gitrelease.core.settings import is_secret

    return "(set)" if is_secret(name) and value else value


def _needs_yes(args: argparse.Namespace, what: str, hint: str = "") -> None:
    """Rollback, restore and delete need --yes; without it, say what the command does and
    how to go ahead, not that a flag is "invalid"."""
    from gitrelease.core.errors import ConfirmationRequired

    if not args.yes:
        raise ConfirmationRequired(f"{what}: add --yes to go ahead", hint=hint)


def _cmd_backup(args: argparse.Namespace) -> int:
    from gitrelease.cli.progress import terminal_progress

    if args.action == "key-new":
        return _new_key(args)
    progress = terminal_progress(args.json)
    work = _backup_work(args, actor(), progress)
    try:
        result = run(args, work)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json([b.to_dict() for b in result] if isinstance(result, list)
                    else result if isinstance(result, dict) else result.to_dict())
    else:
        print(_render_backup_result(args.action, result))
    if args.action == "verify" and isinstance(result, dict):
        return 1 if result["missing"] or any(result["checked"].values()) else 0
    if args.action == "push" and getattr(result, "failed", None):
        return 15  # OffsiteError's: an upload failed (it stays queued)
    return 0


def _new_key(args: argparse.Namespace) -> int:
    """`backup key-new FILE`: a fresh key for offsite_key_file (refuses to overwrite)."""
    from gitrelease.manager import new_offsite_key

    shown = new_offsite_key(args.file)
    if args.json:
        print_json({"key_file": str(args.file), "key_id": shown})
    else:
        print(f"Wrote a new offsite key to {args.file} (key id {shown}, mode 0600).\n"
              f"Use it: gitrelease settings set backup offsite_key_file {args.file.resolve()}\n"
              "Keep a copy somewhere other than this host: without it, encrypted offsite "
              "copies cannot be read by anyone.")
    return 0


def _backup_work(
    args: argparse.Namespace, actor: str, progress: ProgressBar | None
) -> Callable[[ReleaseManager], Any]:
    """The manager call a `backup ACTION` stands for, its flags checked first."""
    if args.action == "create":
        choice("--type", args.type, BACKUP_TYPES)
        options = {"compress": not args.no_compress, "backup_name": args.name,
                   "include_logs": args.include_logs, "description": args.description,
                   "keep": args.keep, "full": args.full}
        return lambda m: m.create_backup(args.type, options, actor=actor, progress=progress)
    if args.action == "list":
        if args.type is not None:
            choice("--type", args.type, BACKUP_TYPES)
        choice("--range", args.range, BACKUP_RANGES)
        choice("--sort", args.sort, BACKUP_SORTS)
        filters = {"backup_type": args.type, "time_range": args.range,
                   "limit": int(number("--limit", args.limit, 1, 50, whole=True)),
                   "sort_by": args.sort}
        return lambda m: m.list_backups({k: v for k, v in filters.items() if v is not None})
    if args.action == "verify":
        if args.offsite:
            if args.id is not None or args.deep:
                raise InvalidInput("--offsite", args.id or "--deep",
                                   "--offsite alone, or with --sample N%",
                                   reason="it checks every offsite copy (or a sample)")
            sample = 100.0 if args.sample is None else number(
                "--sample", args.sample.removesuffix("%"), 0.01, 100)
            return lambda m: m.verify_offsite(sample_percent=sample, actor=actor)
        if args.sample is not None:
            raise InvalidInput("--sample", args.sample, "--offsite with it",
                               reason="only the offsite check takes a sample")
        if args.id is None:
            raise InvalidInput("ID", "", "a backup id or name, or --offsite")
        return lambda m: m.verify_backup(args.id, deep=args.deep, actor=actor)
    if args.action == "restore":
        choice("--type", args.type, RESTORE_TYPES)
        _needs_yes(args, "backup restore replaces the live files with the backup's")
        options = {"confirm": args.yes, "restore_type": args.type,
                   "verify_backup": not args.no_verify}
        return lambda m: m.restore_backup(args.id, options, actor=actor, progress=progress)
    if args.action == "delete":
        _needs_yes(args, "backup delete cannot be undone")
        return lambda m: m.delete_backup(args.id, confirm=args.yes, actor=actor)
    if args.action == "push":
        if (args.id is None) == (not args.queued):
            raise InvalidInput("ID", args.id or "", "a backup id or name, or --queued "
                               "(not both)")
        if args.force and not args.queued:
            raise InvalidInput("--force", True, "--queued with it")
        if args.queued:
            return lambda m: m.upload_queued(force=args.force, actor=actor)
        return lambda m: m.push_backup(args.id, actor=actor)
    if args.offsite:
        return lambda m: m.prune_offsite(dry_run=args.dry_run, actor=actor)
    return lambda m: m.prune_backups(dry_run=args.dry_run, actor=actor)


def _render_backup_result(action: str, result: Any) -> str:
    if action == "list":
        return render.render_backups(result)
    if action == "restore":
        return render.render_restore(result)
    if action == "push":
        return render.render_push(result)
    if action == "verify" and isinstance(result, dict):
        return render.render_offsite_check(result)
    if action == "prune":
        verb = "Would delete" if result.dry_run else "Deleted"
        lines = [f"{verb} {len(result.deleted)} backups"] + [
            f"  {b.id} ({b.created_at:%Y-%m-%d})" for b in result.deleted]
        lines += [f"kept {backup_id}: {why}" for backup_id, why in result.kept.items()]
        return "\n".join(lines)
    prefix = {"create": "Backup created", "verify": "Verified", "delete": "Deleted"}[action]
    return f"{prefix}: " + render.render_backup(result)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gitrelease.cli.demo import run_demo

    return run_demo(keep=args.keep, as_json=args.json)


def _cmd_recover(args: argparse.Namespace) -> int:
    import asyncio

    from gitrelease.manager import recover_deployment

    result = asyncio.run(recover_deployment(
        args.origin, args.offsite, args.directory, endpoint=args.endpoint,
        key_file=args.key_file, backup_id=args.backup, actor=actor()))
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"Recovered {result.root} from backup {result.backup_id} (taken "
          f"{result.taken_at}), at {result.tag or result.commit[:12]}.")
    print(f"Restored {counted(len(result.restored), 'file')}: {', '.join(result.restored)}")
    for note in result.notes:
        print(f"  {note}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": _cmd_check,
    "install": _cmd_install,
    "status": _cmd_status,
    "journal": _cmd_journal,
    "rollback": _cmd_rollback,
    "settings": _cmd_settings,
    "schedule": _cmd_schedule,
    "backup": _cmd_backup,
    "demo": _cmd_demo,
    "recover": _cmd_recover,
    **cli_restart.COMMANDS,
    **cli_release.COMMANDS,
    **cli_fleet.COMMANDS,
}
