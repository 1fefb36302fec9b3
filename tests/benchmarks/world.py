"""The data the benchmarks run on, built from nothing in a temporary directory.

Three worlds, each built only when a figure needs it:

- a **release repository** (bare origin built with ``git fast-import``: commits over files,
  an annotated ``v*`` tag every few commits) and a deployment clone a few releases behind;
- the **deployment state** git does not keep: a SQLite database (a ``messages`` table with an
  index), JSON files, random bytes and ``.env``, in the deployment's ``data/``;
- an **index** holding thousands of backups and update sessions, written through the
  store's own API, beside a tiny repository so that git costs stay out of the query figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "FULL",
    "ISOLATED_ENV",
    "QUICK",
    "Deployment",
    "Scale",
    "build_index_world",
    "build_repo",
    "build_state",
    "change_state",
    "clone_deployment",
    "git",
    "isolate",
]

# The tests' isolation (tests/conftest.py): no user or system git config, pinned identities.
ISOLATED_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Release Side",
    "GIT_AUTHOR_EMAIL": "release@example.invalid",
    "GIT_COMMITTER_NAME": "Release Side",
    "GIT_COMMITTER_EMAIL": "release@example.invalid",
    "PIP_NO_INDEX": "1",
}
_UNSET = ("GITRELEASE_ROOT", "GITRELEASE_DATA_DIR")
_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: commit and tag dates are pinned from here
ENV_TEXT = "DISCORD_TOKEN=benchmark-token-value\nDATABASE_URL=sqlite:///data/app.db\n"


def isolate() -> None:
    """Apply the isolated git environment to this process and every process it starts."""
    os.environ.update(ISOLATED_ENV)
    for key in _UNSET:
        os.environ.pop(key, None)


@dataclass(frozen=True)
class Scale:
    """How big each world is."""

    name: str
    commits: int
    files: int
    tag_every: int  # one annotated release tag every this many commits
    behind: int  # releases the deployment is behind the newest
    messages: int  # rows of the messages table
    json_files: int
    json_members: int  # records per JSON file (~150 bytes each)
    random_mb: int
    backups: int  # rows in the index world
    sessions: int

    @property
    def tags(self) -> int:
        return self.commits // self.tag_every


FULL = Scale("full", commits=10_000, files=5_000, tag_every=10, behind=5,
             messages=1_050_000, json_files=2_000, json_members=132, random_mb=50,
             backups=10_000, sessions=10_000)
QUICK = Scale("quick", commits=300, files=200, tag_every=10, behind=5,
              messages=20_000, json_files=100, json_members=132, random_mb=2,
              backups=500, sessions=500)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                            text=True)
    return result.stdout.strip()


def version_of(number: int) -> str:
    """The version of the `number`-th release (0-based): increasing with `number`."""
    return f"{1 + number // 100}.{number // 10 % 10}.{number % 10}"


# -- the repository ---------------------------------------------------------------------------


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def _stream(scale: Scale) -> bytes:
    """A fast-import stream: a first commit of every file, then small commits, with tags."""
    rng = random.Random(7)
    out = bytearray()
    people = "Release Side <release@example.invalid>"

    def stamp(n: int) -> str:
        return f"{people} {_EPOCH + n * 600} +0000"

    files = [f"bot/module_{i // 100:02d}/file_{i:05d}.py" for i in range(scale.files)]
    out += b"commit refs/heads/main\nmark :1\n"
    out += f"author {stamp(0)}\ncommitter {stamp(0)}\n".encode()
    out += _data("feat: first bot")
    out += b"M 100644 inline .gitignore\n" + _data("/data/*\n!/data/.gitkeep\n.env\n")
    out += b"M 100644 inline data/.gitkeep\n" + _data("")
    out += b"M 100644 inline pyproject.toml\n" + _data(
        '[project]\nname = "bench-bot"\nversion = "0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["discord.py>=2.3"]\n')
    for path in files:
        out += f"M 100644 inline {path}\n".encode() + _data(f"# {path}\nVALUE = 0\n")
    release = 0
    for n in range(2, scale.commits + 1):
        tagged = n % scale.tag_every == 0
        out += f"commit refs/heads/main\nmark :{n}\n".encode()
        out += f"author {stamp(n)}\ncommitter {stamp(n)}\n".encode()
        if tagged:
            version = version_of(release)
            out += _data(f"chore: release {version}")
            out += b"M 100644 inline VERSION\n" + _data(f"{version}\n")
        else:
            chosen = rng.sample(files, 2)
            out += _data(f"fix: adjust {chosen[0].rsplit('/', 1)[-1]}\n\nBody of commit {n}.")
            for path in chosen:
                out += f"M 100644 inline {path}\n".encode() + _data(
                    f"# {path}\nVALUE = {n}\n")
        if tagged:
            version = version_of(release)
            out += f"tag v{version}\nfrom :{n}\ntagger {stamp(n)}\n".encode()
            out += _data(f"Release {version}\n\n- fixes from commit {n - 9} to {n}")
            release += 1
    return bytes(out)


def build_repo(base: Path, scale: Scale) -> Path:
    """A bare origin holding `scale.commits` commits and `scale.tags` annotated tags."""
    origin = base / "origin.git"
    git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=origin, input=_stream(scale),
                   check=True, capture_output=True)
    return origin


@dataclass(frozen=True)
class Deployment:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def tag_of(self, behind: int, scale: Scale) -> str:
        """The release tag `behind` releases before the newest."""
        return f"v{version_of(scale.tags - 1 - behind)}"

    def checkout(self, ref: str) -> None:
        git(self.root, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach",
            ref)

    def write_settings(self, **values: object) -> None:
        """data/settings.toml (runtime overrides) with just these values."""
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        (self.data / "settings.toml").write_text("\n".join(lines) + "\n")


def clone_deployment(origin: Path, target: Path, tag: str) -> Deployment:
    git(origin.parent, "clone", "--quiet", str(origin), str(target))
    deployment = Deployment(target)
    deployment.checkout(tag)
    return deployment


# -- the state --------------------------------------------------------------------------------


def _vocabulary(rng: random.Random, size: int = 3000) -> tuple[list[str], list[float]]:
    """Made-up words with Zipf-like frequencies: text that compresses like chat does."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "an", "el", "or",
                 "qu", "th", "sh", "ch", "ba", "do", "fi", "gu", "hy", "jo", "pe", "wa"]
    words = sorted({"".join(rng.choices(syllables, k=rng.randint(1, 4)))
                    for _ in range(size * 2)})[:size]
    rng.shuffle(words)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    return words, cumulative


def _database(path: Path, rows: int, rng: random.Random) -> None:
    words, cumulative = _vocabulary(rng)
    choices, randint = rng.choices, rng.randint

    def messages():
        for i in range(1, rows + 1):
            text = " ".join(choices(words, cum_weights=cumulative, k=randint(4, 44)))
            yield (i, 1000 + i % 50, 5000 + randint(0, 399), 10_000 + randint(0, 19_999),
                   datetime.fromtimestamp(_EPOCH + i * 20, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                   text)

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE guilds (id INTEGER PRIMARY KEY, prefix TEXT)")
        db.executemany("INSERT INTO guilds VALUES (?, ?)", [(g, "!") for g in range(1000, 1050)])
        db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, guild_id INTEGER NOT NULL, "
                   "channel_id INTEGER NOT NULL, author_id INTEGER NOT NULL, "
                   "created_at TEXT NOT NULL, content TEXT NOT NULL)")
        db.execute("BEGIN")
        db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)", messages())
        db.execute("CREATE INDEX messages_channel ON messages (channel_id, created_at)")
        db.execute("COMMIT")
    finally:
        db.close()


def _json_files(directory: Path, count: int, members: int, rng: random.Random) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        document = {"guild_id": 1000 + n, "updated_at": "2024-06-01T12:00:00Z", "members": [
            {"id": 10_000_000 + rng.randrange(10**9), "name": f"member-{rng.randrange(10**6)}",
             "xp": rng.randrange(100_000), "level": rng.randrange(100),
             "roles": [rng.randrange(10**6) for _ in range(rng.randint(0, 3))],
             "joined": f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
            for _ in range(members)]}
        (directory / f"guild_{n:05d}.json").write_text(json.dumps(document, indent=2))


def build_state(deployment: Deployment, scale: Scale) -> dict[str, int]:
    """The deployment's untracked state; returns bytes per part."""
    rng = random.Random(11)
    data = deployment.data
    (deployment.root / ".env").write_text(ENV_TEXT)
    _database(data / "app.db", scale.messages, rng)
    _json_files(data / "json", scale.json_files, scale.json_members, rng)
    blobs = data / "blobs"
    blobs.mkdir()
    with (blobs / "random.bin").open("wb") as handle:
        for _ in range(scale.random_mb):
            handle.write(os.urandom(1024 * 1024))
    return {
        "database": (data / "app.db").stat().st_size,
        "json": sum(p.stat().st_size for p in (data / "json").iterdir()),
        "random": (blobs / "random.bin").stat().st_size,
    }


def change_state(deployment: Deployment, day: int, *, share: float = 0.01) -> list[Path]:
    """What a day of the bot's use changes, between a backup and its restore: `share` of the
    messages rewritten, the same share of the JSON files, and `.env`; always the same rows
    and files (with the day in their new content), so that days without a restore between
    them change no more than one does. Returns the live files changed (what a restore of the
    earlier backup replaces)."""
    data = deployment.data
    step = max(1, round(1 / share))
    db = sqlite3.connect(data / "app.db", isolation_level=None)
    try:
        db.execute("UPDATE messages SET content = ? || id WHERE id % ? = 0",
                   (f"edited on day {day}: message ", step))
    finally:
        db.close()
    changed = [data / "app.db", deployment.root / ".env"]
    folder = data / "json"
    for path in sorted(folder.iterdir() if folder.is_dir() else [])[::step]:
        document = json.loads(path.read_text())
        document["updated_at"] = f"2024-06-{1 + day % 28:02d}T12:{day % 60:02d}:00Z"
        path.write_text(json.dumps(document, indent=2))
        changed.append(path)
    (deployment.root / ".env").write_text(ENV_TEXT + f"LAST_CHANGE={day}\n")
    return changed


# -- the index --------------------------------------------------------------------------------


async def _fill_index(deployment: Deployment, scale: Scale) -> None:
    """Thousands of backups and sessions, written through the engine's own API."""
    from gitrelease.core.models import (
        Backup,
        BackupStatus,
        BackupType,
        UpdateSession,
        UpdateStatus,
        UpdateType,
        utcnow,
    )
    from gitrelease.manager import ReleaseManager

    rng = random.Random(13)
    now = utcnow()
    async with await ReleaseManager.open(deployment.root) as manager:
        # One real backup gives a real manifest (pip freeze included) to copy into every row.
        template = await manager.create_backup("full", {"backup_name": "template"})
        store = await manager.index()
        backup_dir = Path(template.file_path or "").parent
        kinds = list(BackupType)
        for n in range(scale.backups):
            created = now - timedelta(days=60) * (n / scale.backups) - timedelta(seconds=n)
            backup_id = f"backup_{created:%Y%m%d_%H%M%S}_{n}"
            archive = backup_dir / f"{backup_id}.tar.gz"
            archive.touch()
            await store.save_backup(Backup(
                id=backup_id, name=backup_id, backup_type=rng.choice(kinds),
                status=BackupStatus.COMPLETED, file_path=str(archive),
                file_size=rng.randrange(10**6, 10**9), compressed_size=rng.randrange(10**9),
                created_at=created, completed_at=created + timedelta(seconds=30),
                description=f"benchmark row {n}", checksum=template.checksum,
                auto_created=n % 3 == 0, metadata=template.metadata, tag=template.tag,
                commit=template.commit, verified_at=created))
        outcomes = [UpdateStatus.COMPLETED] * 8 + [UpdateStatus.FAILED, UpdateStatus.CANCELLED]
        types = [t for t in UpdateType if t is not UpdateType.DEPENDENCIES]
        for n in range(scale.sessions):
            started = now - timedelta(days=60) * (n / scale.sessions) - timedelta(seconds=n)
            await store.create_session(UpdateSession(
                id=f"upd_{n:06d}", update_type=rng.choice(types), status=rng.choice(outcomes),
                progress=100, started_at=started,
                completed_at=started + timedelta(seconds=rng.randint(5, 600)),
                target_version=version_of(n % 900 + 1), current_version=version_of(n % 900),
                error_message=None, steps_completed=["preflight", "backup", "checkout"],
                total_steps=8, rollback_available=True, initiated_by="benchmark",
                from_commit=f"{n:040x}", to_commit=f"{n + 1:040x}"))


def build_index_world(base: Path, scale: Scale) -> Deployment:
    """A tiny repository whose index holds `scale.backups` backups and `scale.sessions`
    sessions; the archives exist (empty), as the rows say."""
    tiny = Scale("tiny", commits=30, files=5, tag_every=10, behind=0, messages=10,
                 json_files=1, json_members=1, random_mb=0, backups=0, sessions=0)
    (base / "index").mkdir()
    origin = build_repo(base / "index", tiny)
    deployment = clone_deployment(origin, base / "index" / "deploy", f"v{version_of(2)}")
    (deployment.root / ".env").write_text(ENV_TEXT)
    asyncio.run(_fill_index(deployment, scale))
    return deployment


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
