"""`gitrelease release` and `gitrelease hook pre-push`: the release side's commands.

Registered by `gitrelease.cli.main`, whose conventions they follow: --json prints the result's
``to_dict()``, errors are one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gitrelease.cli.common import (
    print_json,
    root_from_args,
)
from gitrelease.core.errors import InvalidInput

__all__ = ["COMMANDS", "add_parsers"]

HOOKS = ("pre-push",)


def add_parsers(commands: Any) -> None:
    release = commands.add_parser(
        "release", help="cut a release here (the release side): VERSION, CHANGELOG.md, a "
        "commit and an annotated tag")
    release.add_argument("target", metavar="major|minor|patch|VERSION",
                         help="a bump of the last release tag, or an explicit newer version")
    release.add_argument("--pre", metavar="a|b|rc",
                         help="a pre-release of the bumped version (alpha, beta, c also do)")
    release.add_argument("--sign", action="store_true",
                         help="a signed tag (git tag -s: GPG or SSH, as git is configured)")
    release.add_argument("--push", action="store_true",
                         help="push the branch and the tag to the remote setting, atomically")
    release.add_argument("--dry-run", action="store_true",
                         help="show the version, changelog and git commands; change nothing")
    hook = commands.add_parser("hook", help="what gitrelease's git hooks run (not by hand)")
    hook.add_argument("name", metavar="|".join(HOOKS))
    hook.add_argument("remote", metavar="REMOTE", help="the remote's name, as git passes it")
    hook.add_argument("url", metavar="URL", help="the remote's URL, as git passes it")


def _cmd_release(args: argparse.Namespace) -> int:
    from gitrelease.manager import cut_release

    result = cut_release(root_from_args(args), args.target, pre=args.pre, sign=args.sign,
                         push=args.push, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_dict())
        return 0
    previous = f" (previous: {result.previous_tag})" if result.previous_tag else ""
    if result.dry_run:
        print(f"Dry run, nothing changed. Would release {result.version} as tag "
              f"{result.tag}{previous}, writing VERSION and CHANGELOG.md, then run:")
        print("\n".join(f"  {command}" for command in result.commands))
    else:
        signed = "signed, " if result.signed else ""
        pushed = f"pushed to {result.remote}" if result.pushed else "not pushed"
        print(f"Released {result.version}: tag {result.tag}{previous} on "
              f"{(result.commit or '')[:12]}, {signed}{pushed}")
    print()
    print(result.changelog, end="")
    return 0


def _cmd_hook(args: argparse.Namespace) -> int:
    from gitrelease.manager import check_push

    if args.name not in HOOKS:
        raise InvalidInput("HOOK", args.name, HOOKS)
    refusals = check_push(root_from_args(args), args.remote, args.url,
                          sys.stdin.read().splitlines())
    if args.json:
        print_json({"refusals": refusals})
    for refusal in refusals:
        print(f"gitrelease: refused: {refusal}", file=sys.stderr)
    return 1 if refusals else 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "release": _cmd_release,
    "hook": _cmd_hook,
}
