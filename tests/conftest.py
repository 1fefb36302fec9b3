"""Real git worlds for the tests: a bare origin, a release-side clone, a deployment clone.

The template world is built once per session and copied per test. Git runs with an isolated
config and pinned dates, so the tests see the same repositories on every machine.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ISOLATED_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Release Side",
    "GIT_AUTHOR_EMAIL": "release@example.invalid",
    "GIT_COMMITTER_NAME": "Release Side",
    "GIT_COMMITTER_EMAIL": "release@example.invalid",
    "GITRELEASE_ROOT": "",
    "GITRELEASE_DATA_DIR": "",
    # No test reaches a package index: pip finds packages only where a test points it.
    "PIP_NO_INDEX": "1",
    "PIP_FIND_LINKS": "",
}
for _key, _value in ISOLATED_ENV.items():
    if _value:
        os.environ[_key] = _value
    else:
        os.environ.pop(_key, None)
# What gitrelease remembers between runs (an interpreter's pip freeze) stays in this run's
# own folder, never in the home of whoever runs the tests.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="gitrelease-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)

ENV_SECRET = "DISCORD_TOKEN=super-secret-token-value\n"
REPO_ROOT = Path(__file__).resolve().parents[1]
# The real-bot world (fixtures realbot, realbot_packages) and a real PostgreSQL server
# (pg_server, pg_url).
pytest_plugins = ["tests.realbot", "tests.pg", "tests.s3"]


def kill_at(deploy: Path, point: str, *args: str) -> None:
    """Run `gitrelease --root DEPLOY ARGS` until it reaches pause point `point`, then
    SIGKILL it: a crash at a chosen step, for real."""
    marker = deploy.parent / f"paused-{point.replace(':', '-')}"
    process = subprocess.Popen(
        [sys.executable, "-m", "gitrelease", "--root", str(deploy), *args], cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "GITRELEASE_PAUSE_AT": point, "GITRELEASE_PAUSE_MARKER": str(marker)})
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), f"gitrelease {' '.join(args)} never reached {point}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def guilds(deploy: Path) -> list[tuple]:
    """The rows of the bot's own database in the test world."""
    with sqlite3.connect(deploy / "data" / "app.db") as db:
        result = db.execute("SELECT * FROM guilds ORDER BY id").fetchall()
    db.close()
    return result


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    )
    return result.stdout.strip()


@dataclass
class World:
    base: Path
    origin: Path
    release: Path
    deploy: Path
    clock: int = 0

    # -- release side ----------------------------------------------------------------------

    def _dates(self) -> dict[str, str]:
        self.clock += 1
        stamp = f"2024-01-01T00:{self.clock // 60:02d}:{self.clock % 60:02d}+0000"
        return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for path, content in (files or {"CHANGES": f"{message}\n"}).items():
            target = self.release / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path == "CHANGES":
                with target.open("a") as handle:
                    handle.write(content)
            else:
                target.write_text(content)
        git(self.release, "add", "--all")
        git(self.release, "commit", "--quiet", "--allow-empty", "-m", message, env=self._dates())
        return git(self.release, "rev-parse", "HEAD")

    def tag(self, name: str, message: str | None = None, *, force: bool = False) -> None:
        args = ["tag"] + (["--force"] if force else [])
        if message is None:
            git(self.release, *args, name, env=self._dates())
        else:
            git(self.release, *args, "--annotate", name, "-m", message, env=self._dates())

    def release_version(self, version: str, message: str, *commits: str) -> str:
        """Commits (each a message), VERSION bumped, annotated tag v<version> pushed."""
        for subject in commits:
            self.commit(subject)
        sha = self.commit(f"chore: release {version}", {"VERSION": f"{version}\n"})
        self.tag(f"v{version}", message)
        self.push()
        return sha

    def push(self, *, force: bool = False) -> None:
        args = ["push", "--quiet"] + (["--force"] if force else []) + ["origin", "main", "--tags"]
        git(self.release, *args)

    # -- deployment side -------------------------------------------------------------------

    def head(self) -> str:
        return git(self.deploy, "rev-parse", "HEAD")

    def tag_commit(self, name: str, repo: Path | None = None) -> str:
        return git(repo or self.deploy, "rev-parse", f"{name}^{{commit}}")

    def state(self) -> dict[str, object]:
        """Everything an operation could change: HEAD, refs, every file, the index rows."""
        files: dict[str, str] = {}
        for path in sorted(self.deploy.rglob("*")):
            rel = path.relative_to(self.deploy).as_posix()
            kept = rel.startswith((".git/refs/", ".git/hooks/")) or rel in (
                ".git/HEAD", ".git/packed-refs", ".git/config", ".git/index")
            if rel.startswith(".git/") and not kept:
                continue
            if rel.startswith("data/update_manager.db"):
                continue  # compared by its rows below; SQLite's own files come and go
            if path.is_file():
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        index = self.deploy / "data" / "update_manager.db"
        rows: dict[str, int] = {}
        if index.exists():
            with sqlite3.connect(index) as db:
                for table in ("update_sessions", "session_steps", "audit_log", "backups"):
                    rows[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
            db.close()
        return {
            "head": self.head(),
            "refs": git(self.deploy, "for-each-ref", "--format=%(refname) %(objectname)"),
            "files": files,
            "index": rows,
        }


def new_world(base: Path) -> World:
    """An empty world under `base`: a bare origin and a release-side clone on `main`; the
    deployment is cloned by the caller once the releases are pushed."""
    world = World(base, base / "origin.git", base / "release", base / "deploy")
    git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(world.origin))
    git(base, "clone", "--quiet", str(world.origin), str(world.release))
    git(world.release, "checkout", "--quiet", "-b", "main")
    return world


def copy_world(template: World, base: Path) -> World:
    """A private copy of a template world, remotes pointing at the copy's own origin."""
    shutil.copytree(template.base, base, symlinks=True)
    copy = World(base, base / "origin.git", base / "release", base / "deploy", template.clock)
    for clone in (copy.release, copy.deploy):
        git(clone, "remote", "set-url", "origin", str(copy.origin))
    return copy


def _build_template(base: Path) -> World:
    world = new_world(base)
    world.commit("feat: first bot", {
        ".gitignore": "/data/*\n!/data/.gitkeep\n.env\n",
        "data/.gitkeep": "",
        "bot.py": "print('hello')\n",
        "pyproject.toml": '[project]\nname = "bot"\nversion = "0"\nrequires-python = ">=3.11"\n'
                          'dependencies = ["discord.py>=2.3"]\n',
    })
    world.release_version("1.0.0", "First release")
    world.release_version("1.1.0", "Second release", "feat: ping")
    world.release_version("1.9.0", "Ninth release", "fix: typo")
    world.release_version("1.10.0", "Tenth release: new /stats", "feat: stats command",
                          "fix: stats rounding")
    world.release_version("2.0.0rc1", "Release candidate", "feat!: slash commands only")
    world.tag("nightly")  # not a release tag at all
    world.tag("vnext", "matches the glob, but is no PEP 440 version")
    world.push()
    git(base, "clone", "--quiet", str(world.origin), str(world.deploy))
    git(world.deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.0.0")
    (world.deploy / ".env").write_text(ENV_SECRET)
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("CREATE TABLE guilds (id INTEGER PRIMARY KEY, prefix TEXT)")
        db.executemany("INSERT INTO guilds VALUES (?, ?)", [(1, "!"), (2, "?")])
    db.close()
    return world


@pytest.fixture(scope="session")
def template_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def world(template_world: World, tmp_path: Path) -> Iterator[World]:
    """A private copy of the template world, remotes pointing at the copy's own origin."""
    yield copy_world(template_world, tmp_path / "world")


# -- a bot process, for the restart tests ---------------------------------------------------

BOT = Path(__file__).with_name("botproc.py")
SIGTERM_EXIT = 128 + signal.SIGTERM


class Bot:
    def __init__(self, world: World, mode: str) -> None:
        self.ready = world.base / f"bot-ready-{time.monotonic_ns()}"
        self.process = subprocess.Popen(
            [sys.executable, str(BOT), str(world.deploy / "data"), mode, str(self.ready)],
            cwd=world.deploy)
        deadline = time.time() + 30
        while not self.ready.exists() and time.time() < deadline:
            assert self.process.poll() is None, "the bot died at start"
            time.sleep(0.02)
        assert self.ready.exists()

    def wait(self) -> int:
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.stop()
