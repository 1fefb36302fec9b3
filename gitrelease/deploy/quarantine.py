"""Releases marked bad: one that failed to install is not picked again by a plain install.

Kept as a small JSON file beside the index (``data/bad_releases.json``, written atomically)
so that `check`, which opens no database, can leave them out too. A bad release is installed
only when named by version together with --force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import utcnow

__all__ = ["BadRelease", "load_bad", "mark_bad"]

FILE = "bad_releases.json"


@dataclass(frozen=True)
class BadRelease:
    tag: str
    commit: str
    reason: str
    at: str
    session: str


def load_bad(data_dir: Path) -> dict[str, BadRelease]:
    """Bad releases by commit id; a missing or unreadable file means none."""
    try:
        raw = json.loads((data_dir / FILE).read_text())
        return {commit: BadRelease(**entry) for commit, entry in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}


def mark_bad(data_dir: Path, tag: str, commit: str, reason: str, session: str) -> None:
    entries = {c: vars(b) for c, b in load_bad(data_dir).items()}
    entries[commit] = vars(BadRelease(tag, commit, reason[:500], utcnow().isoformat(), session))
    atomic_write(data_dir / FILE, json.dumps(entries, indent=2).encode())
