"""What a release needs that the current setup lacks: config keys, and packages.

A `bot` install moves only the code. If the release's own templates (`config_templates`)
add keys the live files lack, or its requirements ask for packages the deployment's
interpreter does not have, the code alone cannot run as it should: the install says so and
needs a confirmation. Only what the release changes is looked at (keys it adds, requirement
lines it adds or changes), so a setup that ran before is not asked about again. Key names
only, never a value: live config files hold secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from gitrelease.core.errors import GitReleaseError

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment
    from gitrelease.git.versions import Release

__all__ = ["needs_reason", "unmet_needs"]


def unmet_needs(d: Deployment, current: str, target: Release) -> tuple[list[str], list[str]]:
    """What `target` needs ("PREFIX in .env", "botlib==1.5 (installed 2.0)"), and what
    could not be told (as warnings)."""
    needs: list[str] = []
    unknown: list[str] = []
    try:
        needs += _config_needs(d, current, target.commit)
    except GitReleaseError as exc:
        unknown.append(f"whether {target.tag} needs config keys could not be told: "
                       f"{exc.message}")
    try:
        needs += _package_needs(d, current, target.commit)
    except GitReleaseError as exc:
        unknown.append(f"whether the installed packages satisfy {target.tag} could not be "
                       f"told: {exc.message}")
    return needs, unknown


def needs_reason(tag: str, needs: list[str]) -> str:
    """The confirmation reason (and, once past it, the result's word on what is left)."""
    listed = needs[0] if len(needs) == 1 else f"{', '.join(needs[:-1])} and {needs[-1]}"
    return f"{tag} needs {listed}: install with --type all, or set them"


def _config_needs(d: Deployment, current: str, target: str) -> list[str]:
    from gitrelease.deploy.configsync import check_config

    needs = []
    for drift in check_config(d.repo, d.root, d.settings.config_templates, current, target):
        keys = [k for k in drift.missing_in_live if k in drift.added_in_target]
        if keys:
            needs.append(f"{', '.join(keys)} in {drift.live}")
    return needs


def _package_needs(d: Deployment, current: str, target: str) -> list[str]:
    from gitrelease.deploy.packages import installed_versions, read_requirements

    python = str(d.deployment_python())
    before = read_requirements(d.repo, current, python).by_name()
    after = read_requirements(d.repo, target, python).by_name()
    changed = [r for name, r in after.items()
               if name not in before or str(before[name]) != str(r)]
    if not changed:
        return []
    installed = installed_versions(d.python_executable())
    needs = []
    for requirement in changed:
        have = installed.get(canonicalize_name(requirement.name))
        if have is None:
            needs.append(f"{requirement} (not installed)")
        elif not _satisfies(requirement.specifier, have):
            needs.append(f"{requirement} (installed {have})")
    return needs


def _satisfies(specifier: SpecifierSet, version: str) -> bool:
    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # a version pip itself cannot compare is not ours to refuse
