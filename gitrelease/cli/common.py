"""What every CLI command shares: how it opens the deployment, prints JSON, checks a choice."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import InvalidInput

if TYPE_CHECKING:
    from gitrelease.manager import ReleaseManager

__all__ = ["actor", "choice", "number", "print_json", "root_from_args", "root_of", "run",
           "run_blocking"]


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def run(args: argparse.Namespace, work: Callable[[ReleaseManager], Any]) -> Any:
    import asyncio

    from gitrelease.manager import ReleaseManager

    root = root_of(args)

    async def session() -> Any:
        async with await ReleaseManager.open(root) as manager:
            return await work(manager)

    return asyncio.run(session())


def run_blocking(args: argparse.Namespace, work: Callable[[ReleaseManager], Any]) -> Any:
    """`run` for work that needs no event loop (nor asyncio's import time)."""
    from gitrelease.manager import ReleaseManager

    with ReleaseManager.blocking(root_of(args)) as manager:
        return work(manager)


def root_of(args: argparse.Namespace) -> Path | None:
    root = args.root
    if root is not None and (not str(root).strip() or not root.is_dir()):
        raise InvalidInput("--root", str(root), "an existing directory: the bot's git checkout")
    return root


def actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def choice(flag: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InvalidInput(flag, value, allowed)


def root_from_args(args: argparse.Namespace) -> Path:
    """--root (which must exist), else $GITRELEASE_ROOT, else the git top-level of the cwd."""
    from gitrelease.manager import deployment_root

    if args.root is not None and not args.root.is_dir():
        raise InvalidInput("--root", str(args.root), "an existing directory: a git checkout")
    return deployment_root(args.root)


def number(flag: str, value: str, low: float, high: float, *, whole: bool = False) -> float:
    """A flag's number within [low, high] (`whole`: an integer), or a clear error."""
    kind = "an integer" if whole else "a number"
    try:
        found = int(value) if whole else float(value)
    except ValueError:
        raise InvalidInput(flag, value, f"{kind} from {low:g} to {high:g}") from None
    if not low <= found <= high:
        raise InvalidInput(flag, value, f"{kind} from {low:g} to {high:g}")
    return found
