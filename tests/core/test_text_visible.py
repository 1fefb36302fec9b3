"""`visible`: every character that acts on a display instead of showing, written out."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from gitrelease.core.text import visible

_ACTING = ("Cc", "Cf", "Cs", "Zl", "Zp")
_KEPT = "\n\t\u200c\u200d"  # layout, and the joiners scripts and emoji need


def test_every_acting_character_is_escaped_and_nothing_else_changes() -> None:
    everything = [chr(code) for code in range(sys.maxunicode + 1)]
    acting = [c for c in everything if unicodedata.category(c) in _ACTING and c not in _KEPT]
    for char in acting:
        shown = visible(char)
        assert shown.isascii() and shown.isprintable() and shown.startswith("\\"), hex(ord(char))
    skipped = set(acting)
    others = "".join(c for c in everything if c not in skipped)
    assert visible(others) == others


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2JFAKE", "\\x1b[2JFAKE"),
    ("ok\rFAKE", "ok\\rFAKE"),
    ("\x9b31m", "\\x9b31m"),
    ("report\u202etxt.exe", "report\\u202etxt.exe"),
    ("\U000e0041", "\\U000e0041"),
    ("\udcff", "\\udcff"),  # a name that was not UTF-8, as surrogateescape reads it
    ("line one\n\tline two", "line one\n\tline two"),
    ("\U0001f469\u200d\U0001f4bb \u0645\u06cc\u200c\u0634\u0648\u062f",  # emoji, Persian
     "\U0001f469\u200d\U0001f4bb \u0645\u06cc\u200c\u0634\u0648\u062f"),
])
def test_examples(text: str, shown: str) -> None:
    assert visible(text) == shown


def test_one_line_fields_escape_layout_too_and_keep_keeps() -> None:
    assert visible("a\nb\tc", lines=False) == "a\\nb\\tc"
    assert visible("@\u200beveryone \u202e", keep="\u200b") == "@\u200beveryone \\u202e"
