"""The packages, dependencies and config sources of `check`.

Each compares the deployed commit with the target (the newest release a plain install would
pick, else HEAD itself) and fills its part of the report; a failure of one becomes that
source's error and leaves the others alone. Blocking: the manager runs these in a thread.
"""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.reports import CheckReport, SourceError
from gitrelease.core.text import counted
from gitrelease.deploy import packages
from gitrelease.deploy.configsync import check_config
from gitrelease.git.releases import ReleaseSnapshot, read_pyproject

if TYPE_CHECKING:
    from gitrelease.deploy.context import Deployment

__all__ = ["check_config_source", "check_dependencies", "check_packages", "target_of"]

_INDEX_TIMEOUT = 60.0


def target_of(snap: ReleaseSnapshot) -> tuple[str, str]:
    """The commit an update would move to, and its name for people."""
    offered = snap.offered()
    if offered:
        return offered[-1].commit, offered[-1].tag
    return snap.current.commit, snap.current.text


def _guard(report: CheckReport, source: str, work: Any, *args: Any) -> None:
    try:
        work(*args)
    except GitReleaseError as exc:
        report.errors[source] = SourceError.from_exception(exc)


def check_packages(d: Deployment, report: CheckReport, snap: ReleaseSnapshot,
                   include_security: bool) -> None:
    _guard(report, "packages", _packages, d, report, snap, include_security)


def _packages(d: Deployment, report: CheckReport, snap: ReleaseSnapshot,
              include_security: bool) -> None:
    target, _label = target_of(snap)
    version = str(d.deployment_python())
    now_reqs = packages.read_requirements(d.repo, snap.current.commit, version)
    then_reqs = packages.read_requirements(d.repo, target, version)
    now, then = now_reqs.by_name(), then_reqs.by_name()
    report.warnings += [f"requirements: {p}" for p in then_reqs.problems]
    python = d.python_executable()
    installed = packages.installed_versions(python)
    names = sorted(set(now) | set(then))
    try:
        newest = packages.newest_versions(python, names, _INDEX_TIMEOUT)
    except GitReleaseError as exc:
        newest = {}
        report.warnings.append(f"the package index could not be asked: {exc.message}; the "
                               "other facts about packages are listed all the same")
    audit = _audit(d, include_security)
    for name in names:
        requirement = then.get(name) or now[name]
        have = installed.get(name)
        latest = newest.get(name)
        satisfied = have is not None and requirement.specifier.contains(have, prereleases=True)
        report.packages.append({
            "package": requirement.name,
            "current_version": have,
            "latest_version": latest,
            "required_current": str(now[name].specifier) if name in now else None,
            "required_target": str(then[name].specifier) if name in then else None,
            "satisfied": satisfied,
            "update_available": _newer(latest, have),
            "security": audit.get(name) if audit is not None else None,
            "breaking_changes": _major_bump(have, latest),
        })
    if audit is None and include_security:
        # Asked for and not done: the report's security count must not read as "none".
        report.security_unchecked.append("packages")
        report.warnings.append("package security: not checked (pip-audit is not installed; "
                               "install gitrelease[audit])")


def _newer(latest: str | None, have: str | None) -> bool:
    try:
        return latest is not None and (have is None or Version(latest) > Version(have))
    except InvalidVersion:
        return False


def _major_bump(have: str | None, latest: str | None) -> bool:
    try:
        return have is not None and latest is not None and \
            Version(latest).major > Version(have).major
    except InvalidVersion:
        return False


def _audit(d: Deployment, include_security: bool) -> dict[str, Any] | None:
    """Known vulnerabilities per package from pip-audit, or None: not checked (never "none")."""
    if not include_security or importlib.util.find_spec("pip_audit") is None:
        return None
    import os
    import subprocess
    import sys

    from packaging.utils import canonicalize_name

    try:
        # pip-audit lists packages through pip-api, which asks the interpreter this names:
        # the deployment's, not the one gitrelease runs in.
        result = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PIPAPI_PYTHON_LOCATION": d.python_executable()})
        data = json.loads(result.stdout)
        found = {canonicalize_name(dep["name"]): [v["id"] for v in dep.get("vulns", [])]
                 for dep in data.get("dependencies", [])}
    except (OSError, subprocess.SubprocessError, ValueError, TypeError, KeyError,
            AttributeError):
        return None
    from gitrelease.core.fsutil import atomic_write
    from gitrelease.core.models import utcnow

    atomic_write(d.data_dir / "audit_cache.json",
                 json.dumps({"at": utcnow().isoformat(), "vulnerabilities": found}).encode())
    return found


def check_dependencies(d: Deployment, report: CheckReport, snap: ReleaseSnapshot) -> None:
    _guard(report, "dependencies", _dependencies, d, report, snap)


def _dependencies(d: Deployment, report: CheckReport, snap: ReleaseSnapshot) -> None:
    target, label = target_of(snap)
    project = read_pyproject(d.repo, target).get("project", {})
    spec_text = project.get("requires-python") if isinstance(project, dict) else None
    python = str(d.deployment_python())
    if spec_text:
        try:
            ok = SpecifierSet(str(spec_text)).contains(python, prereleases=True)
        except InvalidSpecifier:
            ok = False
        report.dependencies.append({"kind": "python", "target": label,
                                    "requires_python": str(spec_text), "python": python,
                                    "satisfied": ok, "breaking_changes": not ok})
    diff = packages.requirement_diff(packages.read_requirements(d.repo, snap.current.commit),
                                     packages.read_requirements(d.repo, target))
    if any(diff.values()):
        report.dependencies.append({"kind": "requirements", "target": label, **diff})
    conflicts = packages.pip_check(d.python_executable())
    if conflicts:
        report.dependencies.append({"kind": "conflicts", "problems": conflicts})
    npm = d.repo.show_file(target, "package.json")
    if npm is not None:
        try:
            manifest = json.loads(npm)
            listed = {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}
        except (ValueError, AttributeError):
            listed = {}
        report.dependencies.append({"kind": "npm", "target": label, "installed_by_gitrelease":
                                    False, "packages": listed})


def check_config_source(d: Deployment, report: CheckReport, snap: ReleaseSnapshot) -> None:
    _guard(report, "config", _config, d, report, snap)


def _config(d: Deployment, report: CheckReport, snap: ReleaseSnapshot) -> None:
    target, label = target_of(snap)
    drifts = check_config(d.repo, d.root, d.settings.config_templates, snap.current.commit,
                          target)
    changed = [drift for drift in drifts if drift.changed]
    unset = [drift for drift in drifts if drift.needs_value]
    if not changed and not unset:
        return
    changes = []
    for drift in changed:
        if drift.added_in_target:
            changes.append(f"{drift.template}: {_keys(len(drift.added_in_target), 'new ')}")
        if drift.removed_in_target:
            changes.append(f"{drift.template}: {_keys(len(drift.removed_in_target))} removed")
        if drift.missing_in_live:
            changes.append(f"{drift.live}: {_keys(len(drift.missing_in_live))} missing")
    # Values only the operator has: named so, never counted as something an install does.
    needs = [f"{drift.live}: needs your value for {', '.join(drift.needs_value)}"
             for drift in unset]
    report.config = {"update_type": "config", "version": label, "changes": changes + needs,
                     "update_available": bool(changed), "requires_restart": True,
                     "breaking": any(drift.removed_in_target for drift in changed),
                     "files": [drift.to_dict() for drift in drifts]}


def _keys(count: int, kind: str = "") -> str:
    return counted(count, f"{kind}key")
