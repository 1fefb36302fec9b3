"""Release tags: which tags are releases, how they order, and what they are marked as.

A release tag matches one of the `tag_pattern` globs (one ``*`` each; default ``v*`` and
``*``, so ``v1.2.0`` and ``1.2.0`` both are) and the part the ``*`` stands for parses as a
PEP 440 version. Pre-releases (and dev releases) are offered only on the ``pre`` channel.
Ordering is PEP 440 ordering across every pattern, so ``v1.10.0`` is newer than ``v1.9.0``
and a history that switched from ``5.0`` to ``v5.1.0`` reads in order.
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
    "MAX_PATTERNS",
    "Channel",
    "Release",
    "TagPattern",
    "TagScheme",
    "is_breaking",
    "is_security",
    "parse_version",
    "select_releases",
    "suggest_pattern",
]

MAX_PATTERNS = 10  # patterns a tag_pattern list may hold


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

    def matches(self, tag_name: str) -> bool:
        """The glob matches (as git's ``--match`` would), version or not."""
        return (len(tag_name) >= len(self.prefix) + len(self.suffix)
                and tag_name.startswith(self.prefix) and tag_name.endswith(self.suffix))

    def version_of(self, tag_name: str) -> Version | None:
        """The release version a tag name stands for, or None if it is not a release tag."""
        if not self.matches(tag_name):
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

    def names_as_ignored(self, tag_name: str) -> bool:
        """A tag this glob matches that is worth naming as "not a version": one carrying the
        glob's own prefix or suffix (``vnext`` for ``v*``), or, for a bare ``*`` that matches
        every tag, one that starts with a digit (``1.0-final``), never ``nightly``."""
        return (self.matches(tag_name) and self.version_of(tag_name) is None
                and bool(self.prefix or self.suffix or tag_name[:1].isdigit()))


@dataclass(frozen=True)
class TagScheme:
    """The `tag_pattern` setting: one glob, or several for a project that switched scheme.

    A tag is a release if a pattern reads it as a version; the first pattern that does
    decides, so a tag that several patterns match counts once.
    """

    patterns: tuple[TagPattern, ...]

    @classmethod
    def parse(cls, value: str | Sequence[str]) -> TagScheme:
        """A string is one pattern (settings files written before lists stay valid)."""
        items = [value] if isinstance(value, str) else value
        if (not isinstance(items, Sequence) or not 0 < len(items) <= MAX_PATTERNS
                or not all(isinstance(item, str) for item in items)):
            raise InvalidInput("tag_pattern", value, "a glob with exactly one '*', or a list "
                               f"of 1 to {MAX_PATTERNS} of them, such as [\"v*\", \"*\"]")
        return cls(tuple(dict.fromkeys(TagPattern.parse(item) for item in items)))

    @property
    def globs(self) -> list[str]:
        return [p.glob for p in self.patterns]

    @property
    def text(self) -> str:
        """As it is written in settings.toml: ``"v*"`` or ``["v*", "*"]``."""
        globs = [f'"{g}"' for g in self.globs]
        return globs[0] if len(globs) == 1 else f"[{', '.join(globs)}]"

    def pattern_of(self, tag_name: str) -> TagPattern | None:
        """The pattern that reads the tag as a release, or None if none does."""
        return next((p for p in self.patterns if p.version_of(tag_name) is not None), None)

    def version_of(self, tag_name: str) -> Version | None:
        pattern = self.pattern_of(tag_name)
        return pattern.version_of(tag_name) if pattern is not None else None

    def matches(self, tag_name: str) -> bool:
        return any(p.matches(tag_name) for p in self.patterns)

    def names_as_ignored(self, tag_name: str) -> bool:
        return self.version_of(tag_name) is None and any(
            p.names_as_ignored(tag_name) for p in self.patterns)

    def pattern_for(self, like: str | None = None) -> TagPattern:
        """The pattern a new release's tag is named by: the one the release `like` (the
        newest) is named by, so that a history which switched to ``v`` goes on with ``v``;
        with no release yet, the first pattern."""
        return (self.pattern_of(like) if like is not None else None) or self.patterns[0]


_LEADING = re.compile(r"^([A-Za-z._/-]*)(\d.*)$")
_SUFFIX = re.compile(r"^[-_./+][A-Za-z0-9._/-]*[A-Za-z][A-Za-z0-9._/-]*$")


def suggest_pattern(tag_name: str) -> tuple[TagPattern, Version] | None:
    """A pattern that would read this tag as a release (``release-*`` for ``release-1.0``,
    ``*`` for ``5.0``), and the version it would read; None if the name holds no version."""
    found = _LEADING.match(tag_name)
    if found is None:
        return None
    prefix, rest = found.groups()
    candidates = [""] + [rest[i:] for i in range(len(rest) - 1, 0, -1)
                         if _SUFFIX.match(rest[i:])]
    for suffix in candidates:
        pattern = TagPattern(prefix, suffix)
        version = pattern.version_of(tag_name)
        if version is not None:
            return pattern, version
    return None


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
    tags: Iterable[TagRef], pattern: TagPattern | TagScheme, channel: Channel
) -> tuple[list[Release], list[str]]:
    """Release tags oldest first, and the names of tags that matched a glob but were ignored.

    Tags that are not releases are left out; those that look like a failed one (see
    `TagPattern.names_as_ignored`) are named, so `check --details` can say why they were
    skipped. Versions compare across patterns: bare ``5.0`` is older than ``v5.1.0``.
    """
    scheme = pattern if isinstance(pattern, TagScheme) else TagScheme((pattern,))
    releases: list[Release] = []
    ignored: list[str] = []
    for ref in tags:
        version = scheme.version_of(ref.name)
        if version is None:
            if scheme.names_as_ignored(ref.name):
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


def is_breaking(
    current: Version | None, target: Version, messages: Sequence[str]
) -> bool | None:
    """True if the major version rises (the minor for 0.x) or a commit declares a break;
    None ("unknown") when nothing declares one but the running version is unknown, so the
    version numbers cannot tell."""
    if any(_BREAKING_NOTE.search(message) or _BREAKING_SUBJECT.match(message)
           for message in messages):
        return True
    if current is None:
        return None
    if target.major > current.major:
        return True
    return target.major == current.major == 0 and target.minor > current.minor
