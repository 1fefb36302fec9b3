"""`gitrelease demo`: a throw-away world that shows check -> install -> rollback for real.

It builds a bare origin, a release-side clone that commits and pushes annotated tags, and a
deployment clone at the first release with an untracked ``.env`` and ``data/app.db``; then
runs the real engine on it: an install leaves the bot's data untouched, the new release writes
to its database, and a rollback brings code and data back together. All of it lives in a
temporary folder that is deleted at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["build_world", "run_demo"]

_IDENTITY = {
    "GIT_AUTHOR_NAME": "Release Bot", "GIT_AUTHOR_EMAIL": "release@example.invalid",
    "GIT_COMMITTER_NAME": "Release Bot", "GIT_COMMITTER_EMAIL": "release@example.invalid",
}
# The operator's own git config (signing, hooks, templates) has no place in a throw-away world.
_ISOLATED = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

_RELEASES = (
    ("1.0.0", "First release", [("bot.py", "print('hello')\n", "feat: first bot")]),
    ("1.1.0", "Latency in /ping; reconnects after gateway timeouts", [
        ("bot.py", "print('hello, ping')\n", "feat: /ping shows latency"),
        ("reconnect.py", "RETRIES = 5\n", "fix: reconnect after gateway timeout"),
    ]),
    ("1.2.0", "Security fix: the token is no longer logged", [
        ("bot.py", "print('hello, ping, safe')\n", "fix(security): never log the bot token"),
    ]),
    ("2.0.0rc1", "Release candidate of 2.0: slash commands only", [
        ("bot.py", "print('slash only')\n", "feat!: slash commands only"),
    ]),
)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **_ISOLATED, **_IDENTITY})


def build_world(base: Path) -> Path:
    """Build origin, release side and deployment under `base`; return the deployment root."""
    origin, release, deploy = base / "origin.git", base / "release", base / "deployment"
    _git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    _git(base, "clone", "--quiet", str(origin), str(release))
    _git(release, "checkout", "--quiet", "-b", "main")
    (release / ".gitignore").write_text("/data/*\n!/data/.gitkeep\n.env\n")
    (release / "data").mkdir()
    (release / "data" / ".gitkeep").write_text("")
    (release / ".env.example").write_text("DISCORD_TOKEN=\n")
    (release / "pyproject.toml").write_text(
        '[project]\nname = "demo-bot"\nversion = "0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["discord.py>=2.3"]\n')
    _git(release, "add", "--all")
    for version, message, commits in _RELEASES:
        for path, content, subject in commits:
            (release / path).write_text(content)
            (release / "VERSION").write_text(version + "\n")
            _git(release, "add", "--all")
            _git(release, "commit", "--quiet", "-m", subject)
        _git(release, "tag", "--annotate", f"v{version}", "-m", message)
    _git(release, "tag", "nightly")  # not a release tag: ignored
    _git(release, "push", "--quiet", "origin", "main", "--tags")

    _git(base, "clone", "--quiet", str(origin), str(deploy))
    _git(deploy, "-c", "advice.detachedHead=false", "checkout", "--quiet", "v1.0.0")
    (deploy / ".env").write_text("DISCORD_TOKEN=demo-token-not-a-secret\n")
    with sqlite3.connect(deploy / "data" / "app.db") as db:
        db.execute("CREATE TABLE guilds (id INTEGER PRIMARY KEY, prefix TEXT)")
        db.executemany("INSERT INTO guilds VALUES (?, ?)", [(1, "!"), (2, "?")])
    db.close()
    return deploy


def _rows(deploy: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(deploy / "data" / "app.db") as db:
        rows = db.execute("SELECT id, prefix FROM guilds ORDER BY id").fetchall()
    db.close()
    return rows


def _new_release_writes(deploy: Path) -> None:
    """What a bot does once it runs the new release: it writes to its database."""
    with sqlite3.connect(deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (3, '$')")
    db.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@contextmanager
def _isolated_git() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _ISOLATED}
    os.environ.update(_ISOLATED)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(*, keep: bool = False, as_json: bool = False) -> int:
    from gitrelease.cli.render import render_backups, render_check, render_session, render_status
    from gitrelease.manager import InstallOptions, ReleaseManager

    base = Path(tempfile.mkdtemp(prefix="gitrelease-demo-"))
    out = sys.stdout

    def say(text: str = "") -> None:
        if not as_json:
            print(text, file=out)

    async def show() -> dict[str, object]:
        deploy = build_world(base)
        say(f"Built a throw-away origin with releases v1.0.0, v1.1.0, v1.2.0 and v2.0.0rc1,\n"
            f"and a deployment at v1.0.0 with .env and data/app.db, in {base}\n"
            f"({'kept' if keep else 'deleted'} when the demo ends"
            f"{'' if keep else '; --keep keeps it'}).\n")
        state = [deploy / ".env", deploy / "data" / "app.db"]
        before = {p.name: _digest(p) for p in state}
        rows_before = _rows(deploy)
        async with await ReleaseManager.open(deploy) as manager:
            say("$ gitrelease check")
            report = await manager.check_for_updates("bot")
            say(render_check(report) + "\n")
            say("$ gitrelease install --type bot")
            session = await manager.install_updates(
                "bot", InstallOptions(initiated_by="demo"),
                progress=lambda step, pct, detail: say(f"  [{pct:>3}%] {step}: {detail}"))
            say(render_session(session) + "\n")  # type: ignore[arg-type]
            installed = {p.name: _digest(p) for p in state}
            for name in before:
                verdict = "unchanged" if before[name] == installed[name] else "CHANGED"
                say(f"{name}: sha256 {before[name]} before the install, {installed[name]} "
                    f"after: {verdict}")
            _new_release_writes(deploy)
            say(f"\nThe bot, now at {session.target_version}, writes to its database: "
                f"{len(rows_before)} rows -> {len(_rows(deploy))}.\n")
            say("$ gitrelease backup list")
            backups = await manager.list_backups()
            say(render_backups(backups) + "\n")
            say("$ gitrelease rollback previous --yes")
            rolled = await manager.rollback_to_version(
                "previous", {"confirm": True, "initiated_by": "demo"},
                progress=lambda step, pct, detail: say(f"  [{pct:>3}%] {step}: {detail}"))
            say(render_session(rolled) + "\n")
            rows_after = _rows(deploy)
            say(f"Rows after the rollback: {len(rows_after)} "
                f"({'as before the install' if rows_after == rows_before else 'CHANGED'}): "
                "the code and the data went back together.\n")
            say("$ gitrelease status --history")
            info = await manager.get_update_status(show_history=True)
            say(render_status(info) + "\n")
        env_after = _digest(deploy / ".env")
        say(f".env: sha256 {before['.env']} at the start, {env_after} at the end: "
            f"{'as before' if env_after == before['.env'] else 'CHANGED'}")
        say(f"app.db: rows {rows_before} at the start, {rows_after} at the end: "
            f"{'as before' if rows_after == rows_before else 'CHANGED'} (the file's header "
            "differs: SQLite wrote the pages that differed back in one transaction, with a "
            "new schema cookie for the bot's open connections)")
        return {"check": report.to_dict(), "install": session.to_dict(),
                "backups": [b.to_dict() for b in backups], "rollback": rolled.to_dict(),
                "status": info.to_dict(),
                "untracked_state_unchanged": before == installed,
                "rolled_back_with_data": rows_after == rows_before
                and env_after == before[".env"]}

    try:
        with _isolated_git():
            result = asyncio.run(show())
    finally:
        if keep:
            say(f"\nThe demo is kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
            say(f"\nDeleted {base}")
    if as_json:
        print(json.dumps(result, indent=2))
    return 0 if result["untracked_state_unchanged"] and result["rolled_back_with_data"] else 1
