"""Counting the git processes a `GitRepo` starts: each call's arguments, in order."""

from __future__ import annotations

from typing import Any

import pytest

from gitrelease.git.repo import GitRepo


def git_calls(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """From now on, the arguments of every git process `repo` runs (appended as it runs)."""
    calls: list[tuple[str, ...]] = []
    original = repo._execute

    def counting(args: Any, *rest: Any, **named: Any) -> Any:
        calls.append(tuple(args))
        return original(args, *rest, **named)

    monkeypatch.setattr(repo, "_execute", counting)
    return calls
