"""The names of an install's steps, and which of them each kind of install runs.

The journal records these names; recovery after a crash (`recovery`) reads them back, so
the install and its recovery share this one list rather than two copies that could drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitrelease.core.models import UpdateType

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.deploy.install_options import InstallOptions

__all__ = ["CHANGE_STEPS", "DATA_STEPS", "MOVES_CODE", "planned_steps", "takes_backup"]

#: Steps after which the data may differ from the pre-change backup.
DATA_STEPS = frozenset({"post_update", "restore"})
#: Steps that change the deployment; a session that started none of them changed nothing.
CHANGE_STEPS = frozenset({"stash", "checkout", "carry", "packages", "dependencies", "config",
                          *DATA_STEPS})
#: Update types that move HEAD to a release.
MOVES_CODE = frozenset({UpdateType.BOT, UpdateType.ALL})


def takes_backup(d: Deployment, opts: InstallOptions) -> bool:
    """Whether a backup is taken first: when asked for, or when the settings insist."""
    return opts.backup_before or d.settings.require_backup_before_update


def planned_steps(d: Deployment, opts: InstallOptions,
                  kind: UpdateType = UpdateType.BOT, *, carrying: bool = False) -> list[str]:
    """The steps an install of `kind` runs, in order, as the journal's plan names them;
    `carrying`: local edits to tracked files are carried over the checkout."""
    backup = ["backup"] if takes_backup(d, opts) else []
    code = ["fetch", "resolve"] if kind in MOVES_CODE else []
    move = ["checkout", "verify"] if kind in MOVES_CODE else []
    if carrying and move:
        move = ["stash", *move, "carry"]
    rest = {UpdateType.PACKAGES: ["packages"], UpdateType.DEPENDENCIES: ["dependencies"],
            UpdateType.CONFIG: ["config"], UpdateType.ALL: ["packages", "config"]}
    return ["preflight", *code, *backup, *move, *rest.get(kind, [])]
