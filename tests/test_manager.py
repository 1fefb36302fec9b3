"""ReleaseManager against real repositories: check, install, status."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gitrelease.core.errors import (
    ConfirmationRequired,
    DirtyWorkingTree,
    DowngradeRefused,
    FetchFailed,
    GitCommandFailed,
    InsufficientDiskSpace,
    InvalidInput,
    InvalidSetting,
    NoSuchVersion,
    PythonVersionMismatch,
    TagMoved,
    UntrackedFilesInTheWay,
    UpdateInProgress,
)
from gitrelease.core.models import UpdateStatus
from gitrelease.core.reports import InstallPlan
from gitrelease.manager import InstallOptions, ReleaseManager
from tests.conftest import ENV_SECRET, World, git

NO_BACKUP = InstallOptions(backup_before=False, initiated_by="test")


async def open_manager(world: World) -> ReleaseManager:
    return await ReleaseManager.open(world.deploy)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sessions(world: World) -> list[tuple[str, str]]:
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as db:
        rows = db.execute("SELECT status, error_message FROM update_sessions "
                          "ORDER BY started_at").fetchall()
    db.close()
    return rows


# -- check ---------------------------------------------------------------------------------


async def test_check_picks_newest_stable_release_by_pep440_order(world: World) -> None:
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    data = report.to_dict()
    assert data["current_version"] == "1.0.0"
    bot = data["bot"]
    assert bot["version"] == "1.10.0"  # 1.10.0 > 1.9.0, and 2.0.0rc1 is not on stable
    assert bot["tag"] == "v1.10.0"
    assert bot["checksum"] == bot["commit"] == world.tag_commit("v1.10.0")
    assert bot["release_date"].startswith("2024-01-01T00:")
    assert bot["commit_count"] == 7
    assert bot["files_changed"] == 2  # CHANGES and VERSION
    changes_size = int(git(world.deploy, "cat-file", "-s", "v1.10.0:CHANGES"))
    assert bot["size"] == changes_size + len("1.10.0\n")
    assert [r["version"] for r in bot["releases"]] == ["1.10.0", "1.9.0", "1.1.0"]
    assert bot["dependencies"] == ["discord.py>=2.3"]
    assert data["total_updates"] == 1
    assert data["ignored_tags"] == ["vnext"]
    assert "bot" not in data["errors"]


async def test_changelog_has_tag_messages_and_commit_subjects(world: World) -> None:
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None
    changelog = report.bot.changelog or ""
    assert changelog.startswith("Tenth release: new /stats")
    assert "v1.9.0: Ninth release" in changelog
    assert "- fix: stats rounding" in changelog
    assert "- feat: ping" in changelog
    assert report.bot.security_update is False
    assert report.bot.breaking_changes is False


async def test_pre_channel_offers_prereleases_and_marks_breaking(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text('channel = "pre"\n')
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None
    assert report.bot.version == "2.0.0rc1"
    assert report.bot.breaking_changes is True  # major rises, and "feat!:" says so too
    assert report.to_dict()["breaking_updates"] == 1


async def test_security_marker_from_commit_in_range(world: World) -> None:
    world.release_version("1.10.1", "Patch", "fix(security): stop logging the token")
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot", include_security=True)
        unchecked = await manager.check_for_updates("bot", include_security=False)
    assert report.bot is not None and report.bot.security_update is True
    assert report.to_dict()["security_updates"] == 1
    assert unchecked.bot is not None and unchecked.bot.security_update is None
    assert unchecked.to_dict()["security_updates"] is None


async def test_check_all_reports_every_source(world: World) -> None:
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("all")
    data = report.to_dict()
    assert data["errors"] == {}
    assert report.bot is not None
    (discord,) = [p for p in data["packages"] if p["package"] == "discord.py"]
    assert discord["required_target"] == ">=2.3" and discord["satisfied"] is True
    assert discord["current_version"] is not None
    (python,) = [d for d in data["dependencies"] if d["kind"] == "python"]
    assert python["satisfied"] is True and python["requires_python"] == ">=3.11"
    assert data["config"] is None  # the world has no config templates


async def test_check_with_unreachable_remote_reports_and_uses_local_tags(world: World) -> None:
    git(world.deploy, "remote", "set-url", "origin", str(world.base / "gone.git"))
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.errors["bot"].code == "fetch_failed"
    assert "gone.git" in report.errors["bot"].message
    assert report.bot is not None and report.bot.version == "1.10.0"


async def test_check_sees_new_release_pushed_after_clone(world: World) -> None:
    world.release_version("1.11.0", "Eleventh")
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None and report.bot.version == "1.11.0"


def _counting_upload_pack(world: World, *, delay: int = 0) -> Path:
    """Make the deployment's remote log each time it is asked (and answer after `delay`)."""
    log = world.base / "upload-pack.log"
    wrapper = world.base / "counting-upload-pack"
    wrapper.write_text(f"#!/bin/sh\necho asked >> '{log}'\nsleep {delay}\n"
                       'exec git-upload-pack "$@"\n')
    wrapper.chmod(0o755)
    git(world.deploy, "config", "remote.origin.uploadpack", str(wrapper))
    return log


async def test_check_asks_the_remote_once_and_fetches_only_what_is_new(world: World) -> None:
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    log = _counting_upload_pack(world)
    refs = git(world.deploy, "for-each-ref", "refs/tags")
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None and report.bot.version == "1.10.0" and not report.errors
    assert log.read_text().count("asked") == 1  # its tags listed; all known: no fetch
    assert git(world.deploy, "for-each-ref", "refs/tags") == refs
    world.release_version("1.11.0", "Eleventh")
    log.unlink()
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None and report.bot.version == "1.11.0"
    assert log.read_text().count("asked") == 2  # listed, then fetched
    assert "v1.11.0" in git(world.deploy, "tag", "--list")


async def test_tags_that_are_no_releases_do_not_make_every_check_fetch(world: World) -> None:
    git(world.release, "tag", "tree-snapshot", "HEAD^{tree}")
    git(world.release, "tag", "-a", "odd-message", "-m", "a \x1f and a \x1e inside")
    git(world.release, "push", "--quiet", "origin", "tree-snapshot", "odd-message")
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    log = _counting_upload_pack(world)
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.bot is not None and report.bot.version == "1.10.0" and not report.errors
    assert log.read_text().count("asked") == 1


async def test_check_is_not_fooled_by_a_fetch_another_process_made_meanwhile(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitrelease.git.repo import GitRepo

    world.release_version("1.11.0", "Eleventh")
    listed = GitRepo.remote_tags

    def then_another_process_fetches(self: GitRepo, remote: str, timeout: float) -> object:
        tags = listed(self, remote, timeout)
        git(world.deploy, "fetch", "--quiet", "--tags", "origin")  # e.g. the scheduler's check
        return tags

    monkeypatch.setattr(GitRepo, "remote_tags", then_another_process_fetches)
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    # Our own fetch then brings nothing: the listing taken before it must not stand.
    assert report.bot is not None and report.bot.version == "1.11.0"


async def test_check_waits_on_a_silent_remote_once(world: World) -> None:
    log = _counting_upload_pack(world, delay=20)
    (world.deploy / "data" / "settings.toml").write_text("fetch_timeout = 1\n")
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
    assert report.errors["bot"].code == "fetch_failed"
    assert "timed out after 1 s" in report.errors["bot"].message
    assert report.bot is not None and report.bot.version == "1.10.0"  # the local tags
    assert log.read_text().count("asked") == 1


async def test_check_rejects_unknown_type(world: World) -> None:
    before = world.state()
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.check_for_updates("everything")
    assert caught.value.field == "check_type"
    assert world.state() == before


# -- install -------------------------------------------------------------------------------


async def test_install_moves_head_and_leaves_untracked_state_alone(world: World) -> None:
    env_before = digest(world.deploy / ".env")
    db_before = digest(world.deploy / "data" / "app.db")
    events: list[tuple[str, int, str]] = []
    async with await open_manager(world) as manager:
        session = await manager.install_updates(
            "bot", NO_BACKUP, progress=lambda s, p, d: events.append((s, p, d)))
        assert not isinstance(session, InstallPlan)
        _, steps = await manager.journal(session.id)
    assert world.head() == world.tag_commit("v1.10.0")
    assert session.status is UpdateStatus.COMPLETED
    assert session.progress == 100
    assert (session.current_version, session.target_version) == ("1.0.0", "1.10.0")
    assert session.from_commit == world.tag_commit("v1.0.0")
    assert session.to_commit == world.tag_commit("v1.10.0")
    assert session.restart_needed is True
    steps_done = ["preflight", "fetch", "resolve", "backup", "checkout", "verify"]
    assert session.steps_completed[:6] == steps_done
    assert digest(world.deploy / ".env") == env_before
    assert digest(world.deploy / "data" / "app.db") == db_before
    # The journal holds a row before and after every step.
    assert [(s.step, s.state) for s in steps if s.state != "note"] == [
        (name, state) for name in steps_done for state in ("started", "done")]
    assert events[-1] == ("finished", 100, "completed")
    assert (world.deploy / "data" / "update_manager.db").stat().st_mode & 0o777 == 0o600


async def test_install_to_named_version_with_or_without_v(world: World) -> None:
    async with await open_manager(world) as manager:
        session = await manager.install_updates(
            "bot", {"to": "1.1.0", "backup_before": False})
        assert world.head() == world.tag_commit("v1.1.0")
        session = await manager.install_updates(
            "bot", {"to_version": "v1.9.0", "backup_before": False})
    assert world.head() == world.tag_commit("v1.9.0")
    assert not isinstance(session, InstallPlan) and session.target_tag == "v1.9.0"


async def test_install_when_up_to_date_records_and_changes_nothing(world: World) -> None:
    git(world.deploy, "checkout", "--quiet", "v1.10.0")
    head = world.head()
    async with await open_manager(world) as manager:
        session = await manager.install_updates("bot", NO_BACKUP)
    assert world.head() == head
    assert not isinstance(session, InstallPlan)
    assert session.status is UpdateStatus.COMPLETED
    assert session.target_version == session.current_version == "1.10.0"


async def test_install_refuses_dirty_tracked_file(world: World) -> None:
    (world.deploy / "bot.py").write_text("print('local hack')\n")
    head = world.head()
    async with await open_manager(world) as manager:
        with pytest.raises(DirtyWorkingTree) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert "bot.py" in caught.value.message
    assert world.head() == head
    assert (world.deploy / "bot.py").read_text() == "print('local hack')\n"
    assert sessions(world) == [("cancelled", caught.value.message)]


async def test_untracked_and_ignored_files_do_not_make_the_tree_dirty(world: World) -> None:
    (world.deploy / "notes.txt").write_text("untracked\n")
    (world.deploy / "data" / "cache.json").write_text("{}\n")
    async with await open_manager(world) as manager:
        await manager.install_updates("bot", NO_BACKUP)
    assert world.head() == world.tag_commit("v1.10.0")
    assert (world.deploy / "notes.txt").read_text() == "untracked\n"


async def test_install_refuses_downgrade(world: World) -> None:
    git(world.deploy, "checkout", "--quiet", "v1.9.0")
    async with await open_manager(world) as manager:
        with pytest.raises(DowngradeRefused):
            await manager.install_updates("bot", {"to": "1.1.0", "backup_before": False})
        # Commits past a release: installing that release again would go back in time.
    git(world.deploy, "checkout", "--quiet", "v1.10.0~1")
    async with await open_manager(world) as manager:
        with pytest.raises(DowngradeRefused):
            await manager.install_updates("bot", {"to": "1.9.0", "backup_before": False})
    assert world.head() == world.tag_commit("v1.10.0~1")


async def test_install_unknown_version(world: World) -> None:
    async with await open_manager(world) as manager:
        with pytest.raises(NoSuchVersion) as caught:
            await manager.install_updates("bot", {"to": "3.0.0", "backup_before": False})
    assert "3.0.0" in caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")


async def test_tag_moved_on_origin_is_reported_and_not_followed(world: World) -> None:
    trusted = world.tag_commit("v1.10.0")
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    world.commit("evil: replaced release")
    world.tag("v1.10.0", "Tenth release (moved)", force=True)
    world.push(force=True)
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
        assert any("v1.10.0 was moved" in w for w in report.warnings)
        assert report.bot is not None and report.bot.commit == trusted
        with pytest.raises(TagMoved):
            await manager.install_updates("bot", NO_BACKUP)
        assert world.head() == world.tag_commit("v1.0.0")
        forced = await manager.install_updates(
            "bot", InstallOptions(backup_before=False, force=True))
    assert world.head() == trusted  # --force installs the commit first fetched, never the move
    assert not isinstance(forced, InstallPlan) and forced.warnings


async def test_unreachable_remote_fails_clearly_and_changes_nothing(world: World) -> None:
    git(world.deploy, "remote", "set-url", "origin", str(world.base / "nowhere.git"))
    before = world.state()
    async with await open_manager(world) as manager:
        with pytest.raises(FetchFailed) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert "nowhere.git" in caught.value.message
    after = world.state()
    assert after["head"] == before["head"]
    assert after["refs"] == before["refs"]
    assert sessions(world) == [("failed", caught.value.message)]


async def test_fetch_timeout_is_a_fetch_error(world: World) -> None:
    slow = world.base / "slow-upload-pack"
    slow.write_text("#!/bin/sh\nsleep 20\nexec git-upload-pack \"$@\"\n")
    slow.chmod(0o755)
    git(world.deploy, "config", "remote.origin.uploadpack", str(slow))
    (world.deploy / "data" / "settings.toml").write_text("fetch_timeout = 1\n")
    async with await open_manager(world) as manager:
        with pytest.raises(FetchFailed) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert "timed out after 1 s" in caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")


async def test_two_installs_at_once_in_one_process(world: World) -> None:
    async with await open_manager(world) as first, await open_manager(world) as second:
        results = await asyncio.gather(
            first.install_updates("bot", NO_BACKUP),
            second.install_updates("bot", NO_BACKUP),
            return_exceptions=True)
    assert sum(isinstance(r, UpdateInProgress) for r in results) == 1
    assert world.head() == world.tag_commit("v1.10.0")


async def test_the_lock_is_free_once_released_from_another_thread(world: World) -> None:
    from gitrelease.deploy.lock import OperationLock

    # The manager takes the lock in a worker thread and releases it in the event loop's.
    data = world.deploy / "data"
    first = OperationLock(data, "install", "someone")
    await asyncio.to_thread(first.acquire)
    with pytest.raises(UpdateInProgress):
        await asyncio.to_thread(OperationLock(data, "backup", "other").acquire)
    first.release()  # `first` stays referenced: freeing must not wait for garbage collection
    second = OperationLock(data, "backup", "other").acquire()
    second.release()
    assert not (data / "gitrelease.lock.json").exists()


async def test_install_refused_while_another_process_holds_the_lock(world: World) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from gitrelease.deploy.lock import OperationLock
            lock = OperationLock(Path({str(world.deploy / 'data')!r}), "install", "other-admin")
            lock.acquire()
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        async with await open_manager(world) as manager:
            with pytest.raises(UpdateInProgress) as caught:
                await manager.install_updates("bot", NO_BACKUP)
        assert "other-admin" in caught.value.message
        assert f"pid {holder.pid}" in caught.value.message
        assert world.head() == world.tag_commit("v1.0.0")
    finally:
        holder.communicate("")
    async with await open_manager(world) as manager:  # released when the holder ends
        await manager.install_updates("bot", NO_BACKUP)
    assert world.head() == world.tag_commit("v1.10.0")


async def test_untracked_file_in_the_way_refuses(world: World) -> None:
    world.release_version("1.11.0", "Adds a config file", "feat: config")
    world.commit("feat: config.toml", {"config.toml": "tracked = true\n"})
    world.tag("v1.12.0", "Tracks config.toml")
    world.push()
    (world.deploy / "config.toml").write_text("mine = true\n")
    async with await open_manager(world) as manager:
        with pytest.raises(UntrackedFilesInTheWay) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert "config.toml" in caught.value.message
    assert (world.deploy / "config.toml").read_text() == "mine = true\n"
    assert world.head() == world.tag_commit("v1.0.0")


async def test_ignored_file_a_release_starts_tracking_is_never_overwritten(world: World) -> None:
    world.commit("oops: track .env", {".env": "DISCORD_TOKEN=\n"})
    git(world.release, "add", "--force", ".env")
    git(world.release, "commit", "--quiet", "-m", "track .env")
    world.tag("v1.11.0", "Tracks .env by mistake")
    world.push()
    async with await open_manager(world) as manager:
        with pytest.raises(UntrackedFilesInTheWay):
            await manager.install_updates("bot", NO_BACKUP)
    assert (world.deploy / ".env").read_text() == ENV_SECRET


async def test_requires_python_of_target_is_enforced(world: World) -> None:
    world.commit("build: need a future python", {
        "pyproject.toml": '[project]\nname = "bot"\nversion = "0"\nrequires-python = ">=4"\n'})
    world.tag("v1.11.0", "Needs Python 4")
    world.push()
    async with await open_manager(world) as manager:
        with pytest.raises(PythonVersionMismatch) as caught:
            await manager.install_updates("bot", NO_BACKUP)
    assert ">=4" in caught.value.message
    assert world.head() == world.tag_commit("v1.0.0")


async def test_breaking_release_needs_force(world: World) -> None:
    world.release_version("2.0.0", "Two", "feat!: drop prefix commands")
    async with await open_manager(world) as manager:
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.install_updates("bot", NO_BACKUP)
        assert "breaking" in caught.value.message
        assert world.head() == world.tag_commit("v1.0.0")
        session = await manager.install_updates(
            "bot", InstallOptions(backup_before=False, force=True))
    assert world.head() == world.tag_commit("v2.0.0")
    assert not isinstance(session, InstallPlan)
    assert any("breaking" in w for w in session.warnings)


async def test_an_install_goes_past_only_the_reasons_accepted(world: World) -> None:
    world.release_version("2.0.0", "Two", "feat!: drop prefix commands")
    git(world.deploy, "checkout", "--quiet", "--detach")
    async with await open_manager(world) as manager:
        with pytest.raises(ConfirmationRequired) as caught:
            await manager.install_updates("bot", NO_BACKUP)
        shown = caught.value.reasons
        assert shown == ("v2.0.0 has breaking changes",)
        # A commit made on the server since: a reason nobody accepted stops the install.
        git(world.deploy, "commit", "--quiet", "--allow-empty", "-m", "hotfix on the server")
        hotfix = world.head()
        with pytest.raises(ConfirmationRequired) as again:
            await manager.install_updates("bot", {"backup_before": False, "accept": shown})
        assert len(again.value.reasons) == 1 and "commit(s)" in again.value.reasons[0]
        assert world.head() == hotfix
        session = await manager.install_updates(
            "bot", {"backup_before": False, "accept": [*shown, *again.value.reasons]})
    assert world.head() == world.tag_commit("v2.0.0")
    assert not isinstance(session, InstallPlan)
    assert "installed once confirmed although v2.0.0 has breaking changes" in session.warnings


@pytest.mark.parametrize("accept", ["v2.0.0 has breaking changes", [1], [""], ["x"] * 21,
                                    ["y" * 1001], {"a": 1}])
async def test_bad_accepted_reasons_are_refused_before_anything_runs(
        world: World, accept: object) -> None:
    before = world.state()
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.install_updates("bot", {"backup_before": False, "accept": accept})
    assert caught.value.field == "accept"
    assert world.state() == before
    assert not (world.deploy / "data" / "update_manager.db").exists()


async def test_dry_run_returns_the_plan_and_changes_nothing(world: World) -> None:
    before = world.state()
    async with await open_manager(world) as manager:
        plan = await manager.install_updates(
            "bot", InstallOptions(backup_before=False, dry_run=True))
    assert isinstance(plan, InstallPlan)
    assert plan.target_tag == "v1.10.0"
    assert plan.to_dict()["dry_run"] is True
    after = world.state()
    assert after["head"] == before["head"]
    assert after["files"] == before["files"]
    assert not (world.deploy / "data" / "update_manager.db").exists()


async def test_install_takes_a_verified_backup_of_the_current_release_first(
    world: World,
) -> None:
    async with await open_manager(world) as manager:
        session = await manager.install_updates(
            "bot", {"backup_name": "pre_v1_10", "initiated_by": "test"})
        assert not isinstance(session, InstallPlan)
        (backup,) = await manager.list_backups({"time_range": "all"})
    assert session.backup_id == backup.id and backup.name == "pre_v1_10"
    assert backup.tag == "v1.0.0" and backup.commit == world.tag_commit("v1.0.0")
    assert backup.auto_created and backup.verified_at is not None
    assert session.warnings == []


async def test_no_backup_is_overruled_by_the_safety_setting(world: World) -> None:
    async with await open_manager(world) as manager:
        forced = await manager.install_updates("bot", {"backup_before": False, "to": "1.1.0"})
    assert not isinstance(forced, InstallPlan) and forced.backup_id is not None
    assert any("require_backup_before_update" in w for w in forced.warnings)
    (world.deploy / "data" / "settings.toml").write_text("require_backup_before_update = false\n")
    async with await open_manager(world) as manager:
        skipped = await manager.install_updates("bot", {"backup_before": False})
        listed = await manager.list_backups({"time_range": "all"})
    assert not isinstance(skipped, InstallPlan) and skipped.backup_id is None
    assert "backup" not in skipped.steps_completed
    assert len(listed) == 1


async def test_failed_pre_update_backup_stops_the_install(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitrelease.state.backups import BackupService

    def no_room(self: BackupService, sources: object) -> None:
        raise InsufficientDiskSpace("a backup needs 9 MiB, 1 MiB are free")

    monkeypatch.setattr(BackupService, "_check_space", no_room)
    async with await open_manager(world) as manager:
        with pytest.raises(InsufficientDiskSpace):
            await manager.install_updates("bot", {})
    assert world.head() == world.tag_commit("v1.0.0")
    ((status, message),) = sessions(world)
    assert status == "failed" and message.startswith("pre-update backup failed")


@pytest.mark.parametrize("update_type", ["rollback", "everything", "", "BOT"])
async def test_unknown_update_types_are_refused_clearly(world: World, update_type: str) -> None:
    before = world.state()
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.install_updates(update_type, NO_BACKUP)
    assert caught.value.field == "update_type"
    assert world.state() == before


@pytest.mark.parametrize(("options", "field"), [
    ({"to": "--upload-pack=touch /tmp/pwned"}, "to_version"),
    ({"to": "-c"}, "to_version"),
    ({"to": "1.0.0; rm -rf /"}, "to_version"),
    ({"to": 2}, "to_version"),
    ({"backup_name": "../../etc/passwd", "backup_before": True}, "backup_name"),
    ({"backup_name": "ok", "backup_before": False}, "backup_name"),
    ({"force_update": "yes"}, "force"),
    ({"dry_run": 1}, "dry_run"),
    ({"restart_required": None}, "restart_required"),
    ({"colour": "blue"}, "option"),
    ({"user_id": ""}, "initiated_by"),
])
async def test_bad_install_options_are_refused_before_anything(
    world: World, options: dict[str, object], field: str
) -> None:
    before = world.state()
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.install_updates("bot", {"backup_before": False, **options})
    assert caught.value.field == field
    assert world.state() == before


@pytest.mark.parametrize("on_branch", [False, True])
async def test_checkout_that_fails_after_moving_head_is_undone(
    world: World, on_branch: bool
) -> None:
    # git reports a failing post-checkout hook as a failed checkout after HEAD has moved:
    # the real shape of a checkout that went wrong half-way.
    if on_branch:
        git(world.deploy, "checkout", "--quiet", "-B", "live", "v1.0.0")
    target = world.tag_commit("v1.10.0")
    hook = world.deploy / ".git" / "hooks" / "post-checkout"
    hook.write_text(f'#!/bin/sh\n[ "$2" = "{target}" ] && exit 1\nexit 0\n')
    hook.chmod(0o755)
    async with await open_manager(world) as manager:
        with pytest.raises(GitCommandFailed):
            await manager.install_updates("bot", NO_BACKUP)
    assert world.head() == world.tag_commit("v1.0.0")
    branch = git(world.deploy, "branch", "--show-current")
    assert branch == ("live" if on_branch else "")
    ((status, message),) = sessions(world)
    assert status == "failed"
    assert "HEAD restored to" in message


async def _crash_during_checkout(manager: ReleaseManager, world: World) -> None:
    """Leave the journal of an install whose process died while checking out."""
    from gitrelease.core.models import UpdateSession, UpdateType, utcnow

    store = await manager.index()
    await store.create_session(UpdateSession(
        "upd_crashed", UpdateType.BOT, UpdateStatus.INSTALLING, 50, utcnow(), None,
        "1.10.0", "1.0.0", None, ["preflight", "fetch", "resolve"], 5, False, "test",
        from_commit=world.head()))
    await store.add_step("upd_crashed", "checkout", "started")


async def test_interrupted_session_is_recorded_as_failed_at_next_start(world: World) -> None:
    async with await open_manager(world) as manager:
        store = await manager.index()
        await _crash_during_checkout(manager, world)
        await manager.install_updates("bot", NO_BACKUP)
        found = await store.get_session("upd_crashed")
    assert found is not None and found.status is UpdateStatus.FAILED
    assert "interrupted during 'checkout'" in (found.error_message or "")



async def test_recovery_finishes_an_interrupted_install_then_names_a_bad_backup_path(
        world: World) -> None:
    async with await open_manager(world) as manager:
        await _crash_during_checkout(manager, world)
    (world.deploy / "data" / "settings.toml").write_text('backup_path = "."\n')
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidSetting) as caught:
            await manager.recover()  # what the bot runs as it starts
        assert caught.value.details["key"] == "backup_path"
        assert str(world.deploy / "data" / "settings.toml") in caught.value.message
        found = await (await manager.index()).get_session("upd_crashed")
    assert found is not None and found.status is UpdateStatus.FAILED
    assert world.head() == world.tag_commit("v1.0.0")

# -- status --------------------------------------------------------------------------------


async def test_status_reports_version_history_and_metrics(world: World) -> None:
    async with await open_manager(world) as manager:
        before = await manager.get_update_status("7d")
        await manager.install_updates("bot", NO_BACKUP)
        info = await manager.get_update_status("1d", show_history=True)
    assert before.version == "1.0.0" and before.last_update is None
    data = info.to_dict()
    assert data["version"] == "1.10.0"
    assert data["tag"] == "v1.10.0"
    assert data["bot_version"] == "1.10.0"
    assert data["version_file_agrees"] is True
    assert data["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}." \
                                     f"{sys.version_info.micro}"
    assert data["last_update"] is not None
    assert data["update_statistics"]["completed"] == 1
    assert data["update_statistics"]["success_rate"] == 100.0
    assert data["disk_usage"]["free_bytes"] > 0
    # The archives' bytes come from the index (their folder is not walked) and agree with
    # the disk; the data folder's size includes them.
    archives = sum(p.stat().st_size for p in (world.deploy / "data" / "backups").iterdir())
    assert archives > 0 and data["disk_usage"]["backups_bytes"] == archives
    assert data["disk_usage"]["data_dir_bytes"] > archives
    assert data["memory_usage"]["total_bytes"] > 0
    assert data["uptime_seconds"] > 0
    assert [s["status"] for s in data["recent_sessions"]] == ["completed"]


async def test_status_describe_form_and_version_file_mismatch(world: World) -> None:
    git(world.deploy, "checkout", "--quiet", "v1.10.0~1")
    (world.deploy / "VERSION").write_text("9.9.9\n")
    async with await open_manager(world) as manager:
        info = await manager.get_update_status(show_metrics=False)
    short = world.head()[:7]
    assert info.version == f"1.9.0+2.g{short}"
    assert info.tag is None
    assert info.version_file_agrees is False
    assert any("9.9.9" in w for w in info.warnings)
    assert info.disk_usage == {} and info.memory_usage == {}


async def test_status_answers_with_a_bad_backup_path_and_names_it(world: World) -> None:
    async with await open_manager(world) as manager:
        await manager.create_backup("config", {})
    (world.deploy / "data" / "backups" / "stray.tar.gz").write_bytes(b"x")  # work for upkeep
    settings = world.deploy / "data" / "settings.toml"
    settings.write_text('backup_path = "."\n')
    before = sorted(p.name for p in (world.deploy / "data").rglob("*"))
    async with await open_manager(world) as manager:
        info = await manager.get_update_status(show_metrics=True)
    assert info.version == "1.0.0"
    # Named with the file it was set in, so the operator knows what to mend.
    assert any(w.startswith(f"{settings}: setting 'backup_path'") and "directory of its own" in w
               for w in info.warnings), info.warnings
    assert info.disk_usage["backups_bytes"] > 0  # what the index knows of the archives
    assert sorted(p.name for p in (world.deploy / "data").rglob("*")) == before


async def test_a_configured_path_outside_the_root_names_the_file_it_was_set_in(
        world: World) -> None:
    settings = world.deploy / "data" / "settings.toml"
    settings.write_text('config_paths = ["../elsewhere/.env"]\n')
    before = world.state()
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidSetting) as caught:
            await manager.create_backup("config", {})
    assert caught.value.message.startswith(f"{settings}: setting 'config_paths'")
    assert "without '..'" in caught.value.message
    after = world.state()
    after["files"].pop("data/gitrelease.lock")  # type: ignore[attr-defined]  # the lock's own
    assert {k: after[k] for k in ("head", "refs", "files")} == \
        {k: before[k] for k in ("head", "refs", "files")}


async def test_status_rejects_unknown_range(world: World) -> None:
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidInput) as caught:
            await manager.get_update_status("1y")
    assert caught.value.field == "time_range"
    assert not (world.deploy / "data" / "update_manager.db").exists()


async def test_option_like_tag_names_from_the_remote_are_harmless(
    world: World, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    for name in ("-c", f"--upload-pack={evil}", f"--exec={evil}", "-oProxyCommand=x"):
        git(world.release, "update-ref", f"refs/tags/{name}", "HEAD")
        git(world.release, "push", "--quiet", "origin", f"refs/tags/{name}")
    async with await open_manager(world) as manager:
        report = await manager.check_for_updates("bot")
        session = await manager.install_updates("bot", NO_BACKUP)
    assert report.bot is not None and report.bot.version == "1.10.0"
    assert not isinstance(session, InstallPlan) and session.status is UpdateStatus.COMPLETED
    assert not marker.exists()


async def test_named_target_by_tag_name_with_a_custom_pattern(world: World) -> None:
    world.commit("feat: next")
    world.tag("release-1.11.0", "Released under the new naming")
    world.push()
    (world.deploy / "data" / "settings.toml").write_text('tag_pattern = "release-*"\n')
    async with await open_manager(world) as manager:
        with pytest.raises(InvalidInput):  # refused before anything: not a version nor a tag
            await manager.install_updates("bot", {"to": "release-next", "backup_before": False})
        session = await manager.install_updates(  # force: rc1's "feat!:" is in the range
            "bot", {"to": "release-1.11.0", "backup_before": False, "force_update": True})
    assert world.head() == world.tag_commit("release-1.11.0")
    assert not isinstance(session, InstallPlan) and session.target_tag == "release-1.11.0"
