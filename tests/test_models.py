"""The specification's types: what parses as an update type."""

from __future__ import annotations

import pytest

from gitrelease import install, models
from gitrelease.errors import InvalidInput


@pytest.mark.parametrize("value", ["all", "bot", "packages", "config", "dependencies",
                                   "rollback", "BOT", "", "everything"])
def test_parse_update_type_is_the_installers_rule(value: str) -> None:
    """`check` parses the type without importing the installer: by the same rule."""
    try:
        expected: object = install.parse_update_type(value, field="f")
    except InvalidInput as exc:
        expected = (exc.field, exc.message)
    try:
        got: object = models.parse_update_type(value, field="f")
    except InvalidInput as exc:
        got = (exc.field, exc.message)
    assert got == expected
