"""What tests share besides fixtures: where the project and its real data are, a skip where
the data is not there, the installed console scripts."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The project's real data sits beside the checkout as ../shared (CI lays it out the same).
SHARED = Path(os.environ.get("EPSILON_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


def require(path: Path) -> Path:
    """``path``, or a skip of the test where the real data is not there."""
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


def entry_point(name: str) -> str:
    """The installed console script, next to the running interpreter when in a venv."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"console script {name!r} is not installed: pip install -e '.[test]'")
    return found
