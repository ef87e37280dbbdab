"""The tree passes the project's linter, formatter and type checker (ruff and mypy,
configured in pyproject.toml), so CI, which runs this suite, fails on any of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
