"""A checkout that may be cut off, and the mending of one that was.

git switches a tree file by file under ``.git/index.lock`` and moves HEAD last. Killed
half-way, it leaves the lock, some of the new release's files (changed, added, removed) and
HEAD where it was: a tree no later git command can touch. So an install's checkout runs
tethered (`gitrelease.core.tether`: it dies with the install, its process group journalled
before it starts), and what it may overwrite of the files git does not version is listed
first (`paths_in_the_way`). After a crash, `put_back` returns the tree to the commit HEAD
never left: only the paths that differ between the two commits are touched, the ones only
the new release has are removed unless they were there before, and nothing else of the
operator's (untracked or ignored files, .env, data/) is looked at.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from gitrelease.core.tether import Group, Tethered
from gitrelease.git.stderr import command_failed

__all__ = ["clear_stale_lock", "paths_in_the_way", "put_back", "tethered_checkout"]

_PROC = Path("/proc")


class _Repo(Protocol):
    root: Path
    git_dir: Path
    timeout: float

    def run(self, *args: str, timeout: float | None = None) -> str: ...
    def run_with_input(self, *args: str, data: bytes) -> str: ...
    def environment(self) -> dict[str, str]: ...


def tethered_checkout(repo: _Repo, commit: str, record: Callable[[Group], None]) -> None:
    """`git checkout --detach commit`, dying with this process; `record` is given its
    process group before git starts."""
    args = ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, "--"]
    tethered = Tethered(["git", *args], cwd=repo.root,
                        env={**os.environ, **repo.environment()},
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        record(tethered.group)
        failed = tethered.release()
        try:
            _out, err = tethered.process.communicate(timeout=repo.timeout)
        except subprocess.TimeoutExpired:
            tethered.kill()
            err, status = f"timed out after {repo.timeout:g} s".encode(), -1
        else:
            status = tethered.process.returncode
    except BaseException:
        tethered.kill()
        raise
    finally:
        tethered.close()
    if failed is not None:
        err, status = f"git could not start: {failed}".encode(), -1
    if status != 0:
        raise command_failed(args, status, err)


def paths_in_the_way(repo: _Repo, old: str, new: str) -> list[str]:
    """Files `new` tracks and `old` does not that exist already: ignored files of the
    operator's, which git overwrites without asking (an untracked one stops the checkout)."""
    out = repo.run("diff", "--name-only", "-z", "--no-renames", "--diff-filter=A", old, new,
                   "--")
    return [p for p in out.split("\0") if p and os.path.lexists(repo.root / p)]


def clear_stale_lock(repo: _Repo, since: datetime) -> str | None:
    """Remove the ``index.lock`` a killed checkout left (one made since `since`, the
    session's start, with no git running in the tree); None when there is none any more,
    else why it stays, with the command that removes it."""
    lock = repo.git_dir / "index.lock"
    try:
        made = lock.lstat().st_mtime
    except FileNotFoundError:
        return None
    remove = f"once no git command runs in {repo.root}: rm {lock}"
    if made < since.timestamp() - 2:
        return f"{lock} is older than the interrupted session, so not its own; {remove}"
    running = _git_running_in(repo.root)
    if running:
        return f"{lock} is held by a running git (pid {running[0]}); {remove}"
    lock.unlink(missing_ok=True)
    return None


def put_back(repo: _Repo, old: str, new: str, kept: Sequence[str]) -> str:
    """The tree and index back at `old` where a checkout to `new` was cut off (HEAD still at
    `old`): changed and removed files restored, added ones removed unless in `kept`."""
    diff = repo.run("diff", "--name-status", "-z", "--no-renames", old, new, "--")
    fields = [f for f in diff.split("\0") if f]
    changes = list(zip(fields[::2], fields[1::2], strict=True))
    restore = [path for status, path in changes if status != "A"]
    added = [path for status, path in changes if status == "A"]
    if restore:  # git writes them as `old` has them, index and tree alike
        repo.run_with_input("--literal-pathspecs", "checkout", old, "--pathspec-from-file=-",
                            "--pathspec-file-nul", data=_nul(restore))
    if added:
        repo.run_with_input("update-index", "--force-remove", "-z", "--stdin",
                            data=_nul(added))
    spared = set(kept)
    removed = 0
    for path in added:
        if path in spared:
            continue
        target = repo.root / path
        if target.is_symlink() or target.is_file():
            target.unlink()
            removed += 1
    _drop_empty_parents(repo.root, added, spared)
    return (f"the cut-off checkout undone ({len(restore)} file(s) put back, {removed} of "
            f"the release's removed)")


def _nul(paths: Sequence[str]) -> bytes:
    return b"".join(p.encode() + b"\0" for p in paths)


def _drop_empty_parents(root: Path, added: Sequence[str], spared: set[str]) -> None:
    """The folders the checkout made for the files removed, if nothing else is in them."""
    folders = {parent for path in added if path not in spared
               for parent in PurePosixPath(path).parents if parent != PurePosixPath(".")}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            (root / folder).rmdir()
        except OSError:
            continue  # not empty (or not there): left as it is


def _git_running_in(root: Path) -> list[int]:
    """The git processes working in `root` (by /proc; none found where it is unreadable)."""
    found = []
    if not _PROC.is_dir():
        return found
    real = root.resolve()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("git"):
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == real or real in cwd.parents:
            found.append(int(entry.name))
    return found
