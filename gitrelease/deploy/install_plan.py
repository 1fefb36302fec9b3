"""What a dry run's plan says besides the code, for whoever is asked to agree to an install:
the packages pip would move, the config keys the merge would add (by live file, names only:
live files hold secrets), what the backup would hold, and the newer releases a plain install
passes over because they failed before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.models import UpdateType

if TYPE_CHECKING:
    from gitrelease.core.reports import InstallPlan
    from gitrelease.deploy.context import Deployment
    from gitrelease.git.releases import ReleaseSnapshot

__all__ = ["filled", "skipped"]


def skipped(d: Deployment, snap: ReleaseSnapshot) -> list[dict[str, str]]:
    """The newer releases a plain install passes over, each with why and the session
    in which it failed (its log)."""
    from gitrelease.deploy.quarantine import load_bad

    recorded = load_bad(d.data_dir)
    return [{"tag": r.tag, "reason": snap.bad[r.commit],
             "session": recorded[r.commit].session if r.commit in recorded else ""}
            for r in snap.newer() if r.commit in snap.bad]


def filled(d: Deployment, plan: InstallPlan, kind: UpdateType, commit: str) -> InstallPlan:
    """The plan with what the install would change besides the code, for whoever is
    asked to agree to it: packages pip would move, config keys the merge would add (by
    live file, names only: live files hold secrets) and what the backup would hold."""
    from gitrelease.deploy.configsync import ConfigError, check_config
    from gitrelease.deploy.holds import backup_holds

    _with_package_moves(d, plan, kind, commit)
    if kind in (UpdateType.CONFIG, UpdateType.ALL):
        try:  # the keys `merge_config` adds: the target's template keys the live lacks
            plan.config_keys = {drift.live: drift.missing_in_live for drift in check_config(
                d.repo, d.root, d.settings.config_templates,
                plan.from_commit, commit) if drift.missing_in_live}
        except ConfigError as exc:
            plan.warnings.append(f"which config keys would be added could not be told: "
                                 f"{exc.message}")
    if "backup" in plan.steps:  # the install's own step list says whether it takes one
        plan.backup_holds = backup_holds(d)
    return plan


def _with_package_moves(d: Deployment, plan: InstallPlan, kind: UpdateType, commit: str
                        ) -> InstallPlan:
    """The plan, with the packages pip would move for the requirements at `commit`."""
    from gitrelease.deploy.packages import planned_moves

    if kind not in (UpdateType.PACKAGES, UpdateType.ALL, UpdateType.DEPENDENCIES):
        return plan
    try:
        plan.package_changes = planned_moves(
            d.python_executable(), d.repo, commit,
            str(d.deployment_python()), upgrade=kind is not UpdateType.DEPENDENCIES,
            timeout=d.settings.pip_timeout)
    except GitReleaseError as exc:
        plan.warnings.append(f"which packages would move could not be told: {exc.message}")
    return plan
