"""Text every layer and front-end shows: secrets taken out, sizes people read, `.env` keys."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["ENV_LINE", "Secrets", "counted", "env_bindings", "env_values",
           "hidden_values", "redact", "redact_values", "secret_name", "setting_secrets", "size",
           "worth_hiding"]

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
#: The words of a name that say its value is a secret (a number included): DISCORD_TOKEN,
#: DB_PASSWORD, API_KEY, SECRET, GITHUB_PAT. Matched as words of the name only: KEYBOARD,
#: AUTHOR or TOKENIZERS_PARALLELISM hold no secret, and PWD is the working directory.
_SECRET_WORDS = frozenset({
    "token", "secret", "password", "passwd", "pwd", "pass", "passphrase", "pat", "key",
    "apikey", "auth", "credential", "credentials", "creds", "private", "salt", "dsn",
    "cookie", "webhook", "sig", "signature", "jwt", "bearer", "otp", "totp",
})
#: The same words run together with the word before them: DISCORDTOKEN, APIKEY, DBPASSWORD.
_SECRET_ENDINGS = ("token", "secret", "password", "passwd", "apikey", "accesskey",
                   "secretkey", "privatekey")
#: Names every shell or login sets whose words look secret and whose value is a place:
#: the working directory (what a command's output and a hint name), an agent's socket.
_NOT_SECRET = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK"})
_CASE_CHANGE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NUMBERISH = re.compile(r"^[0-9.:,_+-]+$")
#: From this length a value is hidden wherever it appears, even inside a longer word (a
#: token printed base64-wrapped); shorter ones only as a word of their own.
_HIDDEN_ANYWHERE = 12


def secret_name(name: str) -> bool:
    """Whether a variable or argument named `name` holds a secret, by the words of the name
    (split at ``_ . -`` and changes of case, trailing digits dropped): one of
    `_SECRET_WORDS`, or a word ending in one of `_SECRET_ENDINGS`. Matched anywhere in the
    name instead, PWD (the working directory) was hidden from every command's output."""
    if name.upper() in _NOT_SECRET:
        return False
    words = (w.rstrip("0123456789") for w in
             re.split(r"[^a-z0-9]+", _CASE_CHANGE.sub("_", name).lower()))
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS)  # TOKENS, API_KEYS too
               for word in words if word for w in (word, word.removesuffix("s")))


def worth_hiding(key: str, value: str) -> bool:
    """Whether `value` (of `key`) is hidden from output: not too short, not a plain word,
    not a bare number (a port, a count) unless its key says it is a secret."""
    if len(value) < SHORTEST_HIDDEN or value.lower() in _PLAIN:
        return False
    return not _NUMBERISH.match(value) or secret_name(key)


# A `.env` file read as python-dotenv (which bots load it with) reads it: its expressions,
# so that every value the program can see is found, however it is written.
_SPACE = re.compile(r"\s*")
_KEY = re.compile(r"(?:export[^\S\r\n]+)?(?:'([^']+)'|([^=#\s]+))[^\S\r\n]*=[^\S\r\n]*")
_QUOTED = {"'": re.compile(r"'((?:\\'|[^'])*)'"), '"': re.compile(r'"((?:\\"|[^"])*)"')}
_ESCAPES = {"'": re.compile(r"\\[\\']"), '"': re.compile(r"\\[\\'\"abfnrtv]")}
_BARE = re.compile(r"[^\r\n]*")
_LINE_END = re.compile(r"(?:[^\S\r\n]*#[^\r\n]*)?[^\S\r\n]*(?:\r\n|\n|\r|$)")
_REST_OF_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)?")


def _past(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a match of `pattern` (one that matches the empty string too) at `pos` ends."""
    match = pattern.match(text, pos)
    return pos if match is None else match.end()


def env_bindings(text: str) -> list[tuple[str, str, str]]:
    """Every ``KEY=value`` of a `.env` text, in file order, a key given twice twice (the
    program reads the last; the first is no less secret): (key, the value as written
    between its quotes, the value as read: escapes decoded). A quoted value may span lines
    (a PEM key); an unquoted one ends at a `` #`` comment. A line python-dotenv would
    refuse (a quote never closed) still gives what it holds: this is for hiding it."""
    found: list[tuple[str, str, str]] = []
    pos = 0
    while (pos := _past(_SPACE, text, pos)) < len(text):
        key = _KEY.match(text, pos)
        if key is None:  # a comment, a key without a value, anything else
            pos = _past(_REST_OF_LINE, text, pos)
            continue
        pos = key.end()
        quote = text[pos] if text[pos:pos + 1] in _QUOTED else ""
        quoted = _QUOTED[quote].match(text, pos) if quote else None
        if quoted is not None:
            written = quoted.group(1)
            read = _ESCAPES[quote].sub(
                lambda m: codecs.decode(m.group(), "unicode-escape"), written)
            pos = quoted.end()
        else:  # unquoted, or a quote never closed: the rest of the line
            start = pos + len(quote)
            pos = _past(_BARE, text, start)
            rest = text[start:pos]
            written = read = rest.rstrip() if quote else re.sub(r"\s+#.*", "", rest).rstrip()
        found.append((key.group(1) or key.group(2), written, read))
        ended = _past(_LINE_END, text, pos)
        pos = ended if ended > pos or pos == len(text) else _past(_REST_OF_LINE, text, pos)
    return found


def hidden_values(env_text: str, environment: dict[str, str] | None = None) -> frozenset[str]:
    """The values to hide: every value of a `.env` text worth hiding (`env_bindings`: each
    one a key was given, as written and as read, and each line of one that spans lines),
    and those of `environment` whose name says they are secrets (a command inherits them)."""
    found: set[str] = set()
    for key, written, read in env_bindings(env_text):
        for value in {written, read, *written.splitlines(), *read.splitlines()}:
            if worth_hiding(key, value.strip()):
                found.add(value.strip())
    for key, value in (environment or {}).items():
        if secret_name(key) and worth_hiding(key, value):
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
            if sep and secret_name(key) and worth_hiding(key, value):
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

    def adding(self, also: frozenset[str]) -> Secrets:
        """These secrets and `also` (a command's own), leaving these as they are."""
        return Secrets(self.env_file, self.also | also)

    def from_now(self) -> Callable[[str], str]:
        """A `hide` for what a command about to start prints: the values to hide now and
        whatever they are when it is called (the command may rewrite `.env`, rotating a
        token: the old one is no less secret for it)."""
        before = self.values()
        return lambda text: redact_values(text, before | self.values())
