"""Hostile text from git and from archives never acts on the terminal the CLI prints to.

A tag message, a commit subject, a tag name or an archive member's name may hold terminal
escapes (clear the screen, rewrite a line), C1 controls, bidi overrides (a name read
backwards) or zero-width characters. Whatever the CLI prints shows them as escapes (``\\x1b``,
``\\u202e``); `--json` keeps them exact (JSON escapes them itself). One world is built for the
module: a release whose tag message and commit subject hold every hostile string of the
table, and data files named by them; each command runs once and every case is asserted on
its output.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import unicodedata
from pathlib import Path

import pytest

from gitrelease.cli.main import main
from tests.conftest import World, copy_world, git

# (case, text): each is put in the tag message, in a commit subject and in a data file name.
HOSTILE = [
    ("csi_clear_screen", "\x1b[2J\x1b[HFAKE: all good"),
    ("osc_hyperlink", "\x1b]8;;https:evil.invalid\x07click\x1b]8;;\x07"),
    ("c1_csi", "\x9b31mred"),
    ("carriage_return", "ok\rFAKE"),
    ("bell_backspace_del", "a\x07b\x08c\x7f"),
    ("bidi_override", "report\u202etxt.exe"),
    ("bidi_embedding", "\u202a\u202b\u202cx"),
    ("bidi_isolates", "\u2066\u2067\u2068hidden\u2069"),
    ("zero_width_and_marks", "\u200b\u200e\u200f\ufeffz"),
    ("tag_characters", "\U000e0041\U000e007f"),
    ("line_separator", "one\u2028two\u2029"),
]
IDS = [case for case, _ in HOSTILE]
# File names git and tar hand over as bytes: one that is not UTF-8 reads with a surrogate.
NAMES = [*HOSTILE, ("not_utf8", "latin1-\udce9")]
BRANCH = "hotfix\u202eniam"  # git takes bidi overrides in a branch name
# Characters the output may hold as they are: layout, and the joiners scripts need.
_ALLOWED = set("\n\t\u200c\u200d")


def _acting(text: str) -> list[str]:
    """The characters of `text` that would act on a terminal instead of showing."""
    return [c for c in text if c not in _ALLOWED
            and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


def _escaped(text: str) -> list[str]:
    """The escapes the CLI is expected to show for `text`'s acting characters."""
    names = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return [names.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else
                             f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
            for c in _acting(text)]


def _shown(text: str) -> str:
    """`text` as the CLI should print it."""
    return "".join(_escaped(c)[0] if _acting(c) else c for c in text)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def shown(template_world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every command's output once, on one world holding the hostile strings."""
    world = copy_world(template_world, tmp_path_factory.mktemp("hostile") / "world")
    message = "Hostile release\n\n" + "".join(f"{case}: {text}\n" for case, text in HOSTILE) \
        + "end of the message"
    world.commit("fix: " + " ".join(text for _case, text in HOSTILE))
    world.release_version("1.11.0", message)
    for case, text in NAMES:
        (world.deploy / "data" / f"{case}-{text}").write_text(case)
    # A local commit on a branch: the check says the install leaves it on that branch.
    git(world.deploy, "checkout", "--quiet", "-b", BRANCH)
    git(world.deploy, "commit", "--quiet", "--allow-empty", "-m", "local: tweak")
    root = str(world.deploy)
    outputs: dict[str, str] = {}
    for name, args in [
        ("check", ["check", "--type", "bot", "--details"]),
        ("dry_run", ["install", "--type", "bot", "--no-backup", "--dry-run", "--force"]),
        ("status", ["status", "--no-metrics"]),
        ("backup", ["backup", "create", "--type", "data_only"]),
    ]:
        code, out, err = _cli("--root", root, *args)
        assert code == 0, (name, out, err)
        outputs[name] = out + err
    code, out, _ = _cli("--root", root, "--json", "backup", "list")
    backup_id = json.loads(out)[0]["id"]
    for case, _text in NAMES:  # changed after the backup: the restore puts each back
        next((world.deploy / "data").glob(f"{case}-*")).write_text("changed")
    code, out, err = _cli("--root", root, "backup", "restore", backup_id, "--yes",
                          "--type", "data")
    assert code == 0, (out, err)
    outputs["restore"] = out + err
    code, out, err = _cli("--root", root, "--json", "check", "--type", "bot")
    assert code == 0, err
    outputs["check_json"] = out
    shutil.rmtree(world.base, ignore_errors=True)
    return outputs


@pytest.mark.parametrize("command", ["check", "dry_run", "status", "backup", "restore"])
def test_no_output_acts_on_the_terminal(shown: dict[str, str], command: str) -> None:
    assert _acting(shown[command]) == []


@pytest.mark.parametrize(("case", "text"), HOSTILE, ids=IDS)
def test_a_tag_message_and_a_commit_subject_show_their_escapes(
    shown: dict[str, str], case: str, text: str
) -> None:
    escaped = _shown(text)
    check = shown["check"]
    assert f"{case}: {escaped}" in check  # the tag message, as the changelog shows it
    assert escaped in check.split("Commits:")[1]  # the commit subject


@pytest.mark.parametrize(("case", "text"), NAMES, ids=[case for case, _ in NAMES])
def test_a_member_name_shows_its_escapes(shown: dict[str, str], case: str, text: str) -> None:
    escaped = _shown(text)
    assert f"data/{case}-{escaped}" in shown["restore"]
    assert f"{case}-{escaped}" in shown["status"]  # what a backup would hold


def test_a_branch_name_shows_its_escapes(shown: dict[str, str]) -> None:
    assert f"branch {_shown(BRANCH)}" in shown["check"]


def test_json_keeps_the_text_exact(shown: dict[str, str]) -> None:
    data = json.loads(shown["check_json"])
    for case, text in HOSTILE:
        assert f"{case}: {text}" in data["bot"]["changelog"]
    assert shown["check_json"].isascii()  # JSON writes every such character as \\uXXXX


def test_an_error_quoting_a_hostile_value_shows_its_escapes(world: World) -> None:
    before = world.state()
    code, out, err = _cli("--root", str(world.deploy), "install", "--type", "bot",
                          "--no-backup", "--to", "9.9.9\u202e\x1b[2J")
    assert code != 0
    assert out == ""
    assert _acting(err) == []
    assert "\\u202e" in err
    assert world.state()["head"] == before["head"]


def test_a_tag_name_with_a_bidi_override_shows_escaped(world: World) -> None:
    """git refuses control characters in ref names, not bidi overrides."""
    git(world.release, "tag", "v1.12\u202eexe.txt")
    world.push()
    code, out, err = _cli("--root", str(world.deploy), "check", "--type", "bot", "--details")
    assert code == 0, err
    assert _acting(out + err) == []
    assert "v1.12\\u202eexe.txt" in out


def test_progress_text_is_neutralised(tmp_path: Path) -> None:
    from gitrelease.cli.progress import ProgressBar

    with (tmp_path / "bar").open("w") as stream:
        bar = ProgressBar(stream)
        bar("backup", 50, "data/report\u202etxt.exe \x1b[2J")
        bar.close()
    drawn = (tmp_path / "bar").read_text()
    assert "\u202e" not in drawn
    assert "\x1b[2J" not in drawn
    assert "report\\u202etxt.exe \\x1b[2J" in drawn
