"""The tree passes the project's linter, formatter and type checker (ruff and mypy,
configured in pyproject.toml), so CI, which runs this suite, fails on any of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

TREE = ["tagger", "trainer", "tests", "bench", "assets"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command):
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run([str(ruff), *command, *TREE], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff {' '.join(command)} found problems (ruff format fixes layout):\n{done.stdout}"


@pytest.mark.slow  # half a minute on a fresh checkout (seconds once .mypy_cache is there)
def test_mypy():
    mypy = Path(sys.executable).parent / "mypy"
    done = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"mypy found problems:\n{done.stdout[-4000:]}"


MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 500
REASON = "# long: "  # the one-line reason a function or module may be longer, on the line above it


def _oversized(path: Path) -> list[str]:
    """Functions over MAX_FUNCTION_LINES and a module over MAX_MODULE_LINES lines in ``path``
    without a ``# long: why`` line just above the def (above its decorators) or at the top."""
    import ast

    lines = path.read_text().splitlines()
    found = []
    if len(lines) > MAX_MODULE_LINES and not any(line.startswith(REASON) for line in lines[:20]):
        found.append(f"{path}: {len(lines)} lines")
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if length > MAX_FUNCTION_LINES and not lines[top - 2].strip().startswith(REASON):
                found.append(f"{path}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_long_function_or_module_without_a_reason():
    modules = sorted([*(ROOT / "tagger").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")])
    found = [f for p in modules for f in _oversized(p)]
    assert not found, "split these, or say why on the line above (`# long: ...`):\n" + "\n".join(found)


def test_the_size_rule_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\n# long: a table, one entry a line\ndef g():\n{body}\n")
    assert [f.split(" ")[1] for f in _oversized(tmp_path / "m.py")] == ["f:"]
