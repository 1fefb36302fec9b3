"""Cutting a release on the release machine: next version, changelog section, commit, tag, push.

`cut_release` bumps ``VERSION``, prepends a section to ``CHANGELOG.md``, commits both as
``chore(release): <tag>`` and creates an annotated (or signed) tag whose message is that
section, since the deployment side reads a release's changelog and its breaking/security
markers from the tag message. Versions bump npm-style on PEP 440 versions: from a pre-release,
``patch`` (and ``minor``/``major`` where they would land on the same final) finishes it.

It is all or nothing: any failure after the first write, a rejected push included, deletes the
tag, moves the branch back and restores both files byte for byte.
"""

from __future__ import annotations

import re
import shlex
import stat
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import Version

from gitrelease.core.errors import (
    DetachedHead,
    DirtyWorkingTree,
    GitCommandFailed,
    GitReleaseError,
    InvalidInput,
    UpdateInProgress,
    UsageError,
)
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.settings import load_settings
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import (
    Channel,
    Release,
    TagPattern,
    is_breaking,
    is_security,
    select_releases,
)
from gitrelease.git.versions import parse_version as parse_given_version

__all__ = [
    "BUMPS",
    "PRE_LABELS",
    "RELEASE_SUBJECT",
    "ChangeEntry",
    "ReleaseOptions",
    "ReleaseResult",
    "build_section",
    "cut_release",
    "next_version",
    "parse_entry",
]

BUMPS = ("major", "minor", "patch")
#: What --pre accepts, and the PEP 440 label each stands for.
PRE_LABELS = {"a": "a", "alpha": "a", "b": "b", "beta": "b", "c": "rc", "rc": "rc"}
_LABEL_ORDER = {"a": 0, "b": 1, "rc": 2}
RELEASE_SUBJECT = "chore(release): "
VERSION_FILE = "VERSION"
CHANGELOG_FILE = "CHANGELOG.md"
_FILES = (VERSION_FILE, CHANGELOG_FILE)
_TAG_MESSAGE_FILE = "GITRELEASE_TAGMSG"  # in the git dir, like git's own TAG_EDITMSG
_CONVENTIONAL = re.compile(
    r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^)\n]*)\))?(?P<bang>!)?:[ \t]*(?P<text>\S.*)$")
# The note runs to a blank line or the next trailer ("Refs: #12").
_BREAKING_FOOTER = re.compile(
    r"^BREAKING[ -]CHANGE:[ \t]*(?P<note>\S.*(?:\n(?![\w-]+:[ \t]).+)*)", re.M)
_GROUPS = (("feat", "Features"), ("fix", "Fixes"), ("perf", "Performance"),
           ("refactor", "Refactoring"), ("docs", "Documentation"))


@dataclass(frozen=True)
class ReleaseOptions:
    target: str  # major | minor | patch | an explicit version
    pre: str | None = None
    sign: bool = False
    push: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class ReleaseResult:
    version: str
    tag: str
    previous_tag: str | None
    commit: str | None  # the release commit; None on a dry run
    changelog: str  # the section, which is also the tag's message
    pushed: bool
    signed: bool
    dry_run: bool
    remote: str | None  # where it was (or would be) pushed
    commands: list[str] = field(default_factory=list)  # git commands run (or to run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# -- the next version ----------------------------------------------------------------------


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


def _target_version(options: ReleaseOptions, last: Release | None, base: Version) -> Version:
    target = options.target.strip()
    if target in BUMPS:
        pre = None
        if options.pre is not None:
            pre = PRE_LABELS.get(options.pre.strip().lower())
            if pre is None:
                raise InvalidInput("--pre", options.pre, PRE_LABELS)
        return next_version(base, target, pre)
    if not re.match(r"^[vV]?\d", target):
        raise InvalidInput("BUMP", options.target, "major, minor, patch, or a version such "
                           "as 2.1.0", reason="neither a bump nor a version")
    if options.pre is not None:
        raise UsageError("release: --pre goes with major, minor or patch; give a pre-release "
                         "as the VERSION itself, such as 2.1.0rc1")
    version = parse_given_version(target, field="VERSION")
    if version.local is not None:
        raise InvalidInput("VERSION", options.target, "a public version, without +local")
    if last is not None and version <= last.version:
        raise InvalidInput("VERSION", options.target, f"a version newer than {last.version}",
                           reason=f"not newer than the last release {last.tag}")
    return version


# -- the changelog section -----------------------------------------------------------------


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


def _entries(repo: GitRepo, since: str | None, version: Version) -> list[ChangeEntry]:
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


def _with_section(changelog: bytes | None, section: str) -> bytes:
    text = changelog.decode("utf-8") if changelog is not None else "# Changelog\n"
    head, sep, rest = text.partition("\n## ")
    if not head.lstrip().startswith("# "):  # no title of its own: keep the file as it was
        return (section + "\n" + text).encode()
    body = head.rstrip("\n") + "\n\n" + section
    return (body + (f"\n## {rest}" if sep else "")).encode()


# -- doing it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A release worked out and checked, before anything is written."""

    version: Version
    tag: str
    last: Release | None
    head: str  # the commit the branch is at: where an undo puts it back
    branch_ref: str
    section: str
    contents: dict[str, bytes]  # file name -> what the release writes
    originals: dict[str, bytes | None]  # file name -> what was there (None: no file)
    commands: list[list[str]]  # git argument lists, in order


def cut_release(
    root: Path, options: ReleaseOptions, *, now: datetime | None = None
) -> ReleaseResult:
    """Cut the release `options` ask for in the release clone at `root`."""
    settings = load_settings(root, root / "data").settings
    repo = GitRepo(root, timeout=settings.git_timeout)
    try:
        plan = _plan(repo, TagPattern.parse(settings.tag_pattern), settings.remote, options,
                     now or datetime.now(UTC))
        result = ReleaseResult(
            str(plan.version), plan.tag, plan.last.tag if plan.last else None, None,
            plan.section, pushed=False, signed=options.sign, dry_run=True,
            remote=settings.remote if options.push else None, commands=_shown(plan.commands))
        if options.dry_run:
            return result
        # One release at a time per clone: two would move the branch under each other.
        import filelock

        lock = filelock.FileLock(repo.git_dir / "gitrelease-release.lock")
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise UpdateInProgress("another gitrelease release is running in this clone",
                                   hint="wait for it to finish") from None
        try:
            # Planned again under the lock: the other release may have just finished.
            plan = _plan(repo, TagPattern.parse(settings.tag_pattern), settings.remote,
                         options, now or datetime.now(UTC))
            # A push also runs the pre-push hook, which lists the remote's tags itself.
            commit = _Transaction(repo, plan).run(settings.fetch_timeout + settings.git_timeout)
        finally:
            lock.release()
        result = replace(result, version=str(plan.version), tag=plan.tag,
                         previous_tag=plan.last.tag if plan.last else None,
                         changelog=plan.section)
        return replace(result, commit=commit, dry_run=False, pushed=options.push,
                       commands=_shown(plan.commands))
    finally:
        repo.close()


def _plan(repo: GitRepo, pattern: TagPattern, remote: str, options: ReleaseOptions,
          now: datetime) -> _Plan:
    # What a person gave is judged first, then the state of the clone.
    last, base = _last_release(repo, pattern)
    version = _target_version(options, last, base)
    tag = pattern.tag_for(version)
    if tag.startswith("-") or repo.run_bytes("check-ref-format", f"refs/tags/{tag}")[0]:
        raise InvalidInput("tag_pattern", pattern.glob, "a pattern giving valid tag names",
                           reason=f"{tag!r} is not a valid tag name")
    if repo.run_bytes("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}")[0] == 0:
        raise InvalidInput("VERSION", str(version), "a version not yet tagged",
                           reason=f"tag {tag} already exists")
    if options.push and remote not in repo.remote_names():
        raise InvalidInput("remote", remote, repo.remote_names() or "a configured remote",
                           reason="no such remote to push to")
    head = repo.head_commit()
    branch = repo.head_branch()
    if branch is None or branch.startswith("-"):
        raise DetachedHead(f"HEAD is detached at {head[:12]}: a release is committed to a "
                           "branch")
    dirty = repo.dirty_files()
    if dirty:
        raise DirtyWorkingTree(f"{len(dirty)} tracked file(s) have changes: "
                               f"{', '.join(dirty[:5])}")
    section = build_section(tag, now, _entries(repo, last.commit if last else None, version),
                            last.tag if last else None)
    originals = {name: _read(repo.root / name) for name in _FILES}
    try:
        changelog = _with_section(originals[CHANGELOG_FILE], section)
    except UnicodeDecodeError:
        raise GitReleaseError(f"{CHANGELOG_FILE} is not UTF-8 text",
                              hint="convert it to UTF-8, then release again") from None
    commands = [
        ["add", "--", *_FILES],
        ["commit", "--quiet", "-m", f"{RELEASE_SUBJECT}{tag}", "--", *_FILES],
        ["tag", "-s" if options.sign else "-a", "--cleanup=verbatim", "-F",
         str(repo.git_dir / _TAG_MESSAGE_FILE), "--", tag, "HEAD"],  # HEAD: the new commit
    ]
    if options.push:
        commands.append(["push", "--atomic", "--", remote, f"refs/heads/{branch}",
                         f"refs/tags/{tag}"])
    contents = {VERSION_FILE: f"{version}\n".encode(), CHANGELOG_FILE: changelog}
    return _Plan(version, tag, last, head, f"refs/heads/{branch}", section, contents,
                 originals, commands)


def _last_release(repo: GitRepo, pattern: TagPattern) -> tuple[Release | None, Version]:
    """The newest release tag, stable or not, and the version to bump from."""
    releases, _ignored = select_releases(repo.list_tags(), pattern, Channel.PRE)
    if releases:
        return releases[-1], releases[-1].version
    try:
        text = (repo.root / VERSION_FILE).read_text(encoding="utf-8")
        return None, parse_given_version(text)
    except (OSError, UnicodeDecodeError, GitReleaseError):
        return None, Version("0.0.0")


def _shown(commands: list[list[str]]) -> list[str]:
    return [shlex.join(["git", *command]) for command in commands]


class _Transaction:
    """Carries a plan out; on any failure, puts back what it had done and says so."""

    def __init__(self, repo: GitRepo, plan: _Plan) -> None:
        self.repo, self.plan = repo, plan
        self.done: list[str] = []  # steps to undo, in the order they were done

    def run(self, push_timeout: float) -> str:
        message_file = self.repo.git_dir / _TAG_MESSAGE_FILE
        try:
            commit = self._commit_and_tag(message_file)
            if len(self.plan.commands) > 3:
                self._push(self.plan.commands[3], push_timeout)
            return commit
        except BaseException as exc:
            replacement = self._undone(exc)
            if replacement is None:
                raise
            raise replacement from exc
        finally:
            message_file.unlink(missing_ok=True)

    def _commit_and_tag(self, message_file: Path) -> str:
        add, commit_command, tag_command = self.plan.commands[:3]
        self.done.append("files")
        for name, data in self.plan.contents.items():
            _write(self.repo.root / name, data, self.plan.originals[name])
        self.done.append("index")
        self.repo.run(*add)
        self.done.append("branch")  # before: moving it back where it already is does no harm
        self.repo.run(*commit_command)
        commit = self.repo.head_commit()
        message_file.write_text(self.plan.section, encoding="utf-8")
        tag_command[-1] = commit  # the commit itself, whatever HEAD is by now
        self.repo.run(*tag_command)
        self.done.append("tag")
        return commit

    def _push(self, command: list[str], timeout: float) -> None:
        try:
            self.repo.run(*command, timeout=timeout)
        except GitCommandFailed:
            if not self._tag_on_remote(command[3]):
                raise
            # It arrived and only the answer was lost (a timeout after the fact): keep it.

    def _tag_on_remote(self, remote: str) -> bool:
        ref = f"refs/tags/{self.plan.tag}"
        status, out = self.repo.run_bytes("ls-remote", "--refs", "--", remote, ref)
        _status, mine = self.repo.run_bytes("rev-parse", "--verify", "--quiet", ref)
        line = f"{mine.decode().strip()}\t{ref}"
        return status == 0 and line in out.decode(errors="replace").splitlines()

    def _undone(self, exc: BaseException) -> GitReleaseError | None:
        """Put back what was done. The error to raise instead, which says so; None to
        re-raise `exc` itself (amended in place, or an interrupt passed on as it was)."""
        undone, failed = self._undo()
        story = f"the release was undone ({', '.join(undone) or 'nothing had changed yet'})"
        if failed:
            story += "; undoing failed for: " + "; ".join(failed)
        if isinstance(exc, GitCommandFailed):
            return GitCommandFailed(f"{exc.message}; {story}", hint="fix the cause, then run "
                                    "the release again", stderr=exc.details.get("stderr"))
        if isinstance(exc, GitReleaseError):
            exc.message = f"{exc.message}; {story}"
        elif isinstance(exc, OSError):
            where = f" {exc.filename}" if exc.filename else ""
            return GitReleaseError(f"writing{where} failed: {exc.strerror or exc}; {story}",
                                   hint="check the path and its permissions")
        return None

    def _undo(self) -> tuple[list[str], list[str]]:
        """Each step done, newest first; one that fails does not keep the others from
        running. What was put back, and what could not be."""
        plan, repo = self.plan, self.repo
        branch = plan.branch_ref.removeprefix("refs/heads/")
        steps = {
            "tag": (lambda: repo.run("update-ref", "-d", f"refs/tags/{plan.tag}"),
                    f"tag {plan.tag} deleted"),
            "branch": (lambda: repo.run("update-ref", "-m", f"gitrelease: undo {plan.tag}",
                                        plan.branch_ref, plan.head),
                       f"{branch} back at {plan.head[:12]}"),
            "index": (lambda: repo.run("reset", "--quiet", plan.head, "--", *_FILES), ""),
            "files": (self._restore_files, f"{' and '.join(_FILES)} restored"),
        }
        undone: list[str] = []
        failed: list[str] = []
        for step in reversed(self.done):
            action, text = steps[step]
            try:
                action()
            except (GitReleaseError, OSError) as exc:
                failed.append(f"{step}: {getattr(exc, 'message', None) or exc}")
            else:
                undone += [text] if text else []
        self.done.clear()
        return undone, failed

    def _restore_files(self) -> None:
        for name, data in self.plan.originals.items():
            path = self.repo.root / name
            if data is None:
                path.unlink(missing_ok=True)
            else:
                _write(path, data, data)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, data: bytes, original: bytes | None) -> None:
    """Atomically, keeping the mode of the file it replaces (git records the x bit)."""
    mode = stat.S_IMODE(path.stat().st_mode) if original is not None else 0o644
    atomic_write(path, data, mode=mode)
