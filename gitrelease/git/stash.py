"""GitRepo's methods for local edits to tracked files: stashed, carried, put back.

Mixed into `GitRepo` (kept here so the runner's module stays one sitting long). A stash is
made with `git stash create` (an object only: nothing on disk moves) so that its id can be
journalled before the working tree is touched; untracked and ignored files (.env, databases)
are never part of one. Ids are checked before they reach git; paths are passed as literal
pathspecs after `--`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gitrelease.core.errors import InvalidInput
from gitrelease.git.stderr import command_failed

__all__ = ["StashMethods"]

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Stash commits need an identity; a server often has none configured.
_IDENTITY = ("-c", "user.name=gitrelease", "-c", "user.email=gitrelease@localhost")
# The user's diff configuration must not change the patch `git apply` reads.
_PLAIN_DIFF = ("--binary", "--full-index", "--no-renames", "--no-color", "--no-ext-diff",
               "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
_APPLY_ERROR = re.compile(r"^error: (?:patch failed: )?(.+?):(?: \d+)?(?::|$)", re.MULTILINE)


class StashMethods:
    """The local-changes half of `GitRepo` (it supplies `run`, `run_bytes`, `_execute`)."""

    if TYPE_CHECKING:
        def run(self, *args: str, timeout: float | None = None) -> str: ...
        def run_bytes(self, *args: str) -> tuple[int, bytes]: ...
        def _execute(self, args: Sequence[str], timeout: float | None,
                     stdin: Any = None) -> tuple[int, bytes, bytes]: ...

    def _identity(self) -> tuple[str, ...]:
        status, _out = self.run_bytes("var", "GIT_COMMITTER_IDENT")
        return () if status == 0 else _IDENTITY

    def stash_create(self, message: str) -> str | None:
        """A stash commit of the tracked changes (index and working tree), leaving both as
        they are; None when there are none."""
        _check_message(message)
        return self.run(*self._identity(), "stash", "create", message).strip() or None

    def stash_store(self, stash: str, message: str) -> None:
        """Keep a stash commit in `git stash list`, so it is never lost (once only)."""
        _require_sha(stash)
        _check_message(message)
        if stash not in self.stash_entries():
            self.run(*self._identity(), "stash", "store", "--quiet", "-m", message, stash)

    def stash_entries(self) -> list[str]:
        """The commit of each `git stash list` entry, newest first."""
        status, out = self.run_bytes("stash", "list", "--format=%H")
        return out.decode().split() if status == 0 else []

    def stash_drop(self, stash: str) -> None:
        _require_sha(stash)
        entries = self.stash_entries()
        if stash in entries:
            self.run("stash", "drop", "--quiet", f"stash@{{{entries.index(stash)}}}")

    def stash_restore(self, stash: str) -> None:
        """Put a stash back exactly (index too) on the commit it was made at."""
        _require_sha(stash)
        self.run("stash", "apply", "--index", "--quiet", stash)

    def matches_stash(self, stash: str) -> bool:
        """Whether the tracked files are exactly as `stash` holds them."""
        _require_sha(stash)
        return self.run_bytes("diff", "--quiet", "--no-ext-diff", stash, "--")[0] == 0

    def discard_tracked_changes(self) -> None:
        """Tracked files back to HEAD (`git reset --hard`), once a stash holds their edits.
        Untracked and ignored files are never touched."""
        self.run("reset", "--hard", "--quiet", "HEAD")

    def changed_paths(self, old: str, new: str) -> list[str]:
        _require_sha(old)
        _require_sha(new)
        out = self.run("diff", "--name-only", "-z", "--no-renames", old, new, "--")
        return [p for p in out.split("\0") if p]

    def moved_away(self, old: str, new: str, paths: Sequence[str]) -> dict[str, str | None]:
        """Which of `paths` (tracked at `old`) are gone at `new`: each with its new name when
        git sees a rename, else None (deleted)."""
        _require_sha(old)
        _require_sha(new)
        fields = self.run("diff", "--name-status", "-z", "-M", "--diff-filter=DR", old, new,
                          "--").split("\0")
        gone: dict[str, str | None] = {}
        at = 0
        while at < len(fields) and fields[at]:
            status = fields[at]
            if status.startswith("R"):
                gone[fields[at + 1]] = fields[at + 2]
                at += 3
            else:
                gone[fields[at + 1]] = None
                at += 2
        return {p: gone[p] for p in paths if p in gone}

    def patch_between(self, old: str, new: str | None, paths: Sequence[str] = ()) -> bytes:
        """The binary patch from commit `old` to commit `new` (None: the working tree),
        limited to `paths` when given."""
        _require_sha(old)
        if new is not None:
            _require_sha(new)
        spec = [f":(literal){p}" for p in paths]
        args = ["diff", *_PLAIN_DIFF, old, *([new] if new else []), "--", *spec]
        status, out, err = self._execute(args, None)
        if status != 0:
            raise command_failed(args, status, err)
        return out

    def apply_three_way(self, patch: bytes) -> list[str]:
        """Apply a patch with a three-way merge, left unstaged; the paths it could not
        apply (the working tree may then hold conflict markers), empty when it applied."""
        with tempfile.TemporaryFile() as stdin:
            stdin.write(patch)
            stdin.seek(0)
            status, _out, err = self._execute(["apply", "--3way", "--whitespace=nowarn"],
                                              None, stdin)
        if status == 0:
            # --3way stages what it applies: edits go back to being plain edits; added and
            # deleted files stay staged, so they stay what git tracks.
            edited = [f":(literal){p}" for p in self.run(
                "diff", "--cached", "--name-only", "-z", "--diff-filter=M").split("\0") if p]
            if edited:
                self.run("reset", "--quiet", "HEAD", "--", *edited)
            return []
        unmerged = [p for p in self.run("diff", "--name-only", "-z", "--diff-filter=U")
                    .split("\0") if p]
        return unmerged or sorted(set(_APPLY_ERROR.findall(err.decode("utf-8", "replace")))) \
            or ["(git apply refused the changes)"]


def _require_sha(commit: str) -> None:
    if not isinstance(commit, str) or not _SHA.match(commit):
        raise InvalidInput("commit", commit, "a full commit id")


def _check_message(message: str) -> None:
    if not message or message.startswith("-") or "\n" in message or len(message) > 300:
        raise InvalidInput("stash message", message, "one line, not starting with '-'")
