"""The specification's types: what parses as an update type."""

from __future__ import annotations

import pytest

from gitrelease.core import models
from gitrelease.core.errors import InvalidInput
from gitrelease.deploy import install


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


def test_check_counts_what_an_install_would_do_and_known_vulnerabilities() -> None:
    from gitrelease.core.models import UpdateType, utcnow
    from gitrelease.core.reports import CheckReport

    report = CheckReport(UpdateType.PACKAGES, utcnow(), "1.0.0", packages=[
        {"package": "fine", "satisfied": True, "update_available": False, "security": []},
        {"package": "newer", "satisfied": True, "update_available": True, "security": []},
        {"package": "not-allowed", "satisfied": False, "update_available": False},
        # The index could not be asked (nothing known newer), but pip-audit found a hole.
        {"package": "holed", "satisfied": True, "update_available": False,
         "security": ["PYSEC-2026-1"]},
    ], dependencies=[{"kind": "conflicts", "problems": ["x"]},
                     {"kind": "python", "satisfied": True},
                     {"kind": "requirements", "changed": [{"name": "newer"}]}])
    data = report.to_dict()
    assert data["total_updates"] == 4  # newer, not-allowed, holed, the requirement changes
    assert data["security_updates"] == 1
