"""Finding a bot's SQLite databases wherever it keeps them in its checkout.

Bots put their database where their author liked (``database/database.db``, ``bot.sqlite``,
``db/levels``), usually git-ignored. A database is found by its 16-byte header among the
files git does not version: the untracked and the ignored ones, as git lists them (a
directory git holds nothing of comes as one entry, walked here). Never looked into: ``.git``,
virtual environments (a directory holding ``pyvenv.cfg``, whatever its name),
``node_modules``, ``__pycache__`` and tool caches, and the directories the caller names
(gitrelease's data dir, backups, logs: the data dir is looked through on its own).

The cost is bounded, so that a checkout holding 20,000 untracked files is not slow: a file
named like a database (.db, .sqlite, .sqlite3, .db3) always has its header read; one named
like something else (.py, .json, .png, .log ...) never does; any other is read only if it is
at least 512 bytes (the smallest page: no database with a table is smaller) and while fewer
than `MAX_PROBES` such files were read; no more than `MAX_FILES` files are looked at in all.
A search cut short by either bound says so, for the backup to say it too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["HINTS", "MAX_FILES", "MAX_PROBES", "Found", "find_databases", "is_skipped",
           "is_sqlite"]

# The header every SQLite 3 database starts with. Read here without `sqlite3`, which `check`
# (listing what a backup would hold) does not otherwise import.
_MAGIC = b"SQLite format 3\x00"

#: Names that say "database": always read.
HINTS = frozenset({".db", ".sqlite", ".sqlite3", ".db3"})
#: Names that say something else: never read.
_OTHERS = frozenset({
    ".py", ".pyc", ".pyo", ".pyi", ".pyd", ".so", ".dll", ".dylib", ".txt", ".md", ".rst",
    ".json", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".conf", ".env", ".log", ".csv",
    ".js", ".mjs", ".ts", ".map", ".html", ".css", ".xml", ".svg", ".png", ".jpg", ".jpeg",
    ".gif", ".webp", ".ico", ".bmp", ".mp3", ".mp4", ".ogg", ".opus", ".wav", ".webm",
    ".ttf", ".otf", ".woff", ".woff2", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".tar",
    ".7z", ".whl", ".egg", ".pdf", ".lock", ".pid", ".sh", ".bat", ".ps1", ".tmp", ".bak",
})
#: Directories that are never the bot's state (or far too big to walk for it).
_SKIP_NAMES = frozenset({
    ".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox", "site-packages",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs", ".hg", ".svn",
})
_SIDECARS = ("-wal", "-shm", "-journal")
MAX_FILES = 50_000
MAX_PROBES = 2_000
_MIN_SIZE = 512


@dataclass(frozen=True)
class Found:
    databases: list[Path]
    incomplete: str | None = None  # why the search stopped short, in the operator's words


def is_sqlite(path: Path) -> bool:
    """Whether the file starts with SQLite's header (without importing sqlite3: `check`
    asks this, and its start-up stays light)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def is_skipped(relative: PurePosixPath) -> bool:
    """Whether a path of the checkout lies where no bot state is looked for."""
    return any(part in _SKIP_NAMES for part in relative.parts)


def find_databases(
    root: Path, listed: Iterable[str] | None, *, skip: Iterable[Path],
    tracked: frozenset[str] = frozenset(),
) -> Found:
    """The SQLite databases among `listed` (paths git does not version, relative to `root`,
    "dir/" for a whole directory), or with None among every file of the checkout that is
    not in `tracked`. Nothing in `skip` (absolute paths) is looked at."""
    search = _Search(root, [Path(p) for p in skip])
    entries = [""] if listed is None else sorted(set(listed))
    prefix = len(str(root)) + 1
    for entry in entries:
        if search.stopped:
            break
        relative = PurePosixPath(entry.rstrip("/")) if entry else PurePosixPath()
        if is_skipped(relative) or relative.is_absolute() or ".." in relative.parts:
            continue
        path = root.joinpath(*relative.parts)
        if search.excluded(path):
            continue
        if entry.endswith("/") or not entry:
            for found in search.walk(str(path)):
                if listed is not None or found[prefix:].replace(os.sep, "/") not in tracked:
                    search.consider(found)
        elif path.is_file() and not path.is_symlink():
            search.consider(str(path))
    return Found(sorted({Path(p) for p in search.found}), search.incomplete)


class _Search:
    """One search: its bounds, what it found, and the directories known to be venvs.

    Paths are strings here: a checkout's worth of `Path` objects is most of the cost."""

    def __init__(self, root: Path, skip: list[Path]) -> None:
        self.root = root
        self.skip = skip
        self._skipped = {str(s) for s in skip}
        self.found: list[str] = []
        self.files = 0
        self.probes = 0
        self.incomplete: str | None = None
        self.stopped = False  # MAX_FILES reached: nothing more is looked at

    def excluded(self, path: Path) -> bool:
        if any(path == s or path.is_relative_to(s) for s in self.skip):
            return True
        return any((parent / "pyvenv.cfg").is_file() for parent in [path, *path.parents]
                   if parent.is_relative_to(self.root) and parent != self.root)

    def walk(self, top: str) -> Iterator[str]:
        """Regular files under `top`, not following links, pruning what is never state."""
        if not os.path.isdir(top) or os.path.islink(top):
            return
        for current, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_NAMES
                             and not self._pruned(os.path.join(current, d)))
            for name in sorted(files):
                yield os.path.join(current, name)
                if self.stopped:
                    return

    def _pruned(self, directory: str) -> bool:
        return directory in self._skipped or os.path.islink(directory) or \
            os.path.isfile(os.path.join(directory, "pyvenv.cfg"))

    def consider(self, path: str) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            self.stopped = True
            self.incomplete = (f"the search for databases stopped after {MAX_FILES} files "
                               "git does not version; list any it missed in database_paths")
            return
        name = os.path.basename(path)
        if name.endswith(_SIDECARS) or (name.startswith(".") and ".tmp" in name):
            return
        dot = name.rfind(".")
        suffix = name[dot:].lower() if dot > 0 else ""
        if suffix in _OTHERS:
            return
        if suffix not in HINTS:
            if self.probes >= MAX_PROBES:  # still looking at the names that say database
                self.incomplete = self.incomplete or (
                    f"only {MAX_PROBES} files not named like a database (.db, .sqlite, "
                    ".sqlite3, .db3) were read for a SQLite header; list any database it "
                    "missed in database_paths")
                return
            try:
                status = os.lstat(path)
            except OSError:
                return
            if status.st_size < _MIN_SIZE or not stat.S_ISREG(status.st_mode):
                return
            self.probes += 1
        elif os.path.islink(path):
            return
        if is_sqlite(Path(path)):
            self.found.append(path)
