"""`Deployment`: what every operation works on, and nothing more.

One bot's git checkout, its data folder, its settings (with the layer each came from), its
index once opened, and the questions every operation asks of them: the releases seen, where
the data and backups are, which interpreter runs the bot. Operations take a `Deployment`,
never the facade (`gitrelease.manager`), so that nothing below the facade calls back up.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from gitrelease.core.beside import Beside, in_thread
from gitrelease.core.errors import GitReleaseError, InvalidSetting
from gitrelease.core.settings import LoadedSettings, Settings, load_settings
from gitrelease.git import releases
from gitrelease.git.records import FetchResult
from gitrelease.git.releases import ReleaseSnapshot
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import Channel, TagScheme
from gitrelease.git.worktree import deployment_root

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitrelease.core.text import Secrets
    from gitrelease.index.store import Store
    from gitrelease.state.backups import BackupService, ReleasePoint
    from gitrelease.state.sources import Layout
    from gitrelease.state.upkeep import UpkeepWatch

# The index (aiosqlite), host metrics (psutil) and even asyncio are imported where they are
# used: the CLI's `check` needs none of them, and CLI start-up time is part of the product.

__all__ = ["Deployment", "in_thread", "own_version"]


class Deployment:
    """One deployment: its checkout, data folder, settings and (once opened) index."""

    def __init__(
        self, repo: GitRepo, data_dir: Path, loaded: LoadedSettings, *,
        this_process_is_bot: bool = False,
    ) -> None:
        self.repo = repo
        self.root = repo.root
        self.data_dir = data_dir
        self.loaded = loaded
        self.this_process_is_bot = this_process_is_bot
        self.store: Store | None = None
        self.upkeep: UpkeepWatch | None = None  # for self.store, once it is open
        self._secrets: Secrets | None = None
        self._data_claimed = False  # see claim_data_dir
        # Awaited just before the bot is restarted: a rollout's agent waits there for its
        # shards' turn to log in (`deploy.agent`). None: restart at once.
        self.before_restart: Callable[[], Awaitable[None]] | None = None

    in_thread = staticmethod(in_thread)

    @classmethod
    def open(
        cls, root: Path | None, data_dir: Path | None, this_process_is_bot: bool = False
    ) -> Deployment:
        """The deployment at `root`, else $GITRELEASE_ROOT, else the git top-level of the
        cwd; its data in `data_dir`, else $GITRELEASE_DATA_DIR, else ROOT/data."""
        repo = GitRepo(deployment_root(root).resolve())
        try:
            if data_dir is None:
                env_data = os.environ.get("GITRELEASE_DATA_DIR")
                data_dir = Path(env_data) if env_data else repo.root / "data"
            loaded = load_settings(repo.root, data_dir)
            repo.timeout = loaded.settings.git_timeout
            deployment = cls(repo, data_dir, loaded, this_process_is_bot=this_process_is_bot)
            deployment.claim_data_dir()
            return deployment
        except BaseException:
            repo.close()
            raise

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    @property
    def secrets(self) -> Secrets:
        """What this deployment never shows or stores: the values of its `.env`, and the
        secrets in its settings marked secret (as they are now)."""
        from dataclasses import fields

        from gitrelease.core.settings import is_secret
        from gitrelease.core.text import Secrets, setting_secrets

        if self._secrets is None:
            self._secrets = Secrets(self.root / ".env")
        self._secrets.also = setting_secrets([getattr(self.settings, f.name)
                                              for f in fields(self.settings)
                                              if is_secret(f.name)])
        return self._secrets

    def reload_settings(self) -> Settings:
        """Read the settings again (blocking): a long-lived deployment sees later changes."""
        self.loaded = load_settings(self.root, self.data_dir)
        self.repo.timeout = self.loaded.settings.git_timeout
        return self.loaded.settings

    async def close(self) -> None:
        await in_thread(self.claim_data_dir)  # made by this run, perhaps
        if self.store is not None:
            await self.store.close()
            self.store = None
        self.repo.close()

    # -- the index -------------------------------------------------------------------------

    async def index(self) -> Store:
        """The index, opened once per deployment and created if missing."""
        if self.store is None:
            from gitrelease.index import open_store

            url, scope = self.index_location()
            self.store = await open_store(self.data_dir, url, scope, self.secrets,
                                          self.settings.index_busy_timeout)
            self.upkeep = None  # its stamps are those of a connection now gone
            await in_thread(self.claim_data_dir)
        return self.store

    async def existing_index(self) -> Store | None:
        """The index if there is one: read-only commands never create it."""
        from gitrelease.index import store_exists

        if self.store is None and not store_exists(self.data_dir, self.index_location()[0]):
            return None
        return await self.index()

    def index_location(self) -> tuple[str, str]:
        """The shared index's URL (GITRELEASE_INDEX_URL, else index_url; empty: SQLite in the
        data folder) and this deployment's name there (instance_id, else host:root)."""
        import os
        import socket

        url = os.environ.get("GITRELEASE_INDEX_URL") or self.settings.index_url
        return url, self.settings.instance_id or f"{socket.gethostname()}:{self.root}"

    # -- where things are ------------------------------------------------------------------

    def claim_data_dir(self) -> None:
        """Keep the data dir out of the bot's `git status` (and safe from `git clean -fd`):
        once it exists inside the checkout, wholly untracked and not ignored, it gets a
        ``.gitignore`` holding ``*``. A bot that tracks something there, or ignores it
        itself, is left as it is. Blocking (one git call, the first time only)."""
        from contextlib import suppress

        from gitrelease.core.fsutil import atomic_write

        if self._data_claimed or not self.data_dir.is_dir():
            return
        self._data_claimed = True
        data, root = self.data_dir.resolve(), self.root.resolve()
        if data == root or not data.is_relative_to(root) or (data / ".gitignore").exists():
            return
        inside = data.relative_to(root).as_posix() + "/"
        with suppress(GitReleaseError, OSError):  # a read-only checkout is no failure here
            if self.repo.unversioned(inside, ignored=False) == [inside]:
                atomic_write(data / ".gitignore", b"*\n", mode=0o644)

    def layout(self) -> Layout:
        """Where the data, backups and logs are; a bad path names the file it was set in."""
        from gitrelease.state.sources import Layout

        return Layout.of(self.root, self.data_dir, self.settings, self.loaded.sources)

    def backups(self, store: Store) -> BackupService:
        from gitrelease.state.backups import BackupService

        return BackupService(
            self.layout(), self.settings, store,
            python=self.python_executable(),
            gitrelease_version=own_version(), tracked_files=self.repo.tracked_files,
            unversioned=self.repo.unversioned)

    async def release_point(self) -> ReleasePoint:
        """The release HEAD is at, as a backup records it."""
        from gitrelease.state.backups import ReleasePoint

        current = (await in_thread(self.snapshot)).current
        return ReleasePoint(current.tag, current.commit, current.text)

    # -- releases --------------------------------------------------------------------------

    def snapshot(self) -> ReleaseSnapshot:
        """The release tags as they are locally, with the releases marked bad left out."""
        from gitrelease.deploy.quarantine import load_bad

        scheme = TagScheme.parse(self.settings.tag_pattern)
        bad = {commit: b.reason for commit, b in load_bad(self.data_dir, self.secrets).items()}
        return releases.snapshot(self.repo, scheme, Channel(self.settings.channel), bad)

    def fetch(self) -> FetchResult:
        return self.repo.fetch_tags(self.settings.remote, self.settings.fetch_timeout)

    def fetch_unless_current(self, local: Beside[ReleaseSnapshot]) -> FetchResult | None:
        """`fetch`, unless every tag the remote has is in the `local` listing, naming the
        same object: then None, and that listing is the remote's too. With many tags, a
        fetch that brings nothing costs twice what listing them does (`ls-remote`: one round
        trip, no negotiation, no connectivity walk)."""
        remote = self.repo.remote_tags(self.settings.remote, self.settings.fetch_timeout)
        if remote is not None and local.succeeds():
            known = local.result().tags
            if all(known.get(name) == oid for name, oid in remote.items()):
                return None
        return self.fetch()

    def remote_url(self) -> str | None:
        try:
            return self.repo.remote_url(self.settings.remote)
        except GitReleaseError:
            return None

    # -- settings and the interpreter ------------------------------------------------------

    def inert_settings(self) -> list[str]:
        """Settings given a value although this version does not act on them yet."""
        from gitrelease.core.settings import INERT

        return [f"setting {name} = {self.settings.get(name)!r} has no effect in this version "
                f"(set in {self.loaded.sources[name]})"
                for name in INERT if self.loaded.sources[name] != "default"]

    def python_executable(self) -> str:
        """The deployment's interpreter: the setting, else the one running gitrelease."""
        return self.settings.python_executable or sys.executable

    def deployment_python(self) -> Version:
        executable = self.settings.python_executable
        if not executable:
            return Version(platform.python_version())
        try:
            out = subprocess.run(
                [executable, "-c", "import platform; print(platform.python_version())"],
                capture_output=True, text=True, timeout=30, check=True).stdout
            return Version(out.strip())
        except (OSError, subprocess.SubprocessError, InvalidVersion):
            raise InvalidSetting(self.loaded.sources["python_executable"], "python_executable",
                                 f"is {executable!r}, which is not a working Python "
                                 "interpreter") from None


@cache
def own_version() -> str:
    """The installed gitrelease's version, read once: the code running is the code that was
    imported, whatever an upgrade has since put on disk (parsing the metadata costs ~1 ms)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gitrelease")
    except PackageNotFoundError:
        return "unknown"
