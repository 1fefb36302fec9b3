"""What a backup would hold now: the answer `check` and `status` give, before any backup.

Its own module, light to import: the CLI's `check` runs without the index, the event loop or
the backup service, and start-up time is part of the product.
"""

from __future__ import annotations

from gitrelease.core.errors import GitReleaseError
from gitrelease.deploy.context import Deployment

__all__ = ["backup_holds"]


def backup_holds(d: Deployment) -> dict[str, list[str]]:
    """What a full backup would hold now, by kind, as paths from the bot's root; empty when
    the backup paths are misconfigured (said elsewhere). Blocking: git lists what it does
    not version, and headers are read."""
    from gitrelease.state.sources import would_hold

    # A check has just written its summary, perhaps making the data dir: it is claimed
    # before the bot's `git status` shows it.
    d.claim_data_dir()
    try:
        return would_hold(d.layout(), d.settings, tracked=d.repo.tracked_files(),
                          unversioned=d.repo.unversioned())
    except (GitReleaseError, OSError):
        return {}
