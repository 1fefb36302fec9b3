"""A release's changelog section: commits read as conventional commits, grouped and rendered.

The section is also the release tag's message, and the deployment side reads a release's
breaking and security markers from it; so the call-out blocks are written in the very form
`versions.is_breaking` and `versions.is_security` look for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gitrelease.git.versions import is_breaking, is_security

if TYPE_CHECKING:
    from packaging.version import Version

    from gitrelease.git.repo import GitRepo

__all__ = [
    "RELEASE_SUBJECT",
    "ChangeEntry",
    "build_section",
    "changelog_entries",
    "parse_entry",
    "with_section",
]

#: How a release commit's subject starts; the changelog leaves our own release commits out.
RELEASE_SUBJECT = "chore(release): "
_CONVENTIONAL = re.compile(
    r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^)\n]*)\))?(?P<bang>!)?:[ \t]*(?P<text>\S.*)$")
# The note runs to a blank line or the next trailer ("Refs: #12").
_BREAKING_FOOTER = re.compile(
    r"^BREAKING[ -]CHANGE:[ \t]*(?P<note>\S.*(?:\n(?![\w-]+:[ \t]).+)*)", re.M)
_GROUPS = (("feat", "Features"), ("fix", "Fixes"), ("perf", "Performance"),
           ("refactor", "Refactoring"), ("docs", "Documentation"))


@dataclass(frozen=True)
class ChangeEntry:
    """One commit as the changelog shows it."""

    sha: str  # abbreviated
    subject: str
    type: str | None  # conventional-commit type, lower case; None for other subjects
    scope: str | None
    text: str  # the subject past "type(scope): "
    breaking: str | None  # what breaks: the BREAKING CHANGE note, else the subject's text
    security: bool

    def line(self, text: str | None = None) -> str:
        scope = f"{self.scope}: " if self.scope else ""
        return f"- {scope}{text or self.text} ({self.sha})"


def parse_entry(sha: str, message: str, version: Version) -> ChangeEntry:
    """A commit message as a changelog entry; the markers are those the deployment reads."""
    subject = " ".join(message.strip().split("\n\n", 1)[0].split())
    match = _CONVENTIONAL.match(subject)
    kind = scope = None
    text = subject
    if match:
        kind, scope, text = match["type"].lower(), match["scope"] or None, match["text"]
    breaking = None
    if is_breaking(None, version, [message.strip()]):
        footer = _BREAKING_FOOTER.search(message)
        breaking = " ".join(footer["note"].split()) if footer else text
    return ChangeEntry(sha, subject, kind, scope, text, breaking, is_security([message]))


def build_section(
    tag: str, day: datetime, entries: list[ChangeEntry], previous_tag: str | None
) -> str:
    """The changelog section of a release, which is also its tag message.

    The call-out blocks each carry a line in the form `versions.is_breaking` and
    `versions.is_security` look for, so the deployment side sees the markers in the tag.
    Security fixes are listed only in their block; breaking changes also in their group.
    """
    lines = [f"## {tag} — {day:%Y-%m-%d}", ""]
    breaking = [e for e in entries if e.breaking]
    if breaking:
        lines += ["### ⚠ BREAKING CHANGES", "",
                  "BREAKING CHANGE: not backward compatible; read these before upgrading.", ""]
        lines += [*(e.line(e.breaking) for e in breaking), ""]
    security = [e for e in entries if e.security]
    if security:
        lines += ["### Security", "", "Security: fixes security issues; upgrade soon.", ""]
        lines += [*(e.line() for e in security), ""]
    rest = [e for e in entries if not e.security]
    known = {kind for kind, _title in _GROUPS}
    for kind, title in _GROUPS:
        group = [e.line() for e in rest if e.type == kind]
        if group:
            lines += [f"### {title}", "", *group, ""]
    # Under "Other" the type is all that says what a change was: keep the whole subject.
    other = [f"- {e.subject} ({e.sha})" for e in rest if e.type not in known]
    if other:
        lines += ["### Other", "", *other, ""]
    if not entries:
        since = f" since {previous_tag}" if previous_tag else ""
        lines += [f"No changes{since}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def changelog_entries(repo: GitRepo, since: str | None, version: Version) -> list[ChangeEntry]:
    """Commits since the last release, newest first, in one `git log` (NUL-separated: git
    refuses NUL in commit messages, so it can only be a separator)."""
    revs = [f"{since}..HEAD"] if since else ["HEAD"]
    out = repo.run("log", "-z", "--no-merges", "--format=%h%x00%B", *revs, "--")
    fields = out.split("\0")
    entries = []
    for sha, message in zip(fields[0::2], fields[1::2], strict=False):
        if not message.startswith(RELEASE_SUBJECT):  # our own release commits
            entries.append(parse_entry(sha.strip(), message, version))
    return entries


def with_section(changelog: bytes | None, section: str) -> bytes:
    """CHANGELOG.md's bytes with `section` as its newest entry, below the file's title."""
    text = changelog.decode("utf-8") if changelog is not None else "# Changelog\n"
    head, sep, rest = text.partition("\n## ")
    if not head.lstrip().startswith("# "):  # no title of its own: keep the file as it was
        return (section + "\n" + text).encode()
    body = head.rstrip("\n") + "\n\n" + section
    return (body + (f"\n## {rest}" if sep else "")).encode()
