"""What git's stderr means: the one place git's words become typed errors, or a verdict.

The runner hands each failure here with git's exit status and stderr, redacted before any of
it can reach a message, a log or the index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gitrelease.core.errors import FetchFailed, GitCommandFailed
from gitrelease.core.text import redact
from gitrelease.git.records import FetchResult, TagSignature

__all__ = ["command_failed", "fetch_result", "tag_signature"]

_CLOBBER = re.compile(
    r"^\s*!\s+\[rejected\]\s+(\S+)\s+->\s+\S+\s+\(would clobber existing tag\)", re.M)
_NETWORK_HINTS = (
    "could not read from remote",
    "unable to access",
    "could not resolve host",
    "does not appear to be a git repository",
    "connection refused",
    "connection timed out",
    "repository not found",
    "no such remote",
    "failed to connect",
)
_UNKNOWN_KEY = ("no principal matched", "no public key", "allowedsignersfile",
                "can't check signature", "errsig", "no_pubkey", "not a trusted")


def command_failed(args: Sequence[str], status: int, err: bytes) -> GitCommandFailed:
    """The error for a git command that failed: what git said, briefly, and its stderr."""
    text = redact(err.decode("utf-8", errors="replace")).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # git says what went wrong first and "Aborting" last: keep what it said, briefly.
    reason = "; ".join(line for line in lines if line.lower() != "aborting")[:500]
    return GitCommandFailed(
        f"git {_subcommand(args)} failed: {reason or f'exit status {status}'}",
        hint="`git status` in the deployment shows where it stands",
        stderr=text,
    )


def fetch_result(remote: str, status: int, err: bytes) -> FetchResult:
    """A tag fetch's outcome: the tags git would not clobber, or FetchFailed when the remote
    could not be reached (or did not answer in time), GitCommandFailed for anything else."""
    text = redact(err.decode("utf-8", errors="replace")).strip()
    moved = tuple(_CLOBBER.findall(text))
    if status == 0 or moved:
        return FetchResult(moved, reported=bool(text))
    if status == -1:
        raise FetchFailed(f"fetching from {remote!r} {text}", remote=remote)
    lowered = text.lower()
    lines = [line for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if any(h in line.lower() for h in _NETWORK_HINTS)),
                  lines[-1] if lines else f"exit status {status}")
    if not any(h in lowered for h in _NETWORK_HINTS):
        raise GitCommandFailed(f"git fetch from {remote!r} failed: {reason}", stderr=text)
    raise FetchFailed(f"cannot fetch from {remote!r}: {reason}", remote=remote)


def tag_signature(status: int, out: bytes, err: bytes) -> TagSignature:
    """`git verify-tag --raw`'s verdict: valid, signed by a key not trusted here, or bad."""
    text = redact((err + b"\n" + out).decode("utf-8", errors="replace")).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if status == 0:
        good = next((line for line in lines if "Good" in line or "GOODSIG" in line),
                    lines[0] if lines else "")
        return TagSignature("valid", good.removeprefix("[GNUPG:] "))
    lowered = text.lower()
    if any(marker in lowered for marker in _UNKNOWN_KEY):
        reason = [line for line in lines if any(m in line.lower() for m in _UNKNOWN_KEY)]
        return TagSignature("unknown_key", _first(reason or lines, "the signing key is not "
                                                                   "trusted here"))
    return TagSignature("bad", _first(lines, f"git verify-tag exited with {status}"))


def _first(lines: list[str], default: str) -> str:
    return lines[0][:300] if lines else default


def _subcommand(args: Sequence[str]) -> str:
    """The git command in an argument list, past any "-c name=value" options."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] == "-c" else rest[1:]
    return rest[0] if rest else "command"
