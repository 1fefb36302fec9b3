"""Python packages: what a release requires, what is installed, what is newest, and pip.

Requirements are read from the release itself (``requirements.txt`` with its ``-r``
includes, else ``[project] dependencies`` of ``pyproject.toml``) and parsed with
`packaging`; only parsed requirements ever reach pip, written to a file, never a shell. pip
runs as ``<python> -m pip`` of the deployment's interpreter, with a timeout and its output in
the session log.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from gitrelease.core.errors import GitReleaseError
from gitrelease.core.text import redact
from gitrelease.git.releases import read_pyproject
from gitrelease.git.repo import GitRepo

__all__ = [
    "PackageError",
    "Requirements",
    "freeze",
    "install_requirements",
    "installed_versions",
    "newest_versions",
    "package_moves",
    "pinned",
    "pip_check",
    "planned_moves",
    "read_requirements",
    "restore_freeze",
]

_MAX_INCLUDES = 10


class PackageError(GitReleaseError):
    code = "package_error"
    exit_code = 22


@dataclass
class Requirements:
    source: str | None  # the file they came from at that commit
    requirements: list[Requirement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # lines that are not requirements

    def by_name(self) -> dict[str, Requirement]:
        return {canonicalize_name(r.name): r for r in self.requirements}


def read_requirements(
    repo: GitRepo, commit: str, python_version: str | None = None
) -> Requirements:
    """The requirements a release declares, read from git at `commit`; environment markers
    are judged for the deployment's interpreter (`python_version`, e.g. "3.12.1")."""
    environment = _marker_environment(python_version)
    if repo.show_file(commit, "requirements.txt") is not None:
        found = Requirements("requirements.txt")
        _read_file(repo, commit, "requirements.txt", found, 0, environment)
        return found
    project = read_pyproject(repo, commit).get("project", {})
    found = Requirements("pyproject.toml" if isinstance(project, dict) else None)
    for line in project.get("dependencies", []) if isinstance(project, dict) else []:
        _add(found, str(line), "pyproject.toml", environment)
    return found


def _marker_environment(python_version: str | None) -> dict[str, str]:
    if not python_version:
        return {}
    major, minor = python_version.split(".")[:2]
    return {"python_version": f"{major}.{minor}", "python_full_version": python_version}


def _read_file(repo: GitRepo, commit: str, path: str, found: Requirements, depth: int,
               environment: dict[str, str]) -> None:
    raw = repo.show_file(commit, path)
    if raw is None:
        found.problems.append(f"{path}: not in the release")
        return
    for number, text in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
        line = text.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            include = PurePosixPath(path).parent / line.split(None, 1)[1].strip()
            if depth >= _MAX_INCLUDES or include.is_absolute() or ".." in include.parts:
                found.problems.append(f"{path}:{number}: include {include} refused")
            else:
                _read_file(repo, commit, include.as_posix(), found, depth + 1, environment)
            continue
        if line.startswith("-"):
            found.problems.append(f"{path}:{number}: option not understood: {line[:60]}")
            continue
        _add(found, line, f"{path}:{number}", environment)


def _add(found: Requirements, line: str, where: str, environment: dict[str, str]) -> None:
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        found.problems.append(f"{where}: not a requirement: {line[:60]}")
        return
    if requirement.url:
        found.problems.append(f"{where}: direct URL requirements are not installed: "
                              f"{requirement.name}")
        return
    if requirement.marker is None or requirement.marker.evaluate(environment or None):
        found.requirements.append(requirement)


def _pip(python: str, args: list[str], *, timeout: float, log: Path | None = None,
         ) -> subprocess.CompletedProcess[str]:
    command = [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                check=False, env={**os.environ, "PIP_NO_INPUT": "1"})
    except subprocess.TimeoutExpired:
        raise PackageError(f"pip {args[0]} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise PackageError(f"cannot run pip with {python}: {exc.strerror}") from None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(f"--- pip {' '.join(args)}\n{result.stdout}{result.stderr}"
                         f"--- exit status {result.returncode}\n")
    return result


def _fail(what: str, result: subprocess.CompletedProcess[str]) -> PackageError:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return PackageError(f"{what} failed: {redact(' | '.join(lines[-4:]))[:600]}")


def installed_versions(python: str) -> dict[str, str]:
    result = _pip(python, ["list", "--format=json"], timeout=120)
    if result.returncode != 0:
        raise _fail("pip list", result)
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(result.stdout)}


def freeze(python: str) -> str:
    result = _pip(python, ["freeze", "--all"], timeout=120)
    if result.returncode != 0:
        raise _fail("pip freeze", result)
    return result.stdout


def newest_versions(python: str, names: list[str], timeout: float) -> dict[str, str]:
    """The newest version the package index offers for each name (one pip process)."""
    if not names:
        return {}
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        result = _pip(python, ["install", "--dry-run", "--ignore-installed", "--no-deps",
                               "--quiet", "--report", str(report), "--", *names],
                      timeout=timeout)
        if result.returncode != 0:
            raise _fail("asking the package index", result)
        data = json.loads(report.read_text())
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
            for item in data.get("install", [])}


def install_requirements(
    python: str, requirements: list[Requirement], *, upgrade: bool, log: Path, timeout: float
) -> None:
    """pip install the requirements, then `pip check`; raise PackageError on a failure."""
    already_broken = set(pip_check(python))  # not this install's doing: not its failure
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "requirements.txt"
        listing.write_text("".join(f"{r}\n" for r in requirements))
        args = ["install", *(["--upgrade"] if upgrade else []), "-r", str(listing)]
        result = _pip(python, args, timeout=timeout, log=log)
    if result.returncode != 0:
        raise _fail("pip install", result)
    broken = [line for line in pip_check(python) if line not in already_broken]
    if broken:
        raise PackageError(f"pip check after the install: {'; '.join(broken[:5])}")


def restore_freeze(python: str, frozen: str, *, log: Path, timeout: float) -> None:
    """Put the environment back to a `pip freeze` exactly: pinned versions, extras removed."""
    wanted = {name: f"{name}=={version}" for name, version in pinned(frozen).items()}
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "frozen.txt"
        listing.write_text("".join(f"{line}\n" for line in wanted.values()))
        result = _pip(python, ["install", "--no-deps", "-r", str(listing)], timeout=timeout,
                      log=log)
    if result.returncode != 0:
        raise _fail("reinstalling the saved packages", result)
    extra = [name for name in pinned(freeze(python)) if name not in wanted]
    if extra:
        result = _pip(python, ["uninstall", "--yes", *extra], timeout=timeout, log=log)
        if result.returncode != 0:
            raise _fail("removing packages the update added", result)


def pip_check(python: str) -> list[str]:
    """What `pip check` reports as broken in the deployment's environment (empty: fine)."""
    result = _pip(python, ["check"], timeout=120)
    if result.returncode == 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def pinned(frozen: str) -> dict[str, str]:
    """name -> version of the `==` lines of a `pip freeze`."""
    return {canonicalize_name(line.split("==")[0]): line.split("==", 1)[1].strip()
            for line in frozen.splitlines() if "==" in line and not line.startswith("#")}


def package_moves(before: dict[str, str], after: dict[str, str]) -> list[dict[str, Any]]:
    """Each package whose version differs: name, from, to (None: not installed on that
    side) and whether it went down."""
    moves = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old != new:
            moves.append({"name": name, "from": old, "to": new,
                          "downgrade": old is not None and new is not None
                          and _older(new, old)})
    return moves


def _older(new: str, old: str) -> bool:
    try:
        return Version(new) < Version(old)
    except InvalidVersion:
        return False


def planned_moves(
    python: str, repo: GitRepo, commit: str, python_version: str, *, upgrade: bool,
    timeout: float,
) -> list[dict[str, Any]]:
    """The moves an install of the requirements at `commit` would make, as pip resolves
    them against what is installed (`pip install --dry-run`: nothing is installed)."""
    wanted = read_requirements(repo, commit, python_version)
    if wanted.source is None or not wanted.requirements:
        return []
    if wanted.problems:
        raise PackageError(f"{len(wanted.problems)} requirement line(s) cannot be installed "
                           f"by gitrelease: {'; '.join(wanted.problems[:3])}")
    installed = installed_versions(python)
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "requirements.txt"
        listing.write_text("".join(f"{r}\n" for r in wanted.requirements))
        report = Path(scratch) / "report.json"
        result = _pip(python, ["install", "--dry-run", "--quiet", *(["--upgrade"] if upgrade
                                                                      else []),
                               "--report", str(report), "-r", str(listing)], timeout=timeout)
        if result.returncode != 0:
            raise _fail("pip install --dry-run", result)
        data = json.loads(report.read_text())
    would = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
             for item in data.get("install", [])}
    return package_moves(installed, {**installed, **would})




def requirement_diff(old: Requirements, new: Requirements) -> dict[str, Any]:
    before, after = old.by_name(), new.by_name()
    return {
        "added": [str(after[n]) for n in after if n not in before],
        "removed": [str(before[n]) for n in before if n not in after],
        "changed": [{"name": n, "from": str(before[n]), "to": str(after[n])}
                    for n in after if n in before and str(before[n]) != str(after[n])],
    }
