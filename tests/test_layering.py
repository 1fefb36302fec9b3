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
CLI_MODULES = {"cli.py", "cli_restart.py", "cli_release.py", "__main__.py", "demo.py"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_engine_imports_no_front_end(module: str) -> None:
    roots = imported_roots(PACKAGE / module)
    assert "discord" not in roots
    if module not in CLI_MODULES:
        assert not roots & FRONT_END_ONLY, f"{module} imports {roots & FRONT_END_ONLY}"


def test_no_shell_anywhere() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text, path.name
        assert "os.system(" not in text, path.name


def test_ruff_is_clean() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the test extra)")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(PACKAGE.parent)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
