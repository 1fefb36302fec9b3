"""The cards' wording: engine steps and keys without a string are shown as they are."""

from __future__ import annotations

import discord
import pytest

from gitrelease_discord import i18n
from gitrelease_discord.cards import progress_text, step_label
from gitrelease_discord.embeds import fit
from gitrelease_discord.i18n import text


def test_a_step_with_braces_is_shown_not_formatted() -> None:
    # A restart step carries the operator's command, which may hold braces of its own.
    step = "restart: systemctl --user restart bot@{instance}"
    assert step_label(step, "en_US") == step
    shown = progress_text(["backup"], step, 90, "en_US")
    assert step in shown and "90%" in shown


def test_known_steps_have_their_labels_and_unknown_keys_come_back_unformatted() -> None:
    assert step_label("backup", "en_US") != "backup"
    assert step_label("backup", "xx_XX") == step_label("backup", "en_US")
    assert text("no_such_message {x}", "en_US", y=1) == "no_such_message {x}"


def test_fields_past_discords_limit_are_counted_in_the_readers_language(
        monkeypatch: pytest.MonkeyPatch) -> None:
    english = i18n._strings
    french = {"messages": {"and_more": "… et {count} de plus"}}
    monkeypatch.setattr(i18n, "_strings",
                        lambda locale: french if locale == "fr" else english(locale))

    def many() -> discord.Embed:
        embed = discord.Embed(title="t")
        for number in range(40):
            embed.add_field(name=f"n{number}", value="v")
        return embed

    shown = fit(many(), "fr")
    assert len(shown.fields) == 25
    assert shown.fields[-1].value == "… et 16 de plus"
    assert [f.name for f in shown.fields[:24]] == [f"n{n}" for n in range(24)]
    assert fit(many()).fields[-1].value == "… and 16 more"


def test_breaking_from_an_unknown_version_reads_unknown_not_unchecked() -> None:
    from datetime import UTC, datetime

    from gitrelease.core.models import UpdateInfo, UpdateType
    from gitrelease.core.reports import CheckReport
    from gitrelease_discord.cards import check_card

    info = UpdateInfo(UpdateType.BOT, "6.5.0", 10, "Release 6.5.0", False, None, [],
                      datetime(2024, 1, 1, tzinfo=UTC), None, "a" * 40, tag="v6.5.0",
                      current_version="0+untagged.gabc1234")
    report = CheckReport(UpdateType.BOT, datetime(2024, 1, 2, tzinfo=UTC),
                         "0+untagged.gabc1234", bot=info, version_known=False)
    card = check_card(report, "en-US")
    body = card.description or ""
    body += "".join(f.value for f in card.fields)
    assert text("unknown", "en-US") in body
