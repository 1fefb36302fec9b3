"""Incremental backups: a chain of archives, each holding only what changed since the one
before it (files by sha256, databases by SQLite page), restored byte for byte from any point.

Real deployments, real SQLite databases, real tar archives read back with the tar reader
the tests use (`members_of`); nothing here stands in for the code under test.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from pathlib import Path

import pytest

from gitrelease.core.models import Backup
from gitrelease.manager import ReleaseManager
from tests.conftest import World
from tests.state.test_backups import members_of

YES = {"confirm": True}


def _fill(db: Path, rows: int) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.executemany("INSERT INTO notes (body) VALUES (?)",
                               [(f"note {n} " + hashlib.sha256(b"%d" % n).hexdigest() * 4,)
                                for n in range(rows)])


def _edit(db: Path, day: int) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE notes SET body = ? || id WHERE id % 500 = 0",
                           (f"edited on day {day}: ",))


def _dump(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def _state(world: World) -> dict[str, str]:
    """Every backed-up file's sha256, the database by its content (its `.dump`)."""
    data = world.deploy / "data"
    files = {p.relative_to(world.deploy).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((data / "json").glob("*"))}
    files[".env"] = hashlib.sha256((world.deploy / ".env").read_bytes()).hexdigest()
    files["dump"] = _dump(data / "app.db")
    return files


def _json(world: World, day: int) -> None:
    folder = world.deploy / "data" / "json"
    folder.mkdir(exist_ok=True)
    for n in range(6):
        text = f'{{"guild": {n}, "day": {day if n == day % 6 else 0}}}\n'
        (folder / f"guild_{n}.json").write_text(text)


async def test_a_chain_stores_only_what_changed_and_restores_every_point(world: World) -> None:
    db = world.deploy / "data" / "app.db"
    _fill(db, 4000)
    (world.deploy / ".env").chmod(0o600)
    states: list[dict[str, str]] = []
    backups: list[Backup] = []
    async with await ReleaseManager.open(world.deploy) as manager:
        for day in range(4):
            if day:
                _edit(db, day)
            _json(world, day)
            states.append(_state(world))
            backups.append(await manager.create_backup("full"))
        full, *daily = backups
        assert full.base_id is None and full.chain == []
        for number, backup in enumerate(daily):
            assert backup.base_id == backups[number].id
            assert [link["id"] for link in backup.chain] == [b.id for b in backups[:number + 1]]
            held = members_of(Path(backup.file_path or ""))
            assert "data/app.db" not in held and "pages/data/app.db.delta" in held
            assert ".env" not in held and "root/.env" not in held  # the base's
            assert backup.compressed_size < full.compressed_size / 3
            assert backup.chain_size == sum(b.compressed_size or 0 for b in backups[:number + 2])
        for point in (1, 0, 3, 2):
            _edit(db, 99)
            (world.deploy / ".env").write_text("DISCORD_TOKEN=other\n")
            result = await manager.restore_backup(backups[point].id, YES)
            assert _state(world) == states[point], point
            assert result.restored


async def _chain(world: World, manager: ReleaseManager, days: int) -> list[Backup]:
    db = world.deploy / "data" / "app.db"
    _fill(db, 3000)
    backups = [await manager.create_backup("full")]
    for day in range(1, days + 1):
        _edit(db, day)
        backups.append(await manager.create_backup("full"))
    return backups


async def test_full_every_bounds_the_chain_and_full_starts_a_new_one(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text("full_every = 3\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        backups = await _chain(world, manager, 4)
        forced = await manager.create_backup("full", {"full": True})
        after = await manager.create_backup("full")
        database = await manager.create_backup("database")  # its own type: no base yet
    assert [b.base_id for b in backups] == [None, backups[0].id, backups[1].id, None,
                                            backups[3].id]
    assert forced.base_id is None and "data/app.db" in members_of(Path(forced.file_path or ""))
    assert after.base_id == forced.id
    assert database.base_id is None


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_lost_base_breaks_the_chain_named_by_verify_and_refused_by_restore(
        world: World) -> None:
    from gitrelease.core.errors import VerificationFailed

    async with await ReleaseManager.open(world.deploy) as manager:
        full, middle, newest = await _chain(world, manager, 2)
        Path(middle.file_path or "").unlink()
        _edit(world.deploy / "data" / "app.db", 77)
        before = world.state()
        with pytest.raises(VerificationFailed) as refused:
            await manager.restore_backup(newest.id, YES)
        assert middle.id in refused.value.message
        after = world.state()
        assert after["files"] == before["files"]  # nothing restored, no safety backup kept
        assert after["index"]["backups"] == before["index"]["backups"]  # type: ignore[index]
        with pytest.raises(VerificationFailed) as checked:
            await manager.verify_backup(newest.id)
        assert checked.value.code == "chain_broken" and middle.id in checked.value.message
        shown = {b.id: b for b in await manager.list_backups({"time_range": "all"})}
    # The lost one is marked; the newest is whole itself, and restorable again once its
    # base is back (fetched from offsite, say), so it stays as it is.
    assert shown[middle.id].status.value == "corrupted"
    assert shown[newest.id].status.value == "completed"
    assert shown[full.id].status.value == "completed"


async def test_a_damaged_base_is_refused_and_nothing_changes(world: World) -> None:
    from gitrelease.core.errors import VerificationFailed

    async with await ReleaseManager.open(world.deploy) as manager:
        full, newest = await _chain(world, manager, 1)
        archive = Path(full.file_path or "")
        _flip(archive, archive.stat().st_size // 2)
        _edit(world.deploy / "data" / "app.db", 77)
        live = (world.deploy / "data" / "app.db").read_bytes()
        with pytest.raises(VerificationFailed) as refused:
            await manager.restore_backup(newest.id, YES)
        assert refused.value.code == "chain_broken" and full.id in refused.value.message
        assert (world.deploy / "data" / "app.db").read_bytes() == live
        shown = {b.id: b for b in await manager.list_backups({"time_range": "all"})}
        assert shown[full.id].status.value == "corrupted"  # the damaged one, by the restore
        assert shown[newest.id].status.value == "completed"
        with pytest.raises(VerificationFailed) as checked:
            await manager.verify_backup(newest.id)
        after = await manager.create_backup("full")  # never on a damaged chain
    assert full.id in checked.value.message
    assert after.base_id is None


async def test_a_database_at_another_page_size_is_stored_whole(world: World) -> None:
    db = world.deploy / "data" / "app.db"
    async with await ReleaseManager.open(world.deploy) as manager:
        _fill(db, 2000)
        await manager.create_backup("full")
        connection = sqlite3.connect(db, isolation_level=None)
        connection.execute("PRAGMA page_size = 8192")
        connection.execute("VACUUM")
        connection.close()
        wanted = _dump(db)
        second = await manager.create_backup("full")
        _edit(db, 5)
        await manager.restore_backup(second.id, YES)
    held = members_of(Path(second.file_path or ""))
    assert second.base_id is not None and "data/app.db" in held
    assert "pages/data/app.db.delta" not in held
    assert _dump(db) == wanted


async def test_a_file_whose_mode_alone_changed_is_restored_at_its_newest_mode(
        world: World) -> None:
    _json(world, 0)
    script = world.deploy / "data" / "json" / "guild_1.json"
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.create_backup("full")
        script.chmod(0o640)
        newest = await manager.create_backup("full")
        assert "data/json/guild_1.json" not in members_of(Path(newest.file_path or ""))
        script.write_text("lost\n")
        script.chmod(0o600)
        await manager.restore_backup(newest.id, YES)
    assert script.read_text() == '{"guild": 1, "day": 0}\n'
    assert script.stat().st_mode & 0o777 == 0o640


async def test_gnu_tar_lists_an_incremental_archive_and_a_deep_verify_passes(
        world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        _full, newest = await _chain(world, manager, 1)
        verified = await manager.verify_backup(newest.id, deep=True)
    listed = subprocess.run(["tar", "-I", "zstd", "-tf", newest.file_path or ""], check=True,
                            capture_output=True, text=True).stdout.split()
    assert "pages/data/app.db.delta" in listed and "manifest.json" in listed
    assert verified.status.value == "completed"


def test_a_delta_naming_a_page_past_the_end_is_refused(tmp_path: Path) -> None:
    import io

    from gitrelease.core.errors import VerificationFailed
    from gitrelease.state.pages import Assembly

    past = io.BytesIO((10).to_bytes(4, "big") + b"x" * 4096)
    assembly = Assembly(tmp_path / "a.db", 4096, 4, "data/app.db")
    with pytest.raises(VerificationFailed, match="page 10 of 4"):
        assembly.delta(4)(past)
    cut = io.BytesIO((1).to_bytes(4, "big") + b"x" * 100)
    with pytest.raises(VerificationFailed, match="cut off"):
        assembly.delta(4)(cut)
    assembly.close()


def test_an_assembly_takes_each_page_from_the_newest_part_that_has_it(tmp_path: Path) -> None:
    import io

    from gitrelease.state.pages import Assembly

    def record(number: int, fill: bytes) -> bytes:
        return number.to_bytes(4, "big") + fill * 512

    assembly = Assembly(tmp_path / "a.db", 512, 3, "data/app.db")
    assembly.delta(3)(io.BytesIO(record(1, b"N")))  # the newest
    assembly.delta(4)(io.BytesIO(record(1, b"o") + record(3, b"o") + record(2, b"O")))
    assembly.whole(io.BytesIO(b"A" * 512 + b"B" * 512 + b"C" * 512))
    assembly.close()
    assert (tmp_path / "a.db").read_bytes() == b"A" * 512 + b"N" * 512 + b"O" * 512


def test_page_digest_is_the_same_in_any_pieces() -> None:
    from gitrelease.state.pages import HASH_SIZE, PageDigest

    data = bytes(range(256)) * 64  # four 4 KiB pages
    whole, pieces = PageDigest(4096), PageDigest(4096)
    whole.update(data)
    for at in range(0, len(data), 1000):
        pieces.update(data[at:at + 1000])
    assert whole.hashes() == pieces.hashes() and len(whole.hashes()) == 4 * HASH_SIZE
    assert whole.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_a_database_that_grows_and_shrinks_along_the_chain_is_rebuilt_at_each_point(
        world: World) -> None:
    db = world.deploy / "data" / "app.db"
    _fill(db, 1000)
    steps = [lambda: None, lambda: _fill(db, 1500), lambda: _shrink(db, 900),
             lambda: _fill(db, 300), lambda: _edit(db, 4)]
    dumps, backups = [], []
    async with await ReleaseManager.open(world.deploy) as manager:
        for step in steps:
            step()
            dumps.append(_dump(db))
            backups.append(await manager.create_backup("full"))
        assert all(b.base_id for b in backups[1:])
        for point in (4, 2, 3, 1):
            await manager.restore_backup(backups[point].id, YES)
            assert _dump(db) == dumps[point], point


def _shrink(db: Path, keep: int) -> None:
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("DELETE FROM notes WHERE id > ?", (keep,))
    connection.execute("VACUUM")
    connection.close()


async def test_a_chain_is_never_longer_than_max_backups(world: World) -> None:
    (world.deploy / "data" / "settings.toml").write_text("max_backups = 2\nauto_cleanup = false\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        backups = await _chain(world, manager, 3)
    assert [b.base_id for b in backups] == [None, backups[0].id, None, backups[2].id]


async def test_a_planted_incremental_whose_delta_climbs_out_is_refused(world: World) -> None:
    """An archive dropped into the backups folder, naming a real backup as its base, whose
    page delta is a member named to land outside the staging dir: refused whole, nothing
    written anywhere."""
    import io
    import json
    import tarfile

    from gitrelease.core.errors import GitReleaseError

    async with await ReleaseManager.open(world.deploy) as manager:
        full = await manager.create_backup("full")
    manifest_db = next(f for f in (await _manifest(world, full))["files"]
                       if f["path"] == "data/app.db")
    evil = (0).to_bytes(4, "big") + b"E" * int(manifest_db["page_size"])
    member = "pages/../../../evil.delta"
    planted_id = "backup_29990101_000000"
    entry = {**manifest_db, "stored": "delta", "delta": {
        "member": member, "size": len(evil), "sha256": hashlib.sha256(evil).hexdigest(),
        "pages": 1}}
    entry.pop("hashes", None)
    manifest = {"backup_id": planted_id, "backup_type": "full", "name": planted_id,
                "created_at": "2999-01-01T00:00:00+00:00", "format": 2, "base": full.id,
                "chain": [{"id": full.id, "sha256": full.checksum}], "files": [entry]}
    with tarfile.open(world.deploy / "data" / "backups" / f"{planted_id}.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(evil)
        tar.addfile(info, io.BytesIO(evil))
        encoded = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(encoded)
        tar.addfile(info, io.BytesIO(encoded))
    _edit_after_fill(world)
    before = (world.deploy / "data" / "app.db").read_bytes()
    async with await ReleaseManager.open(world.deploy) as manager:
        with pytest.raises(GitReleaseError) as refused:
            await manager.restore_backup(planted_id, {**YES, "verify_backup": False})
    assert refused.value.code == "unsafe_archive", refused.value.message
    assert "evil.delta" in refused.value.message
    assert (world.deploy / "data" / "app.db").read_bytes() == before
    assert not list(world.base.rglob("evil.delta"))


async def _manifest(world: World, backup: Backup) -> dict:
    from gitrelease.state.archive import read_manifest

    return read_manifest(Path(backup.file_path or ""))


def _edit_after_fill(world: World) -> None:
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("INSERT INTO guilds VALUES (77, 'since')")
    db.close()


async def test_a_restore_reads_the_newest_archive_even_when_its_files_are_the_bases(
        world: World) -> None:
    """.env is the base's: a restore of just the config still checks the archive it was
    asked to restore, and refuses it damaged, with .env left as it is."""
    from gitrelease.core.errors import VerificationFailed

    (world.deploy / ".env").chmod(0o600)
    async with await ReleaseManager.open(world.deploy) as manager:
        _full, newest = await _chain(world, manager, 1)
        assert "root/.env" not in members_of(Path(newest.file_path or ""))
        archive = Path(newest.file_path or "")
        _flip(archive, archive.stat().st_size // 2)
        (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
        with pytest.raises(VerificationFailed):
            await manager.restore_backup(newest.id, {**YES, "restore_type": "config"})
    assert (world.deploy / ".env").read_text() == "DISCORD_TOKEN=rotated\n"


def test_a_file_gone_since_it_was_listed_is_left_to_the_writer(tmp_path: Path) -> None:
    """Deleted between the listing and its turn (a rotated log): the backup on a base does
    not fail on it; the writer records it as skipped, as a full backup does."""
    from gitrelease.state.archive import Member
    from gitrelease.state.incremental import Base, Chain, Link, against_base

    entry = {"path": "data/gone.json", "kind": "data", "size": 3, "mode": 0o644,
             "sha256": "0" * 64}
    base = Base(Chain((Link(None, {"data/gone.json": entry}),)), {})  # type: ignore[arg-type]
    member = Member(tmp_path / "gone.json", "data/gone.json", "data")
    assert against_base(member, base, tmp_path) == member


@pytest.mark.parametrize(("page_size", "page_count"), [(0, 4), (1000, 4), (4096, -1),
                                                       (131072, 1), (4096, 2**33)])
def test_pages_recorded_wrongly_are_refused(tmp_path: Path, page_size: int,
                                            page_count: int) -> None:
    from gitrelease.core.errors import VerificationFailed
    from gitrelease.state.pages import Assembly

    with pytest.raises(VerificationFailed, match="recorded wrongly"):
        Assembly(tmp_path / "a.db", page_size, page_count, "data/app.db")
    assert not (tmp_path / "a.db").exists()


async def test_verify_names_a_file_recorded_as_the_bases_that_the_base_lacks(
        world: World) -> None:
    from gitrelease.core.errors import VerificationFailed

    async with await ReleaseManager.open(world.deploy) as manager:
        full, newest = await _chain(world, manager, 1)
        store = await manager.deployment.index()
        row = await store.get_backup(newest.id)
        assert row is not None
        manifest = await store.backup_manifest(row)
        manifest["files"].append({"path": "data/never.json", "kind": "data", "size": 2,
                                  "mode": 0o644, "sha256": "0" * 64, "stored": "base"})
        row.metadata = {**row.metadata, "manifest": manifest}
        await store.save_backup(row)
        with pytest.raises(VerificationFailed) as checked:
            await manager.verify_backup(newest.id)
    assert checked.value.code == "chain_broken" and "data/never.json" in checked.value.message
    assert full.id in checked.value.message


async def test_a_base_row_naming_a_file_outside_the_backups_folder_is_refused(
        world: World) -> None:
    """The index's word for where a base's archive is, is checked as for any row: a base row
    pointing outside (a copy of the real archive there, so reading it would "work") refuses
    the restore, naming the base, and the file outside is never read or touched."""
    import shutil

    from gitrelease.core.errors import GitReleaseError

    async with await ReleaseManager.open(world.deploy) as manager:
        full, newest = await _chain(world, manager, 1)
        outside = world.base / "elsewhere.tar.zst"
        shutil.copy2(full.file_path or "", outside)
        store = await manager.deployment.index()
        row = await store.get_backup(full.id)
        assert row is not None
        row.file_path = str(outside)
        await store.save_backup(row)
        _edit(world.deploy / "data" / "app.db", 9)
        live = (world.deploy / "data" / "app.db").read_bytes()
        held = outside.read_bytes()
        with pytest.raises(GitReleaseError) as refused:
            await manager.restore_backup(newest.id, YES)
    assert refused.value.code == "archive_refused" and full.id in refused.value.message
    assert (world.deploy / "data" / "app.db").read_bytes() == live
    assert outside.read_bytes() == held


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_page_hashes_are_read_from_their_own_frame(tmp_path: Path, compression: str) -> None:
    """The next backup reads a database's page hashes from the frame the manifest says they
    start at, without decoding the database before them; an offset that is wrong (an
    archive changed since, a record forged) only costs the read from the start."""
    import gitrelease.state.archive as archive
    from gitrelease.state.archive import Member, read_member, write_archive

    db = tmp_path / "app.db"
    _fill(db, 3000)
    path = tmp_path / f"one{archive.suffix_for(compression)}"
    written = write_archive(path, [Member(db, "data/app.db", "database", pages=4096)],
                            compression=compression, level=3, manifest={})
    entry = written.manifest["files"][0]
    record = entry["hashes"]
    assert isinstance(record["at"], int) and record["at"] > 0
    streamed = read_member(path, record["member"], {**record, "at": None})
    assert len(streamed) == record["size"]
    assert archive._member_at(path, record["at"], record["member"], record) == streamed
    for wrong in (0, record["at"] + 1, path.stat().st_size + 10):
        assert archive._member_at(path, wrong, record["member"], record) is None
        assert read_member(path, record["member"], {**record, "at": wrong}) == streamed
    # The frame boundary changes nothing for the readers that go from the start.
    listing = subprocess.run(["tar", "-tf", str(path)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing == ["data/app.db", record["member"], "manifest.json"]
