"""Cases found by trying the product as an operator would: races, crashes, odd repositories."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gitrelease.core.errors import (
    ConfirmationRequired,
    DirtyWorkingTree,
    InvalidSetting,
    VerificationFailed,
)
from gitrelease.core.models import UpdateStatus
from gitrelease.core.reports import InstallPlan
from gitrelease.deploy.context import Deployment
from gitrelease.manager import InstallOptions, ReleaseManager
from tests.conftest import World, git, kill_at

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_BACKUP = {"backup_before": False}


def settings(world: World, text: str) -> None:
    (world.deploy / "data" / "settings.toml").write_text(text)


async def test_concurrent_checks_on_one_manager_all_finish(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        reports = await asyncio.wait_for(asyncio.gather(
            *(manager.check_for_updates("bot") for _ in range(4))), timeout=60)
    assert {r.bot.version for r in reports if r.bot} == {"1.10.0"}


async def test_a_forcing_tag_refspec_in_the_config_cannot_move_a_tag(world: World) -> None:
    git(world.deploy, "config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*")
    trusted = world.tag_commit("v1.10.0")
    world.commit("evil")
    world.tag("v1.10.0", "moved", force=True)
    world.push(force=True)
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("bot")
        assert any("v1.10.0 was moved" in w for w in report.warnings)
        assert world.tag_commit("v1.10.0") == trusted
        with pytest.raises(Exception) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert getattr(caught.value, "code", "") == "tag_moved"
    assert world.head() == world.tag_commit("v1.0.0")


async def test_check_without_any_remote_reports_local_releases(world: World) -> None:
    git(world.deploy, "remote", "remove", "origin")
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("bot")
    assert report.errors["bot"].code == "fetch_failed"
    assert report.bot is not None and report.bot.version == "1.10.0"
    assert report.bot.download_url is None


async def test_edit_made_during_the_install_stops_it_and_is_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(world.deploy, "checkout", "--quiet", "-B", "prod", "v1.0.0")
    real_fetch = Deployment.fetch

    def fetch_then_operator_edits(self: Deployment):  # type: ignore[no-untyped-def]
        result = real_fetch(self)
        (world.deploy / "bot.py").write_text("print('hotfix in progress')\n")
        return result

    monkeypatch.setattr(Deployment, "fetch", fetch_then_operator_edits)
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(DirtyWorkingTree):
            await manager.install_updates("bot", NO_BACKUP)
    assert (world.deploy / "bot.py").read_text() == "print('hotfix in progress')\n"
    assert git(world.deploy, "branch", "--show-current") == "prod"
    assert world.head() == world.tag_commit("v1.0.0")


async def test_head_not_at_the_tag_after_checkout_is_caught_and_undone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitrelease.git.repo import GitRepo

    real = GitRepo.checkout_detached
    wrong = world.tag_commit("v1.9.0")
    monkeypatch.setattr(GitRepo, "checkout_detached",
                        lambda self, commit, *record: real(self, wrong, *record))
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(VerificationFailed):
            await manager.install_updates("bot", NO_BACKUP)
    monkeypatch.undo()
    assert world.head() == world.tag_commit("v1.0.0")


async def test_oversized_release_needs_force(world: World) -> None:
    world.commit("assets", {"assets/big.bin": "x" * (2 * 1024 * 1024)})
    world.tag("v1.11.0", "big assets")
    world.push()
    settings(world, "max_update_size_mb = 1\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert "max_update_size_mb (1)" in caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")


async def test_local_commits_are_reported_and_guarded(world: World) -> None:
    git(world.deploy, "checkout", "--quiet", "-B", "prod", "v1.0.0")
    (world.deploy / "hotfix.py").write_text("x = 1\n")
    git(world.deploy, "add", "hotfix.py")
    git(world.deploy, "commit", "--quiet", "-m", "local hotfix")
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("bot")
        assert any("1 commit(s) that v1.10.0 does not contain" in w for w in report.warnings)
        git(world.deploy, "checkout", "--quiet", "--detach")
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.install_updates("bot", NO_BACKUP)
        assert "HEAD is detached" in caught.value.message
        git(world.deploy, "checkout", "--quiet", "prod")
        session = await manager.install_updates("bot", NO_BACKUP)
    assert not isinstance(session, InstallPlan)
    assert any("they stay on branch prod" in w for w in session.warnings)


async def test_settings_without_effect_yet_are_reported(world: World) -> None:
    settings(world, 'log_level = "DEBUG"\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("bot")
        info = await manager.get_update_status(show_metrics=False)
    for warnings in (report.warnings, info.warnings):
        assert any(w.startswith("setting log_level = 'DEBUG' has no effect") for w in
                   warnings)


async def test_bad_python_executable_is_a_setting_error_not_a_crash(world: World) -> None:
    settings(world, 'python_executable = "/nonexistent/python"\n')
    async with await ReleaseManager.open(world.deploy) as manager:
        info = await manager.get_update_status(show_metrics=False)
        assert info.python_version == "unknown"
        assert any("settings.toml" in w and "python_executable" in w for w in info.warnings)
        with pytest.raises(InvalidSetting):
            await manager.install_updates("bot", NO_BACKUP)


def test_odd_pyproject_and_timezone(world: World, tmp_path: Path) -> None:
    from gitrelease.core.settings import load_settings

    (tmp_path / "data").mkdir()
    (tmp_path / "pyproject.toml").write_text("tool = 1\n")
    assert load_settings(tmp_path, tmp_path / "data").settings.channel == "stable"
    (tmp_path / "data" / "settings.toml").write_text('timezone = "Mars/Base"\n')
    with pytest.raises(InvalidSetting) as caught:
        load_settings(tmp_path, tmp_path / "data")
    assert "IANA time zone" in caught.value.message


async def test_local_version_tags_are_builds_not_releases(world: World) -> None:
    world.commit("build")
    world.tag("v1.11.0+local", "a local build")
    world.push()
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None and report.bot.version == "1.10.0"


async def test_dry_run_when_up_to_date(world: World) -> None:
    git(world.deploy, "checkout", "--quiet", "v1.10.0")
    async with await ReleaseManager.open(world.deploy) as manager:
        plan = await manager.install_updates("bot", InstallOptions(backup_before=False,
                                                                   dry_run=True))
        session = await manager.install_updates("bot", NO_BACKUP)
        info = await manager.get_update_status()
    assert isinstance(plan, InstallPlan) and plan.up_to_date and plan.steps == []
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    assert info.last_update is None  # nothing was installed
    assert info.update_statistics["total"] == 0


@pytest.mark.parametrize(("point", "status", "head_tag"), [
    ("install:checkout", "failed", "v1.0.0"),
    ("install:checkout:done", "failed", "v1.0.0"),  # verify never ran: not whole
    ("install:backup", "failed", "v1.0.0"),
])
def test_kill_9_during_an_install_is_settled_at_the_next_start(
    world: World, point: str, status: str, head_tag: str
) -> None:
    kill_at(world.deploy, point, "install", "--type", "bot")
    result = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "--json", "status",
         "--history", "--no-metrics"], cwd=REPO_ROOT, capture_output=True, text=True,
        check=True)
    (session,) = json.loads(result.stdout)["recent_sessions"]
    assert session["status"] == status
    assert world.head() == world.tag_commit(head_tag)
    journal = subprocess.run(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "--json", "journal"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert json.loads(journal.stdout)["steps"][-1]["step"] == "recovery"


def test_output_to_a_closed_pipe_is_not_a_traceback(world: World) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gitrelease", "--root", str(world.deploy), "--json", "check"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written, as with `| true`
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in stderr


async def test_secret_url_parameters_are_redacted(world: World) -> None:
    git(world.deploy, "remote", "set-url", "origin",
        "https://bot:p@ss@127.0.0.1:9/x.git?access_token=TOKEN123&ref=main")
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.check_for_updates("bot")
    text = json.dumps(report.to_dict())
    assert "TOKEN123" not in text and "ss@127" not in text
    assert report.bot is not None and report.bot.download_url is not None
    assert "access_token=***" in report.bot.download_url


async def test_requirements_gitrelease_cannot_install_refuse_the_install(world: World) -> None:
    world.commit("private index", {"requirements.txt":
                                   "--extra-index-url https://pypi.example.invalid/simple\n"
                                   "internal-package==1.0\n"})
    world.tag("v1.11.0", "private")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.deploy, "checkout", "--quiet", "v1.11.0")
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(Exception) as caught:
            await manager.install_updates("packages", {})
    assert getattr(caught.value, "code", "") == "package_error"
    assert "--extra-index-url" in caught.value.message  # type: ignore[attr-defined]


def test_markers_are_judged_for_the_deployments_python(world: World) -> None:
    from gitrelease.deploy.packages import read_requirements
    from gitrelease.git.repo import GitRepo

    lines = 'newlib>=1; python_version >= "3.12"\nold>=1; python_version < "3.12"\n'
    world.commit("markers", {"requirements.txt": lines})
    world.tag("v1.11.0", "markers")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    repo = GitRepo(world.deploy)
    try:
        commit = world.tag_commit("v1.11.0")
        assert [r.name for r in read_requirements(repo, commit, "3.12.1").requirements] == [
            "newlib"]
        assert [r.name for r in read_requirements(repo, commit, "3.11.7").requirements] == [
            "old"]
    finally:
        repo.close()


async def test_config_merge_writes_through_a_symlinked_env(world: World, tmp_path: Path) -> None:
    world.commit("template", {".env.example": "DISCORD_TOKEN=\nSTATS=1\n"})
    world.tag("v1.11.0", "template")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.deploy, "checkout", "--quiet", "v1.11.0")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("DISCORD_TOKEN=abc\n")
    (world.deploy / ".env").unlink()
    (world.deploy / ".env").symlink_to(secrets)
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("config", {})
    assert (world.deploy / ".env").is_symlink()
    assert secrets.read_text().endswith("STATS=1\n")
