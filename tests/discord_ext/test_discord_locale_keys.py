"""Every message key the extension asks for is in the en_US file: a missing key comes back as
its own name ("cards.backup_origin"), which a reader would see on a card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gitrelease.core.models import BackupOrigin, ScheduleType, UpdateStatus
from gitrelease_discord.i18n import label

PACKAGE = Path(__file__).resolve().parents[2] / "gitrelease_discord"
LINE = re.compile(r'\b(?:_t|line)\(\s*locale,\s*"([a-z_0-9]+)"')
TEXT = re.compile(r'\btext\(\s*"([a-z_0-9.]+)"')

#: Keys built at run time, each from the values it can take.
BUILT = (
    [f"cards.origin_{o.value}" for o in BackupOrigin]
    + [f"cards.schedule_closing_{t.value}" for t in ScheduleType]
    + [f"cards.effect_{c}" for c in ("update", "backup", "notification", "schedule",
                                     "restart")]
    + [f"cards.failed_title_{s}" for s in ("unchanged", "undone", "partly", "left")]
    + [f"cards.failed_state_{s}" for s in ("unchanged", "undone", "partly", "left")]
    + [f"cards.rollback_failed_title_{s}" for s in ("unchanged", "undone", "partly", "left")]
    + [f"cards.outcome_{s.value}" for s in UpdateStatus]
    + [f"cards.ago_{u}{one}" for u in ("days", "hours", "minutes") for one in ("", "_one")]
    + [f"cards.fleet_{s}" for s in ("running", "down", "stopped", "stale")]
    + [f"cards.rollout_{s}" for s in ("running", "paused", "reverting", "succeeded",
                                        "failed", "reverted", "aborted")]
    + [f"cards.part_{s}" for s in ("pending", "assigned", "installing", "installed",
                                     "healthy", "failed", "skipped", "revert", "reverting",
                                     "reverted", "revert_failed")]
    + [f"cards.holds_{k}" for k in ("databases", "config", "data")]
    + [f"cards.category_{c}" for c in ("bot", "packages", "dependencies", "config")]
    + [f"cards.step_restart_{k}" for k in ("skipped", "method_none", "auto_off", "failed",
                                           "confirmed", "accepted", "waiting", "requested",
                                           "done")]
)


def _asked() -> set[str]:
    keys: set[str] = set()
    for source in PACKAGE.glob("*.py"):
        code = source.read_text()
        keys |= {f"cards.{key}" for key in LINE.findall(code)}
        keys |= set(TEXT.findall(code))
    return keys


def test_the_scan_finds_the_keys_it_should() -> None:
    assert {"cards.backup_origin", "cards.setting_this", "backup_done_title"} <= _asked()


@pytest.mark.parametrize("key", sorted(_asked() | set(BUILT)))
def test_every_key_asked_for_is_in_the_source_locale(key: str) -> None:
    assert label(key, "en_US") is not None, f"messages.{key} is missing from en_US"


def test_the_locale_file_is_valid_json_with_unique_keys() -> None:
    path = PACKAGE / "translations" / "en_US" / "commands" / "update_manager.json"

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), f"a key appears twice: {names}"
        return dict(pairs)

    json.loads(path.read_text(), object_pairs_hook=unique)
