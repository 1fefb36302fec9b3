"""Where a TOML file is broken, in words: its line, its column and what is wrong there.

tomllib and tomlkit each say it their own way: tomllib "Unclosed array (at line 3, column 1)"
or "Invalid value (at end of document)", tomlkit "Unexpected character: '\\x00' at line 1
col 0", its NUL standing for the end of the text. People get one form; a file that ends
inside a value (an array, a table or a string never closed) names the setting whose value it
is, since the end of the file is not where the mistake was made.
"""

from __future__ import annotations

import re

from gitrelease.core.text import visible

__all__ = ["toml_problem", "utf8_problem"]

_TOMLLIB_AT = re.compile(
    r"^(?P<what>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$", re.S)
_TOMLKIT_AT = re.compile(r"^(?P<what>.*?) at line (?P<line>\d+) col (?P<col>\d+)$", re.S)
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.-]+)\s*=")


def toml_problem(text: str, exc: Exception) -> str:
    """``at line L, column C: what`` for `exc`, a tomllib or tomlkit error parsing `text`."""
    message = str(exc)
    tomllib_at = _TOMLLIB_AT.match(message)
    tomlkit_at = _TOMLKIT_AT.match(message) if tomllib_at is None else None
    if tomllib_at is not None:
        what, line, col = tomllib_at["what"], tomllib_at["line"], tomllib_at["col"]
        if line is None:
            return _open_at_end(text)
    elif tomlkit_at is not None:
        what, line, col = tomlkit_at["what"], tomlkit_at["line"], tomlkit_at["col"]
        if "'\\x00'" in what and "\x00" not in text:  # tomlkit's NUL: the text ended
            return _open_at_end(text)
        col = str(int(col) + 1)  # tomlkit counts columns from 0, editors from 1
    else:
        return f"({visible(message, lines=False)})"
    return f"at line {line}, column {col}: {visible(what, lines=False)}"


def utf8_problem(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where bytes that are not UTF-8 (a binary file, UTF-16) start, in words."""
    line = data[: exc.start].count(b"\n") + 1
    return (f"at line {line}: it is not UTF-8 text (byte {exc.start} is "
            f"{data[exc.start]:#04x}), and a TOML file must be")


def _open_at_end(text: str) -> str:
    """The file ended inside a value: name the last setting begun, where it begins."""
    lines = text.split("\n")
    for number in range(len(lines), 0, -1):
        begun = _KEY.match(lines[number - 1])
        if begun is not None:
            return (f"at line {number}: the value of {begun['key']} is never closed (an "
                    "array, inline table or string left open?)")
    return f"at line {len(lines)}: the file ends inside a value that is never closed"
