"""The words `vocab similar` offers, and their all-MiniLM-L6-v2 vectors shipped with them.

A suggestion is a word to add to a photo vocabulary, so it comes from a list of photo words
(the shipped photo tags, Corel-5K's and NUS-WIDE's tags, Open Images' 7,186 trainable
classes), not from a word-vector file's 400,000 tokens: GloVe's nearest words to "zeppelin"
are "beatles, ac/dc, metallica", the sentence encoder's among photo words are "airship,
drummer, concert". The list's sentence vectors ship in assets/ (int8, 2.6 MB), so a word on
the list finds its neighbours by meaning in any library, GloVe or not, without the encoder;
`python -m trainer.candidates` writes them again (it needs the ``minilm`` extra).
"""

from __future__ import annotations

import csv
import functools
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .assets import _lines, asset_path, excluded_words, normalise_word

SHIPPED = ("vocabulary", "candidates-minilm-l6-v2.npz")


class Source(Protocol):
    """What suggestions need of a library's word source: which words it can add, and its
    own neighbours for a word that is not on the list."""

    def __contains__(self, label: str) -> bool: ...

    def neighbours(self, label: str, n: int = 10) -> list[tuple[str, float]]: ...


def candidate_words() -> list[str]:
    """What `vocab similar` may answer: the shipped photo words, Corel-5K's and NUS-WIDE's
    tags and concepts, Open Images' 7,186 trainable classes ("Airship", "Hot dog"), less
    every word the default vocabulary keeps out (sensitive, not visible, or a form of a word
    already there)."""
    with open(asset_path("open_images", "class-descriptions.csv"), encoding="utf-8", newline="") as handle:
        names = dict(row[:2] for row in csv.reader(handle) if len(row) >= 2)
    trainable = asset_path("open_images", "classes-trainable.txt").read_text(encoding="utf-8").split()
    lists = [
        _lines("photo-tags.txt"),
        asset_path("corel5k", "words").read_text(encoding="utf-8").split(),
        asset_path("nus_wide", "TagList1k.txt").read_text(encoding="utf-8").split(),
        asset_path("nus_wide", "Concepts81.txt").read_text(encoding="utf-8").split(),
        [names[m] for m in trainable if m in names],
    ]
    excluded = excluded_words()
    words = dict.fromkeys(normalise_word(w.replace("_", " ")) for words in lists for w in words)
    return [w for w in words if w and w not in excluded]


def list_key(words: list[str]) -> str:
    """Which list a matrix of vectors belongs to: a stale file is never read against a new list."""
    return f"{zlib.crc32(chr(10).join(words).encode()):08x}"


@dataclass(frozen=True)
class Candidates:
    """The candidate words with one unit vector each (in the sentence encoder's space)."""

    words: list[str]
    vectors: np.ndarray  # len(words) x dim, float32

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def nearest(self, query: np.ndarray, n: int, source: Source | None = None) -> list[tuple[str, float]]:
        """The n words closest to a unit vector, best first; with ``source``, only words it
        can add (a suggestion that `vocab add` then refuses is no suggestion)."""
        sims = self.vectors @ np.asarray(query, np.float32)
        out: list[tuple[str, float]] = []
        for i in np.argsort(-sims, kind="stable"):
            if len(out) == n:
                break
            if source is None or self.words[i] in source:
                out.append((self.words[i], float(sims[i])))
        return out


def _pack(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors as int8 with one scale per row: a cosine stays within about 0.003."""
    scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
    return np.round(vectors / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def _unpack(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    vectors = codes.astype(np.float32) * scale[:, None]
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@functools.cache
def shipped() -> Candidates | None:
    """The list with its shipped vectors, or None where the file is missing or was made for
    another list (then a word's neighbours come from its library's own word source)."""
    words = candidate_words()
    try:
        with np.load(asset_path(*SHIPPED)) as data:
            if str(data["key"]) != list_key(words) or len(data["codes"]) != len(words):
                return None
            return Candidates(words, _unpack(data["codes"], data["scale"]))
    except (OSError, KeyError, ValueError):
        return None


def similar(source: Source, label: str, n: int = 10) -> list[tuple[str, float]]:
    """The n words nearest ``label`` in meaning that ``source`` can add: among the candidate
    words by their shipped sentence vectors where ``label`` is one of them, else the
    source's own neighbours (every word of a GloVe library, the candidates of a sentence
    encoder's). The label itself is never suggested."""
    found = shipped()
    own = normalise_word(label)
    if found is not None and own in found.index:
        near = found.nearest(found.vectors[found.index[own]], n + 1, source)
        return [(w, s) for w, s in near if w != own][:n]
    return source.neighbours(label, n)


def write(path: Path | None = None) -> Path:
    """Encode the candidate words with the sentence encoder and write the shipped file."""
    from .sentence import encoder

    words = candidate_words()
    print(f"Encoding {len(words):,} candidate words (half a minute on two cores)...", file=sys.stderr)
    codes, scale = _pack(encoder().encode(words, batch_size=128))
    path = asset_path(*SHIPPED) if path is None else path
    np.savez_compressed(path, codes=codes, scale=scale, key=np.array(list_key(words)))
    return path


if __name__ == "__main__":
    print(write())
