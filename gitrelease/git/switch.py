"""A checkout that may be cut off, and the mending of one that was.

git switches a tree file by file under ``.git/index.lock`` and moves HEAD last. Killed
half-way, it leaves the lock, some of the new release's files (changed, added, removed) and
HEAD where it was: a tree no later git command can touch. So an install's checkout runs
tethered (`gitrelease.core.tether`: it dies with the install, its process group journalled
before it starts), and what of the operator's it may meet is noted first (`before_checkout`:
ignored files at paths the release adds, and the folders already there). After a crash,
`put_back` returns the tree to the commit HEAD never left. Only the paths that differ between
the two commits are looked at, and of those only a file that holds what git would have
written there (either commit's blob, or the start of the new one) is touched: anything else
is the operator's, made since the crash, and is left and named. Nothing else of the
operator's (untracked or ignored files, .env, data/) is looked at.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from gitrelease.core.tether import Group, Tethered
from gitrelease.git.stderr import command_failed

__all__ = ["Before", "before_checkout", "clear_stale_lock", "put_back", "tethered_checkout"]

_PROC = Path("/proc")


class _Repo(Protocol):
    root: Path
    git_dir: Path
    timeout: float

    def run(self, *args: str, timeout: float | None = None) -> str: ...
    def run_bytes(self, *args: str) -> tuple[int, bytes]: ...
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


@dataclass(frozen=True)
class Before:
    """What of the operator's a checkout to a release may meet, noted before git starts (the
    journal's ``checkout:kept``), which `put_back` never removes: the files git does not
    version at paths the release adds (ignored files, which git overwrites without asking),
    and the folders that already exist at the parents of those paths (None: not noted, by
    an older gitrelease; then no folder is removed)."""

    files: tuple[str, ...]
    folders: tuple[str, ...] | None

    def text(self) -> str:
        return json.dumps({"files": list(self.files), "folders": list(self.folders or ())})

    @classmethod
    def parse(cls, text: str | None) -> Before:
        """The note `text` (a bare list of files: an older gitrelease's); nothing known of
        a missing or unreadable one."""
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            value = None
        if isinstance(value, list):
            return cls(tuple(map(str, value)), None)
        if not isinstance(value, dict):
            return cls((), None)
        folders = value.get("folders")
        return cls(tuple(map(str, value.get("files", []))),
                   tuple(map(str, folders)) if isinstance(folders, list) else None)


def before_checkout(repo: _Repo, old: str, new: str) -> Before:
    """What is there already of the files `new` adds to `old`, and of their folders."""
    out = repo.run("diff", "--name-only", "-z", "--no-renames", "--diff-filter=A", old, new,
                   "--")
    added = [p for p in out.split("\0") if p]
    folders = {str(parent) for path in added for parent in PurePosixPath(path).parents
               if parent != PurePosixPath(".")}
    return Before(tuple(p for p in added if os.path.lexists(repo.root / p)),
                  tuple(sorted(f for f in folders if os.path.isdir(repo.root / f))))


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


@dataclass(frozen=True)
class _Change:
    """A path `git diff-tree` says differs between two commits, with both sides' blobs."""

    path: str
    status: str
    old_mode: str
    old_blob: str
    new_mode: str
    new_blob: str


def put_back(repo: _Repo, old: str, new: str, before: Before) -> str:
    """The tree and index back at `old` where a checkout to `new` was cut off (HEAD still at
    `old`): of the paths that differ, a file that holds what `old` or `new` has there (or
    what git was writing of `new`'s, cut off) is git's and is put back; anything else there
    is the operator's, made since, and is left as it is and named. Added files and folders
    are removed unless `before` says they were there before."""
    changes = _changes(repo, old, new)
    live = _live_blobs(repo, old, [c.path for c in changes])
    made = {str(folder) for c in changes if c.status == "A"  # where `new` has a folder
            for folder in PurePosixPath(c.path).parents}
    restore: list[_Change] = []
    unchanged: list[_Change] = []
    left: list[_Change] = []
    gitlinks: list[_Change] = []
    remove: list[str] = []
    for change in changes:
        if "160000" in (change.old_mode, change.new_mode):
            gitlinks.append(change)  # a submodule: its entry alone, nothing on disk
            continue
        now = live.get(change.path)
        if change.status == "A" and change.path in before.files:
            continue  # the operator's from before (or what git wrote over it): kept
        if now is not None and not _from_git(repo, change, now) and \
                not (now[0] == "?" and change.path in made):  # a folder git made there
            left.append(change)
        elif change.status == "A":
            if now is not None:
                remove.append(change.path)
        elif now == (change.old_mode, change.old_blob):
            unchanged.append(change)
        else:
            restore.append(change)
    for path in remove:
        (repo.root / path).unlink()
    if before.folders is not None:
        # Every folder of an added path, not only of the files removed: git may have made
        # one and been killed before it wrote a file in it.
        _drop_empty_parents(repo.root, [c.path for c in changes if c.status == "A"],
                            set(before.folders))
    for change in [c for c in restore if os.path.isdir(repo.root / c.path)]:
        restore.remove(change)  # a folder git made, with the operator's files in it now
        left.append(change)
    if restore:  # git writes them as `old` has them, index and tree alike
        repo.run_with_input("--literal-pathspecs", "checkout", old, "--pathspec-from-file=-",
                            "--pathspec-file-nul", data=_nul([c.path for c in restore]))
    # The index back at `old` for the rest (git may have written it before it was cut off).
    added = [c.path for c in changes if c.status == "A"]
    if added:
        repo.run_with_input("update-index", "--force-remove", "-z", "--stdin",
                            data=_nul(added))
    entries = [c for c in (*unchanged, *left, *gitlinks) if c.status != "A"]
    if entries:
        repo.run_with_input("update-index", "-z", "--index-info", data=b"".join(
            f"{c.old_mode} {c.old_blob}\t{c.path}".encode() + b"\0" for c in entries))
    said = (f"the cut-off checkout undone ({len(restore)} file(s) put back, {len(remove)} of "
            "the release's removed)") if restore or remove else "the checkout had changed nothing"
    if left:
        names = sorted(c.path for c in left)
        said += (f"; left as you changed it: {', '.join(names[:10])}"
                 + (f" and {len(names) - 10} more" if len(names) > 10 else ""))
    return said


def _changes(repo: _Repo, old: str, new: str) -> list[_Change]:
    out = repo.run("diff-tree", "-r", "-z", "--no-renames", old, new, "--")
    fields = [f for f in out.split("\0") if f]
    changes = []
    for meta, path in zip(fields[::2], fields[1::2], strict=True):
        old_mode, new_mode, old_blob, new_blob, status = meta.lstrip(":").split()
        changes.append(_Change(path, status, old_mode, old_blob, new_mode, new_blob))
    return changes


def _live_blobs(repo: _Repo, old: str, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
    """What each of `paths` holds in the tree now, as git would record it (mode, blob id);
    a path with nothing there is left out, and one that is no file or link (a folder, a
    fifo) has the mode "?", which no commit has."""
    found: dict[str, tuple[str, str]] = {}
    files: list[str] = []
    for path in paths:
        target = repo.root / path
        try:
            info = target.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            found[path] = ("120000", _blob_id(old, os.fsencode(os.readlink(target))))
        elif not stat.S_ISREG(info.st_mode):
            found[path] = ("?", "")
        else:
            mode = "100755" if info.st_mode & stat.S_IXUSR else "100644"
            found[path] = (mode, "")
            if "\n" in path:  # --stdin-paths reads lines: hashed here, without git's filters
                found[path] = (mode, _blob_id(old, target.read_bytes()))
            else:
                files.append(path)
    if files:  # one git for all, through the filters the path's attributes name
        out = repo.run_with_input("hash-object", "--stdin-paths",
                                  data="".join(f"{p}\n" for p in files).encode())
        for path, blob in zip(files, out.split(), strict=True):
            found[path] = (found[path][0], blob)
    return found


def _blob_id(commit: str, data: bytes) -> str:
    """The blob id git gives `data` (the hash its commit ids are made with)."""
    digest = hashlib.sha1 if len(commit) == 40 else hashlib.sha256
    return digest(b"blob %d\0" % len(data) + data).hexdigest()


def _from_git(repo: _Repo, change: _Change, now: tuple[str, str]) -> bool:
    """Whether what a path holds is what git may have left there: either side's blob, or
    the start of the new one (a write the kill cut off)."""
    blob = now[1]
    if blob and blob in (change.old_blob, change.new_blob):
        return True
    if not blob or now[0] == "120000" or change.new_mode not in ("100644", "100755"):
        return False
    status, wanted = repo.run_bytes("cat-file", "blob", change.new_blob)
    written = (repo.root / change.path).read_bytes()
    return status == 0 and len(written) < len(wanted) and wanted.startswith(written)


def _nul(paths: Sequence[str]) -> bytes:
    return b"".join(p.encode() + b"\0" for p in paths)


def _drop_empty_parents(root: Path, removed: Sequence[str], there_before: set[str]) -> None:
    """The folders the checkout made for the paths it added, if nothing is in them; a
    folder that was there before the checkout stays, empty or not."""
    folders = {parent for path in removed for parent in PurePosixPath(path).parents
               if parent != PurePosixPath(".") and str(parent) not in there_before}
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
