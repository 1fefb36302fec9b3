"""The next release version: a bump of the last release tag, or a newer version given outright.

Versions bump npm-style on PEP 440 versions: from a pre-release, ``patch`` (and
``minor``/``major`` where they would land on the same final) finishes it.
"""

from __future__ import annotations

import re

from packaging.version import Version

from gitrelease.core.errors import InvalidInput, UsageError
from gitrelease.git.versions import Release
from gitrelease.git.versions import parse_version as parse_given_version

__all__ = ["BUMPS", "PRE_LABELS", "next_version", "target_version"]

BUMPS = ("major", "minor", "patch")
#: What --pre accepts, and the PEP 440 label each stands for.
PRE_LABELS = {"a": "a", "alpha": "a", "b": "b", "beta": "b", "c": "rc", "rc": "rc"}
_LABEL_ORDER = {"a": 0, "b": 1, "rc": 2}


def next_version(base: Version, bump: str, pre: str | None = None) -> Version:
    """The version after `base` for a bump, optionally as pre-release `pre` (a, b or rc)."""
    final = _final(base)
    if not base.is_prerelease:
        target = _bumped(final, bump)
    elif (bump == "patch" or (bump == "minor" and final.micro == 0)
          or (bump == "major" and final.minor == final.micro == 0)):
        target = final  # 1.3.0rc1 -> 1.3.0 finishes the release it was a candidate for
    else:
        target = _bumped(final, bump)
    if pre is None:
        return target
    number = 1
    if base.pre is not None and final == target:
        label, current = base.pre
        if _LABEL_ORDER[pre] < _LABEL_ORDER[label]:
            raise InvalidInput("--pre", pre, [k for k, v in PRE_LABELS.items()
                                              if _LABEL_ORDER[v] >= _LABEL_ORDER[label]],
                               reason=f"the last release {base} is past {pre}")
        if pre == label:
            number = current if base.dev is not None else current + 1
    return Version(f"{target}{pre}{number}")


def _final(version: Version) -> Version:
    epoch = f"{version.epoch}!" if version.epoch else ""
    return Version(f"{epoch}{version.major}.{version.minor}.{version.micro}")


def _bumped(final: Version, bump: str) -> Version:
    epoch = f"{final.epoch}!" if final.epoch else ""
    major, minor, micro = final.major, final.minor, final.micro
    parts = {"major": (major + 1, 0, 0), "minor": (major, minor + 1, 0),
             "patch": (major, minor, micro + 1)}[bump]
    return Version(epoch + ".".join(map(str, parts)))


def target_version(
    given: str, pre_given: str | None, last: Release | None, base: Version
) -> Version:
    """The version a `release TARGET [--pre LABEL]` asks for, as a person typed them, with
    `last` the newest release tag (if any) and `base` the version to bump from."""
    target = given.strip()
    if target in BUMPS:
        pre = None
        if pre_given is not None:
            pre = PRE_LABELS.get(pre_given.strip().lower())
            if pre is None:
                raise InvalidInput("--pre", pre_given, PRE_LABELS)
        return next_version(base, target, pre)
    if not re.match(r"^[vV]?\d", target):
        raise InvalidInput("BUMP", given, "major, minor, patch, or a version such "
                           "as 2.1.0", reason="neither a bump nor a version")
    if pre_given is not None:
        raise UsageError("release: --pre goes with major, minor or patch; give a pre-release "
                         "as the VERSION itself, such as 2.1.0rc1")
    version = parse_given_version(target, field="VERSION")
    if version.local is not None:
        raise InvalidInput("VERSION", given, "a public version, without +local")
    if last is not None and version <= last.version:
        raise InvalidInput("VERSION", given, f"a version newer than {last.version}",
                           reason=f"not newer than the last release {last.tag}")
    return version
