"""The bot's session starts as a rollout counts them: kept from Discord's payload, read back by
every report, and weighed against a restart and a rollback of each shard a rollout touches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gitrelease.core.fleet import Instance
from gitrelease.core.models import utcnow
from gitrelease.deploy.sessions import (
    SESSION_FILE,
    NotEnoughSessionStarts,
    check_session_starts,
    read_session_starts,
    save_session_starts,
)


def _limit(remaining: int, reset_ms: int = 3_600_000) -> dict[str, int]:
    return {"total": 1000, "remaining": remaining, "reset_after": reset_ms,
            "max_concurrency": 1}


def _instance(name: str, shards: list[int], tmp_path: Path, limit: dict | None,
              bot: str = "1") -> Instance:
    now = utcnow()
    starts = save_session_starts(tmp_path / name, limit, bot) if limit else None
    return Instance(name, "host", "prod", shards, "1.0.0", "v1.0.0", "c" * 40, "running",
                    1, now, now, session_starts=starts)


def test_kept_private_and_read_back(tmp_path: Path) -> None:
    kept = save_session_starts(tmp_path, _limit(5), "42")
    assert (tmp_path / SESSION_FILE).stat().st_mode & 0o777 == 0o600
    assert read_session_starts(tmp_path) == kept
    assert (kept.remaining, kept.bot_id) == (5, "42")


@pytest.mark.parametrize("bad", [{}, {"total": "x", "remaining": 1, "reset_after": 1},
                                 {"total": 1, "remaining": None, "reset_after": 1}])
def test_a_payload_that_is_not_a_limit_is_refused_and_nothing_is_kept(
        tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError, match="not a session_start_limit"):
        save_session_starts(tmp_path, bad, "42")
    assert not (tmp_path / SESSION_FILE).exists()


@pytest.mark.parametrize("content", ["", "{", "[]", '{"total": 1}'])
def test_a_file_that_is_not_ours_reads_as_not_known(tmp_path: Path, content: str) -> None:
    (tmp_path / SESSION_FILE).write_text(content)
    assert read_session_starts(tmp_path) is None


def test_a_restart_and_a_rollback_of_each_touched_shard_must_be_covered(
        tmp_path: Path) -> None:
    enough = [_instance("a", [0, 1], tmp_path, _limit(4)),
              _instance("b", [], tmp_path, None)]
    said = check_session_starts(enough)
    assert "bot 1: 4 of 4 session starts needed" in said
    assert "session starts not known for b" in said
    with pytest.raises(NotEnoughSessionStarts, match="needs 6"):
        check_session_starts([_instance("a", [0, 1], tmp_path, _limit(5)),
                              _instance("c", [2], tmp_path, _limit(5))])
    # Each bot is counted on its own starts; a day that has reset counts them all again.
    two = [_instance("a", [0], tmp_path, _limit(2), "1"),
           _instance("d", [0], tmp_path, _limit(2), "2")]
    assert "bot 1: 2 of 2" in check_session_starts(two)
    late = _instance("e", [0, 1, 2], tmp_path, _limit(0, reset_ms=1000))
    with pytest.raises(NotEnoughSessionStarts):
        check_session_starts([late])
    assert "6 of 1000" in check_session_starts([late], utcnow() + timedelta(seconds=5))
