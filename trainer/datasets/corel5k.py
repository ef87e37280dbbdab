"""Corel-5K: 5,000 stock photos, 374 words, train 4,500 / test 499.

Zero-shot mode uses the fixed split of 50 unseen words (``zsl_unseen_words.txt``): they
are removed from the training labels and never trained on. "all-seen" mode trains on all
374 words (how the tagger's default model is made).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..assets import asset_path
from ..embeddings import DEFAULT_EMBEDDINGS, load_embeddings
from ..metrics import NUS_WIDE
from . import DataError, Dataset, Split, require_files

LAYOUT = """\
  labels/words            the 374 words, one per line
  labels/training_label   <id> <1-based word index> ...   (one training image per line)
  labels/test_label       the same for the test images
  annotations.tsv         id <tab> split <tab> path <tab> words   (image paths, relative)
  zsl_unseen_words.txt    optional: the 50 unseen words (a copy ships with epsilon-tag)"""

MODES = ("zsl", "all-seen")


def load(root: Path, mode: str = "zsl", embeddings: str = DEFAULT_EMBEDDINGS) -> Dataset:
    if mode not in MODES:
        raise DataError(f"Corel-5K mode must be one of {', '.join(MODES)}, got {mode!r}")
    require_files(root, ["labels/words", "labels/training_label", "labels/test_label", "annotations.tsv"], LAYOUT)
    words = (root / "labels" / "words").read_text().split()
    paths = _image_paths(root)
    train_ids, train_labels = _read_labels(root / "labels" / "training_label", len(words))
    test_ids, test_labels = _read_labels(root / "labels" / "test_label", len(words))
    unseen_file = root / "zsl_unseen_words.txt"
    if not unseen_file.exists():
        unseen_file = asset_path("corel5k", "zsl_unseen_words.txt")
    unseen = unseen_file.read_text().split() if mode == "zsl" else []
    unknown = sorted(set(unseen) - set(words))
    if unknown:
        raise DataError(f"{unseen_file} names words that are not in labels/words: {', '.join(unknown)}")
    unseen_set = set(unseen)
    seen_cols = [i for i, w in enumerate(words) if w not in unseen_set]
    unseen_cols = [words.index(w) for w in unseen]

    def split(ids: list[str], labels: np.ndarray, with_unseen: bool) -> Split:
        missing = [i for i in ids if i not in paths]
        if missing:
            raise DataError(f"Image ids {missing[:5]} have labels but no path in {root / 'annotations.tsv'}")
        return Split(
            [root / paths[i] for i in ids],
            labels[:, seen_cols],
            labels[:, unseen_cols] if with_unseen else None,
        )

    vectors = load_embeddings(embeddings)
    return Dataset(
        name=f"corel5k-{mode}",
        seen_labels=[words[i] for i in seen_cols],
        unseen_labels=unseen,
        seen_vectors=vectors.matrix([words[i] for i in seen_cols]),
        unseen_vectors=vectors.matrix(unseen) if unseen else np.zeros((0, vectors.dim), np.float32),
        # Training images keep their unseen columns too: they are never trained on, but the
        # held-out fold of the training split uses them to choose models without the test set.
        train=split(train_ids, train_labels, True),
        test=split(test_ids, test_labels, True),
        protocol=NUS_WIDE,  # every image counts; K = 3 and 5
        embeddings={"source": vectors.source_id, "dim": vectors.dim},
    )


def _image_paths(root: Path) -> dict[str, str]:
    paths = {}
    with open(root / "annotations.tsv", encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if header[:3] != ["id", "split", "path"]:
            raise DataError(f"{root / 'annotations.tsv'} must start with the header id, split, path, words")
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3:
                paths[parts[0]] = parts[2]
    return paths


def _read_labels(path: Path, n_words: int) -> tuple[list[str], np.ndarray]:
    ids: list[str] = []
    rows: list[list[int]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            indices = [int(p) - 1 for p in parts[1:]]
        except ValueError as exc:
            raise DataError(f"{path}:{number}: expected '<id> <word index> ...', got {line!r}") from exc
        if any(not 0 <= i < n_words for i in indices):
            raise DataError(f"{path}:{number}: word index outside 1..{n_words}")
        if parts[0] in seen:
            # The public test_label lists image 161092 twice, identically: keep it once.
            if sorted(indices) != sorted(rows[seen[parts[0]]]):
                raise DataError(f"{path}:{number}: image {parts[0]} is listed twice with different words")
            continue
        seen[parts[0]] = len(ids)
        ids.append(parts[0])
        rows.append(indices)
    labels = -np.ones((len(ids), n_words), dtype=np.int8)
    for r, indices in enumerate(rows):
        labels[r, indices] = 1
    return ids, labels
