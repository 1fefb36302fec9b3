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
    TagScheme,
    is_breaking,
    is_security,
    select_releases,
    suggest_pattern,
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
    ignored: list[str]  # tags matching a glob that look like a version but are not PEP 440
    current: CurrentVersion
    channel: Channel
    bad: dict[str, str] = field(default_factory=dict)  # commit -> why it was marked bad
    tags: dict[str, str] = field(default_factory=dict)  # every local tag -> the object it names
    # Set when "up to date" would be untrue: tags exist but none is a release, or some the
    # patterns miss read as newer releases. Says which tags were seen and which pattern would.
    hint: str | None = None
    scheme: TagScheme | None = None
    head_tags: tuple[str, ...] = ()  # every tag at HEAD, release or not

    def unknown_version_warning(self) -> str | None:
        """Said when HEAD is at no release and has none behind it: then nothing can be
        judged "not breaking" against it."""
        if self.current.base is not None:
            return None
        scheme = self.scheme or TagScheme.parse("v*")
        tagged = ""
        if self.head_tags:
            globs = [found[0].glob for found in map(suggest_pattern, self.head_tags) if found]
            wanted = (f"; tag_pattern = {TagScheme.parse((scheme.globs + globs)[:10]).text} "
                      "would" if globs else "")
            tagged = (f" (it is tagged {', '.join(self.head_tags[:3])}, which the pattern does "
                      f"not take{wanted})")
        return (f"the running version is unknown: HEAD ({self.current.commit[:7]}) is at no "
                f"release tag and has none behind it under tag_pattern {scheme.text}{tagged}, "
                "so whether an update breaks anything cannot be told")

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
    repo: GitRepo, pattern: TagPattern | TagScheme, channel: Channel,
    bad: dict[str, str] | None = None,
) -> ReleaseSnapshot:
    """One `for-each-ref`, one `describe`: the releases and where HEAD stands among them."""
    scheme = pattern if isinstance(pattern, TagScheme) else TagScheme((pattern,))
    refs, objects = repo.tag_listing()
    releases, ignored = select_releases(refs, scheme, Channel.PRE)
    head = repo.head_commit()
    current = CurrentVersion(head, None, 0)
    at_head = [r for r in releases if r.commit == head]
    if at_head:
        current = CurrentVersion(head, at_head[-1], 0)
    elif releases:
        # Every tag a glob matches that is no release is left out, whatever its kind (a
        # bare "*" matches "nightly"): describe then lands on releases only.
        others = [name for name in objects
                  if scheme.matches(name) and scheme.version_of(name) is None]
        described = repo.describe(scheme.globs, exclude=others)
        if described:
            name, distance, _sha = described.rsplit("-", 2)
            by_name = {r.tag: r for r in releases}
            if name in by_name:
                current = CurrentVersion(head, by_name[name], int(distance))
    head_tags = tuple(r.name for r in refs if r.commit == head)
    return ReleaseSnapshot(releases, ignored, current, channel, bad or {}, objects,
                           _tag_hint(list(objects), scheme, releases), scheme, head_tags)


_SHOWN_TAGS = 3


def _tag_hint(names: list[str], scheme: TagScheme, releases: list[Release]) -> str | None:
    """Why "up to date" would be untrue, if it would: no tag is a release, or tags that the
    patterns miss read as releases newer than any they take. Names a few, and the setting
    that would take them."""
    newest = releases[-1].version if releases else None
    missed: dict[str, tuple[str, Version]] = {}  # tag -> the glob that would take it, version
    for name in names:
        found = suggest_pattern(name) if scheme.version_of(name) is None else None
        if found is not None and (newest is None or found[1] > newest):
            missed[name] = (found[0].glob, found[1])
    if releases and not missed:
        return None
    seen = sorted(missed, key=lambda n: missed[n][1]) if missed else sorted(names)
    shown = ", ".join(seen[-_SHOWN_TAGS:]) + (
        f" and {len(seen) - _SHOWN_TAGS} more" if len(seen) > _SHOWN_TAGS else "")
    globs = list(dict.fromkeys(missed[n][0] for n in reversed(seen)))
    if releases:
        wanted = TagScheme.parse((scheme.globs + globs)[:10]).text
        return (f"tags {shown} look like releases newer than {releases[-1].tag}, but "
                f"tag_pattern {scheme.text} does not take them; tag_pattern = {wanted} would")
    if not names:
        return (f"the repository has no tags, so no release to offer (a release is a tag "
                f"such as {scheme.patterns[0].tag_for(Version('1.0.0'))}, under tag_pattern "
                f"{scheme.text})")
    if not missed:
        return (f"no tag is a release under tag_pattern {scheme.text}: the tags seen ({shown})"
                " hold no PEP 440 version, such as 1.2.0 or v1.2.0")
    wanted = TagScheme.parse(globs[:10]).text
    return (f"no tag is a release under tag_pattern {scheme.text}: tags seen include {shown}; "
            f"tag_pattern = {wanted} would take them")


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
    # Three git reads that do not depend on each other, side by side.
    diffed = Beside(lambda: repo.diff_stats(current.commit, target.commit))
    pyproject = Beside(lambda: read_pyproject(repo, target.commit))
    commits = repo.commits_between(current.commit, target.commit)
    stats = diffed.result()
    between = _releases_between(snap, target, {c.sha for c in commits})
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


def _releases_between(snap: ReleaseSnapshot, target: Release, new: set[str]) -> list[Release]:
    """The releases an install of `target` brings, oldest first: newer than the current
    version, no newer than the target, on the channel (a pre-release counts on ``pre``
    only, unless it is the target itself), and in the target's history but not in HEAD's
    (`new`: the commits `current..target`, which the check lists anyway), so that a tag on
    another branch is neither counted nor quoted in the changelog."""
    offered = {*snap.newer(), target}
    return [r for r in snap.releases if r in offered and r.version <= target.version
            and r.commit in new]


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
