"""What a backup holds: the state git does not version, sorted into databases, config, data, logs.

Member names say where a file lives: ``data/<path>`` under the data dir, ``logs/<path>``
under an update-logs folder outside it (`update_logs_path` may be anywhere, on another disk),
``root/<path>`` under the deployment root; people are shown the path from the bot's root, or
the absolute path of what lives outside it (`Layout.shown`).
The index, backups, locks, temp files and SQLite's own ``-wal`` ``-shm`` ``-journal`` files
are never members (a database is captured whole by its snapshot). Databases are every SQLite
file of the data dir, the configured `database_paths`, and those found among the checkout's
untracked and ignored files (`databases.find_databases`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gitrelease.core.errors import InvalidSetting
from gitrelease.core.models import BackupType
from gitrelease.core.settings import Settings
from gitrelease.index import INDEX_NAME
from gitrelease.state.databases import HINTS, find_databases, is_skipped, is_sqlite

__all__ = ["KINDS_OF", "Gathered", "Layout", "LinkInTheWay", "Source", "collect", "gather",
           "would_hold"]

#: The member kinds each backup type holds.
KINDS_OF = {
    BackupType.DATABASE: {"database"},
    BackupType.CONFIG: {"config"},
    BackupType.DATA_ONLY: {"data"},
    BackupType.FULL: {"database", "config", "data"},
}
_SIDECARS = ("-wal", "-shm", "-journal")
_RUNTIME_FILES = {"gitrelease.lock", "gitrelease.lock.json", "bot.pid", INDEX_NAME,
                  "bad_releases.json", "audit_cache.json", "last_check.json",
                  # About the running process, never about the data: restoring one would
                  # bring back a start that no longer waits, or a restart nobody asked for.
                  "restart_pending.json", "restart_request.json",
                  # The `*` that keeps the data dir out of the bot's `git status`.
                  ".gitignore"}


class LinkInTheWay(ValueError):
    """A folder on the way to a member's live path is a symbolic link (`link`)."""

    def __init__(self, member: str, link: Path) -> None:
        super().__init__(f"{member!r} would be written through the symbolic link {link}")
        self.link = link


@dataclass(frozen=True)
class Layout:
    """Where a deployment keeps things, resolved once from the settings."""

    root: Path
    data_dir: Path
    backup_dir: Path
    logs_dir: Path
    # setting -> the file it was set in: what an error about a configured path names
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, root: Path, data_dir: Path, settings: Settings,
           sources: Mapping[str, str] | None = None) -> Layout:
        """Where backups and logs go; a bad path is an InvalidSetting naming the file it was
        set in (`sources`: setting -> file, as `LoadedSettings` has them)."""
        known = dict(sources or {})
        backups = _place(root, data_dir, settings.backup_path, "backup_path",
                         _source(known, "backup_path"))
        logs = _place(root, data_dir, settings.update_logs_path, "update_logs_path",
                      _source(known, "update_logs_path"))
        for key, path in (("backup_path", backups), ("update_logs_path", logs)):
            if path in (root, data_dir) or data_dir.is_relative_to(path) or \
                    root.is_relative_to(path):
                raise InvalidSetting(_source(known, key), key, f"is {path}, which holds the "
                                     "deployment or its data dir; it needs a directory of "
                                     "its own")
        return cls(root, data_dir, backups, logs, known)

    def source(self, key: str) -> str:
        """The file setting `key` came from, as errors name it."""
        return _source(self.sources, key)

    def member_name(self, path: Path) -> str:
        if path.is_relative_to(self.data_dir):
            return "data/" + path.relative_to(self.data_dir).as_posix()
        if path.is_relative_to(self.logs_dir):
            return "logs/" + path.relative_to(self.logs_dir).as_posix()
        return "root/" + path.relative_to(self.root).as_posix()

    def shown(self, member: str) -> str:
        """A member as the operator knows it: its path from the bot's root (``.env``,
        ``data/app.db``), absolute when it lives outside the checkout."""
        try:
            path = self.live_path(member)
        except ValueError:
            return member
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) \
            else str(path)

    def live_path(self, member: str) -> Path:
        """Where a member is restored to (the name only; `restorable` decides if it may be)."""
        _area, _, rest = member.partition("/")
        relative = PurePosixPath(rest)
        if not rest or relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"not a member name: {member!r}")
        return self.base_of(member).joinpath(*relative.parts)

    def base_of(self, member: str) -> Path:
        """The folder a member's name is below: the data dir, the logs or the root."""
        base = {"data": self.data_dir, "root": self.root,
                "logs": self.logs_dir}.get(member.partition("/")[0])
        if base is None:
            raise ValueError(f"not a member name: {member!r}")
        return base

    def is_config(self, member: str, settings: Settings) -> bool:
        """Whether a member is one of the config files (.env, data/settings.toml,
        config_paths, the live files of config_templates), by where it goes, whatever an
        archive calls it: those are 0600 when restored."""
        try:
            path = self.live_path(member)
        except ValueError:
            return False
        configured = [*settings.config_paths, *settings.config_templates.values()]
        return path in {self.root / ".env", self.data_dir / "settings.toml"} or any(
            path == self.root.joinpath(*PurePosixPath(c).parts) for c in configured)

    def restorable(
        self, member: str, settings: Settings, tracked: frozenset[str],
        kind: str | None = None,
    ) -> Path:
        """The live path of a member a gitrelease backup could hold, else ValueError.

        An archive is only data: whatever its manifest says, a restore never writes into
        .git, over versioned files, over the index, locks, backups or logs, anywhere else
        in the root than the configured config and database files and where a backup could
        have found a database (`_could_be_found`), or through a symlinked directory.
        """
        path = self.live_path(member)
        relative = path.relative_to(self.root) if path.is_relative_to(self.root) else None
        if ".git" in PurePosixPath(member).parts:
            raise ValueError(f"{member!r} is inside .git")
        if relative is not None and relative.as_posix() in tracked:
            raise ValueError(f"{member!r} is a versioned file; git restores those")
        if member.startswith("root/"):
            allowed = {".env", *settings.config_paths, *settings.database_paths,
                       *settings.config_templates.values()}
            name = PurePosixPath(member.removeprefix("root/"))
            if name.as_posix() not in {PurePosixPath(a).as_posix() for a in allowed} and not (
                    kind == "database" and self._could_be_found(name, path)):
                raise ValueError(f"{member!r} is not a configured config or database file")
        reserved = (self.backup_dir, self.logs_dir)
        if any(path == r or path.is_relative_to(r) for r in reserved) and not (
                path.is_relative_to(self.logs_dir) and path.suffix == ".log"):
            raise ValueError(f"{member!r} is inside the backups or logs")
        if path.parent == self.data_dir and (path.name in _RUNTIME_FILES
                                             or path.name.startswith(INDEX_NAME)):
            raise ValueError(f"{member!r} is gitrelease's own state")
        base = self.base_of(member)
        for parent in reversed([*path.relative_to(base).parents][:-1]):
            if (base / parent).is_symlink():
                raise LinkInTheWay(member, base / parent)
        return path

    def _could_be_found(self, name: PurePosixPath, path: Path) -> bool:
        """Whether a database member of the root is where `find_databases` could have found
        one: named like a database, or where a SQLite file is now, not through a link, and
        outside virtual environments and caches. (What is restored there must be SQLite too:
        the restore checks the staged file.) A script passed off as a database goes nowhere."""
        if is_skipped(name) or path.is_symlink() or any(
                (p / "pyvenv.cfg").is_file() for p in path.parents
                if p.is_relative_to(self.root) and p != self.root):
            return False  # the search follows no link, and neither does a restore of it
        return name.suffix.lower() in HINTS or is_sqlite(path)


@dataclass(frozen=True)
class Source:
    path: Path
    name: str
    kind: str
    size: int


def _source(sources: Mapping[str, str], key: str) -> str:
    return sources.get(key, "settings")


def _place(root: Path, data_dir: Path, configured: str, key: str, source: str) -> Path:
    """Backups and logs may live on another disk (an absolute path); a relative path that
    starts with "data/" is inside the data dir wherever GITRELEASE_DATA_DIR puts it."""
    relative = PurePosixPath(configured)
    if not relative.is_absolute() and relative.parts[:1] == ("data",) and \
            ".." not in relative.parts:
        return data_dir.joinpath(*relative.parts[1:])
    return _under(root, configured, key, absolute_ok=True, source=source)


def _under(root: Path, configured: str, key: str, *, absolute_ok: bool = False,
           source: str = "settings") -> Path:
    relative = PurePosixPath(configured)
    if absolute_ok and relative.is_absolute() and ".." not in relative.parts:
        return Path(configured)
    if relative.is_absolute() or ".." in relative.parts:
        raise InvalidSetting(source, key, f"is {configured!r}; it must be a path inside "
                             "the deployment root, without '..'")
    return root.joinpath(*relative.parts)


def _walk(directory: Path, skip: set[Path]) -> Iterator[Path]:
    """Regular files under `directory`, not following symlinks, skipping whole subtrees."""
    if not directory.is_dir():
        return
    for current, dirs, files in os.walk(directory):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if here / d not in skip)
        for name in sorted(files):
            path = here / name
            if path.is_file() and not path.is_symlink():
                yield path


def _is_runtime(path: Path, layout: Layout) -> bool:
    name = path.name
    if path.parent == layout.data_dir and name in _RUNTIME_FILES:
        return True
    if name.startswith(INDEX_NAME):  # the index and its -wal, -shm
        return True
    return name.startswith(".") and ".tmp" in name


def _configured(layout: Layout, paths: list[str], key: str) -> list[Path]:
    found = []
    for configured in paths:
        path = _under(layout.root, configured, key, source=layout.source(key))
        if path.is_file():
            found.append(path)
    return found


@dataclass(frozen=True)
class Gathered:
    """What a backup of one type would take, and what it has to say about it."""

    sources: list[Source]
    warnings: list[str] = field(default_factory=list)


def collect(
    layout: Layout, settings: Settings, backup_type: BackupType, *, include_logs: bool,
    tracked: frozenset[str] = frozenset(), unversioned: list[str] | None = None,
) -> list[Source]:
    """Every file a backup of this type takes, with its member name and kind."""
    return gather(layout, settings, backup_type, include_logs=include_logs, tracked=tracked,
                  unversioned=unversioned).sources


def gather(
    layout: Layout, settings: Settings, backup_type: BackupType, *, include_logs: bool,
    tracked: frozenset[str] = frozenset(), unversioned: list[str] | None = None,
) -> Gathered:
    """`collect`, with a warning for each kind the type holds that was not found at all
    (never a backup silently without its database) and for a search cut short.

    `unversioned`: what git does not version in the checkout (`GitRepo.unversioned`), where
    databases outside the data dir are looked for; None walks the checkout instead.
    """
    kinds = set(KINDS_OF[backup_type]) | ({"log"} if include_logs else set())
    chosen: dict[Path, str] = {}
    skip = {layout.backup_dir, layout.logs_dir}
    databases = [p for p in _walk(layout.data_dir, skip)
                 if not _is_runtime(p, layout) and not p.name.endswith(_SIDECARS)
                 and is_sqlite(p)]
    databases += [p for p in _configured(layout, settings.database_paths, "database_paths")
                  if is_sqlite(p)]
    found = find_databases(layout.root, unversioned, tracked=tracked,
                           skip={layout.data_dir, *skip}) \
        if "database" in kinds else None
    if found is not None:
        databases += [p for p in found.databases if not _is_runtime(p, layout)]
    sidecars = {Path(f"{db}{suffix}") for db in databases for suffix in _SIDECARS}
    for path in databases:
        chosen.setdefault(path, "database")
    config = [layout.root / ".env", layout.data_dir / "settings.toml"]
    config += _configured(layout, settings.config_paths, "config_paths")
    config += _configured(layout, list(settings.config_templates.values()), "config_templates")
    for path in config:
        # A config file may be a symlink to where the operator keeps secrets: its content
        # is what is backed up, and a restore writes through that same link (the manifest
        # records where it pointed: `placing.target_of`).
        if path.is_file():
            chosen.setdefault(path, "config")
    for path in _walk(layout.logs_dir, set()):
        chosen.setdefault(path, "log")
    for path in _walk(layout.data_dir, skip):
        if path in chosen or path in sidecars or _is_runtime(path, layout):
            continue
        chosen[path] = "log" if path.suffix == ".log" else "data"
    def versioned(path: Path) -> bool:
        return path.is_relative_to(layout.root) and \
            path.relative_to(layout.root).as_posix() in tracked

    sources = [
        Source(path, layout.member_name(path), kind, path.stat().st_size)
        for path, kind in chosen.items() if kind in kinds and not versioned(path)
    ]
    held = {s.kind for s in sources}
    warnings = []
    if "database" in kinds and "database" not in held:
        warnings.append(
            "no SQLite database was found (looked in the data dir, database_paths and every "
            "file git does not version in the checkout): this backup holds no database")
    if "config" in kinds and "config" not in held:
        warnings.append("no config file was found (.env, data/settings.toml, config_paths): "
                        "this backup holds no config")
    if found is not None and found.incomplete:
        warnings.append(found.incomplete)
    return Gathered(sources, warnings)


#: How many names of one kind `would_hold` lists before it counts the rest.
_SHOWN = 20


def would_hold(
    layout: Layout, settings: Settings, *, tracked: frozenset[str] = frozenset(),
    unversioned: list[str] | None = None,
) -> dict[str, list[str]]:
    """What a full backup would hold now, by kind, as paths from the bot's root:
    ``{"databases": [...], "config": [...], "data": [...]}`` (past 20 of a kind, the rest
    are counted: ``"and 130 more"``)."""
    gathered = gather(layout, settings, BackupType.FULL, include_logs=False, tracked=tracked,
                      unversioned=unversioned)
    holds: dict[str, list[str]] = {"databases": [], "config": [], "data": []}
    key = {"database": "databases", "config": "config", "data": "data"}
    for source in sorted(gathered.sources, key=lambda s: s.name):
        holds[key[source.kind]].append(layout.shown(source.name))
    for name, shown in holds.items():
        if len(shown) > _SHOWN:
            holds[name] = [*shown[:_SHOWN], f"and {len(shown) - _SHOWN} more"]
    return holds
