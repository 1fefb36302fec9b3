"""The `gitrelease` command: a thin shell over `ReleaseManager`.

Contract: `gitrelease [--root PATH] [--json] COMMAND ...`. With --json, stdout holds exactly
the `to_dict()` form of the result, or ``{"error": {...}}``; without it, readable text. Every
error is one clear line and a non-zero exit code; never a traceback. Modules are imported per
command, since start-up time is part of the product.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gitrelease.cli import release as cli_release
from gitrelease.cli import render
from gitrelease.cli import restart as cli_restart
from gitrelease.cli.common import (
    actor,
    choice,
    print_json,
    run,
    run_blocking,
)
from gitrelease.core.errors import GitReleaseError, InvalidInput, UnsupportedPlatform, UsageError

if TYPE_CHECKING:
    from gitrelease.core.models import SystemInfo
    from gitrelease.core.reports import CheckReport
    from gitrelease.manager import ReleaseManager

__all__ = ["main"]

UPDATE_TYPES = ("all", "bot", "packages", "config", "dependencies")
RANGES = ("1d", "7d", "30d")
BACKUP_TYPES = ("full", "database", "config", "data_only")
BACKUP_RANGES = ("7d", "30d", "90d", "all")
BACKUP_SORTS = ("date", "size", "name", "type")
RESTORE_TYPES = ("all", "database", "config", "data")
# The engine names fields after the specification; a person typed these flags.
_FLAG_FOR_FIELD = {
    "update_type": "--type", "check_type": "--type", "to_version": "--to",
    "time_range": "--range", "backup_type": "--type", "restore_type": "--type",
    "description": "--description", "limit": "--limit", "sort_by": "--sort",
    "confirm": "--yes", "backup_id": "ID", "target_version": "TARGET",
    "setting_category": "CATEGORY", "setting_name": "NAME", "setting_value": "VALUE",
}
_FLAG_FOR_FIELD_IN = {"install": {"backup_name": "--backup-name"},
                      "backup": {"backup_name": "--name"}}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.prog != "gitrelease":
            # --json is also taken after the command: `gitrelease check --json`.
            self.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                              help="print results as JSON on stdout")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gitrelease",
        description="Git-native release manager: releases are git tags.",
    )
    parser.add_argument("--root", type=_path, help="the deployment's git working tree "
                        "(default: $GITRELEASE_ROOT, else the git top-level of the cwd)")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    check = commands.add_parser("check", help="what releases are available")
    check.add_argument("--type", default="all", metavar="|".join(UPDATE_TYPES))
    check.add_argument("--details", action="store_true", help="full changelog and all releases")
    check.add_argument("--no-security", action="store_true",
                       help="skip the security markers")

    install = commands.add_parser("install", help="install the newest (or a given) release")
    install.add_argument("--type", required=True, metavar="|".join(UPDATE_TYPES))
    install.add_argument("--to", metavar="VERSION", help="a release version, e.g. 2.1.0")
    install.add_argument("--no-backup", action="store_true", help="install without a backup")
    install.add_argument("--no-restart", action="store_true", help="do not restart the bot")
    install.add_argument("--force", action="store_true",
                         help="install despite breaking changes, size or a moved tag")
    install.add_argument("--backup-name", metavar="NAME", help="name of the pre-update backup")
    install.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")

    status = commands.add_parser("status", help="version, health and update history")
    status.add_argument("--history", action="store_true", help="list recent update sessions")
    status.add_argument("--no-metrics", action="store_true", help="leave out disk and memory")
    status.add_argument("--range", default="7d", metavar="|".join(RANGES))

    journal = commands.add_parser("journal", help="the journalled steps of an update session")
    journal.add_argument("session", nargs="?", help="session id (default: the latest)")

    rollback = commands.add_parser("rollback", help="back to an older release, data included")
    rollback.add_argument("target", metavar="TARGET",
                          help="a version or tag (2.0.0, v2.0.0), previous, or last_backup")
    rollback.add_argument("--yes", action="store_true", help="confirm the rollback")
    rollback.add_argument("--no-backup", action="store_true",
                          help="skip the backup of the current state")
    rollback.add_argument("--no-restore-config", action="store_true",
                          help="keep today's config files (.env, settings)")
    rollback.add_argument("--force", action="store_true",
                          help="roll back the code even without a backup of that release")

    _backup_parser(commands)

    schedule = commands.add_parser("schedule", help="automatic updates")
    schedule_actions = schedule.add_subparsers(dest="action", metavar="ACTION",
                                               parser_class=_Parser)
    schedule_actions.required = True
    add = schedule_actions.add_parser("add", help="a new schedule")
    add.add_argument("--type", required=True, metavar="daily|weekly|monthly|custom")
    add.add_argument("--time", metavar="HH:MM", help="in the timezone setting")
    add.add_argument("--days", metavar="D1,D2", help="weekdays, days of the month, or a "
                     "5-field cron expression for custom")
    add.add_argument("--update-types", required=True, metavar="T1,T2",
                     help="bot, packages, config, dependencies, or all")
    add.add_argument("--disabled", action="store_true", help="add it switched off")
    schedule_actions.add_parser("list", help="schedules with their next run")
    for action in ("remove", "enable", "disable"):
        one = schedule_actions.add_parser(action, help=f"{action} a schedule")
        one.add_argument("id", metavar="ID")
    schedule_actions.add_parser("run-due", help="run what is due (for cron or a systemd timer)")

    settings = commands.add_parser("settings", help="show and change settings")
    settings_actions = settings.add_subparsers(dest="action", metavar="ACTION",
                                               parser_class=_Parser)
    settings_actions.required = True
    show = settings_actions.add_parser("show", help="each value and the layer it comes from")
    show.add_argument("category", nargs="?", metavar="CATEGORY",
                      help="update, backup, notification or schedule")
    change = settings_actions.add_parser("set", help="set a runtime value (data/settings.toml)")
    change.add_argument("category", metavar="CATEGORY")
    change.add_argument("name", metavar="NAME")
    change.add_argument("value", metavar="VALUE", help="true/false, a number, text, or a list "
                        "as a,b,c or a JSON array")
    reset = settings_actions.add_parser("reset", help="remove a runtime value")
    reset.add_argument("category", metavar="CATEGORY")
    reset.add_argument("name", metavar="NAME")

    cli_restart.add_parsers(commands)
    cli_release.add_parsers(commands)
    demo = commands.add_parser("demo", help="build a throw-away deployment and show "
                               "check -> install -> status on it")
    demo.add_argument("--keep", action="store_true", help="keep the demo directory")
    return parser


def _backup_parser(commands: Any) -> None:
    backup = commands.add_parser("backup", help="archives of the state git does not keep")
    actions = backup.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    create = actions.add_parser("create", help="take a backup now")
    create.add_argument("--type", default="full", metavar="|".join(BACKUP_TYPES))
    create.add_argument("--no-compress", action="store_true", help="a plain .tar archive")
    create.add_argument("--name", metavar="NAME", help="a name to find it by (unique)")
    create.add_argument("--include-logs", action="store_true", help="add the update logs")
    create.add_argument("--description", metavar="TEXT")
    create.add_argument("--keep", action="store_true", help="never prune this backup")
    listing = actions.add_parser("list", help="backups, newest first")
    listing.add_argument("--type", metavar="|".join(BACKUP_TYPES))
    listing.add_argument("--range", default="30d", metavar="|".join(BACKUP_RANGES))
    listing.add_argument("--limit", default="20", metavar="1-50")
    listing.add_argument("--sort", default="date", metavar="|".join(BACKUP_SORTS))
    verify = actions.add_parser("verify", help="re-read an archive against its checksums")
    verify.add_argument("id", metavar="ID", help="backup id or name")
    verify.add_argument("--deep", action="store_true",
                        help="also check each file against the manifest, not only the "
                             "archive's checksum")
    restore = actions.add_parser("restore", help="put a backup's files back in place")
    restore.add_argument("id", metavar="ID", help="backup id or name")
    restore.add_argument("--yes", action="store_true", help="confirm: live files are replaced")
    restore.add_argument("--type", default="all", metavar="|".join(RESTORE_TYPES))
    restore.add_argument("--no-verify", action="store_true", help="skip the verification")
    delete = actions.add_parser("delete", help="delete a backup and its archive")
    delete.add_argument("id", metavar="ID", help="backup id or name")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    prune = actions.add_parser("prune", help="apply max_backups and backup_retention_days")
    prune.add_argument("--dry-run", action="store_true", help="show, delete nothing")


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list  # until the command line parses, a good guess is enough
    command = ""
    try:
        if os.name == "nt":
            raise UnsupportedPlatform("gitrelease supports Linux and macOS; Windows is not "
                                      "supported yet")
        args = _parser().parse_args(args_list)
        as_json, command = args.json, args.command
        return _COMMANDS[command](args)
    except InvalidInput as exc:
        flag = _FLAG_FOR_FIELD_IN.get(command, {}).get(exc.field) or _FLAG_FOR_FIELD.get(
            exc.field)
        return _fail(exc.renamed(flag) if flag else exc, as_json)
    except GitReleaseError as exc:
        return _fail(exc, as_json)
    except KeyboardInterrupt:
        return _fail(GitReleaseError("interrupted", hint="run the command again"), as_json, 130)
    except BrokenPipeError:
        # The reader went away (`gitrelease status | head`): not an error worth a trace.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(GitReleaseError(f"{exc.strerror or exc}{where}",
                                     hint="check the path and its permissions"), as_json, 74)
    except Exception as exc:  # the one place an unexpected error becomes a line, not a trace
        error = GitReleaseError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a bug in gitrelease; please report it with the command you ran")
        return _fail(error, as_json, 70)


def _fail(exc: GitReleaseError, as_json: bool, exit_code: int | None = None) -> int:
    if as_json:
        print_json(exc.to_dict())
    else:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"gitrelease: error: {exc.message}{hint}", file=sys.stderr)
    return exc.exit_code if exit_code is None else exit_code


# -- commands ------------------------------------------------------------------------------


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
    from gitrelease.manager import InstallOptions

    choice("--type", args.type, UPDATE_TYPES)
    options = InstallOptions(
        to_version=args.to, backup_before=not args.no_backup,
        restart_required=not args.no_restart, force=args.force, backup_name=args.backup_name,
        dry_run=args.dry_run, initiated_by=actor())
    # A bar on a terminal only: in logs and pipes the result and the journal say it all.
    progress = _ProgressBar() if not args.json and sys.stderr.isatty() else None
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
        return {"session": session.to_dict(), "steps": [
            {"seq": s.seq, "step": s.step, "state": s.state, "at": s.at.isoformat(),
             "detail": s.detail} for s in steps]}

    result = run(args, work)
    if args.json:
        print_json(result)
    else:
        print(render.render_session_dict(result["session"]))
        for s in result["steps"]:
            detail = f"  {s['detail']}" if s["detail"] else ""
            print(f"  {s['seq']:>3}  {s['at'][:19]}  {s['step']:<10} {s['state']:<8}{detail}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    options = {"confirm": args.yes, "create_backup": not args.no_backup,
               "restore_config": not args.no_restore_config, "force": args.force,
               "initiated_by": actor()}
    progress = _ProgressBar() if not args.json and sys.stderr.isatty() else None
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
    async def show(manager: ReleaseManager) -> list[dict[str, Any]]:
        return manager.settings_view(args.category)

    if args.action == "show":
        rows = run(args, show)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                value = _redacted(row["name"], row["value"])
                print(f"{row['category']:<12} {row['name']:<32} {value!s:<24} "
                      f"({row['source']})")
        return 0
    value = args.value if args.action == "set" else None
    change = run(args, lambda m: m.change_setting(args.category, args.name, value,
                                                   actor=actor()))
    if args.json:
        print_json(change.to_dict())
    else:
        print(f"{change.category}.{change.name}: {_redacted(change.name, change.previous)} -> "
              f"{_redacted(change.name, change.new)} (now from {change.source})")
    return 0


def _redacted(name: str, value: Any) -> Any:
    return "(set)" if name.endswith("_command") and value else value


def _cmd_backup(args: argparse.Namespace) -> int:
    progress = _ProgressBar() if not args.json and sys.stderr.isatty() else None
    work = _backup_work(args, actor(), progress)
    try:
        result = run(args, work)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print_json([b.to_dict() for b in result] if isinstance(result, list)
                    else result.to_dict())
    else:
        print(_render_backup_result(args.action, result))
    return 0


def _backup_work(
    args: argparse.Namespace, actor: str, progress: _ProgressBar | None
) -> Callable[[ReleaseManager], Any]:
    """The manager call a `backup ACTION` stands for, its flags checked first."""
    if args.action == "create":
        choice("--type", args.type, BACKUP_TYPES)
        options = {"compress": not args.no_compress, "backup_name": args.name,
                   "include_logs": args.include_logs, "description": args.description,
                   "keep": args.keep}
        return lambda m: m.create_backup(args.type, options, actor=actor, progress=progress)
    if args.action == "list":
        if args.type is not None:
            choice("--type", args.type, BACKUP_TYPES)
        choice("--range", args.range, BACKUP_RANGES)
        choice("--sort", args.sort, BACKUP_SORTS)
        filters = {"backup_type": args.type, "time_range": args.range,
                   "limit": _integer("--limit", args.limit, 1, 50), "sort_by": args.sort}
        return lambda m: m.list_backups({k: v for k, v in filters.items() if v is not None})
    if args.action == "verify":
        return lambda m: m.verify_backup(args.id, deep=args.deep, actor=actor)
    if args.action == "restore":
        choice("--type", args.type, RESTORE_TYPES)
        options = {"confirm": args.yes, "restore_type": args.type,
                   "verify_backup": not args.no_verify}
        return lambda m: m.restore_backup(args.id, options, actor=actor, progress=progress)
    if args.action == "delete":
        return lambda m: m.delete_backup(args.id, confirm=args.yes, actor=actor)
    return lambda m: m.prune_backups(dry_run=args.dry_run, actor=actor)


def _render_backup_result(action: str, result: Any) -> str:
    from gitrelease.cli import render

    if action == "list":
        return render.render_backups(result)
    if action == "restore":
        lines = [f"Restored {len(result.restored)} files from {result.backup.id} "
                 f"({result.restore_type}):"] + [f"  {name}" for name in result.restored]
        if result.safety_backup is not None:
            lines.append(f"The state before the restore is in {result.safety_backup.id}.")
        return "\n".join(lines)
    if action == "prune":
        verb = "Would delete" if result.dry_run else "Deleted"
        lines = [f"{verb} {len(result.deleted)} backups"] + [
            f"  {b.id} ({b.created_at:%Y-%m-%d})" for b in result.deleted]
        lines += [f"kept {backup_id}: {why}" for backup_id, why in result.kept.items()]
        return "\n".join(lines)
    prefix = {"create": "Backup created", "verify": "Verified", "delete": "Deleted"}[action]
    return f"{prefix}: " + render.render_backup(result)


def _integer(flag: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(flag, value, f"an integer from {low} to {high}") from None
    if not low <= number <= high:
        raise InvalidInput(flag, value, f"an integer from {low} to {high}")
    return number


def _cmd_demo(args: argparse.Namespace) -> int:
    from gitrelease.cli.demo import run_demo

    return run_demo(keep=args.keep, as_json=args.json)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": _cmd_check,
    "install": _cmd_install,
    "status": _cmd_status,
    "journal": _cmd_journal,
    "rollback": _cmd_rollback,
    "settings": _cmd_settings,
    "schedule": _cmd_schedule,
    "backup": _cmd_backup,
    "demo": _cmd_demo,
    **cli_restart.COMMANDS,
    **cli_release.COMMANDS,
}


class _ProgressBar:
    """Draws install progress on a terminal's stderr."""

    def __init__(self) -> None:
        self._bar: Any = None

    def __call__(self, step: str, percent: int, detail: str) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=100, file=sys.stderr, leave=False,
                             bar_format="{desc:<24} {bar} {n:>3}%")
        self._bar.set_description_str(f"{step} ({detail})")
        self._bar.update(percent - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
