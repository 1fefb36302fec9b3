"""Release tags: which tags are releases, how they order, and what they are marked as.

A release tag matches the `tag_pattern` setting (one ``*``, default ``v*``) and the part the
``*`` stands for parses as a PEP 440 version. Pre-releases (and dev releases) are offered only
on the ``pre`` channel. Ordering is PEP 440 ordering, so ``v1.10.0`` is newer than ``v1.9.0``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from packaging.version import InvalidVersion, Version

from gitrelease.core.errors import InvalidInput
from gitrelease.git.records import TagRef

__all__ = [
    "Channel",
    "Release",
    "TagPattern",
    "is_breaking",
    "is_security",
    "parse_version",
    "select_releases",
]


class Channel(Enum):
    STABLE = "stable"
    PRE = "pre"


@dataclass(frozen=True)
class TagPattern:
    """A glob with exactly one ``*``: the tag name is ``prefix + version + suffix``."""

    prefix: str
    suffix: str

    @classmethod
    def parse(cls, pattern: str) -> TagPattern:
        if pattern.count("*") != 1 or any(c in pattern for c in "?[]\\ "):
            raise InvalidInput(
                "tag_pattern", pattern, "a glob with exactly one '*', such as v* or release-*"
            )
        prefix, suffix = pattern.split("*")
        return cls(prefix, suffix)

    @property
    def glob(self) -> str:
        return f"{self.prefix}*{self.suffix}"

    def version_of(self, tag_name: str) -> Version | None:
        """The release version a tag name stands for, or None if it is not a release tag."""
        if not (tag_name.startswith(self.prefix) and tag_name.endswith(self.suffix)):
            return None
        rest = tag_name[len(self.prefix) : len(tag_name) - len(self.suffix)]
        if not rest or not rest[0].isdigit():
            return None  # keeps "vfoo" and "v-1" out, and "version-2" for a "v*" pattern
        try:
            return Version(rest)
        except InvalidVersion:
            return None

    def tag_for(self, version: Version) -> str:
        return f"{self.prefix}{version}{self.suffix}"


def parse_version(text: str, *, field: str = "version") -> Version:
    """A version given by a person, with or without a leading ``v``."""
    candidate = text.strip()
    if candidate[:1] in ("v", "V"):
        candidate = candidate[1:]
    try:
        return Version(candidate)
    except InvalidVersion:
        raise InvalidInput(
            field, text, "a PEP 440 version such as 2.1.0 or v2.1.0rc1", reason="not a version"
        ) from None


@dataclass(frozen=True)
class Release:
    """A tag that is a release, with its parsed version."""

    ref: TagRef
    version: Version

    @property
    def tag(self) -> str:
        return self.ref.name

    @property
    def commit(self) -> str:
        return self.ref.commit


def select_releases(
    tags: Iterable[TagRef], pattern: TagPattern, channel: Channel
) -> tuple[list[Release], list[str]]:
    """Release tags oldest first, and the names of tags that matched the glob but were ignored.

    Tags that are not releases are left out; those that look like one (they match the glob)
    are named, so `check --details` can say why they were skipped.
    """
    releases: list[Release] = []
    ignored: list[str] = []
    for ref in tags:
        version = pattern.version_of(ref.name)
        if version is None:
            if ref.name.startswith(pattern.prefix) and ref.name.endswith(pattern.suffix):
                ignored.append(ref.name)
            continue
        if version.is_prerelease and channel is Channel.STABLE:
            continue
        releases.append(Release(ref, version))
    # Equal versions (v1.0 and v1.0.0) order by date, then name, so the choice is stable.
    releases.sort(key=lambda r: (r.version, r.ref.date, r.ref.name))
    return releases, ignored


_SECURITY = re.compile(
    r"\[security\]"
    r"|^security:[ \t]*\S"  # trailer, or a conventional subject of type "security"
    r"|^security(\([^)\n]*\))?!?:"
    r"|^fix\(security\)!?:",
    re.IGNORECASE | re.MULTILINE,
)
_BREAKING_NOTE = re.compile(r"^BREAKING[ -]CHANGE:", re.MULTILINE)
_BREAKING_SUBJECT = re.compile(r"^[A-Za-z]+(\([^)\n]*\))?!:")


def is_security(messages: Iterable[str]) -> bool:
    """True if a tag or commit message marks a security fix."""
    return any(_SECURITY.search(message) for message in messages)


def is_breaking(current: Version | None, target: Version, messages: Sequence[str]) -> bool:
    """True if the major version rises (the minor for 0.x) or a commit declares a break."""
    if current is not None:
        if target.major > current.major:
            return True
        if target.major == current.major == 0 and target.minor > current.minor:
            return True
    return any(
        _BREAKING_NOTE.search(message) or _BREAKING_SUBJECT.match(message)
        for message in messages
    )
