"""The `gitrelease` command: its contract, and every flag given a bad value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitrelease.cli.main import main
from tests.conftest import World, git

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(world: World, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(["--root", str(world.deploy), "--json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def run_process(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitrelease", *args], cwd=cwd or REPO_ROOT, capture_output=True,
        text=True, env={**os.environ, **(env or {})}, timeout=120, check=False)


def test_json_check_prints_the_report(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, data, _ = run(world, "check", "--type", "bot", capsys=capsys)
    assert code == 0
    assert {"bot", "packages", "config", "dependencies", "total_updates", "security_updates",
            "breaking_updates", "last_check", "errors"} <= set(data)
    assert data["bot"]["version"] == "1.10.0"


def test_check_all_and_each_source_alone(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data, _ = run(world, "check", capsys=capsys)
    assert code == 0 and data["errors"] == {}
    for source in ("packages", "config", "dependencies"):
        code, data, _ = run(world, "check", "--type", source, capsys=capsys)
        assert code == 0 and data["errors"] == {}
        assert data["bot"] is None


def test_check_fetch_failure_sets_the_exit_code(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    git(world.deploy, "remote", "set-url", "origin", str(world.base / "gone.git"))
    code, data, _ = run(world, "check", "--type", "bot", capsys=capsys)
    assert code == 11
    assert data["errors"]["bot"]["code"] == "fetch_failed"


def test_install_and_journal_in_json(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, session, _ = run(world, "install", "--type", "bot", "--no-backup", capsys=capsys)
    assert code == 0
    assert session["status"] == "completed"
    assert session["target_version"] == "1.10.0"
    assert session["initiated_by"].startswith("cli:")
    code, journal, _ = run(world, "journal", capsys=capsys)
    assert code == 0
    assert journal["session"]["id"] == session["id"]
    assert [s["step"] for s in journal["steps"] if s["state"] == "done"] == [
        "preflight", "fetch", "resolve", "backup", "checkout", "verify"]
    code, status, _ = run(world, "status", "--history", capsys=capsys)
    assert code == 0
    assert status["version"] == "1.10.0"
    assert status["recent_sessions"][0]["id"] == session["id"]


def test_dry_run_in_text(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    before = world.state()
    code = main(["--root", str(world.deploy), "install", "--type", "bot", "--no-backup",
                 "--dry-run"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "would install v1.10.0" in out
    assert world.state()["head"] == before["head"]


def test_errors_are_one_line_without_traceback(world: World) -> None:
    (world.deploy / "bot.py").write_text("dirty\n")
    result = run_process("--root", str(world.deploy), "install", "--type", "bot",
                         "--no-backup")
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gitrelease: error: tracked files have local changes: bot.py")
    assert "Traceback" not in result.stderr


def test_json_error_shape(world: World) -> None:
    (world.deploy / "bot.py").write_text("dirty\n")
    result = run_process("--json", "--root", str(world.deploy), "install", "--type", "bot")
    assert result.returncode == 3
    assert result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert set(error) == {"code", "message", "hint"}
    assert error["code"] == "dirty_working_tree"
    assert "git status" in error["hint"]


def test_root_from_environment_and_from_cwd(world: World) -> None:
    by_env = run_process("--json", "status", "--no-metrics",
                         env={"GITRELEASE_ROOT": str(world.deploy)})
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["version"] == "1.0.0"
    by_cwd = run_process("--json", "status", "--no-metrics", cwd=world.deploy / "data",
                         env={"PYTHONPATH": str(REPO_ROOT)})
    assert by_cwd.returncode == 0, by_cwd.stderr
    assert json.loads(by_cwd.stdout)["commit"] == world.head()


def test_check_imports_neither_discord_nor_what_it_does_not_need(world: World) -> None:
    probe = (
        "import sys\n"
        "from gitrelease.cli.main import main\n"
        f"code = main(['--root', {str(world.deploy)!r}, '--json', 'check', '--type', 'bot'])\n"
        "heavy = ('discord', 'aiohttp', 'aiosqlite', 'filelock', 'psutil', 'tqdm', 'tomlkit')\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
        # check runs without an event loop, an executor, the installer or the index
        "slow = {'asyncio', 'concurrent.futures', 'sqlite3', 'gitrelease.deploy.install',\n"
        "        'gitrelease.deploy.journal', 'gitrelease.index.store',\n"
        "        'gitrelease.state.backups', 'gitrelease.git.switch',\n"
        "        'gitrelease.core.tether'}\n"
        "print('ALSO', sorted(set(sys.modules) & slow))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-2:] == ["LOADED []", "ALSO []"]


def test_check_sees_a_release_the_fetch_brings(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tags are listed while the fetch runs: a tag it brings must still be offered."""
    world.release_version("1.11.0", "Eleventh")
    code, data, _ = run(world, "check", "--type", "bot", capsys=capsys)
    assert code == 0
    assert data["bot"]["version"] == "1.11.0"
    code, data, _ = run(world, "check", "--type", "bot", capsys=capsys)  # nothing new now
    assert code == 0 and data["bot"]["version"] == "1.11.0"


def test_check_warns_of_a_tag_moved_on_the_remote(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.commit("rewrite")
    world.tag("v1.1.0", "moved", force=True)
    world.push(force=True)
    code, data, _ = run(world, "check", "--type", "bot", capsys=capsys)
    assert code == 0
    assert any("v1.1.0 was moved on the remote" in w for w in data["warnings"])


def test_secrets_in_remote_urls_never_reach_output(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    git(world.deploy, "remote", "set-url", "origin",
        "https://bot:ghp_SECRETTOKEN@127.0.0.1:9/nowhere.git")
    code, data, _ = run(world, "check", "--type", "bot", capsys=capsys)
    assert code == 11
    assert "ghp_SECRETTOKEN" not in json.dumps(data)
    assert "127.0.0.1" in data["errors"]["bot"]["message"]


BAD_COMMAND_LINES = [
    # (arguments after --root/--json, expected error code, field named in the message)
    (["frobnicate"], "usage_error", None),
    ([], "usage_error", None),
    (["--bogus", "check"], "usage_error", None),
    (["check", "--type", "everything"], "invalid_input", "--type"),
    (["check", "--type", ""], "invalid_input", "--type"),
    (["check", "--type"], "usage_error", None),
    (["check", "--details=yes"], "usage_error", None),
    (["check", "--no-security=1"], "usage_error", None),
    (["install"], "usage_error", None),
    (["install", "--type", "botx", "--no-backup"], "invalid_input", "--type"),
    (["install", "--type", "bot", "--no-backup", "--to", "1.x"], "invalid_input", "--to"),
    (["install", "--type", "bot", "--no-backup", "--to=--upload-pack=touch /tmp/x"],
     "invalid_input", "--to"),
    (["install", "--type", "bot", "--no-backup", "--to=-c"], "invalid_input", "--to"),
    (["install", "--type", "bot", "--no-backup", "--to", "-c"], "usage_error", None),
    (["install", "--type", "bot", "--no-backup", "--to", "--upload-pack=x"], "usage_error",
     None),
    (["install", "--type", "bot", "--no-backup", "--to", "9.9.9"], "no_such_version", None),
    (["install", "--type", "bot", "--backup-name", "../../etc/passwd"], "invalid_input",
     "--backup-name"),
    (["install", "--type", "bot", "--backup-name", ""], "invalid_input", "--backup-name"),
    (["install", "--type", "bot", "--no-backup", "--backup-name", "pre_v2"], "invalid_input",
     "--backup-name"),
    (["install", "--type", "bot", "--no-backup", "--dry-run=1"], "usage_error", None),
    (["install", "--type", "bot", "--no-backup", "--force=yes"], "usage_error", None),
    (["install", "--type", "bot", "--no-backup", "--no-restart=0"], "usage_error", None),
    (["install", "--type", "bot", "--no-backup=1"], "usage_error", None),
    (["status", "--range", "1y"], "invalid_input", "--range"),
    (["status", "--range", "7"], "invalid_input", "--range"),
    (["status", "--history=1"], "usage_error", None),
    (["status", "--no-metrics=x"], "usage_error", None),
    (["journal", "upd_does_not_exist"], "invalid_input", "session"),
    (["demo", "--keep=1"], "usage_error", None),
    (["backup", "create", "--full=yes"], "usage_error", None),
    (["backup", "create", "--full", "--type", "everything"], "invalid_input", "--type"),
]


@pytest.mark.parametrize(("args", "code", "field"), BAD_COMMAND_LINES,
                         ids=[" ".join(a[0]) or "(none)" for a in BAD_COMMAND_LINES])
def test_bad_command_lines_change_nothing(
    world: World, capsys: pytest.CaptureFixture[str], args: list[str], code: str,
    field: str | None,
) -> None:
    before = world.state()
    exit_code, data, err = run(world, *args, capsys=capsys)
    assert exit_code != 0
    assert data["error"]["code"] == code
    assert data["error"]["message"]
    if field:
        assert data["error"]["message"].startswith(f"invalid {field}:")
    assert "Traceback" not in err
    after = world.state()
    if code == "no_such_version":  # refused after the fetch; the journal records it
        assert after["head"] == before["head"]
        assert after["refs"] == before["refs"]
        for name in (".env", "data/app.db", "bot.py"):
            assert after["files"][name] == before["files"][name]
        return
    assert after == before
    assert not (world.deploy / "data" / "update_manager.db").exists() or args[0] == "journal"


@pytest.mark.parametrize("root", ["missing-dir", "a-file", "not-a-repo"])
def test_bad_root(tmp_path: Path, capsys: pytest.CaptureFixture[str], root: str) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "not-a-repo").mkdir()
    code = main(["--json", "--root", str(tmp_path / root), "status"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code != 0
    expected = "not_a_git_repository" if root == "not-a-repo" else "invalid_input"
    assert error["code"] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "not-a-repo"]


def test_bad_setting_on_disk_names_file_and_key(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    (world.deploy / "data" / "settings.toml").write_text("min_disk_space_mb = -5\n")
    code, data, _ = run(world, "check", capsys=capsys)
    assert code == 78
    assert "settings.toml" in data["error"]["message"]
    assert "min_disk_space_mb" in data["error"]["message"]


def test_demo_runs_end_to_end() -> None:
    result = run_process("--json", "demo")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["install"]["status"] == "completed"
    assert data["rollback"]["status"] == "completed"
    assert data["rollback"]["target_version"] == "1.0.0"
    assert data["status"]["version"] == "1.0.0"
    assert data["untracked_state_unchanged"] is True
    assert data["rolled_back_with_data"] is True


def test_readme_command_lines_parse() -> None:
    """Every `gitrelease ...` line in README's examples is accepted by the parser."""
    import re
    import shlex

    from gitrelease.cli.main import _parser

    readme = (REPO_ROOT / "README.md").read_text()
    lines = [line.split("  #")[0].strip() for line in readme.splitlines()
             if line.startswith("gitrelease ")]
    assert len(lines) >= 8
    for line in lines:
        words = shlex.split(re.sub(r"\[[^\]]*\]", "", line))[1:]
        _parser().parse_args(words)
