"""Text every layer and front-end shows: secrets taken out, sizes people read, `.env` keys."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["ENV_LINE", "Secrets", "counted", "env_text_value", "env_values", "hidden_values",
           "redact", "redact_values", "setting_secrets", "size", "worth_hiding"]

# From the "://" on, not from the scheme's first letter: a scheme-like run (60 KB of a hex
# digest) tried from each of its letters made a search quadratic; the scheme is kept as is.
_CREDENTIALS = re.compile(r"(?P<scheme>://)[^/\s'\"]*@")
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

# What acts instead of showing: controls (C0 but tab and newline, which `lines` keeps, DEL,
# C1), lone surrogates (names git or tar gave that are not UTF-8), line and paragraph
# separators, and the format characters (bidi overrides and isolates, zero-width, tag
# characters) of Unicode 14, the tables of Python 3.11's unicodedata, without the two
# joiners scripts and emoji need to read right (Persian, Hindi, 👩‍💻). One character class,
# so that text passes through the regex engine at its own speed, with no Python call a
# character; tests/core/test_text_visible.py checks it against unicodedata's "Cc", "Cf",
# "Cs", "Zl" and "Zp" for every code point of the Python that runs it.
_FORMAT = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b"
           "\u200e-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
           "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
           "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
_ACTING = "\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029" + _FORMAT
_ACTING_IN_LINES = re.compile(f"[{_ACTING}]")
_ACTING_IN_A_LINE = re.compile(f"[\t\n{_ACTING}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
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
    pattern = _ACTING_IN_LINES if lines else _ACTING_IN_A_LINE
    if not keep:
        return pattern.sub(_escape, text)
    return pattern.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


# -- secrets: the values of `.env` (and of secret settings) kept out of what is shown ------

#: Shorter values are not hidden: hiding "!" or "abc" would hide every such word of any
#: output, and a secret that short protects nothing.
SHORTEST_HIDDEN = 4
#: Values that are never secrets and are words of ordinary output.
_PLAIN = frozenset({
    "true", "false", "yes", "no", "on", "off", "none", "null", "nil", "debug", "info",
    "warn", "warning", "error", "critical", "production", "prod", "development", "dev",
    "staging", "test", "testing", "local", "localhost", "default", "enabled", "disabled",
    "auto", "always", "never", "main", "master", "utf-8", "utf8",
})
#: A key whose value is a secret whatever it looks like (a number included).
_SECRET_KEY = re.compile(
    r"token|secret|passw|pwd|key|auth|credential|private|salt|dsn|cookie|webhook|sig",
    re.IGNORECASE)
_NUMBERISH = re.compile(r"^[0-9.:,_+-]+$")
#: From this length a value is hidden wherever it appears, even inside a longer word (a
#: token printed base64-wrapped); shorter ones only as a word of their own.
_HIDDEN_ANYWHERE = 12


def env_text_value(raw: str) -> str:
    """A `.env` value as the program reading it sees it: quotes taken off, an unquoted
    value's trailing ``# comment`` dropped."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def worth_hiding(key: str, value: str) -> bool:
    """Whether `value` (of `key`) is hidden from output: not too short, not a plain word,
    not a bare number (a port, a count) unless its key says it is a secret."""
    if len(value) < SHORTEST_HIDDEN or value.lower() in _PLAIN:
        return False
    return not _NUMBERISH.match(value) or bool(_SECRET_KEY.search(key))


def hidden_values(env_text: str, environment: dict[str, str] | None = None) -> frozenset[str]:
    """The values to hide: every value of a `.env` text worth hiding, as written and as
    read, and those of `environment` whose key names a secret (a command inherits them)."""
    found: set[str] = set()
    for key, raw in env_values(env_text).items():
        for value in (raw.strip(), env_text_value(raw)):
            if worth_hiding(key, value):
                found.add(value)
    for key, value in (environment or {}).items():
        if _SECRET_KEY.search(key) and worth_hiding(key, value):
            found.add(value)
    return frozenset(found)


def setting_secrets(values: list[object]) -> frozenset[str]:
    """What is secret in the values of settings marked secret (an index URL, commands):
    a URL's password, a ``--token=...`` or ``KEY=...`` argument's value; the rest of a
    command (``python``, a script's path) is no secret and stays readable."""
    from urllib.parse import urlsplit

    found: set[str] = set()
    strings = [v for value in values
               for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    for text in strings:
        for word in text.split():
            try:
                password = urlsplit(word).password if "://" in word else None
            except ValueError:
                password = None
            if password and worth_hiding("password", password):
                found.add(password)
            key, sep, value = word.lstrip("-").partition("=")
            if sep and _SECRET_KEY.search(key) and worth_hiding(key, value):
                found.add(value)
    return frozenset(found)


def redact_values(text: str, values: frozenset[str] | set[str]) -> str:
    """`text` with each of `values` replaced by ``***`` (longest first: a value holding
    another is hidden whole), then `redact`'s URL credentials."""
    for value in sorted(values, key=len, reverse=True):
        if value not in text:
            continue
        if len(value) >= _HIDDEN_ANYWHERE:
            text = text.replace(value, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", "***", text)
    return redact(text)


class Secrets:
    """The secrets of one deployment, for everything it shows or stores: the values of its
    `.env` (read again whenever the file changes: a restore or a config sync rewrites it),
    of the secret-named variables of this process's environment, and `also` (the secret
    settings' secrets, which the owner may set anew). Calling it hides them in a text."""

    def __init__(self, env_file: Path, also: frozenset[str] = frozenset()) -> None:
        self.env_file = env_file
        self.also = also
        self._seen: tuple[int, int, int] | None = None
        self._values: frozenset[str] = frozenset()

    def values(self) -> frozenset[str]:
        """The values to hide now: one stat of `.env` when it has not changed."""
        try:
            status = self.env_file.stat()
            seen = (status.st_ino, status.st_size, status.st_mtime_ns)
        except OSError:
            seen = (0, 0, 0)
        if seen != self._seen:
            try:
                text = self.env_file.read_text(errors="replace") if seen[0] else ""
            except OSError:
                text = ""
            self._values = hidden_values(text, dict(os.environ))
            self._seen = seen
        return self._values | self.also

    def __call__(self, text: str) -> str:
        return redact_values(text, self.values())
