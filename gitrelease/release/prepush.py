"""The release side's pre-push check: only well-formed release tags leave this clone.

`hooks/pre-push` hands git's pre-push input to `check_push`, which refuses pushing a tag that
is lightweight, whose name is not a version under `tag_pattern` (any of its globs), whose
commit's ``VERSION`` file says another version, or that is not newer than the newest release
tag already on the remote (whichever pattern names it). Branches and tag deletions pass.

Every tag is a release tag here: this hook belongs on the clone releases are cut from, and a
tag that is not ``prefix + version + suffix`` (``1.2.0`` for ``v*``, ``nightly``) is refused
too, since the deployments would never see it as a release. The tag is judged by the name it
gets on the remote, so ``git push origin HEAD:refs/tags/v9`` is checked like ``v9`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from gitrelease.core.errors import InvalidInput
from gitrelease.core.settings import load_settings
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import TagScheme, parse_version

__all__ = ["PushedRef", "check_push", "parse_push_lines"]

_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_TAGS = "refs/tags/"
_OVERRIDE = "(git push --no-verify skips this check: a deliberate override only)"


@dataclass(frozen=True)
class PushedRef:
    """One line of git's pre-push input."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str

    @property
    def deletes(self) -> bool:
        return set(self.local_sha) == {"0"}


def parse_push_lines(lines: Iterable[str]) -> tuple[list[PushedRef], list[str]]:
    """The refs git is about to push, and refusals for lines that do not read as one."""
    refs: list[PushedRef] = []
    refusals: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not (_SHA.match(parts[1]) and _SHA.match(parts[3])):
            refusals.append(f"cannot read git's pre-push input {line.strip()[:120]!r}")
            continue
        refs.append(PushedRef(*parts))
    return refs, refusals


def check_push(root: Path, remote: str, url: str, lines: Iterable[str]) -> list[str]:
    """Why the push must not happen, one reason a line; empty when it may."""
    pushed, refusals = parse_push_lines(lines)
    tags = [r for r in pushed if r.remote_ref.startswith(_TAGS) and not r.deletes]
    if not tags:
        return refusals  # branches only: no settings, no git
    settings = load_settings(root, root / "data").settings
    scheme = TagScheme.parse(settings.tag_pattern)
    repo = GitRepo(root, timeout=settings.git_timeout)
    try:
        newest = _newest_on_remote(repo, url or remote, scheme)
        for ref in tags:
            name = ref.remote_ref.removeprefix(_TAGS)
            refusals += [f"tag {name}: {reason} {_OVERRIDE}"
                         for reason in _problems(repo, ref, name, scheme, newest, remote)]
    finally:
        repo.close()
    return refusals


def _problems(
    repo: GitRepo, ref: PushedRef, name: str, scheme: TagScheme,
    newest: tuple[Version, str] | None, remote: str,
) -> list[str]:
    problems = []
    kind = repo.run("cat-file", "-t", ref.local_sha).strip()
    if kind != "tag":
        problems.append(f"is a lightweight tag (a {kind}); release tags are annotated, with "
                        f"the changelog as their message: git tag -d {name}, then "
                        "gitrelease release")
    else:
        # Deployments refuse a ref whose tag object names another tag (a moved signed tag).
        header = repo.run("cat-file", "tag", ref.local_sha).split("\n\n", 1)[0]
        inner = next((line[4:] for line in header.splitlines() if line.startswith("tag ")), "")
        if inner != name:
            problems.append(f"points at the tag object named {inner!r}; a release tag's object "
                            "carries its own name (create it with gitrelease release)")
    version = scheme.version_of(name)
    if version is None:
        example = scheme.patterns[0].tag_for(Version("1.2.0"))
        problems.append(f"is not a release tag: its name is not a PEP 440 version under "
                        f"tag_pattern {scheme.text} (such as {example})")
        return problems
    status, data = repo.run_bytes("cat-file", "blob", f"{ref.local_sha}^{{commit}}:VERSION")
    if status != 0:
        problems.append("the tagged commit has no VERSION file")
    else:
        text = data.decode("utf-8", errors="replace").strip()
        try:
            in_file = parse_version(text)
        except InvalidInput:
            in_file = None
        if in_file != version:
            problems.append(f"VERSION at the tagged commit says {text[:40]!r}, the tag says "
                            f"{version}")
    if newest is not None and version <= newest[0]:
        problems.append(f"{version} is not newer than {newest[1]}, the newest release tag on "
                        f"{remote}")
    return problems


def _newest_on_remote(
    repo: GitRepo, where: str, scheme: TagScheme
) -> tuple[Version, str] | None:
    """The newest release tag on the remote (pre-releases included), in one `ls-remote`."""
    if where.startswith("-"):
        raise InvalidInput("URL", where, "a remote name or URL")
    out = repo.run("ls-remote", "--tags", "--refs", "--", where)
    found = []
    for line in out.splitlines():
        _sha, _tab, ref = line.partition("\t")
        name = ref.removeprefix(_TAGS)
        version = scheme.version_of(name)
        if version is not None:
            found.append((version, name))
    return max(found, default=None)
