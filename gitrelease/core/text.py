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


__all__ += ["visible"]

# Anything but printable ASCII is looked at; printable ASCII (JSON output, most text) passes
# through the regex engine untouched, so the CLI's output boundary costs next to nothing.
_SUSPECT_LINES = re.compile(r"[^\t\n\x20-\x7e]")
_SUSPECT_LINE = re.compile(r"[^\x20-\x7e]")
# Control, format (bidi overrides and isolates, zero-width, tag characters), lone surrogates
# (names git or tar gave that are not UTF-8) and line/paragraph separators: each changes
# what a terminal or a client shows without being seen itself.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Format characters that scripts and emoji need to read right (Persian, Hindi, 👩‍💻), and
# that move nothing: kept as they are.
_JOINERS = frozenset({"\u200c", "\u200d"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _JOINERS:
        return char
    import unicodedata

    if unicodedata.category(char) not in _HIDDEN:
        return char
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def visible(text: str, *, lines: bool = True, keep: str = "") -> str:
    """`text` with every character that would act on a terminal or a reader's display
    instead of showing (escape sequences, carriage returns, bell, DEL, C1 controls, bidi
    overrides, zero-width and other format characters) written out as an escape such as
    ``\\x1b`` or ``\\u202e``, so a tag message or an archive member name shows what it
    holds and cannot redraw the screen or reverse a name. `lines`: newlines and tabs are
    the text's own layout and stay; without it they are escaped too (one-line fields).
    `keep`: characters a caller put in on purpose (Discord's zero-width markdown guards)."""
    pattern = _SUSPECT_LINES if lines else _SUSPECT_LINE
    if not keep:
        return pattern.sub(_escape, text)
    return pattern.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
