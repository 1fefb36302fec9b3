"""`gitrelease backup ...`: the whole round trip, and every flag given a bad value."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gitrelease.cli.main import main
from tests.conftest import ENV_SECRET, World


def cli(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, object]:
    code = main(["--root", str(world.deploy), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_create_list_verify_restore_delete_prune(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, created = cli(world, capsys, "backup", "create", "--name", "pre_v2", "--description",
                        "before the big one", "--include-logs")
    assert code == 0 and isinstance(created, dict)
    assert created["name"] == "pre_v2" and created["status"] == "completed"
    assert created["backup_type"] == "full" and created["tag"] == "v1.0.0"
    code, listed = cli(world, capsys, "backup", "list", "--type", "full", "--range", "all",
                       "--limit", "5", "--sort", "size")
    assert code == 0 and [b["id"] for b in listed] == [created["id"]]  # type: ignore[union-attr]
    code, verified = cli(world, capsys, "backup", "verify", "pre_v2")
    assert code == 0 and verified["verified"] is True  # type: ignore[index]

    (world.deploy / ".env").write_text("DISCORD_TOKEN=rotated\n")
    with sqlite3.connect(world.deploy / "data" / "app.db") as db:
        db.execute("DELETE FROM guilds")
    db.close()
    code, restored = cli(world, capsys, "backup", "restore", "pre_v2", "--yes")
    assert code == 0
    assert ".env" in restored["restored"]  # type: ignore[index]
    assert (world.deploy / ".env").read_text() == ENV_SECRET
    safety = restored["safety_backup"]["id"]  # type: ignore[index]

    code, pruned = cli(world, capsys, "backup", "prune", "--dry-run")
    assert code == 0 and pruned["dry_run"] is True  # type: ignore[index]
    code, deleted = cli(world, capsys, "backup", "delete", safety, "--yes")
    assert code == 0 and deleted["id"] == safety  # type: ignore[index]
    code, listed = cli(world, capsys, "backup", "list", "--range", "all")
    assert [b["id"] for b in listed] == [created["id"]]  # type: ignore[union-attr]


def test_text_output(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(world.deploy), "backup", "create", "--type", "config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Backup created: backup_")
    assert "config backup of v1.0.0" in out
    assert main(["--root", str(world.deploy), "backup", "list"]) == 0
    out = capsys.readouterr().out
    assert "1. backup_" in out and "Total backups: 1" in out
    assert "super-secret-token-value" not in out


BAD = [
    (["backup"], "usage_error", None),
    (["backup", "explode"], "usage_error", None),
    (["backup", "create", "--type", "everything"], "invalid_input", "--type"),
    (["backup", "create", "--type", "data"], "invalid_input", "--type"),
    (["backup", "create", "--name", "../../etc/passwd"], "invalid_input", "--name"),
    (["backup", "create", "--name", ""], "invalid_input", "--name"),
    (["backup", "create", "--name", "x" * 65], "invalid_input", "--name"),
    (["backup", "create", "--description", "x" * 501], "invalid_input", "--description"),
    (["backup", "create", "--description", "two\nlines"], "invalid_input", "--description"),
    (["backup", "create", "--no-compress=1"], "usage_error", None),
    (["backup", "create", "--include-logs=yes"], "usage_error", None),
    (["backup", "create", "--keep=1"], "usage_error", None),
    (["backup", "list", "--type", "everything"], "invalid_input", "--type"),
    (["backup", "list", "--range", "1y"], "invalid_input", "--range"),
    (["backup", "list", "--limit", "0"], "invalid_input", "--limit"),
    (["backup", "list", "--limit", "51"], "invalid_input", "--limit"),
    (["backup", "list", "--limit", "ten"], "invalid_input", "--limit"),
    (["backup", "list", "--sort", "age"], "invalid_input", "--sort"),
    (["backup", "verify"], "invalid_input", "ID"),
    (["backup", "verify", "--offsite", "--sample", "0"], "invalid_input", "--sample"),
    (["backup", "verify", "--sample", "5"], "invalid_input", "--sample"),
    (["backup", "push"], "invalid_input", "ID"),
    (["backup", "push", "--force"], "invalid_input", "ID"),
    (["backup", "prune", "--offsite=1"], "usage_error", None),
    (["backup", "key-new"], "usage_error", None),
    (["backup", "verify", "backup_19990101_000000"], "backup_not_found", None),
    (["backup", "verify", "x" * 101], "invalid_input", "ID"),
    (["backup", "verify", "b", "--deep=1"], "usage_error", None),
    (["backup", "restore", "backup_19990101_000000"], "confirmation_required", None),
    (["backup", "restore", "backup_19990101_000000", "--yes"], "backup_not_found", None),
    (["backup", "restore", "b", "--yes", "--type", "logs"], "invalid_input", "--type"),
    (["backup", "restore", "b", "--yes", "--no-verify=1"], "usage_error", None),
    (["backup", "delete", "backup_19990101_000000"], "confirmation_required", None),
    (["backup", "delete", "backup_19990101_000000", "--yes"], "backup_not_found", None),
    (["backup", "prune", "--dry-run=1"], "usage_error", None),
]


@pytest.mark.parametrize(("args", "code", "flag"), BAD, ids=[" ".join(a[0][1:]) or "(none)"
                                                            for a in BAD])
def test_bad_backup_command_lines_change_nothing(
    world: World, capsys: pytest.CaptureFixture[str], args: list[str], code: str,
    flag: str | None,
) -> None:
    before = world.state()
    exit_code, result = cli(world, capsys, *args)
    assert exit_code != 0
    error = result["error"]  # type: ignore[index]
    assert error["code"] == code
    if flag:
        assert error["message"].startswith(f"invalid {flag}:")
    assert world.state() == before
    assert not (world.deploy / "data" / "backups").exists()


def test_bad_ids_with_an_existing_index_change_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(world, capsys, "backup", "create", "--type", "config")
    before = world.state()
    for args in (["verify", "nope"], ["restore", "nope", "--yes"], ["delete", "nope", "--yes"],
                 ["restore", "nope", "--yes", "--type", "database"]):
        code, result = cli(world, capsys, "backup", *args)
        assert code == 17 and result["error"]["code"] == "backup_not_found"  # type: ignore[index]
    assert world.state() == before


def test_deep_verify_finds_a_file_that_the_archive_checksum_cannot(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive rewritten with one file changed, and its recorded checksum rewritten to
    match: the quick check (the archive's sha256) passes, --deep checks each file against the
    manifest and names the changed one."""
    import gzip
    import hashlib
    import io
    import tarfile

    settings = world.deploy / "data" / "settings.toml"
    settings.write_text((settings.read_text() if settings.exists() else "")
                        + 'compression = "gzip"\n')  # rewritten below with gzip alone
    code, created = cli(world, capsys, "backup", "create", "--name", "tampered")
    assert code == 0 and isinstance(created, dict)
    path = Path(created["file_path"])
    rewritten = io.BytesIO()
    with tarfile.open(path, "r:gz") as source, tarfile.open(fileobj=rewritten, mode="w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if member.name.endswith(".env"):
                data = b"DISCORD_TOKEN=swapped\n"
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    packed = gzip.compress(rewritten.getvalue())
    path.write_bytes(packed)
    with sqlite3.connect(world.deploy / "data" / "update_manager.db") as index:
        index.execute("UPDATE backups SET checksum = ? WHERE id = ?",
                      (hashlib.sha256(packed).hexdigest(), created["id"]))
    index.close()
    code, quick = cli(world, capsys, "backup", "verify", "tampered")
    assert code == 0 and quick["verified"] is True  # type: ignore[index]
    code, deep = cli(world, capsys, "backup", "verify", "tampered", "--deep")
    assert code != 0, deep
    assert ".env" in json.dumps(deep)
