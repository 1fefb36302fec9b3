"""Cutting a release on the release machine: the transaction that writes, commits, tags, pushes.

`cut_release` bumps ``VERSION`` (see `gitrelease.release.bump`), prepends a section to
``CHANGELOG.md`` (see `gitrelease.release.changelog`), commits both as
``chore(release): <tag>`` and creates an annotated (or signed) tag whose message is that
section, since the deployment side reads a release's changelog and its breaking/security
markers from the tag message.

It is all or nothing: any failure after the first write, a rejected push included, deletes the
tag, moves the branch back and restores both files byte for byte.
"""

from __future__ import annotations

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
)
from gitrelease.core.fsutil import atomic_write
from gitrelease.core.settings import load_settings
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import Channel, Release, TagScheme, select_releases
from gitrelease.git.versions import parse_version as parse_given_version
from gitrelease.release.bump import target_version
from gitrelease.release.changelog import (
    RELEASE_SUBJECT,
    build_section,
    changelog_entries,
    with_section,
)

__all__ = ["ReleaseOptions", "ReleaseResult", "cut_release"]

VERSION_FILE = "VERSION"
CHANGELOG_FILE = "CHANGELOG.md"
_FILES = (VERSION_FILE, CHANGELOG_FILE)
_TAG_MESSAGE_FILE = "GITRELEASE_TAGMSG"  # in the git dir, like git's own TAG_EDITMSG


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
        plan = _plan(repo, TagScheme.parse(settings.tag_pattern), settings.remote, options,
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
            plan = _plan(repo, TagScheme.parse(settings.tag_pattern), settings.remote,
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


def _plan(repo: GitRepo, scheme: TagScheme, remote: str, options: ReleaseOptions,
          now: datetime) -> _Plan:
    # What a person gave is judged first, then the state of the clone.
    last, base = _last_release(repo, scheme)
    version = target_version(options.target, options.pre, last, base)
    pattern = scheme.pattern_for(last.tag if last else None)  # as the newest release is named
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
    entries = changelog_entries(repo, last.commit if last else None, version)
    section = build_section(tag, now, entries, last.tag if last else None)
    originals = {name: _read(repo.root / name) for name in _FILES}
    try:
        changelog = with_section(originals[CHANGELOG_FILE], section)
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


def _last_release(repo: GitRepo, scheme: TagScheme) -> tuple[Release | None, Version]:
    """The newest release tag, stable or not, and the version to bump from."""
    releases, _ignored = select_releases(repo.list_tags(), scheme, Channel.PRE)
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
