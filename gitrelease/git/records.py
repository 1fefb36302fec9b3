"""The typed records git's output is parsed into, once: tags, signatures, commits, diffs, fetches.

They live apart from the runner that fills them so that code which only reads them (version
selection, the changelog) need not import GitPython.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Commit", "DiffStats", "FetchResult", "TagRef", "TagSignature"]


@dataclass(frozen=True)
class TagRef:
    """A tag as `git for-each-ref` reports it, peeled to the commit it names."""

    name: str
    commit: str
    object: str  # the tag object's id; equal to `commit` for a lightweight tag
    annotated: bool
    date: datetime  # tagger date, else the commit's committer date
    message: str  # annotated tag message (its changelog); empty for a lightweight tag
    object_tag_name: str | None  # the name written inside the tag object itself
    signed: bool = False  # the tag object carries a signature (GPG, X.509 or SSH)


@dataclass(frozen=True)
class TagSignature:
    """valid | unsigned | unknown_key | bad | name_mismatch, with git's words for it."""

    state: str
    detail: str

    @property
    def valid(self) -> bool:
        return self.state == "valid"


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    message: str


@dataclass(frozen=True)
class DiffStats:
    files_changed: int
    bytes_changed: int  # size at the target of every added or modified file


@dataclass(frozen=True)
class FetchResult:
    moved_tags: tuple[str, ...]  # tags whose remote target differs from ours: not followed
    # git reported something (it names every ref it updates, unless told to be quiet): a
    # listing of the refs taken before or during the fetch may be stale. False: none moved.
    reported: bool = True
