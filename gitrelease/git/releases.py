"""What the repository knows about releases: the current version and what is newer.

Blocking (git) functions: the manager runs them in a thread.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from packaging.version import Version

from gitrelease.core.beside import Beside
from gitrelease.core.models import UpdateInfo, UpdateType
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import (
    Channel,
    Release,
    TagPattern,
    is_breaking,
    is_security,
    select_releases,
)

__all__ = [
    "CurrentVersion",
    "ReleaseSnapshot",
    "local_commit_warnings",
    "read_pyproject",
    "snapshot",
    "update_info",
]

_CHANGELOG_COMMITS = 50  # commit subjects listed in a changelog; the count says how many more


@dataclass(frozen=True)
class CurrentVersion:
    """Where HEAD is: at a release tag, some commits past one, or before any."""

    commit: str
    base: Release | None  # the nearest release at or behind HEAD
    distance: int  # commits from `base` to HEAD

    @property
    def version(self) -> Version | None:
        return self.base.version if self.base else None

    @property
    def tag(self) -> str | None:
        return self.base.tag if self.base and self.distance == 0 else None

    @property
    def text(self) -> str:
        """``2.0.0`` at a tag, ``2.0.0+3.gabc1234`` past one, ``0+untagged.gabc1234`` before any."""
        if self.base is None:
            return f"0+untagged.g{self.commit[:7]}"
        if self.distance == 0:
            return str(self.base.version)
        local = "." if self.base.version.local else "+"
        return f"{self.base.version}{local}{self.distance}.g{self.commit[:7]}"

    def is_older_than(self, release: Release) -> bool:
        if self.version is None:
            return True
        return release.version > self.version


@dataclass(frozen=True)
class ReleaseSnapshot:
    releases: list[Release]  # every release tag, pre-releases included, oldest first
    ignored: list[str]  # tags matching the glob that are not PEP 440 versions
    current: CurrentVersion
    channel: Channel
    bad: dict[str, str] = field(default_factory=dict)  # commit -> why it was marked bad
    tags: dict[str, str] = field(default_factory=dict)  # every local tag -> the object it names

    def newer(self) -> list[Release]:
        """Releases newer than the current version on the configured channel, oldest first."""
        return [
            r for r in self.releases
            if self.current.is_older_than(r)
            and (self.channel is Channel.PRE
                 or not (r.version.is_prerelease or r.version.local))  # local: a build, no release
        ]

    def offered(self) -> list[Release]:
        """The newer releases a plain install may pick: not those that failed before."""
        return [r for r in self.newer() if r.commit not in self.bad]

    def bad_warnings(self) -> list[str]:
        return [f"{r.tag} is skipped: it failed to install before ({self.bad[r.commit]})"
                for r in self.newer() if r.commit in self.bad]

    def find(self, version: Version) -> Release | None:
        matches = [r for r in self.releases if r.version == version]
        return matches[-1] if matches else None


def snapshot(
    repo: GitRepo, pattern: TagPattern, channel: Channel, bad: dict[str, str] | None = None
) -> ReleaseSnapshot:
    """One `for-each-ref`, one `describe`: the releases and where HEAD stands among them."""
    refs, objects = repo.tag_listing()
    releases, ignored = select_releases(refs, pattern, Channel.PRE)
    head = repo.head_commit()
    current = CurrentVersion(head, None, 0)
    at_head = [r for r in releases if r.commit == head]
    if at_head:
        current = CurrentVersion(head, at_head[-1], 0)
    elif releases:
        described = repo.describe(pattern.glob, exclude=ignored)
        if described:
            name, distance, _sha = described.rsplit("-", 2)
            by_name = {r.tag: r for r in releases}
            if name in by_name:
                current = CurrentVersion(head, by_name[name], int(distance))
    return ReleaseSnapshot(releases, ignored, current, channel, bad or {}, objects)


def read_pyproject(repo: GitRepo, commit: str) -> dict[str, Any]:
    """The release's pyproject.toml, or {} when it has none or it does not parse."""
    raw = repo.show_file(commit, "pyproject.toml")
    if raw is None:
        return {}
    try:
        return tomllib.loads(raw.decode("utf-8", errors="replace"))
    except tomllib.TOMLDecodeError:
        return {}


def update_info(
    repo: GitRepo,
    snap: ReleaseSnapshot,
    target: Release,
    *,
    include_security: bool,
    download_url: str | None,
) -> UpdateInfo:
    """The specification's UpdateInfo for moving from HEAD to `target`."""
    current = snap.current
    between = [r for r in snap.releases if current.is_older_than(r) and r.version <= target.version]
    # Three git reads that do not depend on each other, side by side.
    diffed = Beside(lambda: repo.diff_stats(current.commit, target.commit))
    pyproject = Beside(lambda: read_pyproject(repo, target.commit))
    commits = repo.commits_between(current.commit, target.commit)
    stats = diffed.result()
    messages = [r.ref.message for r in between] + [c.message for c in commits]
    project = pyproject.result().get("project", {})
    dependencies = project.get("dependencies", []) if isinstance(project, dict) else []
    # Unsigned tags are judged without a process; only signed ones run `git verify-tag`.
    signatures = {r.tag: repo.verify_tag(r.ref) for r in between}
    signature = signatures.get(target.tag) or repo.verify_tag(target.ref)
    return UpdateInfo(
        update_type=UpdateType.BOT,
        version=str(target.version),
        size=stats.bytes_changed,
        changelog=_changelog(target, between, [c.subject for c in commits]),
        security_update=is_security(messages) if include_security else None,
        breaking_changes=is_breaking(current.version, target.version, messages),
        dependencies=[d for d in dependencies if isinstance(d, str)],
        release_date=target.ref.date.astimezone(UTC),
        download_url=download_url,
        checksum=target.commit,
        tag=target.tag,
        current_version=current.text,
        commit=target.commit,
        commit_count=len(commits),
        files_changed=stats.files_changed,
        signature=signature.state,
        signature_detail=signature.detail,
        releases=[
            {
                "version": str(r.version),
                "tag": r.tag,
                "commit": r.commit,
                "release_date": r.ref.date.astimezone(UTC).isoformat(),
                "security_update": is_security([r.ref.message]) if include_security else None,
                "prerelease": r.version.is_prerelease,
                "signature": signatures[r.tag].state,
            }
            for r in reversed(between)
        ],
    )


def _changelog(target: Release, between: list[Release], subjects: list[str]) -> str:
    parts = [target.ref.message or f"Release {target.version}"]
    parts += [f"{r.tag}: {r.ref.message}" for r in reversed(between)
              if r is not target and r.ref.message]
    if subjects:
        shown = [f"- {s}" for s in subjects[:_CHANGELOG_COMMITS]]
        if len(subjects) > _CHANGELOG_COMMITS:
            shown.append(f"- ... and {len(subjects) - _CHANGELOG_COMMITS} more commits")
        parts.append("Commits:\n" + "\n".join(shown))
    return "\n\n".join(parts)


def local_commit_warnings(repo: GitRepo, snap: ReleaseSnapshot, target: Release) -> list[str]:
    """Commits at HEAD that the target does not contain: an install leaves them behind."""
    local = repo.commits_between(target.commit, snap.current.commit)
    if not local:
        return []
    branch = repo.head_branch()
    where = (f"they stay on branch {branch}" if branch else
             "HEAD is detached, so no branch would hold them")
    return [f"HEAD has {len(local)} commit(s) that {target.tag} does not contain ({where})"]
