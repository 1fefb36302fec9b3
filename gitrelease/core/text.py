"""Text every layer and front-end shows: secrets taken out, sizes people read, `.env` keys."""

from __future__ import annotations

import re

__all__ = ["ENV_LINE", "counted", "env_values", "redact", "size"]

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s'\"]*@")
_SECRET_PARAMETER = re.compile(
    r"(?P<key>[?&][^=&\s'\"]*(?:token|key|secret|passw|auth|sig|credential)[^=&\s'\"]*=)"
    r"[^&\s'\"#]+", re.IGNORECASE)
#: One `KEY=value` line of a `.env` file (`export` allowed).
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=(.*)$")


def redact(text: str) -> str:
    """Remove credentials from URLs in text: user:token@ parts and token-like parameters."""
    return _SECRET_PARAMETER.sub(r"\g<key>***", _CREDENTIALS.sub(r"\g<scheme>***@", text))


def size(n: int | None) -> str:
    """A byte count as people read it: 512 B, 1.5 KiB, 3.2 MiB, 1.0 GiB."""
    if n is None:
        return "?"
    amount = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{n} B"


def env_values(text: str) -> dict[str, str]:
    """The keys of a `.env` file in file order, each with its first value (comments skipped)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = ENV_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            found.setdefault(match.group(1), match.group(2))
    return found


def counted(count: int, noun: str) -> str:
    """``1 file``, ``2 files``: a count with its noun, plural by an ``s`` when not one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
