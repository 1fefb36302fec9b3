"""Rules about the code itself: the engine stays free of front-ends, and ruff is clean."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gitrelease"
FRONT_END_ONLY = {"discord", "argparse", "tqdm"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "module", sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")))
def test_engine_imports_no_front_end(module: str) -> None:
    roots = imported_roots(PACKAGE / module)
    assert "discord" not in roots
    if not module.startswith("cli/") and module != "__main__.py":
        assert not roots & FRONT_END_ONLY, f"{module} imports {roots & FRONT_END_ONLY}"


def test_no_shell_anywhere() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text, path.name
        assert "os.system(" not in text, path.name


MODULE_AIM = 420  # lines: ~400, with a little room for a docstring's growth


@pytest.mark.parametrize("module", sorted(
    str(p.relative_to(PACKAGE.parent)) for folder in ("gitrelease", "gitrelease_discord")
    for p in (PACKAGE.parent / folder).rglob("*.py")))
def test_modules_stay_small_or_say_why(module: str) -> None:
    path = PACKAGE.parent / module
    lines = len(path.read_text().splitlines())
    reason = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MODULE_AIM or "over the ~400-line aim" in reason.lower(), \
        f"{module} has {lines} lines; split it, or say in its docstring why it is over " \
        "the ~400-line aim"


def test_the_layer_contracts_hold() -> None:
    """.importlinter: front-ends > facade > operations > release, state > index, git > core;
    the front-ends see only the facade and core; no import cycle anywhere."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(PACKAGE.parent / ".importlinter")],
                            cwd=PACKAGE.parent, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout, result.stdout


def test_ruff_is_clean() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the test extra)")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(PACKAGE.parent)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
