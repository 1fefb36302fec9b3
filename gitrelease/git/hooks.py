"""Installing gitrelease's git hooks into a repository, beside any hook already there.

The hooks are the scripts in ``gitrelease/hookscripts/`` (``hooks/`` in the repository links
to them): ``post-checkout`` on a deployment, ``pre-push`` on the release side. Installing
copies one into the repository's hooks directory (``core.hooksPath`` is honoured) with the
interpreter that runs gitrelease written in, so the hook works whatever PATH git runs with.
A hook that is already there and not ours is never overwritten: it is renamed to
``<name>.chained`` and our hook runs it first, with the same arguments and input. Uninstall
puts it back. Both are idempotent.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gitrelease.core.errors import GitReleaseError, InvalidInput
from gitrelease.core.fsutil import atomic_write
from gitrelease.git.repo import GitRepo

__all__ = ["DEPLOYMENT_HOOKS", "RELEASE_HOOKS", "HookState", "hook_states", "install_hooks",
           "render_hook", "uninstall_hooks"]

DEPLOYMENT_HOOKS = ("post-checkout",)
RELEASE_HOOKS = ("pre-push",)
_MARK = "# gitrelease:python"
_CHAINED = ".chained"


@dataclass(frozen=True)
class HookState:
    name: str
    path: str
    # installed: ours and current; outdated: ours from another gitrelease or interpreter;
    # foreign: someone else's (chained by install); absent: nothing there.
    state: str
    chained: str | None  # the hook ours runs first, if any
    action: str = ""  # what install/uninstall did: written, unchanged, removed, restored...
    python: str | None = None  # the interpreter our hook runs gitrelease with

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render_hook(name: str, python: str) -> bytes:
    """The hook script with `python` as the interpreter that runs gitrelease."""
    if "\n" in python or "\0" in python:
        raise InvalidInput("python", python, "a path to a Python interpreter")
    script = resources.files("gitrelease").joinpath("hookscripts", name).read_text()
    lines = [f"GITRELEASE_PYTHON=${{GITRELEASE_PYTHON:-{shlex.quote(python)}}}  {_MARK}"
             if line.endswith(_MARK) else line for line in script.splitlines()]
    return ("\n".join(lines) + "\n").encode()


def hooks_dir(repo: GitRepo) -> Path:
    """Where git looks for this repository's hooks (core.hooksPath honoured)."""
    out = repo.run("rev-parse", "--git-path", "hooks").strip()
    path = Path(out)
    return path if path.is_absolute() else repo.root / path


def _own_hooks_dir(repo: GitRepo) -> Path:
    """The hooks directory, refused if core.hooksPath shares it beyond this repository: a
    hook there would restart this bot for checkouts in other repositories."""
    directory = hooks_dir(repo)
    common = Path(repo.run("rev-parse", "--git-common-dir").strip())
    common = common if common.is_absolute() else repo.root / common
    inside = [common.resolve(), repo.root.resolve()]
    if not any(directory.resolve().is_relative_to(base) for base in inside):
        raise GitReleaseError(
            f"core.hooksPath points to {directory}, outside this repository: a hook installed "
            "there would run for every repository that shares it",
            hint="unset core.hooksPath for this repository (git config --unset "
                 "core.hooksPath), or call the hook script from your shared hooks yourself")
    return directory


def installed_python(path: Path) -> str | None:
    """The interpreter written into one of our hooks, if it is there."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    line = next((line for line in lines if line.endswith(_MARK)), "")
    _name, _sep, rest = line.partition(":-")
    value = rest.removesuffix(_MARK).strip().removesuffix("}")
    try:
        words = shlex.split(value)
    except ValueError:
        return None
    return words[0] if len(words) == 1 else None


def _is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(64 * 1024)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False
    lines = head.splitlines()
    return _MARK.encode() in head and len(lines) > 1 and b"gitrelease" in lines[1]


def _state(directory: Path, name: str) -> HookState:
    path = directory / name
    chained = directory / f"{name}{_CHAINED}"
    chained_text = str(chained) if chained.exists() or chained.is_symlink() else None
    if not (path.exists() or path.is_symlink()):
        return HookState(name, str(path), "absent", chained_text)
    if not _is_ours(path):
        return HookState(name, str(path), "foreign", chained_text)
    python = installed_python(path)
    current = python is not None and Path(python).exists() and \
        path.read_bytes() == render_hook(name, python)
    return HookState(name, str(path), "installed" if current else "outdated", chained_text,
                     python=python)


def hook_states(repo: GitRepo, names: tuple[str, ...]) -> list[HookState]:
    directory = hooks_dir(repo)
    return [_state(directory, name) for name in names]


def install_hooks(
    repo: GitRepo, names: tuple[str, ...], python: str | None, *, default_python: str,
) -> list[HookState]:
    """Install `names`; the interpreter is `python`, else the one an installed hook of ours
    already names (if it still exists), else `default_python`."""
    directory = _own_hooks_dir(repo)
    directory.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        before = _state(directory, name)
        path, chained = directory / name, directory / f"{name}{_CHAINED}"
        kept = before.python if before.python and Path(before.python).exists() else None
        wanted = python or kept or default_python
        if before.state == "installed" and before.python == wanted:
            results.append(HookState(**{**asdict(before), "action": "unchanged"}))
            continue
        moved = False
        if before.state == "foreign":
            if before.chained is not None:
                raise GitReleaseError(
                    f"{path} is someone else's hook and {chained} already exists, so it "
                    "cannot be chained without losing one of them",
                    hint=f"merge the two into {chained} and run this again")
            os.rename(path, chained)
            moved = True
        try:
            atomic_write(path, render_hook(name, wanted), mode=0o755)
        except BaseException:
            if moved:
                os.rename(chained, path)  # puts the operator's hook back as it was
            raise
        action = "chained the existing hook" if moved else (
            "updated" if before.state == "outdated" else "written")
        results.append(HookState(name, str(path), "installed",
                                 str(chained) if moved else before.chained, action,
                                 python=wanted))
    return results


def uninstall_hooks(repo: GitRepo, names: tuple[str, ...]) -> list[HookState]:
    directory = hooks_dir(repo)
    results = []
    for name in names:
        before = _state(directory, name)
        path, chained = directory / name, directory / f"{name}{_CHAINED}"
        if before.state in ("absent", "foreign"):
            results.append(HookState(**{**asdict(before), "action": "not ours: left alone"
                                        if before.state == "foreign" else "nothing to do"}))
            continue
        if before.chained is not None:
            os.replace(chained, path)  # the chained hook takes its place again
            action = "removed; the chained hook is back in place"
        else:
            path.unlink()
            action = "removed"
        after = _state(directory, name)
        results.append(HookState(**{**asdict(after), "action": action}))
    return results
