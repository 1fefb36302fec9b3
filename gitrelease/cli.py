"""The `gitrelease` command: a thin shell over `ReleaseManager`.

Contract: `gitrelease [--root PATH] [--json] COMMAND ...`. With --json, stdout holds exactly
the `to_dict()` form of the result, or ``{"error": {...}}``; without it, readable text. Every
error is one clear line and a non-zero exit code; never a traceback. Modules are imported per
command, since start-up time is part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gitrelease.errors import GitReleaseError, InvalidInput, UnsupportedPlatform, UsageError

if TYPE_CHECKING:
    from gitrelease.manager import ReleaseManager
    from gitrelease.models import SystemInfo, UpdateSession
    from gitrelease.reports import CheckReport, InstallPlan

__all__ = ["main"]

UPDATE_TYPES = ("all", "bot", "packages", "config", "dependencies")
RANGES = ("1d", "7d", "30d")
# The engine names fields after the specification; a person typed these flags.
_FLAG_FOR_FIELD = {
    "update_type": "--type", "check_type": "--type", "to_version": "--to",
    "backup_name": "--backup-name", "time_range": "--range",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gitrelease",
        description="Git-native release manager: releases are git tags.",
    )
    parser.add_argument("--root", type=Path, help="the deployment's git working tree "
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

    demo = commands.add_parser("demo", help="build a throw-away deployment and show "
                               "check -> install -> status on it")
    demo.add_argument("--keep", action="store_true", help="keep the demo directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list  # until the command line parses, a good guess is enough
    try:
        if os.name == "nt":
            raise UnsupportedPlatform("gitrelease supports Linux and macOS; Windows is not "
                                      "supported yet")
        args = _parser().parse_args(args_list)
        as_json = args.json
        return _COMMANDS[args.command](args)
    except InvalidInput as exc:
        flag = _FLAG_FOR_FIELD.get(exc.field)
        return _fail(exc.renamed(flag) if flag else exc, as_json)
    except GitReleaseError as exc:
        return _fail(exc, as_json)
    except KeyboardInterrupt:
        return _fail(GitReleaseError("interrupted", hint="run the command again"), as_json, 130)
    except Exception as exc:  # the one place an unexpected error becomes a line, not a trace
        error = GitReleaseError(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a bug in gitrelease; please report it with the command you ran")
        return _fail(error, as_json, 70)


def _fail(exc: GitReleaseError, as_json: bool, exit_code: int | None = None) -> int:
    if as_json:
        _print_json(exc.to_dict())
    else:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"gitrelease: error: {exc.message}{hint}", file=sys.stderr)
    return exc.exit_code if exit_code is None else exit_code


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _run(args: argparse.Namespace, work: Callable[[ReleaseManager], Any]) -> Any:
    from gitrelease.manager import ReleaseManager

    root = args.root
    if root is not None and not root.is_dir():
        raise InvalidInput("--root", str(root), "an existing directory: the bot's git checkout")

    async def session() -> Any:
        async with await ReleaseManager.open(root) as manager:
            return await work(manager)

    return asyncio.run(session())


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


# -- commands ------------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    _choice("--type", args.type, UPDATE_TYPES)
    report: CheckReport = _run(args, lambda m: m.check_for_updates(
        args.type, include_security=not args.no_security))
    if args.json:
        _print_json(report.to_dict())
    else:
        print(render_check(report, details=args.details))
    return _check_exit_code(report)


def _check_exit_code(report: CheckReport) -> int:
    from gitrelease.reports import NOT_IMPLEMENTED

    for source, error in report.errors.items():
        asked_alone = report.check_type.value == source
        if error.code != NOT_IMPLEMENTED or asked_alone:
            return error.exit_code
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from gitrelease.manager import InstallOptions

    _choice("--type", args.type, UPDATE_TYPES)
    options = InstallOptions(
        to_version=args.to, backup_before=not args.no_backup,
        restart_required=not args.no_restart, force=args.force, backup_name=args.backup_name,
        dry_run=args.dry_run, initiated_by=_actor())
    # A bar on a terminal only: in logs and pipes the result and the journal say it all.
    progress = _ProgressBar() if not args.json and sys.stderr.isatty() else None
    try:
        result = _run(args, lambda m: m.install_updates(args.type, options, progress=progress))
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        _print_json(result.to_dict())
    elif args.dry_run:
        print(render_plan(result))
    else:
        print(render_session(result))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    _choice("--range", args.range, RANGES)
    info: SystemInfo = _run(args, lambda m: m.get_update_status(
        args.range, show_history=args.history, show_metrics=not args.no_metrics))
    if args.json:
        _print_json(info.to_dict())
    else:
        print(render_status(info))
    return 0


def _cmd_journal(args: argparse.Namespace) -> int:
    async def work(manager: ReleaseManager) -> dict[str, Any]:
        session, steps = await manager.journal(args.session)
        return {"session": session.to_dict(), "steps": [
            {"seq": s.seq, "step": s.step, "state": s.state, "at": s.at.isoformat(),
             "detail": s.detail} for s in steps]}

    result = _run(args, work)
    if args.json:
        _print_json(result)
    else:
        print(render_session_from_dict(result["session"]))
        for s in result["steps"]:
            detail = f"  {s['detail']}" if s["detail"] else ""
            print(f"  {s['seq']:>3}  {s['at'][:19]}  {s['step']:<10} {s['state']:<8}{detail}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gitrelease.demo import run_demo

    return run_demo(keep=args.keep, as_json=args.json)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": _cmd_check,
    "install": _cmd_install,
    "status": _cmd_status,
    "journal": _cmd_journal,
    "demo": _cmd_demo,
}


def _choice(flag: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InvalidInput(flag, value, allowed)


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


# -- rendering -----------------------------------------------------------------------------


def _yes_no(value: bool | None) -> str:
    return "not checked" if value is None else ("yes" if value else "no")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


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
            f"{_size(bot.size)}",
            f"  security: {_yes_no(bot.security_update)}   breaking: "
            f"{_yes_no(bot.breaking_changes)}",
        ]
        changelog = bot.changelog or ""
        if not details and changelog.count("\n") > 8:
            changelog = "\n".join(changelog.splitlines()[:8]) + "\n... (--details for all)"
        lines += ["  changelog:"] + [f"    {line}" for line in changelog.splitlines()]
        if details and len(bot.releases) > 1:
            lines += ["  newer releases:"] + [
                f"    {r['tag']}  {r['release_date'][:10]}" for r in bot.releases]
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
    lines = [
        f"Dry run: would install {plan.target_tag} ({plan.current_version} -> "
        f"{plan.target_version})",
        f"  commit {plan.from_commit[:12]} -> {plan.to_commit[:12]}; {info.commit_count} "
        f"commits, {info.files_changed} files, {_size(info.size)}",
        f"  steps: {', '.join(plan.steps)}",
        "  nothing was changed",
    ]
    return "\n".join(lines + [f"warning: {w}" for w in plan.warnings])


def render_session(session: UpdateSession) -> str:
    return render_session_from_dict(session.to_dict())


def render_session_from_dict(s: dict[str, Any]) -> str:
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
    if info.disk_usage:
        d = info.disk_usage
        lines.append(f"  disk: {_size(d['free_bytes'])} free of {_size(d['total_bytes'])}; "
                     f"data dir {_size(d['data_dir_bytes'])}")
    if info.memory_usage:
        m = info.memory_usage
        rss = f"; bot {_size(m['bot_rss_bytes'])}" if m.get("bot_rss_bytes") else ""
        lines.append(f"  memory: {_size(m['available_bytes'])} available of "
                     f"{_size(m['total_bytes'])}{rss}")
    if info.recent_sessions:
        lines.append("  recent updates:")
        lines += [f"    {s.started_at:%Y-%m-%d %H:%M}  {s.id}  {s.status.value:<9} "
                  f"{s.current_version} -> {s.target_version}" for s in info.recent_sessions]
    lines += [f"warning: {w}" for w in info.warnings]
    return "\n".join(lines)
