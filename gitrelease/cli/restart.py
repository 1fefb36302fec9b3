"""`gitrelease restart | confirm | boot-check | hooks`: the commands around a bot's start.

Registered by `gitrelease.cli.main`, whose conventions they follow: --json prints the result's
``to_dict()``, errors are one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitrelease.cli.common import (
    actor,
    choice,
    print_json,
    root_from_args,
    run,
)
from gitrelease.core.errors import InvalidInput

__all__ = ["COMMANDS", "add_parsers"]

HOOK_ACTIONS = ("install", "uninstall", "status")


def add_parsers(commands: Any) -> None:
    restart = commands.add_parser(
        "restart", help="restart the bot now by restart_method (also the post-checkout hook)")
    restart.add_argument("--hook", action="store_true",
                         help="called by the post-checkout hook after a checkout by hand")
    restart.add_argument("--old", metavar="COMMIT", help="with --hook: HEAD before")
    restart.add_argument("--new", metavar="COMMIT", help="with --hook: HEAD after")
    commands.add_parser("confirm", help="the bot is up: confirm the version it runs (the "
                                        "update waiting on the restart completes; from then "
                                        "on boot-check expects each start to confirm)")
    commands.add_parser("boot-check", help="before each start (ExecStartPre): count starts "
                                           "expected to confirm that did not (or failed "
                                           "health checks); roll back a crash loop")
    bot = commands.add_parser("bot", help="run a minimal Discord bot with the update "
                                           "commands (token: DISCORD_TOKEN or .env)")
    bot.add_argument("--sync", action="store_true", help="sync the slash commands at start")
    bot.add_argument("--guild", metavar="ID", help="with --sync: to this guild only (instant)")
    hooks = commands.add_parser("hooks", help="install, remove or show gitrelease's git hooks")
    hooks.add_argument("action", metavar="|".join(HOOK_ACTIONS))
    hooks.add_argument("--release", action="store_true",
                       help="the release side's pre-push hook instead of post-checkout")
    hooks.add_argument("--python", metavar="PATH", type=Path,
                       help="interpreter the hook runs gitrelease with (default: this one)")


def _cmd_restart(args: argparse.Namespace) -> int:

    if args.hook:
        if not args.old or not args.new:
            raise InvalidInput("--old", args.old or args.new or "", "both --old and --new "
                               "with --hook", reason="the hook passes both commits")
        outcome = run(args, lambda m: m.restart_after_checkout(args.old, args.new))
    else:
        if args.old or args.new:
            raise InvalidInput("--old", args.old or args.new, "only with --hook")
        outcome = run(args, lambda m: m.restart(actor=actor()))
    if args.json:
        print_json(outcome.to_dict())
    else:
        prefix = "gitrelease: HEAD moved; " if args.hook else ""
        print(f"{prefix}{'restart: ' if outcome.performed else ''}{outcome.detail}")
    return 0


def _cmd_confirm(args: argparse.Namespace) -> int:

    result = run(args, lambda m: m.confirm_start(actor=actor()))
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.detail)
    return 0 if result.action in ("confirmed", "nothing_pending") else 1


def _cmd_boot_check(args: argparse.Namespace) -> int:

    result = run(args, lambda m: m.boot_check())
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"gitrelease boot-check: {result.detail}")
    return 0  # the bot starts either way: on the new version, or on the one rolled back to


def _cmd_hooks(args: argparse.Namespace) -> int:
    from gitrelease.manager import manage_hooks

    choice("ACTION", args.action, HOOK_ACTIONS)
    python = str(args.python) if args.python is not None else None
    if args.python is not None and not (args.python.is_absolute() and args.python.is_file()):
        raise InvalidInput("--python", str(args.python),
                           "the absolute path of a Python interpreter")
    states = manage_hooks(root_from_args(args), args.action, release=args.release,
                          python=python, default_python=sys.executable)
    if args.json:
        print_json({"hooks": [s.to_dict() for s in states]})
        return 0
    for state in states:
        chained = f" (runs {state.chained} first)" if state.chained else ""
        did = f": {state.action}" if state.action else ""
        print(f"{state.name}: {state.state}{did} — {state.path}{chained}")
    return 0


def _cmd_bot(args: argparse.Namespace) -> int:
    guild = None
    if args.guild is not None:
        if not args.guild.isdigit() or not 15 <= len(args.guild) <= 20:
            raise InvalidInput("--guild", args.guild, "a Discord guild id (a snowflake)")
        guild = int(args.guild)
    if guild is not None and not args.sync:
        raise InvalidInput("--guild", args.guild, "only with --sync")
    from gitrelease_discord.bot import run_bot

    return run_bot(root_from_args(args), sync=args.sync, guild=guild)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "bot": _cmd_bot,
    "restart": _cmd_restart,
    "confirm": _cmd_confirm,
    "boot-check": _cmd_boot_check,
    "hooks": _cmd_hooks,
}
