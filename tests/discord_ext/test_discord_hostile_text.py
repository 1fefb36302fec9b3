"""Text from git or archives cannot act on a Discord client: controls and bidi overrides in
a tag message show as escapes, while the markdown guards (zero-width spaces) stay."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import discord

from gitrelease.core.models import UpdateInfo, UpdateType
from gitrelease.core.reports import CheckReport, InstallPlan
from gitrelease_discord.cards import confirm_card
from gitrelease_discord.report_card import check_card

HOSTILE = "Release\x1b[2J\x1b[HFAKE: all good\nname report\u202etxt.exe \u2066x\u2069 \x9b1m"


def _info(changelog: str) -> UpdateInfo:
    return UpdateInfo(UpdateType.BOT, "1.11.0", 10, changelog, False, False, [],
                      datetime(2024, 1, 1, tzinfo=UTC), None, "a" * 40, tag="v1.11.0",
                      current_version="1.10.0")


def _text(card: discord.Embed) -> str:
    return "".join([card.title or "", card.description or ""]
                   + [f"{f.name}{f.value}" for f in card.fields])


def _acting(text: str) -> list[str]:
    return [c for c in text if c not in "\n\u200b"
            and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


def test_a_check_card_shows_a_hostile_tag_message_escaped() -> None:
    report = CheckReport(UpdateType.BOT, datetime(2024, 1, 2, tzinfo=UTC), "1.10.0",
                         bot=_info(HOSTILE))
    shown = _text(check_card(report, "en-US", details=True))
    assert _acting(shown) == []
    assert "report\\u202etxt.exe" in shown
    assert "\\x1b[2J" in shown


def test_a_confirm_card_escapes_controls_and_keeps_its_markdown_guards() -> None:
    plan = InstallPlan(UpdateType.BOT, "1.10.0", "1.11.0", "v1.11.0", "b" * 40, "a" * 40,
                       ["checkout"], _info(HOSTILE + "\n```\n@everyone"))
    shown = _text(confirm_card(plan, "en-US"))
    assert _acting(shown) == []
    assert "\\u202e" in shown
    assert "`\u200b``" in shown and "@\u200beveryone" in shown


def test_a_rollback_suggestion_shows_a_tags_bidi_override_escaped() -> None:
    from gitrelease_discord.suggestions import versions

    tag = "v1.12\u202eexe.txt"
    (choice,) = [c for c in versions("v1.12", [{"tag": tag, "relation": "older"}], "en-US")]
    assert _acting(str(choice.name)) == []
    assert str(choice.name).startswith("v1.12\\u202eexe.txt")
    assert choice.value == tag
