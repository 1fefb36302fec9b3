"""Releases marked bad: one that failed to install is not picked again by a plain install.

Kept as a small JSON file beside the index (``data/bad_releases.json``, written atomically)
so that `check`, which opens no database, can leave them out too. A bad release is installed
only when named by version together with --force.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import utcnow
from gitrelease.core.text import redact

__all__ = ["BadRelease", "load_bad", "mark_bad"]

FILE = "bad_releases.json"


@dataclass(frozen=True)
class BadRelease:
    tag: str
    commit: str
    reason: str
    at: str
    session: str


def load_bad(data_dir: Path, hide: Callable[[str], str] = redact) -> dict[str, BadRelease]:
    """Bad releases by commit id; a missing or unreadable file means none. Each reason is
    read through `hide`: one written before its secrets were kept out is not shown with
    them by every later `check`."""
    try:
        raw = json.loads((data_dir / FILE).read_text())
        return {commit: replace(bad, reason=hide(bad.reason))
                for commit, bad in ((c, BadRelease(**entry)) for c, entry in raw.items())}
    except (OSError, ValueError, TypeError):
        return {}


def mark_bad(data_dir: Path, tag: str, commit: str, reason: str, session: str,
             hide: Callable[[str], str] = redact) -> None:
    """Mark the release bad, its reason stored with the deployment's secrets (`hide`,
    `Deployment.secrets`) taken out."""
    entries = {c: vars(b) for c, b in load_bad(data_dir, hide).items()}
    entries[commit] = vars(BadRelease(tag, commit, hide(reason)[:500], utcnow().isoformat(),
                                      session))
    atomic_write(data_dir / FILE, json.dumps(entries, indent=2).encode())
