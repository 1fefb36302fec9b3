"""No secret in any output: a release's health check that prints `.env`.

The deployment's `.env` holds a token and a quoted password beside values that are no
secrets (a prefix, a port, a log level). A release whose health check prints the file and
fails is installed through the real CLI; then every place its output reaches is read: the
CLI's own stderr and stdout, `status --history`, `journal` (text and --json), a later
`check` (which shows the bad release's reason), the log tail the Discord card shows, every
text column of the SQLite index read directly, and data/bad_releases.json. The secrets
appear in none of them; the plain values still do (redaction is not "hide everything").
The session's log keeps what the command printed, whole: it is the operator's own (0600).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitrelease.core.text import hidden_values, redact_values
from gitrelease.manager import ReleaseManager
from tests.conftest import REPO_ROOT, World, copy_world

PY = sys.executable
TOKEN = "super-secret-token-value"
PASSWORD = "pa55w0rd-quoted"
# Secrets last: the shown tail is the output's last lines.
ENV = ("PREFIX=!\nDEBUG=true\nLOG_LEVEL=INFO\nPORT=8080\nAPI_KEY=abc\n"
       f"DB_PASSWORD=\"{PASSWORD}\"\nDISCORD_TOKEN={TOKEN}\n")
CHECK = ("import sys; print(open('.env').read()); "
         "print('port 8080 answered, level INFO, debug true'); sys.exit(3)")


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "gitrelease", "--root", str(world.deploy), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ})


@dataclass
class Ran:
    world: World
    outputs: dict[str, str]  # where it was seen -> the text


@pytest.fixture(scope="module")
def ran(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    world = copy_world(template_world, tmp_path_factory.mktemp("secrets") / "world")
    (world.deploy / ".env").write_text(ENV)
    lines = ['[project]', 'name = "bot"', 'version = "0"', 'requires-python = ">=3.11"', '',
             '[tool.gitrelease]', f"health_check_command = {json.dumps([PY, '-c', CHECK])}"]
    world.commit("release 1.11.0", {"pyproject.toml": "\n".join(lines) + "\n",
                                    "VERSION": "1.11.0\n"})
    world.tag("v1.11.0", "Release 1.11.0")
    world.push()
    (world.deploy / "data" / "settings.toml").write_text("require_confirmation = false\n")
    outputs: dict[str, str] = {}
    install = cli(world, "install", "--type", "bot", "--no-backup", "--no-restart")
    assert install.returncode != 0, install.stdout
    outputs["install stderr"], outputs["install stdout"] = install.stderr, install.stdout
    for name, args in (("status --history", ("status", "--history")),
                       ("journal", ("journal",)), ("journal --json", ("--json", "journal")),
                       ("check", ("check",))):
        done = cli(world, *args)
        outputs[name] = done.stdout + done.stderr
    outputs["bad_releases.json"] = (world.deploy / "data" / "bad_releases.json").read_text()
    outputs["index"] = _index_text(world.deploy / "data" / "update_manager.db")
    yield Ran(world, outputs)


def _index_text(path: Path) -> str:
    """Every value of every table of the index, as text."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        values = [repr(row) for table in tables
                  for row in db.execute(f"SELECT * FROM {table}")]  # noqa: S608
    db.close()
    return "\n".join(values)


@pytest.mark.parametrize("where", [
    "install stderr", "install stdout", "status --history", "journal", "journal --json",
    "check", "bad_releases.json", "index"])
def test_no_secret_of_env_is_shown_or_stored(ran: Ran, where: str) -> None:
    text = ran.outputs[where]
    assert TOKEN not in text and PASSWORD not in text, f"{where}: {text}"


def test_the_failure_is_still_told_plainly(ran: Ran) -> None:
    shown = ran.outputs["install stderr"]
    assert "exited with status 3" in shown and "***" in shown
    assert "port 8080 answered, level INFO, debug true" in shown
    assert "v1.11.0" in ran.outputs["check"] or "1.11.0" in ran.outputs["check"]
    assert "exited with status 3" in ran.outputs["bad_releases.json"]


async def test_the_log_keeps_the_output_and_its_tail_is_shown_redacted(ran: Ran) -> None:
    async with await ReleaseManager.open(ran.world.deploy) as manager:
        session, _steps = await manager.journal()
        _session, tail = await manager.session_log(session.id)
    log = ran.world.deploy / "data" / "update_logs" / f"{session.id}.log"
    assert log.stat().st_mode & 0o777 == 0o600 and TOKEN in log.read_text()
    assert tail and not any(TOKEN in line or PASSWORD in line for line in tail)
    assert any("DISCORD_TOKEN=***" in line for line in tail)


@pytest.mark.parametrize(("env", "text", "shown"), [
    # every value of .env worth hiding is hidden, quoted or not, whole or inside a line
    (f"TOKEN={TOKEN}", f"x {TOKEN} y", "x *** y"),
    (f'PASSWORD="{PASSWORD}"', f"pw={PASSWORD}", "pw=***"),
    (f"export SECRET='{PASSWORD}'", f"[{PASSWORD}]", "[***]"),
    ("WEBHOOK=https://discord.com/api/webhooks/1/abcdefgh", "posting to "
     "https://discord.com/api/webhooks/1/abcdefgh", "posting to ***"),
    ("NAME=mybotname", "hello from mybotname!", "hello from ***!"),
    # a short value (below 4 characters) or a common word would hide every such word
    ("PREFIX=!", "use ! to start", "use ! to start"),
    ("API_KEY=abc", "abc abcdef", "abc abcdef"),
    ("DEBUG=true", "debug true", "debug true"),
    ("LOG_LEVEL=INFO", "level INFO", "level INFO"),
    ("MODE=production", "production ready", "production ready"),
    ("PORT=8080", "port 8080", "port 8080"),
    # a value worth hiding is hidden as a word, not inside a longer one, unless long
    ("NICK=sam1", "sam1 and sam12", "*** and sam12"),
    (f"TOKEN={TOKEN}", f"prefix{TOKEN}suffix", "prefix***suffix"),
    # a secret-looking key hides even a number
    ("PIN_SECRET=4711", "pin 4711", "pin ***"),
    # comments and empty values are no values
    ("# TOKEN=commented-out-value\nEMPTY=", "commented-out-value", "commented-out-value"),
])
def test_redaction_hides_values_worth_hiding_and_nothing_else(
        env: str, text: str, shown: str) -> None:
    assert redact_values(text, hidden_values(env)) == shown


async def test_whatever_a_failure_says_is_stored_without_secrets(world: World) -> None:
    """Not only a command's tail: any message the index or bad_releases.json is given has
    the deployment's secrets taken out, and a bad release's reason written before this
    was so is not shown with them."""
    (world.deploy / ".env").write_text(ENV)
    said = f"could not log in with {TOKEN} (password {PASSWORD})"
    bad = {"deadbeef": {"tag": "v9.9.9", "commit": "deadbeef", "reason": said,
                        "at": "2024-01-01T00:00:00+00:00", "session": "upd_old"}}
    (world.deploy / "data" / "bad_releases.json").write_text(json.dumps(bad))
    async with await ReleaseManager.open(world.deploy) as manager:
        store = await manager.index()
        await store.audit("tester", "probe", None, "failed", {"error": said, "n": [said]})
        backup = await manager.create_backup("config")
        backup.problem = said
        await store.save_backup(backup)
        from gitrelease.deploy.quarantine import load_bad, mark_bad

        mark_bad(world.deploy / "data", "v9.9.8", "cafe", said, "upd_new",
                 manager.deployment.secrets)
        assert all(TOKEN not in b.reason for b in
                   load_bad(world.deploy / "data", manager.deployment.secrets).values())
    stored = _index_text(world.deploy / "data" / "update_manager.db")
    assert TOKEN not in stored and PASSWORD not in stored and "could not log in" in stored
    # Marking another release bad writes the file anew: the old entry's reason without them.
    assert TOKEN not in (world.deploy / "data" / "bad_releases.json").read_text()



def test_redaction_of_a_long_line_takes_no_time() -> None:
    """Every stored message passes through it: a 60 KB digest-like line is no 4-second
    stall (the URL rule was once tried from each letter of a run)."""
    line = "y" * 60000 + "a1" * 30000 + " https://user:pw@example.com/x"
    started = time.monotonic()
    shown = redact_values(line, hidden_values(f"TOKEN={TOKEN}"))
    assert time.monotonic() - started < 0.5
    assert shown.endswith("https://***@example.com/x")
