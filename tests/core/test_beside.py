"""`Beside`: a call in a thread of its own, its result or its exception handed back."""

from __future__ import annotations

import threading

import pytest

from gitrelease.core.beside import Beside
from gitrelease.core.errors import GitReleaseError


def test_the_result_comes_back_once_the_call_is_done() -> None:
    release = threading.Event()
    beside = Beside(lambda: (release.wait(10), threading.current_thread().name)[1])
    release.set()
    assert beside.succeeds()
    assert beside.result() == "gitrelease-beside"


def test_an_exception_is_raised_to_whoever_asks() -> None:
    def fails() -> None:
        raise GitReleaseError("no such thing")

    beside = Beside(fails)
    assert not beside.succeeds()
    with pytest.raises(GitReleaseError, match="no such thing"):
        beside.result()
