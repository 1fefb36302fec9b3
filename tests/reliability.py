"""The Reliability figures of README: the adversarial test families, run, and counted.

``python -m tests.reliability`` runs each family's files through pytest (the same tests the
suite runs) and prints one row a family: how many cases it tried, how many held, how many
were skipped and why. A case that did not hold fails the run (exit 1), as it fails the suite.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FAMILIES: dict[str, tuple[str, ...]] = {
    "kill -9 of install, rollback and restore at each journal pause point, mid-checkout, "
    "with a migration running; mending after it": (
        "tests/deploy/test_kill_sweep.py", "tests/deploy/test_kill_recovery.py",
        "tests/deploy/test_checkout_mend.py", "tests/deploy/test_tether_groups.py"),
    "disk full at each write (real tmpfs): restore, backup, index": (
        "tests/state/test_enospc.py", "tests/state/test_space_refusals.py",
        "tests/index/test_index_conditions.py"),
    "hostile archives and links at restore targets": ("tests/state/test_restore_hostile.py",),
    "hostile index rows (paths outside the backups folder)": (
        "tests/state/test_hostile_rows.py",),
    "secrets in every output (CLI, journal, index, bad_releases.json)": (
        "tests/deploy/test_secrets.py",),
    "control and bidi characters from git and archives": (
        "tests/cli/test_hostile_output.py", "tests/core/test_text_visible.py",
        "tests/discord_ext/test_discord_hostile_text.py"),
    "broken settings and config files; tags that are not releases": (
        "tests/core/test_settings_hostile.py", "tests/cli/test_plain_answers.py",
        "tests/git_layer/test_ancestry.py"),
}


@dataclass
class _Tally:
    """Outcomes of the call phase (and of setup, for skips and errors) by test file."""

    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    reasons: set[str] = field(default_factory=set)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = report.nodeid.split("::", 1)[0]
        counts = self.outcomes.setdefault(path, Counter())
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = "held" if report.passed else report.outcome
            counts[outcome] += 1
            if report.skipped and isinstance(report.longrepr, tuple):
                self.reasons.add(str(report.longrepr[2]))


def main() -> int:
    tally = _Tally()
    paths = [path for files in FAMILIES.values() for path in files]
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        print(f"no such test file: {', '.join(missing)}", file=sys.stderr)
        return 2
    code = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:], *paths],
                       plugins=[tally])
    print("\n| family | cases tried | held | skipped |\n| --- | --- | --- | --- |")
    for family, files in FAMILIES.items():
        counts = sum((tally.outcomes.get(path, Counter()) for path in files), Counter())
        tried = sum(counts.values())
        print(f"| {family} | {tried} | {counts['held']} | {counts['skipped']} |")
    for reason in sorted(tally.reasons):
        print(f"skipped: {reason}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
