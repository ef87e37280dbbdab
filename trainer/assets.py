"""Where the shipped data files live, for an editable and a plain install alike."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path


def asset_path(*parts: str) -> Path:
    """Path of a file under ``assets/`` (installed as ``epsilon_tag_assets``)."""
    root = resources.files("epsilon_tag_assets")
    return Path(str(root.joinpath(*parts)))


def normalise_word(word: str) -> str:
    """How a vocabulary word is written: lower case, single spaces."""
    return re.sub(r"\s+", " ", word.strip().lower())


def default_words(seen: Sequence[str], unseen: Sequence[str] = ()) -> list[str]:
    """A model's own labels, then the shipped list of common photo tags, without repeats:
    the vocabulary a new library starts with, and the one the tag rule is calibrated with."""
    shipped = asset_path("vocabulary", "photo-tags.txt").read_text().splitlines()
    out: dict[str, None] = {}
    for word in [*seen, *unseen, *shipped]:
        word = normalise_word(word)
        if word and not word.startswith("#"):
            out.setdefault(word)
    return list(out)
