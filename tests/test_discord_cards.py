"""The cards' wording: engine steps and keys without a string are shown as they are."""

from __future__ import annotations

from gitrelease_discord.cards import progress_text, step_label
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
