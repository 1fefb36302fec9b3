"""What every figure is handed: the scale, how many rounds, and the worlds, built on demand.

A world is built the first time a figure asks for it, so `--only` builds only what that
figure needs. In a kept work dir (`--workdir`) a world built before is reused: a marker file
records that it was finished.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks import world
from tests.benchmarks.world import QUICK, Deployment, Scale

__all__ = ["Bench"]


@dataclass
class Bench:
    scale: Scale
    base: Path
    heavy_rounds: int  # operations over the whole state
    light_rounds: int  # in-process calls and short processes
    built: dict[str, Any] = field(default_factory=dict)  # what each world holds

    def _world(self, name: str, build: Any) -> Any:
        marker = self.base / f"built-{name}.json"
        if marker.exists():
            self.built[name] = json.loads(marker.read_text())
            return self.built[name]
        started = time.perf_counter()
        print(f"building {name} ...", end=" ", file=sys.stderr, flush=True)
        info = build()
        print(f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        marker.write_text(json.dumps(info))
        self.built[name] = info
        return info

    # -- the repository ------------------------------------------------------------------------

    @property
    def origin(self) -> Path:
        def build() -> dict[str, Any]:
            (self.base / "repo").mkdir(exist_ok=True)
            world.build_repo(self.base / "repo", self.scale)
            return {"commits": self.scale.commits, "files": self.scale.files,
                    "tags": self.scale.tags}

        self._world("repo", build)
        return self.base / "repo" / "origin.git"

    def tag(self, behind: int) -> str:
        """The release tag `behind` releases before the newest."""
        return f"v{world.version_of(self.scale.tags - 1 - behind)}"

    # -- deployments -----------------------------------------------------------------------------

    @property
    def plain(self) -> Deployment:
        """A deployment without state: the git figures need nothing else."""
        def build() -> dict[str, Any]:
            self._clone("plain")
            return {}

        self._world("plain", build)
        return Deployment(self.base / "plain")

    def _clone(self, name: str) -> Deployment:
        target = self.base / name
        if target.exists():
            shutil.rmtree(target)  # left half-built by an interrupted run
        return world.clone_deployment(self.origin, target, self.tag(self.scale.behind))

    @property
    def deployment(self) -> Deployment:
        """A few releases behind the newest, with the whole state in data/ and .env."""
        def build() -> dict[str, Any]:
            return world.build_state(self._clone("deploy"), self.scale)

        self._world("deploy", build)
        return Deployment(self.base / "deploy")

    @property
    def small_deployment(self) -> Deployment:
        """The same repository with the quick run's state: memory must not grow with data."""
        if self.scale is QUICK:
            return self.deployment

        def build() -> dict[str, Any]:
            return world.build_state(self._clone("small"), QUICK)

        self._world("small", build)
        return Deployment(self.base / "small")

    @property
    def rollback_deployment(self) -> Deployment:
        """Only the database and .env: what the rollback figure restores."""
        def build() -> dict[str, Any]:
            deployment = self._clone("rollback")
            source = self.deployment
            shutil.copyfile(source.data / "app.db", deployment.data / "app.db")
            shutil.copyfile(source.root / ".env", deployment.root / ".env")
            return {"database": (deployment.data / "app.db").stat().st_size}

        self._world("rollback", build)
        return Deployment(self.base / "rollback")

    @property
    def index_deployment(self) -> Deployment:
        def build() -> dict[str, Any]:
            if (self.base / "index").exists():
                shutil.rmtree(self.base / "index")
            world.build_index_world(self.base, self.scale)
            return {"backups": self.scale.backups, "sessions": self.scale.sessions}

        self._world("index", build)
        return Deployment(self.base / "index" / "deploy")

    def scratch(self, name: str) -> Path:
        """An empty directory for a baseline's output (emptied on every call)."""
        path = self.base / "scratch" / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path
