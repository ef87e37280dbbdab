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


# The classes of excluded.txt that are about people (the rest: not visible, folded forms).
SENSITIVE = ("religion", "ethnicity", "death", "health", "sex-gender", "body-judgement", "status-conduct")


def _lines(*parts: str) -> list[str]:
    """The lines of a shipped list, without comments and blank lines."""
    text = asset_path("vocabulary", *parts).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def excluded_words() -> dict[str, str]:
    """Words kept out of the default vocabulary, with their class (assets/vocabulary/excluded.txt):
    a sensitive class (SENSITIVE), ``not-visible``, or ``folded:WORD`` for a form of WORD."""
    return dict(line.split("\t", 1) for line in _lines("excluded.txt"))


def retired_words() -> set[str]:
    """Words of an earlier default vocabulary that the default no longer holds."""
    return {normalise_word(w) for w in _lines("retired.txt")}


def default_words(seen: Sequence[str], unseen: Sequence[str] = ()) -> list[str]:
    """The vocabulary a new library starts with, and the one the tag rule is calibrated with:
    the shipped list of things a photo shows (assets/vocabulary/photo-tags.txt), then the
    model's own labels, each concept once. A label the policy keeps out (excluded.txt: a
    sensitive word, or one a photo cannot show) is not added; a label that is a form of a
    shipped word ("boats", "bike") is that word, which then takes the label's vector
    (tagger.vocabulary.WordSource). Words a person adds are theirs: none of this applies."""
    from .wordnet import wordnet  # wordnet reads its table through this module: imported here, no cycle

    excluded = excluded_words()
    net = wordnet()
    # The shipped list is one word per concept by hand (WordNet would fold leaf into foliage).
    out = dict.fromkeys(normalise_word(w) for w in _lines("photo-tags.txt"))
    concepts = {net.concept(w) for w in out}
    for word in [*seen, *unseen]:
        word = normalise_word(word)
        why = excluded.get(word, "")
        if why.startswith("folded:"):
            word, why = why.removeprefix("folded:"), ""
        concept = net.concept(word)
        if word and not why and concept not in concepts:
            out.setdefault(word)
            concepts.add(concept)
    return list(out)
