"""Offsite copies as an operator lives with them (moto's S3 server on loopback, the real
boto3): after_backup uploads each backup and queues a failed upload for a retry; archives
that hold config leave only encrypted; `backup list` says where each backup is; a restore
and a rollback fetch an archive whose local copy is gone; verify and prune work offsite."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from gitrelease.core.models import OffsiteState, utcnow
from gitrelease.manager import ReleaseManager
from gitrelease.state.offsite import S3Offsite
from gitrelease.state.offsite_crypt import object_name
from tests.conftest import ENV_SECRET, REPO_ROOT, World, guilds
from tests.s3 import S3Server, object_keys, offsite_settings, start_s3
from tests.state.test_backups import members_of


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitrelease", "--root", str(world.deploy),
                           *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def _archives(world: World) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (world.deploy / "data" / "backups").iterdir()
            if p.is_file()}


async def test_after_backup_uploads_each_backup_encrypted_and_the_list_says_where(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    key = offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                           key=tmp_path / "offsite.key")
    assert key is not None
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full", {"compress": False}, actor="test")
        assert backup.offsite is OffsiteState.UPLOADED and backup.location == "both"
        assert backup.warnings == []
        listed = await manager.list_backups()
    assert [b.location for b in listed] == ["both"]
    name = object_name(key, backup.checksum or "")
    assert object_keys(s3_server, s3_bucket) == [f"bot/backups/{backup.id}.json",
                                                 f"bot/objects/{name}"]
    # The archive here is a plain tar holding the token; the copy offsite holds neither it
    # nor anything of the tar.
    local = Path(backup.file_path or "").read_bytes()
    assert ENV_SECRET.strip().encode() in local
    stored = s3_server.client().get_object(  # type: ignore[attr-defined]
        Bucket=s3_bucket, Key=f"bot/objects/{name}")["Body"].read()
    assert ENV_SECRET.strip().encode() not in stored and b"ustar" not in stored
    record = json.loads(s3_server.client().get_object(  # type: ignore[attr-defined]
        Bucket=s3_bucket, Key=f"bot/backups/{backup.id}.json")["Body"].read())
    assert record["encrypted"] is True and "file_path" not in record
    assert str(world.deploy) not in json.dumps(record)
    shown = _cli(world, "backup", "list")
    assert "here and offsite" in shown.stdout, shown.stdout


async def test_a_failed_upload_leaves_the_backup_whole_is_queued_and_retried(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    key_file = tmp_path / "offsite.key"
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup", key=key_file)
    settings = world.deploy / "data" / "settings.toml"
    working = settings.read_text()
    # Nothing answers on the endpoint: the backup is taken all the same, its upload fails.
    settings.write_text(working.replace(s3_server.endpoint, "http://127.0.0.1:9"))
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full", actor="test")
        assert backup.status.value == "completed" and backup.location == "failed"
        assert backup.offsite_attempts == 1 and "offsite upload failed" in backup.warnings[0]
        assert "could not" in (backup.offsite_error or "")
        assert (await manager.verify_backup(backup.id)).status.value == "completed"
    shown = _cli(world, "backup", "list")
    assert "offsite upload failed 1x and is retried" in shown.stdout, shown.stdout
    assert object_keys(s3_server, s3_bucket) == []
    settings.write_text(working)  # the storage is back
    async with await ReleaseManager.open(world.deploy) as manager:
        report = await manager.upload_queued()
        assert report.uploaded == [] and backup.id in report.waiting  # not due for a minute
        from gitrelease.deploy.offsite_ops import upload_queued

        later = utcnow() + timedelta(minutes=2)
        report = await upload_queued(manager.deployment, now=later)
        assert report.uploaded == [backup.id] and report.failed == {}
        again = await manager.get_backup(backup.id)
    assert again.location == "both" and again.offsite_attempts == 0
    assert again.offsite_error is None
    assert len(object_keys(s3_server, s3_bucket)) == 2


def test_a_backup_that_holds_config_never_leaves_unencrypted(
        world: World, s3_server: S3Server, s3_bucket: str) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="manual")  # no key file
    asyncio.run(_backups(world, {"backup_name": "with_env"}))
    before = _archives(world)
    refused = _cli(world, "backup", "push", "with_env")
    assert refused.returncode == 15, refused.stdout + refused.stderr
    assert "holds config" in refused.stderr and "offsite_key_file" in refused.stderr
    assert object_keys(s3_server, s3_bucket) == [] and _archives(world) == before

    async def database_backup() -> bool:  # it holds no config: it may go as it is
        async with await ReleaseManager.open(world.deploy) as manager:
            made = await manager.create_backup("database")
            return (await manager.push_backup(made.id)).encrypted

    assert asyncio.run(database_backup()) is False


def test_a_key_inside_the_deployment_or_readable_by_others_is_refused(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    inside = world.deploy / "data" / "offsite.key"
    offsite_settings(world.deploy, s3_server, s3_bucket, key=inside)
    asyncio.run(_backups(world, {"backup_name": "b1"}))
    refused = _cli(world, "backup", "push", "b1")
    assert refused.returncode == 15 and "inside the deployment" in refused.stderr
    outside = tmp_path / "open.key"
    offsite_settings(world.deploy, s3_server, s3_bucket, key=outside)
    outside.chmod(0o644)
    refused = _cli(world, "backup", "push", "b1")
    assert refused.returncode == 15 and "chmod 600" in refused.stderr, refused.stderr
    assert object_keys(s3_server, s3_bucket) == []
    assert outside.read_text().strip() not in refused.stderr + refused.stdout


def _bot_rows(world: World, rows: list[tuple[int, str]]) -> None:
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("DELETE FROM guilds")
        db.executemany("INSERT INTO guilds VALUES (?, ?)", rows)
    db.close()


async def _where(world: World, backup_id: str) -> str:
    async with await ReleaseManager.open(world.deploy) as manager:
        return (await manager.get_backup(backup_id)).location


async def test_restore_fetches_the_archive_back_when_the_local_copy_is_gone(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key")
    async with await ReleaseManager.open(world.deploy) as manager:
        made = await manager.create_backup("full", {"backup_name": "good"})
    assert made.location == "both"
    rows = guilds(world.deploy)
    _bot_rows(world, [(9, "lost")])
    (world.deploy / ".env").write_text("DISCORD_TOKEN=changed\n")
    Path(made.file_path or "").unlink()  # the disk lost it
    listed = json.loads(_cli(world, "--json", "backup", "list").stdout)
    assert [b["location"] for b in listed if b["id"] == made.id] == ["offsite"]
    restored = _cli(world, "backup", "restore", "good", "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert guilds(world.deploy) == rows
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    assert Path(made.file_path or "").is_file()
    assert await _where(world, made.id) == "both"


async def test_rollback_fetches_its_backup_from_offsite(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key")
    async with await ReleaseManager.open(world.deploy) as manager:
        await manager.install_updates("bot", {"to_version": "1.1.0"})
        (pre_update,) = await manager.list_backups()
    assert pre_update.origin.value == "pre_update" and pre_update.location == "both"
    rows = guilds(world.deploy)
    _bot_rows(world, [(3, "after the update")])
    Path(pre_update.file_path or "").unlink()
    rolled = _cli(world, "rollback", "1.0.0", "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert guilds(world.deploy) == rows
    assert Path(pre_update.file_path or "").is_file()


async def _backups(world: World, *options: dict[str, object]) -> list[str]:
    async with await ReleaseManager.open(world.deploy) as manager:
        return [(await manager.create_backup("full", dict(o))).id for o in options]


async def test_verify_offsite_catches_a_tampered_copy_and_a_missing_one(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key")
    ids = await _backups(world, {}, {}, {})
    async with await ReleaseManager.open(world.deploy) as manager:
        result = await manager.verify_offsite()
        assert result == {"checked": dict.fromkeys(ids), "missing": [], "total": 3}
        sampled = await manager.verify_offsite(sample_percent=34)
        assert len(sampled["checked"]) == 2 and sampled["total"] == 3
    offsite = S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint)
    copy = offsite.copy(ids[0])
    assert copy is not None
    client = s3_server.client()
    body = bytearray(client.get_object(  # type: ignore[attr-defined]
        Bucket=s3_bucket, Key=f"bot/objects/{copy.object}")["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=s3_bucket, Key=f"bot/objects/{copy.object}",  # type: ignore[attr-defined]
                      Body=bytes(body))
    client.delete_object(Bucket=s3_bucket, Key=f"bot/backups/{ids[1]}.json")  # type: ignore[attr-defined]
    checked = _cli(world, "--json", "backup", "verify", "--offsite")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    result = json.loads(checked.stdout)
    assert result["checked"][ids[0]] and "does not authenticate" in result["checked"][ids[0]]
    assert result["checked"][ids[2]] is None and result["missing"] == [ids[1]]
    async with await ReleaseManager.open(world.deploy) as manager:
        assert (await manager.get_backup(ids[1])).location == "queued"  # uploaded again
        assert (await manager.upload_queued()).uploaded == [ids[1]]
    assert offsite.copy(ids[1]) is not None


@pytest.mark.parametrize("args", [
    ("verify", "--offsite", "--sample", "0"), ("verify", "--offsite", "--sample", "101%"),
    ("verify", "--offsite", "--sample", "lots"), ("verify", "--sample", "10"),
    ("verify", "--offsite", "latest"), ("verify", "--offsite", "--deep"), ("verify",),
    ("push",), ("push", "latest", "--queued"), ("push", "--force"),
    ("push", "latest", "--force"),
])
def test_bad_verify_and_push_flags_are_refused_and_change_nothing(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path,
        args: tuple[str, ...]) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, key=tmp_path / "offsite.key")
    before = sorted(p.name for p in (world.deploy / "data").rglob("*"))
    refused = _cli(world, "backup", *args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "invalid" in refused.stderr
    assert sorted(p.name for p in (world.deploy / "data").rglob("*")) == before
    assert object_keys(s3_server, s3_bucket) == []


async def test_prune_offsite_keeps_by_its_own_rules_and_never_races_an_upload(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    from gitrelease.state.offsite import OffsiteBusy

    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key", extra="offsite_max_backups = 2\n")
    # Full backups: the rules apart from chains (tests/state/test_chain_retention.py).
    ids = await _backups(world, {"keep": True, "full": True}, *[{"full": True}] * 3)
    offsite = S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint)
    assert [c.backup_id for c in offsite.copies()] == ids
    client = s3_server.client()
    async with await ReleaseManager.open(world.deploy) as manager:
        dry = await manager.prune_offsite(dry_run=True)
        assert [b.id for b in dry.deleted] == ids[1:3] and dry.kept[ids[0]] == "marked keep"
        assert [c.backup_id for c in offsite.copies()] == ids
        # Another host's upload is under way (its lock is fresh): the prune waits.
        client.put_object(Bucket=s3_bucket,  # type: ignore[attr-defined]
                          Key="bot/locks/upload-elsewhere.json", Body=b"{}")
        with pytest.raises(OffsiteBusy, match="locked by an upload"):
            await manager.prune_offsite()
        assert [c.backup_id for c in offsite.copies()] == ids
        client.delete_object(Bucket=s3_bucket,  # type: ignore[attr-defined]
                             Key="bot/locks/upload-elsewhere.json")
    pruned = _cli(world, "backup", "prune", "--offsite")
    assert pruned.returncode == 0, pruned.stderr
    assert [c.backup_id for c in offsite.copies()] == [ids[0], ids[3]]
    async with await ReleaseManager.open(world.deploy) as manager:
        where = {b.id: b.location for b in await manager.list_backups()}
        assert where == {ids[0]: "both", ids[1]: "local", ids[2]: "local", ids[3]: "both"}
        # A prune under way elsewhere: an upload backs off, and is queued for later.
        client.put_object(Bucket=s3_bucket,  # type: ignore[attr-defined]
                          Key="bot/locks/prune-elsewhere.json", Body=b"{}")
        made = await manager.create_backup("full")
        assert made.location == "failed" and "locked by a prune" in (made.offsite_error or "")
    assert not [k for k in object_keys(s3_server, s3_bucket) if "locks/upload-" in k]


def test_archives_fetched_back_are_tar_archives_that_match(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    key = offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                           key=tmp_path / "offsite.key")
    made = json.loads(_cli(world, "--json", "backup", "create").stdout)
    into = tmp_path / Path(made["file_path"]).name.replace(made["id"], "back")
    S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint).fetch(made["id"], into, key=key)
    assert into.read_bytes() == Path(made["file_path"]).read_bytes()
    assert ".env" in {Path(name).name for name in members_of(into)}


def test_bad_credentials_fail_plainly_keep_the_backup_and_show_no_secret(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that checks credentials (moto's IAM: only its first request, the bucket's
    creation, goes unchecked); the deployment's are not known to it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    server = start_s3({"INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    try:
        server.client().create_bucket(Bucket="checked-bucket")  # type: ignore[attr-defined]
        offsite_settings(world.deploy, server, "checked-bucket", mode="after_backup",
                         key=tmp_path / "offsite.key")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEBADKEY123",
               "AWS_SECRET_ACCESS_KEY": "wrong-secret-do-not-show"}
        made = subprocess.run([sys.executable, "-m", "gitrelease", "--root",
                               str(world.deploy), "--json", "backup", "create"], cwd=REPO_ROOT,
                              capture_output=True, text=True, env=env, timeout=120)
        assert made.returncode == 0, made.stderr  # the backup is taken all the same
        backup = json.loads(made.stdout)
        assert backup["location"] == "failed" and "InvalidAccessKeyId" in backup[
            "offsite_error"]
        assert Path(backup["file_path"]).is_file()
        pushed = subprocess.run([sys.executable, "-m", "gitrelease", "--root",
                                 str(world.deploy), "backup", "push", backup["id"]],
                                cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                                timeout=120)
        assert pushed.returncode == 15 and "InvalidAccessKeyId" in pushed.stderr
        for said in (made.stdout + made.stderr, pushed.stdout + pushed.stderr):
            assert "wrong-secret-do-not-show" not in said
            assert "AKIAEXAMPLEBADKEY123" not in said
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


async def test_a_forged_record_is_refused_where_the_key_is_at_hand(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """Someone who can write to the bucket (what the encryption is there against) rewrites
    the newest record: in the clear, pointing at an archive of their own, sha256 and all."""
    import hashlib

    key = offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                           key=tmp_path / "offsite.key")
    made = (await _backups(world, {}))[0]
    client = s3_server.client()
    record_key = f"bot/backups/{made}.json"
    record = json.loads(client.get_object(  # type: ignore[attr-defined]
        Bucket=s3_bucket, Key=record_key)["Body"].read())
    assert isinstance(record.get("mac"), str)
    forged = b"not the archive that was pushed"
    digest = hashlib.sha256(forged).hexdigest()
    client.put_object(Bucket=s3_bucket, Key=f"bot/objects/{digest}",  # type: ignore[attr-defined]
                      Body=forged)
    record.update(encrypted=False, object=digest, sha256=digest, size=len(forged),
                  stored_size=len(forged))
    client.put_object(Bucket=s3_bucket, Key=record_key,  # type: ignore[attr-defined]
                      Body=json.dumps(record).encode())
    offsite = S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint)
    into = tmp_path / "fetched.tar.zst"
    from gitrelease.state.offsite import OffsiteError

    with pytest.raises(OffsiteError, match="not signed with this key"):
        offsite.fetch(made, into, key=key)
    assert not into.exists()
    # And the deployment's own fetch, its archive gone, refuses it before any download.
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.get_backup(made)
    Path(backup.file_path or "").unlink()
    restored = _cli(world, "backup", "restore", made, "--yes")
    assert restored.returncode != 0 and "another archive" in restored.stderr, restored.stderr
    assert not Path(backup.file_path or "").exists()


async def test_local_pruning_keeps_what_is_not_offsite_yet_and_the_row_of_what_is(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """Two days with the bucket away and max_backups reached: nothing not yet uploaded is
    pruned here; an uploaded backup pruned here stays listed as offsite, restorable."""
    key_file = tmp_path / "offsite.key"
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup", key=key_file,
                     extra="max_backups = 1\n")
    uploaded = (await _backups(world, {}))[0]
    settings = world.deploy / "data" / "settings.toml"
    working = settings.read_text()
    settings.write_text(working.replace(s3_server.endpoint, "http://127.0.0.1:9"))
    # Each prunes after it, by auto_cleanup; full, none is the base of another.
    waiting = await _backups(world, {"full": True}, {"full": True})
    async with await ReleaseManager.open(world.deploy) as manager:
        where = {b.id: b.location for b in await manager.list_backups()}
    assert where == {uploaded: "offsite", waiting[0]: "failed", waiting[1]: "failed"}
    async with await ReleaseManager.open(world.deploy) as manager:
        for backup_id in waiting:  # not pruned: their archives are all there is of them
            assert Path((await manager.get_backup(backup_id)).file_path or "").is_file()
        assert (await manager.get_backup(uploaded)).only_offsite  # fetched back on restore
    # The bucket is back: the queue drains; pruned here, the older one stays listed offsite.
    settings.write_text(working)
    pushed = _cli(world, "backup", "push", "--queued", "--force")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert _cli(world, "backup", "prune").returncode == 0
    assert await _where(world, waiting[0]) == "offsite"
    # Offsite retention deleting those copies deletes the rows that only pointed at them.
    settings.write_text(working + "offsite_max_backups = 1\n")
    pruned = _cli(world, "backup", "prune", "--offsite")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    listed = json.loads(_cli(world, "--json", "backup", "list").stdout)
    assert [(b["id"], b["location"]) for b in listed] == [(waiting[1], "both")]


async def test_a_stale_row_never_puts_an_upload_state_back(world: World) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        backup = await manager.create_backup("full")
        store = await manager.index()
        stale = await store.get_backup(backup.id)
        await store.set_offsite(backup.id, OffsiteState.UPLOADED, at=utcnow())
        assert stale is not None and stale.offsite is OffsiteState.NONE
        stale.verified_at = utcnow()
        await store.save_backup(stale)  # e.g. a verify that read the row before the upload
        again = await store.get_backup(backup.id)
    assert again is not None and again.offsite is OffsiteState.UPLOADED
    assert again.verified_at is not None


async def test_offsite_retention_keeps_the_newest_full_backup_recover_needs(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key", extra="offsite_max_backups = 1\n")
    async with await ReleaseManager.open(world.deploy) as manager:
        full = await manager.create_backup("full")
        # Full ones of their type: neither is the other's base.
        partial = [await manager.create_backup("database", {"full": True}) for _ in range(2)]
        result = await manager.prune_offsite()
    offsite = S3Offsite(f"s3://{s3_bucket}/bot", s3_server.endpoint)
    assert [c.backup_id for c in offsite.copies()] == [full.id, partial[1].id]
    assert [b.id for b in result.deleted] == [partial[0].id]
    assert "recover" in result.kept[full.id]


async def test_a_pushed_incremental_takes_its_chain_and_a_restore_fetches_it_all_back(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="manual",
                     key=tmp_path / "offsite.key")
    async with await ReleaseManager.open(world.deploy) as manager:
        full = await manager.create_backup("full", {"backup_name": "first"})
        _bot_rows(world, [(8, "since first")])
        newest = await manager.create_backup("full", {"backup_name": "second"})
    assert newest.base_id == full.id
    pushed = _cli(world, "backup", "push", "second")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert await _where(world, full.id) == "both"  # its chain went first
    rows = guilds(world.deploy)
    _bot_rows(world, [(9, "lost")])
    for made in (full, newest):
        Path(made.file_path or "").unlink()  # the disk lost both
    restored = _cli(world, "backup", "restore", "second", "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert guilds(world.deploy) == rows
    assert Path(full.file_path or "").is_file() and Path(newest.file_path or "").is_file()


async def test_an_automatic_upload_sends_the_chain_of_an_incremental_first(
        world: World, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    async with await ReleaseManager.open(world.deploy) as manager:
        before = await manager.create_backup("full")  # offsite copies not on yet
    offsite_settings(world.deploy, s3_server, s3_bucket, mode="after_backup",
                     key=tmp_path / "offsite.key")
    _bot_rows(world, [(7, "since")])
    async with await ReleaseManager.open(world.deploy) as manager:
        newest = await manager.create_backup("full")
    assert newest.base_id == before.id
    assert await _where(world, newest.id) == "both"
    assert await _where(world, before.id) == "both"  # alone, newest's copy is no way back
