"""The one git runner, `GitRepo`: every git call, its output parsed once into typed records.

Every git call goes through `GitRepo.run`: an argument list (never a shell), a clean
environment (no prompts, C locale), a timeout. Names given by people never reach git as
arguments: versions are matched against the listed tags and git is handed commit ids. The
records it returns are in `gitrelease.git.records`; what a failure's stderr means is decided in
`gitrelease.git.stderr`.

Over the ~400-line aim: one class whose every method goes through the same runner, its
environment and its caches (remotes, commits between two releases); what stands on its own
is already apart (records, stderr, stash, clone).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import git

from gitrelease.core.errors import FetchFailed, InvalidInput, NotAGitRepository
from gitrelease.core.text import redact
from gitrelease.git.records import Commit, DiffStats, FetchResult, TagRef, TagSignature
from gitrelease.git.stash import StashMethods
from gitrelease.git.stderr import command_failed, fetch_result, tag_signature

if TYPE_CHECKING:
    from gitrelease.core.tether import Group

__all__ = ["GitRepo"]

_FS = "\x1f"  # field separator in --format output
_RS = "\x1e"  # record separator
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_ENVIRONMENT = {
    # No credential or host-key prompt may ever hang an unattended update.
    "GIT_TERMINAL_PROMPT": "0",
    "GCM_INTERACTIVE": "never",
    "GIT_SSH_VARIANT": "ssh",
    # Read-only commands such as `git status` must not take index.lock behind the bot's back.
    "GIT_OPTIONAL_LOCKS": "0",
    # Tells hooks/post-checkout that gitrelease moved HEAD: an install or rollback restarts
    # the bot itself once its checks pass, never half-way.
    "GITRELEASE_SESSION": "gitrelease",
}


class GitRepo(StashMethods):
    """A deployment's git working tree (its stash methods: `gitrelease.git.stash`)."""

    def __init__(self, root: Path, *, timeout: float = 120.0) -> None:
        try:
            self._repo = git.Repo(root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise NotAGitRepository(f"{root} is not a git working tree") from None
        if self._repo.bare or self._repo.working_tree_dir is None:
            self._repo.close()
            raise NotAGitRepository(f"{root} is a bare repository, not a working tree")
        self.root = Path(self._repo.working_tree_dir)
        self.git_dir = Path(self._repo.git_dir)
        self.timeout = timeout
        self._remotes: tuple[tuple[int, int, int] | None, list[str]] | None = None
        # (a, b) -> commits reachable from b but not from a, for two commits by sha: what
        # one `log --left-right a...b` answers for both directions (a check asks both).
        self._between: dict[tuple[str, str], list[Commit]] = {}
        self._between_lock = threading.Lock()  # the two directions are asked side by side
        self._repo.git.update_environment(**_ENVIRONMENT)
        if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
            # ssh prompts on its own terminal, past GIT_TERMINAL_PROMPT: forbid it.
            self._repo.git.update_environment(GIT_SSH_COMMAND="ssh -o BatchMode=yes")

    def close(self) -> None:
        self._repo.close()

    # -- the runner ------------------------------------------------------------------------

    def run(self, *args: str, timeout: float | None = None) -> str:
        """Run git with an argument list and return its stdout; raise a typed error on failure."""
        status, out, err = self._execute(args, timeout)
        if status != 0:
            raise command_failed(args, status, err)
        return out.decode("utf-8", errors="replace")

    def run_bytes(self, *args: str) -> tuple[int, bytes]:
        status, out, _err = self._execute(args, None)
        return status, out

    def run_with_input(self, *args: str, data: bytes) -> str:
        """`run`, with `data` on git's standard input (for the --batch commands)."""
        with tempfile.TemporaryFile() as stdin:
            # A file, not a pipe: git reads it at its own pace, so no size can deadlock.
            stdin.write(data)
            stdin.seek(0)
            status, out, err = self._execute(args, None, stdin)
        if status != 0:
            raise command_failed(args, status, err)
        return out.decode("utf-8", errors="replace")

    def _execute(
        self, args: Sequence[str], timeout: float | None, stdin: Any = None
    ) -> tuple[int, bytes, bytes]:
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        status, out, err = self._repo.git.execute(
            ["git", *args],
            istream=stdin,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=limit,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
        )
        if status != 0 and time.monotonic() - started >= limit:
            err = f"timed out after {limit:g} s".encode()
            status = -1
        return status, out, err if isinstance(err, bytes) else err.encode()

    # -- reading ---------------------------------------------------------------------------

    def head_commit(self) -> str:
        status, out = self.run_bytes("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if status != 0:
            raise NotAGitRepository(f"{self.root} has no commit checked out yet",
                                    hint="clone the bot's repository, or commit first")
        return out.decode().strip()

    def list_tags(self) -> list[TagRef]:
        """Every tag with its peeled commit, date and message, in one `git for-each-ref`."""
        return self.tag_listing()[0]

    def tag_listing(self) -> tuple[list[TagRef], dict[str, str]]:
        """`list_tags`, and every tag's name -> the object it names, including the tags
        `list_tags` leaves out (of trees, of other tags, or unparseable): what the remote's
        list is compared with."""
        fields = (
            "%(refname:strip=2)",
            "%(objecttype)",
            "%(objectname)",
            "%(*objecttype)",
            "%(*objectname)",
            "%(taggerdate:iso-strict)",
            "%(committerdate:iso-strict)",
            "%(*committerdate:iso-strict)",
            "%(tag)",
            "%(contents:subject)",
            "%(contents:body)",
            "%(contents:signature)",
        )
        fmt = "%1f".join(fields) + "%1e"
        out = self.run("for-each-ref", f"--format={fmt}", "refs/tags")
        tags: list[TagRef] = []
        objects: dict[str, str] = {}
        for record in out.split(_RS):
            record = record.lstrip("\n")
            if not record:
                continue
            parts = record.split(_FS)
            if len(parts) > 2:  # the name and the object come before any message
                objects[parts[0]] = parts[2]
            if len(parts) != len(fields):
                continue  # a message holding our separators: not a tag we can trust to parse
            (name, otype, oid, ptype, pid, tagger, cdate, pcdate, inner, subject, body,
             signature) = parts
            if otype == "commit":
                commit, annotated, when = oid, False, cdate
            elif otype == "tag" and ptype == "commit":
                commit, annotated, when = pid, True, tagger or pcdate
            else:
                continue  # tags of trees, blobs or other tags are never releases
            message = subject if not body.strip() else f"{subject}\n\n{body.rstrip()}"
            tags.append(
                TagRef(
                    name=name,
                    commit=commit,
                    object=oid,
                    annotated=annotated,
                    date=datetime.fromisoformat(when),
                    message=message.strip() if annotated else "",
                    object_tag_name=inner or None,
                    signed=annotated and bool(signature.strip()),
                )
            )
        return tags, objects

    def verify_tag(self, tag: TagRef) -> TagSignature:
        """The tag's signature as `git verify-tag` judges it, and whether the name inside
        the tag object is the ref's own (a ref moved onto another signed tag is not)."""
        if not tag.annotated:
            return TagSignature("unsigned", "a lightweight tag carries no signature")
        if tag.object_tag_name != tag.name:
            return TagSignature("name_mismatch", f"the tag object is named "
                                f"{tag.object_tag_name!r}, not {tag.name!r}: the ref was moved "
                                "onto another tag")
        if not tag.signed:
            return TagSignature("unsigned", "the annotated tag is not signed")
        _require_sha(tag.object)
        status, out, err = self._execute(("verify-tag", "--raw", tag.object), None)
        return tag_signature(status, out, err)

    def dirty_files(self) -> list[str]:
        """Tracked files with changes (staged or not). Untracked and ignored files don't count."""
        out = self.run("status", "--porcelain=v1", "-z", "--untracked-files=no")
        entries = [e for e in out.split("\0") if e]
        files: list[str] = []
        skip_next = False
        for entry in entries:
            if skip_next:  # the source path of a rename
                skip_next = False
                continue
            files.append(entry[3:])
            skip_next = entry[0] in "RC"
        return files

    def paths_added(self, old: str, new: str) -> list[str]:
        """Files tracked at `new` but not at `old`."""
        out = self.run(
            "diff", "--name-only", "-z", "--no-renames", "--diff-filter=A", old, new, "--")
        return [p for p in out.split("\0") if p]

    def diff_stats(self, old: str, new: str) -> DiffStats:
        """Files changed from `old` to `new`, and the size at `new` of those still there."""
        _require_sha(old)
        _require_sha(new)
        # One `diff --raw` names each changed file with its blob at `new`; one
        # `cat-file --batch-check` sizes just those blobs (not every file of the tree).
        records = self.run("diff", "--raw", "-z", "--no-abbrev", "--no-renames", "--no-color",
                           old, new, "--").split("\0")
        changed = 0
        blobs: list[str] = []
        for meta, _path in zip(records[0::2], records[1::2], strict=False):
            fields = meta.split()
            if len(fields) != 5 or not meta.startswith(":"):
                continue
            changed += 1
            mode, blob = fields[1], fields[3]
            # Gone at `new` (a zero id), or a submodule (a commit of another repository).
            if mode != "160000" and blob.strip("0"):
                blobs.append(blob)
        if not blobs:
            return DiffStats(changed, 0)
        sizes: dict[str, int] = {}
        for line in self.run_with_input(
                "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                data="".join(f"{blob}\n" for blob in dict.fromkeys(blobs)).encode()
        ).splitlines():
            name, kind, size = [*line.split(), "", ""][:3]
            if kind == "blob" and size.isdigit():
                sizes[name] = int(size)
        return DiffStats(changed, sum(sizes.get(blob, 0) for blob in blobs))

    def commits_between(self, old: str | None, new: str) -> list[Commit]:
        """Commits reachable from `new` but not from `old`, newest first. Between two
        commits named by sha, both directions come from one process and are kept: the
        other direction is then answered without git."""
        if old and _SHA.match(old) and _SHA.match(new):
            with self._between_lock:
                return list(self._commits_apart(old, new))
        revs = [f"{old}..{new}"] if old else [new]
        return [commit for _side, commit in self._log(f"--format=%H{_FS}%s{_FS}%B{_RS}",
                                                      *revs)]

    def _commits_apart(self, old: str, new: str) -> list[Commit]:
        if (old, new) not in self._between:
            left: list[Commit] = []
            right: list[Commit] = []
            for side, commit in self._log(f"--format=%m%H{_FS}%s{_FS}%B{_RS}",
                                          "--left-right", f"{old}...{new}"):
                (left if side == "<" else right).append(commit)
            if len(self._between) > 64:  # a bot's process checks for days: kept bounded
                self._between.clear()
            self._between[(old, new)], self._between[(new, old)] = right, left
        return self._between[(old, new)]

    def _log(self, fmt: str, *revs: str) -> list[tuple[str, Commit]]:
        """`git log` records as (its left/right mark, or "", and the commit)."""
        commits: list[tuple[str, Commit]] = []
        for record in self.run("log", fmt, *revs, "--").split(_RS):
            record = record.lstrip("\n")
            if not record:
                continue
            side = ""
            if record[0] in "<>" and "--left-right" in revs:
                side, record = record[0], record[1:]
            sha, subject, body = record.split(_FS, 2)
            commits.append((side, Commit(sha, subject, body.strip())))
        return commits

    def show_file(self, commit: str, path: str) -> bytes | None:
        """A file's content at a commit, or None if it does not exist there."""
        _require_sha(commit)
        status, out = self.run_bytes("cat-file", "blob", f"{commit}:{path}")
        return out if status == 0 else None

    def describe(self, globs: str | Sequence[str], exclude: Sequence[str] = ()) -> str | None:
        """`git describe --tags --long` limited to release tags, or None without any.

        Several globs: the nearest tag matching any of them (git adds up its ``--match``es).
        """
        matches = [globs] if isinstance(globs, str) else list(globs)
        if not matches or not all(isinstance(g, str) and g and "\0" not in g for g in matches):
            raise InvalidInput("tag_pattern", globs, "one glob or more")
        args = ["describe", "--tags", "--long", "--abbrev=7"]
        args += [f"--match={glob}" for glob in matches]
        args += [f"--exclude={name}" for name in exclude]
        status, out = self.run_bytes(*args, "HEAD")
        return out.decode().strip() if status == 0 else None

    def tracked_files(self) -> frozenset[str]:
        """Every path git versions at HEAD (restores never write these)."""
        return frozenset(p for p in self.run("ls-files", "-z").split("\0") if p)

    def unversioned(self, under: str | None = None, *, ignored: bool = True) -> list[str]:
        """Paths git does not version, relative to the root: the untracked ones `git status`
        shows and, with `ignored`, those the ignore rules hide. A directory git versions
        nothing in is one ``dir/`` entry, not listed file by file (a virtual environment
        costs one line). `under`: only below that path of the checkout."""
        if under is not None and (not under or under.startswith(("-", "/", ":")) or "\0" in under):
            raise InvalidInput("path", under, "a path inside the checkout")
        found: list[str] = []
        for which in (["--no-empty-directory"], ["--ignored"])[:2 if ignored else 1]:
            out = self.run("ls-files", "-z", "--others", "--exclude-standard", "--directory",
                           *which, "--", *([under] if under is not None else []))
            found += [p for p in out.split("\0") if p]
        return list(dict.fromkeys(found))

    def remote_names(self) -> list[str]:
        """The configured remotes; asked of git again only once the repository's config
        file has changed (a check asks for them on fetching and again for the URL)."""
        try:
            found = (self._config_path()).stat()
            stamp: tuple[int, int, int] | None = (found.st_ino, found.st_mtime_ns,
                                                  found.st_size)
        except OSError:
            stamp = None
        if stamp is None or self._remotes is None or self._remotes[0] != stamp:
            self._remotes = (stamp, self.run("remote").split())
        return list(self._remotes[1])

    def _config_path(self) -> Path:
        return Path(self._repo.common_dir) / "config"

    def remote_url(self, remote: str) -> str | None:
        self._check_remote(remote)
        status, out = self.run_bytes("remote", "get-url", "--", remote)
        return redact(out.decode().strip()) if status == 0 else None

    def remote_tags(self, remote: str, timeout: float) -> dict[str, str] | None:
        """The remote's tags (name -> the object each names), in one round trip and no
        negotiation; None when the remote refused (a fetch then says why, in its words).
        A remote that does not answer in time is not asked twice: FetchFailed."""
        self._check_remote(remote)
        status, out, err = self._execute(["ls-remote", "--tags", "--refs", "--", remote],
                                         timeout)
        if status == -1:
            raise FetchFailed(f"fetching from {remote!r} {err.decode()}", remote=remote)
        if status != 0:
            return None
        tags = {}
        for line in out.decode("utf-8", errors="replace").splitlines():
            oid, _, ref = line.partition("\t")
            if ref.startswith("refs/tags/"):
                tags[ref.removeprefix("refs/tags/")] = oid
        return tags

    # -- changing --------------------------------------------------------------------------

    def fetch_tags(self, remote: str, timeout: float) -> FetchResult:
        """Fetch tags without --force: a tag moved on the remote is reported, never followed."""
        self._check_remote(remote)
        # An explicit, non-forcing refspec, and --refmap= so that no configured refspec (such
        # as a "+refs/tags/*:refs/tags/*" someone added) can force-update a tag behind our back.
        status, _out, err = self._execute(
            ["fetch", "--no-tags", "--refmap=", "--no-recurse-submodules", "--no-progress",
             "--no-write-fetch-head", "--", remote, "refs/tags/*:refs/tags/*"], timeout)
        return fetch_result(remote, status, err)

    def checkout_detached(self, commit: str,
                          record: Callable[[Group], None] | None = None) -> None:
        """Move HEAD to a commit; git refuses rather than overwrite local changes. `record`:
        git dies with this process, its group recorded first (`switch.tethered_checkout`)."""
        _require_sha(commit)
        if record is not None:
            from gitrelease.git.switch import tethered_checkout  # not on `check`'s path
            tethered_checkout(self, commit, record)
            return
        self.run("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, "--")

    def environment(self) -> dict[str, str]:
        """What every git call gets on top of this process's environment."""
        return dict(self._repo.git.environment())

    def head_branch(self) -> str | None:
        """The branch HEAD is on, or None when it is detached."""
        status, out = self.run_bytes("symbolic-ref", "--quiet", "--short", "HEAD")
        return out.decode().strip() if status == 0 else None

    def restore_head(self, commit: str, branch: str | None) -> None:
        """Undo a checkout: back to `branch` (which gitrelease never moves) or `commit`.

        Never forced: if tracked files changed meanwhile, git refuses and says which, and they
        are left for the operator rather than overwritten.
        """
        _require_sha(commit)
        target = branch if branch is not None else commit
        if branch is not None and (branch.startswith("-") or "\n" in branch):
            target = commit  # never hand git something that could read as an option
        detach = [] if target == branch else ["--detach"]
        self.run("-c", "advice.detachedHead=false", "checkout", "--quiet", *detach, target, "--")

    def _check_remote(self, remote: str) -> None:
        if not _REMOTE_NAME.match(remote):
            raise InvalidInput("remote", remote, "the name of a configured git remote")
        if remote not in self.remote_names():
            raise FetchFailed(
                f"no remote named {remote!r} is configured in {self.root}",
                hint="add it with `git remote add` or set the `remote` setting",
            )


def _require_sha(commit: str) -> None:
    # Only ids that came out of git are handed back to it.
    if not _SHA.match(commit):
        raise InvalidInput("commit", commit, "a full commit id")
