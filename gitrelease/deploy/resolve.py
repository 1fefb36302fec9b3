"""Which release an install moves to, and every refusal made before anything changes.

All of it only reads: the working tree, the disk, the tags and the release's metadata. An
install that is refused here has changed nothing, so it ends CANCELLED rather than FAILED.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from gitrelease.core.errors import (
    ConfirmationRequired,
    DirtyWorkingTree,
    DowngradeRefused,
    InsufficientDiskSpace,
    NoSuchVersion,
    PythonVersionMismatch,
    SignatureRefused,
    TagMoved,
    UntrackedFilesInTheWay,
    UpdateInProgress,
)
from gitrelease.core.models import UpdateType
from gitrelease.deploy import local_changes, release_needs
from gitrelease.git import releases
from gitrelease.git.versions import Channel, TagScheme, parse_version

if TYPE_CHECKING:
    from packaging.version import Version

    from gitrelease.core.models import UpdateInfo
    from gitrelease.deploy.context import Deployment
    from gitrelease.deploy.install_options import InstallOptions
    from gitrelease.git.releases import ReleaseSnapshot
    from gitrelease.git.versions import Release

__all__ = [
    "CARRY_OFFER",
    "Resolution",
    "check_python_at",
    "check_tree",
    "moved_warning",
    "named_release",
    "resolve_target",
    "wanted_version",
]

_MIB = 1024 * 1024


@dataclass
class Resolution:
    """The release an install moves to, and what was found on the way."""

    target: Release | None  # None: already at the newest release
    snapshot: ReleaseSnapshot
    info: UpdateInfo | None = None
    warnings: list[str] = field(default_factory=list)


#: How an install carries edits to tracked files over (said wherever it refuses them).
CARRY_OFFER = ('install with --keep-local-changes (or setting local_changes = "carry") to '
               "carry them over")


def check_tree(d: Deployment, *, carry: bool = False, offer: str = CARRY_OFFER) -> None:
    """Refuse a working tree with local edits (unless they are carried over: `carry`), or
    a disk too full to take the release. `offer` names the way to carry them."""
    lock = d.repo.git_dir / "index.lock"
    if lock.exists():  # one a killed checkout of ours left is gone by now (recovery)
        raise UpdateInProgress(
            f"git's index is locked ({lock}): a git command is running in {d.root}, or one "
            "was killed", hint=f"once no git command runs there: rm {lock}")
    dirty = d.repo.dirty_files()
    if dirty and not carry:
        shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10
                                          else "")
        raise DirtyWorkingTree(f"tracked files have local changes: {shown}; {offer}, or "
                               "commit/stash them", hint="git status shows them")
    free = shutil.disk_usage(d.root).free
    needed = d.settings.min_disk_space_mb * _MIB
    if free < needed:
        raise InsufficientDiskSpace(
            f"{free // _MIB} MiB free under {d.root}, "
            f"{d.settings.min_disk_space_mb} MiB needed (min_disk_space_mb)",
            hint="free some disk space or lower the min_disk_space_mb setting")


def resolve_target(d: Deployment, opts: InstallOptions, moved: tuple[str, ...],
                   kind: UpdateType = UpdateType.BOT) -> Resolution:
    """The release to install (named, or the newest offered), or why it may not be; `kind`
    is the install's (a `bot` install asks first when the release needs what it leaves)."""
    snap = d.snapshot()
    current = snap.current
    warnings = [moved_warning(tag) for tag in moved] + d.inert_settings()
    if opts.to_version is not None:
        target = named_release(d, snap, opts.to_version)
        if target.version.is_prerelease and snap.channel is Channel.STABLE:
            warnings.append(f"{target.tag} is a pre-release, installed because it was named")
        if target.commit in snap.bad:
            if not opts.force:
                raise ConfirmationRequired(
                    f"{target.tag} failed to install before ({snap.bad[target.commit]})",
                    hint="install it anyway only by naming it with --force")
            warnings.append(f"{target.tag} failed before; installed because it was named "
                            "with --force")
    else:
        offered = snap.offered()
        target = offered[-1] if offered else None
        warnings += snap.bad_warnings()
        if target is None and not snap.releases:  # nothing matched: not "already at" it
            raise NoSuchVersion(f"no release to install: {snap.hint}",
                                hint="set tag_pattern as said, or tag a release")
    warnings += [snap.hint] if snap.hint else []
    if target is None or (target.commit == current.commit and current.tag is not None
                          and target.version == current.version):
        return Resolution(None, snap, warnings=warnings)
    if not current.is_older_than(target):
        raise DowngradeRefused(
            f"{target.tag} is not newer than the current version {current.text}")
    if target.tag in moved and not opts.force:
        raise TagMoved(f"{target.tag} points elsewhere on the remote than it did when fetched")
    in_the_way = [p for p in d.repo.paths_added(current.commit, target.commit)
                  if (d.root / p).exists() or (d.root / p).is_symlink()]
    if in_the_way:
        raise UntrackedFilesInTheWay(
            f"{target.tag} adds files that exist here untracked: {', '.join(in_the_way[:10])}")
    info = releases.update_info(d.repo, snap, target, include_security=True,
                                download_url=d.remote_url())
    if d.settings.require_signed_tags and info.signature != "valid":
        # Never --force-able: the point of the setting is that nothing else is run.
        raise SignatureRefused.of_tag(target.tag, info.signature or "unknown",
                                      info.signature_detail or "")
    check_python_at(d, target.commit, target.tag)
    reasons = []
    local = releases.local_commit_warnings(d.repo, snap, target)
    if local and d.repo.head_branch() is None:
        reasons += local  # detached: those commits would be left on no branch at all
    else:
        warnings += local
    if info.breaking_changes and d.settings.require_confirmation:
        reasons.append(f"{target.tag} has breaking changes")
    if current.base is None and d.settings.require_confirmation:
        reasons.append(f"the running version is unknown ({current.text}): whether "
                       f"{target.tag} breaks cannot be told")
    if (info.size or 0) > d.settings.max_update_size_mb * _MIB:
        reasons.append(f"it changes {(info.size or 0) // _MIB} MiB, more than "
                       f"max_update_size_mb ({d.settings.max_update_size_mb})")
    if kind is UpdateType.BOT:  # `all` adds what the release needs, the others do not move
        needs, unknown = release_needs.unmet_needs(d, current.commit, target)
        warnings += unknown
        reasons += [release_needs.needs_reason(target.tag, needs)] if needs else []
    if local_changes.wants_carry(d, opts.keep_local_changes):
        reasons += local_changes.lost_edits(d, current.commit, target.commit, target.tag)
    unaccepted = [r for r in reasons if r not in opts.accept]
    if unaccepted and not opts.force:
        raise ConfirmationRequired("; ".join(unaccepted), reasons=tuple(unaccepted))
    warnings += [f"installed once confirmed although {r}" if r in opts.accept
                 else f"installed with --force although {r}" for r in reasons]
    return Resolution(target, snap, info, warnings)


def wanted_version(d: Deployment, name: str) -> Version:
    """The version a person named, as a release tag name or as a bare version.

    Checked before anything runs; the name itself is only ever looked up, never handed
    to git.
    """
    scheme = TagScheme.parse(d.settings.tag_pattern)
    return scheme.version_of(name) or parse_version(name, field="to_version")


def named_release(d: Deployment, snap: ReleaseSnapshot, name: str) -> Release:
    """The release a person named, by its exact tag or by its version."""
    by_tag = {r.tag: r for r in snap.releases}
    if name in by_tag:
        return by_tag[name]
    version = wanted_version(d, name)
    found = snap.find(version)
    if found is None:
        _refuse_a_tag_of_no_commit(d, snap, name, version)
        known = ", ".join(str(r.version) for r in snap.releases[-5:]) or "none"
        hint = f"; {snap.hint}" if snap.hint else ""
        raise NoSuchVersion(f"no release {name} among the tags (newest known: {known}){hint}")
    return found


def _refuse_a_tag_of_no_commit(d: Deployment, snap: ReleaseSnapshot, name: str,
                               version: Version) -> None:
    """A tag that reads as the release asked for but names a tree, a blob or another tag
    (never a release, so not among them) is named for what it is, not as "no release"."""
    scheme = snap.scheme or TagScheme.parse(d.settings.tag_pattern)
    for tag, obj in snap.tags.items():
        if tag != name and scheme.version_of(tag) != version:
            continue
        # Only here, on the way to a refusal: git is handed the listed object id.
        kind = d.repo.run("cat-file", "-t", obj).strip()
        peeled = d.repo.run("cat-file", "-t", f"{obj}^{{}}").strip() if kind == "tag" else kind
        if peeled != "commit":
            raise NoSuchVersion(f"tag {tag} points to a {peeled}, not a commit, so it cannot "
                                "be a release", hint="a release tag names a commit: tag the "
                                "release's commit on the release side")
        if kind == "tag":
            raise NoSuchVersion(f"tag {tag} points to another tag, not to a commit, so it "
                                "is not taken as a release", hint="tag the release's commit "
                                "itself on the release side")


def check_python_at(d: Deployment, commit: str, label: str) -> None:
    """The release's requires-python against the deployment's interpreter."""
    project = releases.read_pyproject(d.repo, commit).get("project", {})
    spec_text = project.get("requires-python") if isinstance(project, dict) else None
    if not spec_text:
        return
    python = d.deployment_python()
    try:
        allowed = SpecifierSet(str(spec_text)).contains(python, prereleases=True)
    except InvalidSpecifier:
        raise PythonVersionMismatch(
            f"{label} declares requires-python {spec_text!r}, which is not valid",
            hint="fix requires-python in the release's pyproject.toml") from None
    if not allowed:
        raise PythonVersionMismatch(
            f"{label} requires Python {spec_text}, the deployment runs {python}",
            hint="upgrade the deployment's interpreter (setting python_executable) first")


def moved_warning(tag: str) -> str:
    """Said wherever a moved tag is seen: by `check` and by an install alike."""
    return (f"tag {tag} was moved on the remote; the local tag is kept and the move is not "
            "followed")
