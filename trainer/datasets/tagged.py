"""Exhaustively tagged photo folders: every word of a vocabulary marked on every photo.

A COCO or Corel label names some of what a photo shows; a tag it lacks may still be true,
so it cannot count a shown tag as wrong. A tagged folder can: each photo was looked at
and every word of ``vocabulary.txt`` that is visibly true was marked, so a word it does not
mark is absent (-1). It is the yardstick for the tags a photo shows (trainer.calibrate,
bench/tag_quality.py). ``../shared/data/everyday_tags`` has this layout.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..assets import normalise_word
from ..embeddings import DEFAULT_EMBEDDINGS, UnknownWordError, load_embeddings
from ..metrics import NUS_WIDE
from . import DataError, Dataset, Split, require_files

LAYOUT = """\
  vocabulary.txt   the words, one per line: every one of them is marked on every photo
  labels.tsv       tab-separated with a header: `path` (relative to this folder or to the folder
                   above it) and `words` (the photo's true words, separated by `;`); other
                   columns (such as `set`) are kept as the photo's group"""


def load(root: Path, *, embeddings: str = DEFAULT_EMBEDDINGS) -> Dataset:
    """Every photo as the test split (the training split is empty: this is validation data)."""
    require_files(root, ["vocabulary.txt", "labels.tsv"], LAYOUT)
    words = [normalise_word(w) for w in (root / "vocabulary.txt").read_text(encoding="utf-8").split("\n") if w.strip()]
    if len(set(words)) != len(words):
        raise DataError(f"{root / 'vocabulary.txt'} lists a word twice")
    column = {w: i for i, w in enumerate(words)}
    rows = _rows(root)
    labels = -np.ones((len(rows), len(words)), dtype=np.int8)
    images = []
    for r, row in enumerate(rows):
        images.append(_image(root, row["path"]))
        for word in filter(None, (normalise_word(w) for w in row.get("words", "").split(";"))):
            if word not in column:
                raise DataError(f"{root / 'labels.tsv'}: {row['path']} is marked {word!r}, which vocabulary.txt lacks")
            labels[r, column[word]] = 1
    if not (labels > 0).any():  # a rule fitted here would be fitted to nothing
        raise DataError(f"{root / 'labels.tsv'} marks no word on any photo")
    vectors = load_embeddings(embeddings)
    try:
        label_vectors = vectors.matrix(words)
    except UnknownWordError as exc:
        raise DataError(f"A word of {root / 'vocabulary.txt'} has no word vector: {exc}") from exc
    return Dataset(
        name=f"tagged-{root.name}",
        seen_labels=words,
        unseen_labels=[],
        seen_vectors=label_vectors,
        unseen_vectors=np.zeros((0, vectors.dim), np.float32),
        train=Split([], np.zeros((0, len(words)), np.int8)),
        test=Split(images, labels),
        protocol=NUS_WIDE,
        embeddings={"source": vectors.source_id, "dim": vectors.dim},
    )


def groups(root: Path) -> list[str]:
    """Each photo's group (the `set` column where there is one, else the folder's name)."""
    return [row.get("set") or root.name for row in _rows(root)]


def _rows(root: Path) -> list[dict]:
    with open(root / "labels.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "path" not in rows[0]:
        raise DataError(f"{root / 'labels.tsv'} has no `path` column\nExpected layout under {root}:\n{LAYOUT}")
    return rows


def _image(root: Path, relative: str) -> Path:
    for base in (root, root.parent):
        path = (base / relative).resolve()
        if path.is_file() and path.is_relative_to(base.resolve()):
            return path
    raise DataError(f"{root / 'labels.tsv'} names {relative}, which is not a file under {root} or {root.parent}")
