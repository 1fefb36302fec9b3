"""A new checkout from an origin URL: what `gitrelease recover` starts a lost deployment from.

Apart from `GitRepo`, which works in a checkout that exists; the same clean environment
(`_ENVIRONMENT`) and the same wording of failures, with any credential in a URL redacted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import git

from gitrelease.core.errors import FetchFailed, InvalidInput
from gitrelease.core.text import redact
from gitrelease.git.repo import _ENVIRONMENT, GitRepo

__all__ = ["check_origin", "clone"]

#: What `clone` takes as an origin: a URL of git's own transports, scp-like ssh, or a path.
_ORIGIN_URL = re.compile(r"^(?:(?:https?|ssh|git|file)://[^\s]+|[\w.-]+@[\w.-]+:[^\s]+|/[^\s]*)$")


def check_origin(origin: str) -> None:
    """Refuse an origin `clone` would not take: only plain transports (no `ext::`, no option
    smuggled in as a URL)."""
    if not isinstance(origin, str) or not _ORIGIN_URL.match(origin) or len(origin) > 2000:
        raise InvalidInput("--origin", origin, "an https://, ssh://, git://, file:// or "
                           "user@host:path URL, or an absolute path")


def clone(origin: str, directory: Path, *, timeout: float = 600.0) -> GitRepo:
    """Clone `origin` into `directory` (which must not hold anything) without checking a
    branch out; the caller checks out the commit it wants."""
    check_origin(origin)
    env = {**os.environ, **_ENVIRONMENT}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    try:
        git.Git(str(directory.parent)).execute(
            ["git", "clone", "--quiet", "--no-checkout", "--", origin, str(directory)],
            env=env, kill_after_timeout=timeout)
    except git.GitCommandError as exc:
        raise FetchFailed(f"could not clone {redact(origin)}: "
                          f"{redact(str(exc.stderr or '').strip())[-500:]}") from None
    return GitRepo(directory)
