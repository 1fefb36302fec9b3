"""The kill -9 sweep: install, rollback and restore killed at the journal's pause points (and
mid-checkout, mid-migration and mid-database-write, where no pause point can be), by their
main pid and by their whole process group; after the next start each case must hold:

* HEAD at a recorded commit (where the operation started, or where it was going);
* a clean tree: `git status --porcelain` shows what it showed before, no `.git/index.lock`;
* `PRAGMA integrity_check` ok, and the bot's rows those of before or of after, nothing else;
* `.env` as it was; the next operation takes the lock (a dead holder's note is fine).

One world is built per module (a release of a few thousand files, a migration, a database
of a few MiB) and copied for each case.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import ENV_SECRET, World, copy_world, git
from tests.deploy import crash
from tests.deploy.test_transaction import release_with

PY = crash.PY
ASSETS = 1500  # files the big release adds: enough for a checkout to be killed mid-way
OPERATOR_FILE = "operator-notes.txt"  # untracked, the operator's own: must survive


def _big_release(world: World) -> None:
    """1.11.0: thousands of new files, one changed (bot.py), one gone (CHANGES)."""
    assets = world.release / "assets"
    assets.mkdir()
    for number in range(ASSETS):
        (assets / f"{number:05d}.txt").write_text(f"asset {number}\n" * 4)
    (world.release / "bot.py").write_text("print('hello, 1.11.0')\n")
    (world.release / "CHANGES").unlink()
    release_with(world, "1.11.0")
    # Packed, fetched, and the release side's tree back to small: each copy of the world is
    # a few hundred files, not thousands.
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    git(world.release, "checkout", "--quiet", "--detach", "v1.0.0")
    for repo in (world.release, world.deploy):
        git(repo, "repack", "-adq")
        git(repo, "prune")


@pytest.fixture(scope="module")
def big_world(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = copy_world(template_world, tmp_path_factory.mktemp("big") / "world")
    _big_release(world)
    (world.deploy / OPERATOR_FILE).write_text("mine\n")
    return world


def porcelain(world: World) -> str:
    return git(world.deploy, "status", "--porcelain", env={"GIT_OPTIONAL_LOCKS": "0"})


def checked(world: World, before: dict[str, object], commits: set[str]) -> None:
    """What every case must hold once the next start has settled the crash."""
    assert not (world.deploy / ".git" / "index.lock").exists()
    assert world.head() in commits
    assert porcelain(world) == before["porcelain"]
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert (world.deploy / OPERATOR_FILE).read_text() == "mine\n"


@pytest.mark.parametrize("how", ["pid", "group"])
def test_a_checkout_killed_half_way_is_put_back_whole(
        big_world: World, tmp_path: Path, how: str) -> None:
    world = copy_world(big_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    start, target = world.head(), world.tag_commit("v1.11.0", world.release)
    lock = world.deploy / ".git" / "index.lock"
    for _attempt in range(5):  # by timing: bounded, and each try is told apart
        install, marker = crash.start(world.deploy, "install", "--type", "bot", "--no-backup",
                                      pause="install:checkout",
                                      env={"GITRELEASE_PAUSE_SECONDS": "0"})
        crash.wait_for(marker.exists, install, "the checkout")
        while not lock.exists() and install.poll() is None:
            time.sleep(0.0005)
        crash.kill(install, how)
        if lock.exists():
            break
    assert lock.exists(), "no kill landed inside the checkout"
    settled = crash.gitrelease(world.deploy, "--json", "status", "--history", "--no-metrics")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    checked(world, before, {start})
    # All of it git's (a file cut off mid-write too): nothing is left as the operator's, and
    # the folder the checkout made is gone with its files.
    (session,) = json.loads(settled.stdout)["recent_sessions"]
    assert "left as you changed it" not in session["error_message"], session["error_message"]
    assert not (world.deploy / "assets").exists()
    again = crash.gitrelease(world.deploy, "--json", "install", "--type", "bot", "--no-backup")
    assert again.returncode == 0, again.stdout + again.stderr
    assert world.head() == target


# -- the sweep over the journal's pause points --------------------------------------------------

BEFORE = [(1, "!"), (2, "?")]
MIGRATED = [(1, "migrated"), (2, "migrated"), (3, "added by 1.11.0")]
_MIGRATION = ("import sqlite3; c = sqlite3.connect('data/app.db'); "
              "c.execute(\"UPDATE guilds SET prefix = 'migrated'\"); "
              "c.execute(\"INSERT INTO guilds VALUES (3, 'added by 1.11.0')\"); c.commit()")
#: Where an install is killed: before and after the steps its journal records (of the steps
#: before any change, only the first and the last), and inside the pre-update backup.
INSTALL_POINTS = [
    "install:preflight", "install:resolve:done", "install:backup", "archive:member-written",
    *(f"install:{step}{done}" for step in ("backup", "checkout", "verify", "post_update",
                                           "health_check") for done in ("", ":done")
      if f"{step}{done}" not in ("backup", "verify")),
]
#: Where a rollback to 1.0.0 is killed; "sqlite:restore-writing" is inside the restore's
#: write of the live database (between two steps of SQLite's backup API, in one transaction).
ROLLBACK_POINTS = ["rollback:preflight", "rollback:backup", "rollback:backup:done",
                   "rollback:checkout", "rollback:checkout:done", "rollback:verify:done",
                   "rollback:restore", "sqlite:restore-writing", "rollback:restore:done"]
#: Where `backup restore` is killed: inside its safety backup, and inside the live write.
RESTORE_POINTS = ["archive:member-written", "sqlite:restore-writing"]
#: At a pause point the process sleeps with no child running, so its whole group and its
#: main pid die alike: the main pid alone is killed where a child has just run or is about
#: to (the checkout's git, a release's command, the restore's write).
PID_TOO = {"install:checkout", "install:post_update", "install:health_check",
           "rollback:restore", "sqlite:restore-writing", "archive:member-written"}


def cases(points: list[str], *, pid: set[str] = PID_TOO) -> list[tuple[str, str]]:
    return [(point, how) for point in points
            for how in (("group", "pid") if point in pid else ("group",))]


def rows(world: World) -> list[tuple]:
    with sqlite3.connect(world.deploy / "data" / "app.db", timeout=30) as db:
        answer = db.execute("PRAGMA integrity_check").fetchone()[0]
        found = db.execute("SELECT * FROM guilds ORDER BY id").fetchall()
    db.close()
    assert answer == "ok"
    return found


def last_session(world: World) -> tuple[str, str | None, str | None]:
    """(status, from_commit, to_commit) of the newest session, straight from the index."""
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as db:
        row = db.execute("SELECT status, from_commit, to_commit FROM update_sessions "
                         "ORDER BY started_at DESC LIMIT 1").fetchone()
    db.close()
    return row


def settle(world: World) -> None:
    """The next operation after the crash: it takes the lock, settles what was left, and
    reads the live database (past a journal a kill may have left hot)."""
    done = crash.gitrelease(world.deploy, "--json", "backup", "create", "--type", "database")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def install_world(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = copy_world(template_world, tmp_path_factory.mktemp("install") / "world")
    release_with(world, "1.11.0", post_update_command=[PY, "-c", _MIGRATION],
                 health_check_command=[PY, "-c", "print('ok')"])
    (world.deploy / OPERATOR_FILE).write_text("mine\n")
    return world


@pytest.mark.parametrize(("point", "how"), cases(INSTALL_POINTS,
                                                 pid=PID_TOO - {"archive:member-written"}))
def test_install_killed_at(install_world: World, tmp_path: Path, point: str, how: str) -> None:
    world = copy_world(install_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    start, target = world.head(), world.tag_commit("v1.11.0", world.release)
    crash.kill_at(world.deploy, point, "install", "--type", "bot", how=how)
    settle(world)
    checked(world, before, {start, target})
    status, _, _ = last_session(world)
    assert (status, world.head()) in {("completed", target), ("failed", start)}
    assert rows(world) == (MIGRATED if world.head() == target else BEFORE)


@pytest.fixture(scope="module")
def rollback_world(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """At 1.11.0 with a row added since, a full backup taken at 1.0.0 (named "at-1.0.0") of
    a database big enough (~1.5 MiB) to be written in several steps."""
    world = copy_world(template_world, tmp_path_factory.mktemp("rollback") / "world")
    release_with(world, "1.11.0")
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("CREATE TABLE blobs (data BLOB)")
        db.executemany("INSERT INTO blobs VALUES (?)", [(os.urandom(1500),)] * 1000)
    db.close()
    done = crash.gitrelease(world.deploy, "install", "--type", "bot", "--backup-name",
                            "at-1.0.0")
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (3, 'since 1.11.0')")
    db.close()
    (world.deploy / OPERATOR_FILE).write_text("mine\n")
    return world


SINCE = [*BEFORE, (3, "since 1.11.0")]


@pytest.mark.parametrize(("point", "how"), cases(ROLLBACK_POINTS))
def test_rollback_killed_at(rollback_world: World, tmp_path: Path, point: str,
                            how: str) -> None:
    world = copy_world(rollback_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    start, target = world.head(), world.tag_commit("v1.0.0")
    crash.kill_at(world.deploy, point, "rollback", "1.0.0", "--yes", how=how)
    settle(world)
    checked(world, before, {start, target})
    status, _, _ = last_session(world)
    assert (status, world.head()) in {("completed", target), ("failed", start)}
    assert rows(world) == (BEFORE if world.head() == target else SINCE)


@pytest.mark.parametrize(("point", "how"), cases(RESTORE_POINTS))
def test_restore_killed_at(rollback_world: World, tmp_path: Path, point: str,
                           how: str) -> None:
    world = copy_world(rollback_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    crash.kill_at(world.deploy, point, "backup", "restore", "at-1.0.0", "--yes", "--type",
                  "database", how=how)
    settle(world)
    checked(world, before, {world.tag_commit("v1.11.0")})
    assert rows(world) in (SINCE, BEFORE)
    again = crash.gitrelease(world.deploy, "--json", "backup", "restore", "at-1.0.0", "--yes",
                             "--type", "database")
    assert again.returncode == 0, again.stdout + again.stderr
    assert rows(world) == BEFORE


# -- a whole restore, files and database, killed at each of its own steps -----------------------

#: The plain files of the backup "snap" and of the live tree since: each differs, one the
#: restore creates (cards/3.txt, gone since), one is the same (cards/2.txt, not replaced).
SNAP_FILES = {"notes.json": '{"notes": "at the snapshot"}\n', "cards/1.txt": "one, old\n",
              "cards/2.txt": "two\n", "cards/3.txt": "three, gone since\n"}
LIVE_FILES = {"notes.json": '{"notes": "written since"}\n', "cards/1.txt": "one, new\n",
              "cards/2.txt": "two\n", "cards/3.txt": None}
SINCE_SNAP = [*SINCE, (4, "since the snapshot")]
#: Where `backup restore snap --yes` (all types) is killed: unpacking, after its first file
#: is swapped in, before, inside and right after the live database's write (committed: put
#: back from the pages it kept aside), and once all is written.
WHOLE_RESTORE_POINTS = ["restore:staged", "restore:placed", "restore:database",
                        "sqlite:restore-writing", "restore:database:written",
                        "restore:written"]


def _write_files(world: World, files: dict[str, str | None]) -> None:
    for name, text in files.items():
        path = world.deploy / "data" / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def _files(world: World) -> dict[str, str | None]:
    return {name: (path.read_text() if (path := world.deploy / "data" / name).exists()
                   else None) for name in SNAP_FILES}


@pytest.fixture(scope="module")
def restore_world(rollback_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """The rollback world with a full backup "snap" of SNAP_FILES and SINCE, then the files
    changed (LIVE_FILES) and a row added: a restore of it changes both, so a mix shows."""
    world = copy_world(rollback_world, tmp_path_factory.mktemp("restore") / "world")
    _write_files(world, SNAP_FILES)
    done = crash.gitrelease(world.deploy, "--json", "backup", "create", "--type", "full",
                            "--name", "snap")
    assert done.returncode == 0, done.stdout + done.stderr
    # Taken on the install's backup: the sweep restores an incremental archive, its
    # database rebuilt from the base's pages and its own.
    assert json.loads(done.stdout)["base"] is not None
    _write_files(world, LIVE_FILES)
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (4, 'since the snapshot')")
    db.close()
    return world


def _leftovers(world: World) -> list[str]:
    """Work files of a restore: its staging dir beside the archives, its journal in the
    data dir."""
    data = world.deploy / "data"
    return sorted(p.relative_to(data).as_posix() for p in [
        *(data / "backups").iterdir(), *data.iterdir()] if p.name.startswith(".restore-"))


def _recoveries(world: World) -> list[tuple[str, str]]:
    """(action, outcome) of each audit row a recovery wrote, straight from the index."""
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as db:
        found = db.execute("SELECT action, outcome, detail FROM audit_log ORDER BY id").fetchall()
    db.close()
    return [(action, outcome) for action, outcome, detail in found
            if "recovery" in json.loads(detail)]


@pytest.mark.parametrize(("point", "how"), cases(
    WHOLE_RESTORE_POINTS, pid={"restore:placed", "sqlite:restore-writing"}))
def test_whole_restore_killed_at(restore_world: World, tmp_path: Path, point: str,
                                 how: str) -> None:
    """Files and rows all old (killed before its journal said "written": undone) or all new
    (after: kept), after the next start: the next read (`status`, which settles when no
    operation runs) for a group kill, the next operation (a backup) for the main pid's."""
    world = copy_world(restore_world, tmp_path / "world")
    before = {"porcelain": porcelain(world)}
    crash.kill_at(world.deploy, point, "backup", "restore", "snap", "--yes", how=how)
    kept = point == "restore:written"
    journalled = point != "restore:staged"  # unpacking: nothing live touched, no journal
    if how == "group":
        seen = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
    else:
        seen = crash.gitrelease(world.deploy, "--json", "backup", "create", "--type",
                                "database")
    assert seen.returncode == 0, seen.stdout + seen.stderr
    checked(world, before, {world.tag_commit("v1.11.0")})
    assert (_files(world), rows(world)) == ((SNAP_FILES, SINCE) if kept
                                            else (LIVE_FILES, SINCE_SNAP))
    assert _leftovers(world) == []  # the journal, the staging dir and the copies aside are gone
    # Said by the command that settled it, and recorded.
    assert ("was undone" in seen.stderr) is (journalled and not kept), seen.stderr
    assert ("kept as restored" in seen.stderr) is kept, seen.stderr
    assert _recoveries(world) == ([("restore", "completed" if kept else "undone")]
                                  if journalled else [])
    again = crash.gitrelease(world.deploy, "--json", "backup", "restore", "snap", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (_files(world), rows(world)) == (SNAP_FILES, SINCE)


def test_a_restore_undone_half_way_itself_is_finished_by_the_start_after(
        restore_world: World, tmp_path: Path) -> None:
    """The undo killed too, after its first file was put back: what is put back has used
    up its copy, so the start after that finds only the rest to do."""
    world = copy_world(restore_world, tmp_path / "world")
    crash.kill_at(world.deploy, "sqlite:restore-writing", "backup", "restore", "snap", "--yes",
                  how="group")
    crash.kill_at(world.deploy, "restore:putting-back", "status", "--no-metrics", how="group")
    seen = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert "was undone" in seen.stderr
    assert (_files(world), rows(world)) == (LIVE_FILES, SINCE_SNAP)
    assert _leftovers(world) == []


def test_a_restore_that_cannot_be_undone_keeps_its_copies_and_refuses(
        restore_world: World, tmp_path: Path) -> None:
    """A file that cannot be put back (a folder is now at its name): every command says
    which and why, the copies stay where the next start finds them, and once the folder is
    gone the restore is undone whole."""
    world = copy_world(restore_world, tmp_path / "world")
    crash.kill_at(world.deploy, "restore:database", "backup", "restore", "snap", "--yes",
                  how="group")
    notes = world.deploy / "data" / "notes.json"
    notes.unlink()
    notes.mkdir()
    for args in (("status", "--no-metrics"), ("backup", "create", "--type", "database")):
        refused = crash.gitrelease(world.deploy, "--json", *args)
        assert refused.returncode != 0
        error = json.loads(refused.stdout)["error"]
        assert "could not be undone whole" in error["message"], error
        assert "notes.json" in error["message"] and error.get("hint"), error
        journal, staging = _leftovers(world)  # kept: the copies, and what they are for
        assert staging.startswith("backups/") and journal.endswith(".tmp-journal")
    notes.rmdir()
    seen = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert (_files(world), rows(world)) == (LIVE_FILES, SINCE_SNAP)
    assert _leftovers(world) == []


def test_a_restore_staged_on_another_disk_is_undone_from_copies_there(
        restore_world: World, tmp_path: Path) -> None:
    """Backups (and so the staging dir) on another filesystem than the files: what is kept
    aside is a copy (no hard link crosses disks), made durable before the first swap."""
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to put the backups on")
    world = copy_world(restore_world, tmp_path / "world")
    backups = other / f"gitrelease-kill-sweep-{os.getpid()}-{tmp_path.name}"
    settings = world.deploy / "data" / "settings.toml"
    settings.write_text(settings.read_text() + f'backup_path = "{backups}"\n')
    try:
        # As an operator moves the backups with the setting: the index reads archives only
        # from the backups folder the settings name.
        backups.mkdir()
        for archive in (world.deploy / "data" / "backups").glob("*.tar*"):
            shutil.move(archive, backups / archive.name)
        crash.kill_at(world.deploy, "sqlite:restore-writing", "backup", "restore", "snap",
                      "--yes", how="group")
        assert [p.name for p in backups.iterdir() if p.name.startswith(".restore-")]
        seen = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
        assert seen.returncode == 0, seen.stdout + seen.stderr
        assert "was undone" in seen.stderr
        assert (_files(world), rows(world)) == (LIVE_FILES, SINCE_SNAP)
        assert (world.deploy / ".env").read_text() == ENV_SECRET
        assert not [p.name for p in backups.iterdir() if p.name.startswith(".")]
        assert _leftovers(world) == []
    finally:
        shutil.rmtree(backups, ignore_errors=True)


def test_an_undo_leaves_what_was_changed_since_the_kill(restore_world: World,
                                                        tmp_path: Path) -> None:
    """Between the kill and the next start the bot or the operator may write a file the
    restore had put in place, or one it had created: that is theirs, never undone."""
    world = copy_world(restore_world, tmp_path / "world")
    crash.kill_at(world.deploy, "restore:database", "backup", "restore", "snap", "--yes",
                  how="group")
    data = world.deploy / "data"
    assert _files(world) == SNAP_FILES  # every plain file was swapped in
    (data / "notes.json").write_text("edited after the kill\n")
    (data / "cards" / "3.txt").write_text("written after the kill\n")
    seen = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert "changed since the restore was killed: data/cards/3.txt, data/notes.json" \
        in seen.stderr or "data/notes.json, data/cards/3.txt" in seen.stderr, seen.stderr
    assert _files(world) == {**LIVE_FILES, "notes.json": "edited after the kill\n",
                             "cards/3.txt": "written after the kill\n"}
    assert rows(world) == SINCE_SNAP
    assert _leftovers(world) == []


def test_a_link_the_restore_replaced_is_put_back_as_a_link(restore_world: World,
                                                           tmp_path: Path) -> None:
    """A link at a target is kept aside as the link itself: undoing a killed restore puts
    that link back (its copy in the staging dir is a link, and that is no forgery)."""
    world = copy_world(restore_world, tmp_path / "world")
    outside = tmp_path / "elsewhere.json"
    outside.write_text('{"notes": "the operator\'s own file"}\n')
    notes = world.deploy / "data" / "notes.json"
    notes.unlink()
    notes.symlink_to(outside)
    crash.kill_at(world.deploy, "restore:placed", "backup", "restore", "snap", "--yes",
                  how="group")
    seen = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert "was undone" in seen.stderr, seen.stderr
    assert notes.is_symlink() and os.readlink(notes) == str(outside)
    assert outside.read_text() == '{"notes": "the operator\'s own file"}\n'
    assert rows(world) == SINCE_SNAP
    assert _leftovers(world) == []


@pytest.mark.parametrize("forged", ["target outside", "staging elsewhere", "copy outside",
                                    "staged outside", "staging through a link",
                                    "staged through a link", "copies through a link"])
def test_a_journal_that_is_not_this_deployments_is_refused(
        restore_world: World, tmp_path: Path, forged: str) -> None:
    """A journal's paths are undone, removed and rewritten: one naming anything but this
    deployment's own files and staging dir (a deployment copied with its journal, a file
    another program wrote) is refused, and nothing it names is touched."""
    world = copy_world(restore_world, tmp_path / "world")
    crash.kill_at(world.deploy, "restore:placed", "backup", "restore", "snap", "--yes",
                  how="group")
    outside = tmp_path / "outside"
    (outside / ".restore-elsewhere").mkdir(parents=True)
    victim = outside / "victim.txt"
    victim.write_text("not the deployment's\n")
    journal = next((world.deploy / "data").glob(".restore-*"))
    record = json.loads(journal.read_text())
    if forged == "target outside":
        record["steps"][0].update(path=str(victim), base=str(outside), aside=None)
    elif forged == "staging elsewhere":
        record["staging"] = str(outside / ".restore-elsewhere")
    elif forged == "copy outside":
        record["steps"][0]["aside"] = str(victim)
    elif forged == "staging through a link":  # its files would be read and removed
        moved = outside / Path(record["staging"]).name
        shutil.copytree(record["staging"], outside / "real", symlinks=True)
        moved.symlink_to(outside / "real")
        record["staging"] = str(moved)
    elif forged == "copies through a link":  # what is put back would come from outside
        copies = Path(record["staging"]) / "aside"
        shutil.copytree(copies, outside / "copies", symlinks=True)
        shutil.rmtree(copies)
        copies.symlink_to(outside / "copies")
    else:  # the staged file a database's kept pages are put back with
        step = next(s for s in record["steps"] if s["through"])
        assert step["staged"] and step["aside"].endswith(".kept"), step
        if forged == "staged outside":
            step["staged"] = "../../outside/victim.txt"
        else:
            (Path(record["staging"]) / "planted.db").symlink_to(victim)
            step["staged"] = "planted.db"
    journal.write_text(json.dumps(record))
    before = _files(world)
    refused = crash.gitrelease(world.deploy, "--json", "status", "--no-metrics")
    assert refused.returncode != 0
    error = json.loads(refused.stdout)["error"]
    assert "is not this deployment's" in error["message"] and "mv " in error["hint"], error
    assert victim.read_text() == "not the deployment's\n"
    assert (outside / ".restore-elsewhere").is_dir()
    assert _files(world) == before and journal.exists()
