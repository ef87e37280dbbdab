"""Where the shipped data files live, for an editable and a plain install alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset_path(*parts: str) -> Path:
    """Path of a file under ``assets/`` (installed as ``epsilon_tag_assets``)."""
    root = resources.files("epsilon_tag_assets")
    return Path(str(root.joinpath(*parts)))
