"""Only releases in the target's history count: tags on other branches, and pre-releases on
the stable channel, are neither listed as newer releases nor quoted in the changelog.

The world: ``main`` as the template has it (v1.0.0 ... v1.10.0, v2.0.0rc1), then
v1.11.0rc1 and v1.11.0 on ``main``; a maintenance branch from v1.0.0 carries v1.0.1, which
``main`` never merged. The deployment runs v1.0.0.
"""

from __future__ import annotations

import json

import pytest

from gitrelease.cli.main import main
from gitrelease.git.releases import snapshot, update_info
from gitrelease.git.repo import GitRepo
from gitrelease.git.versions import Channel, TagScheme
from tests.conftest import World, copy_world, git
from tests.git_layer.calls import git_calls


@pytest.fixture(scope="module")
def branched(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = copy_world(template_world, tmp_path_factory.mktemp("ancestry") / "world")
    git(world.release, "checkout", "--quiet", "-b", "maint", "v1.0.0")
    world.commit("fix: only on the maintenance branch")
    world.tag("v1.0.1", "SIDE BRANCH hotfix, not in main")
    git(world.release, "checkout", "--quiet", "main")
    world.commit("feat: eleven")
    world.tag("v1.11.0rc1", "CANDIDATE of 1.11")
    world.commit("fix: eleven, polished")
    world.tag("v1.11.0", "Eleventh release")
    world.push()
    git(world.deploy, "fetch", "--quiet", "--tags", "origin")
    return world


def _check(world: World, channel: str, capsys: pytest.CaptureFixture[str]) -> dict:
    (world.deploy / "data" / "settings.toml").write_text(f'channel = "{channel}"\n')
    code = main(["--root", str(world.deploy), "--json", "check", "--type", "bot"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)["bot"]


def test_stable_counts_only_stable_releases_in_the_targets_history(
    branched: World, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = _check(branched, "stable", capsys)
    assert bot["tag"] == "v1.11.0"
    assert [r["tag"] for r in bot["releases"]] == ["v1.11.0", "v1.10.0", "v1.9.0", "v1.1.0"]
    assert "SIDE BRANCH" not in bot["changelog"]
    assert "CANDIDATE" not in bot["changelog"]
    assert "Tenth release" in bot["changelog"]
    assert "only on the maintenance branch" not in bot["changelog"]


def test_pre_counts_pre_releases_but_only_in_the_targets_history(
    branched: World, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = _check(branched, "pre", capsys)
    assert bot["tag"] == "v2.0.0rc1"
    # v1.11.0rc1 and v1.11.0 are older versions, but they came after the target on main.
    assert [r["tag"] for r in bot["releases"]] == ["v2.0.0rc1", "v1.10.0", "v1.9.0", "v1.1.0"]
    for absent in ("SIDE BRANCH", "CANDIDATE", "Eleventh"):
        assert absent not in bot["changelog"]


def test_the_history_costs_no_git_process_per_tag(
    branched: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = GitRepo(branched.deploy)
    try:
        for n in range(30):  # many releases in the range: still the same processes
            git(branched.deploy, "tag", f"v1.5.{n}", "v1.9.0")
        scheme = TagScheme.parse(["v*", "*"])
        snap = snapshot(repo, scheme, Channel.STABLE)
        target = snap.offered()[-1]
        calls = git_calls(repo, monkeypatch)
        info = update_info(repo, snap, target, include_security=True, download_url=None)
    finally:
        repo.close()
        for n in range(30):
            git(branched.deploy, "tag", "-d", f"v1.5.{n}")
    assert len(info.releases) == 34
    assert len(calls) <= 4, calls  # diff, pyproject, one log (and none per tag)
