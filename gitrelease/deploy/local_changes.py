"""Edits to tracked files, carried over a checkout: saved, stashed, re-applied.

A bot's README may tell operators to edit a tracked file (``config.json``). Plain installs
refuse such a tree; with ``--keep-local-changes`` (or the setting ``local_changes = "carry"``)
an install or rollback carries the edits instead:

1. `save`: before the backup, the edits as a patch (``git diff --binary``) in
   ``data/local_changes/<session>.patch``, mode 0600: the backup then holds it too;
2. `put_aside`: a stash commit, journalled (its id) before the tracked files are reset;
3. the checkout, as always;
4. `reapply`: the edits onto the release by a three-way merge. A conflict fails the step and
   the operation is undone (`recovery.put_back_local_changes`): back to the starting commit,
   the edits put back exactly as they were.

Untracked and ignored files (``.env``, databases) are never stashed and never move. A release
that deletes or renames an edited file would drop those edits: that needs a confirmation
(`lost_edits`), and once given, the rest is carried and those edits stay in the patch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gitrelease.core.errors import DirtyWorkingTree, GitReleaseError
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.models import UpdateStatus

if TYPE_CHECKING:
    from gitrelease.core.models import UpdateSession
    from gitrelease.deploy.context import Deployment
    from gitrelease.deploy.journal import StepRunner

__all__ = ["PATCH_DIR", "Carry", "LocalChangesConflict", "lost_edits", "wants_carry"]

#: Under the data dir: one patch per operation that carried local changes.
PATCH_DIR = "local_changes"


class LocalChangesConflict(GitReleaseError):
    code = "local_changes_conflict"
    exit_code = 3
    default_hint = ("the install was undone and the edits are as they were: merge them into "
                    "the release by hand (git stash; git checkout <tag>; git stash pop), or "
                    "install without them")


def wants_carry(d: Deployment, keep_local_changes: bool) -> bool:
    """Whether edits to tracked files are carried over (the option, else the setting)."""
    return keep_local_changes or d.settings.local_changes == "carry"


def lost_edits(d: Deployment, current: str, target: str, label: str) -> list[str]:
    """Reasons to confirm: `label` deletes or renames a file that has local changes."""
    edited = d.repo.dirty_files()
    gone = d.repo.moved_away(current, target, edited) if edited else {}
    return [f"{label} {f'renames {path} to {new}' if new else f'deletes {path}'}, which has "
            f"local changes: they would not be carried over (a copy stays in "
            f"{PATCH_DIR}/ of the data dir)" for path, new in gone.items()]


class Carry:
    """One operation's carrying of local edits; each part is journalled by `step`."""

    def __init__(self, d: Deployment, session: UpdateSession, step: StepRunner) -> None:
        self.d = d
        self.session = session
        self.step = step
        self.stash: str | None = None
        self.patch: Path | None = None

    async def save(self) -> None:
        """The edits as a patch, before the backup (which then holds it)."""
        edited = await self.d.in_thread(self.d.repo.dirty_files)
        if edited:
            self.patch = await self.d.in_thread(self._write_patch)
            await self.step.note("local_changes", f"{self.patch}: {', '.join(edited)}")

    def _write_patch(self) -> Path:
        patch = self.d.repo.patch_between(self._base, None)
        path = self.d.data_dir / PATCH_DIR / f"{self.session.id}.patch"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, patch, mode=0o600)
        return path

    @property
    def _base(self) -> str:
        return self.session.from_commit or self.d.repo.head_commit()

    async def put_aside(self, label: str) -> None:
        """Stash the edits, the stash's id journalled before the tracked files are reset."""
        message = f"gitrelease: local changes before {label} ({self.session.id})"
        self.stash = await self.d.in_thread(self.d.repo.stash_create, message)
        if self.stash is not None:
            await self.step.note("stash", self.stash)
        await self.step("stash", UpdateStatus.INSTALLING, 68, self._put_aside, message)

    def _put_aside(self, message: str) -> None:
        if self.stash is None:
            return  # the edits were undone meanwhile: nothing to carry
        repo = self.d.repo
        repo.stash_store(self.stash, message)
        if not repo.matches_stash(self.stash):
            raise DirtyWorkingTree("tracked files changed while it ran: "
                                   f"{', '.join(repo.dirty_files()[:10])}")
        repo.discard_tracked_changes()

    async def reapply(self, target: str, label: str) -> None:
        """The edits onto the release just checked out; a conflict raises (and is undone)."""
        kept, gone = await self.step("carry", UpdateStatus.INSTALLING, 78, self._reapply,
                                     target, label)
        where = f" (a copy: {self._shown(self.patch)})" if self.patch else ""
        if kept:
            self.session.steps_completed.append(
                f"local changes carried over: {', '.join(kept)}{where}")
        self.session.warnings += [
            f"the local changes to {path} were not carried over: {label} "
            f"{f'renames it to {new}' if new else 'deletes it'}{where}"
            for path, new in gone.items()]

    def _reapply(self, target: str, label: str) -> tuple[list[str], dict[str, str | None]]:
        if self.stash is None:
            return [], {}
        repo = self.d.repo
        edited = repo.changed_paths(self._base, self.stash)
        gone = repo.moved_away(self._base, target, edited)
        kept = [p for p in edited if p not in gone]
        if kept:
            problems = repo.apply_three_way(repo.patch_between(self._base, self.stash, kept))
            if problems:
                raise LocalChangesConflict(
                    f"the local changes to {', '.join(problems[:10])} conflict with {label}",
                    files=problems)
        return kept, gone

    def _shown(self, path: Path) -> str:
        return str(path.relative_to(self.d.root)) if path.is_relative_to(self.d.root) \
            else str(path)

    async def finish(self) -> None:
        """The operation stands: its stash entry goes (the patch stays)."""
        if self.stash is not None:
            await self.d.in_thread(self.d.repo.stash_drop, self.stash)
