"""Multi-label zero-shot datasets behind one record type.

Every dataset gives, per split, image files and label matrices in {+1, -1, 0} (0: not
annotated) for its seen and unseen labels, plus the labels' word vectors. Label matrices
are dense int8 arrays or, where a dense one would not fit (Open Images: 9M x 7,186),
scipy CSR matrices whose implicit zeros mean "not annotated"; ``label_rows`` reads either.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UserError
from ..metrics import Protocol

# A label matrix: a dense int8 array, or a scipy sparse matrix whose implicit zeros mean
# "not annotated" (Open Images'); scipy is an extra, so no stricter type names it here.
LabelMatrix = Any


class DataError(UserError, RuntimeError):
    """A data folder is wrong or incomplete; the message names the file and the layout."""


@dataclass
class Split:
    """One split: image paths and the seen (and, for test, unseen) label matrices."""

    images: list[Path]
    seen: LabelMatrix  # N x len(seen labels)
    unseen: LabelMatrix | None = None  # N x len(unseen labels)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, rows: Sequence[int] | np.ndarray) -> Split:
        rows = np.asarray(rows, dtype=np.int64)
        return Split(
            [self.images[i] for i in rows],
            self.seen[rows],
            None if self.unseen is None else self.unseen[rows],
        )


@dataclass
class Dataset:
    """Seen / unseen vocabularies with their vectors, and the train and test splits."""

    name: str
    seen_labels: list[str]
    unseen_labels: list[str]
    seen_vectors: np.ndarray  # len(seen_labels) x d_w, L2-normalised
    unseen_vectors: np.ndarray  # len(unseen_labels) x d_w
    train: Split
    test: Split
    protocol: Protocol
    embeddings: dict = field(default_factory=dict)  # {"source": id, "dim": d_w}

    @property
    def has_unseen(self) -> bool:
        return len(self.unseen_labels) > 0


def label_rows(matrix: LabelMatrix, rows: np.ndarray | slice) -> np.ndarray:
    """Dense int8 rows of a label matrix, whichever storage it uses."""
    block = matrix[rows]
    if hasattr(block, "toarray"):
        block = block.toarray()
    return np.asarray(block, dtype=np.int8)


def require_files(root: Path, files: Sequence[str], layout: str) -> None:
    """Raise a DataError naming the first missing file and the expected layout."""
    if not root.is_dir():
        raise DataError(f"Data folder not found: {root}\nExpected layout:\n{layout}")
    for name in files:
        if not (root / name).exists():
            raise DataError(f"Missing {root / name}\nExpected layout under {root}:\n{layout}")


def has_positive(matrix: LabelMatrix, rows: np.ndarray) -> np.ndarray:
    """Which of the rows have a +1 label, without densifying a sparse matrix."""
    block = matrix[rows]
    if hasattr(block, "getnnz"):
        return np.asarray((block > 0).getnnz(axis=1) > 0)
    return np.asarray((block > 0).any(axis=1))


def keep_present(present: np.ndarray, what: str, where: Path, layout: str) -> np.ndarray:
    """Positions of the images found on disk: none found is an error that shows the layout;
    some missing are said on stderr and left out."""
    if not present.any():
        raise DataError(f"None of the {len(present)} images of {what} are in {where}\n{layout}")
    if not present.all():
        print(
            f"{what}: {int((~present).sum())} of {len(present)} images are missing under {where} and are left out",
            file=sys.stderr,
        )
    return np.flatnonzero(present)


def held_out_fold(n: int, fraction: float, seed: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of range(n) into (kept, held out): ``fraction`` of it, at most ``limit``."""
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"held-out fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(n)
    cut = round(n * fraction)
    if limit is not None:
        cut = min(cut, limit)
    return np.sort(order[cut:]), np.sort(order[:cut])


# CLI name -> module under trainer.datasets with a `load(root, **options)` function.
DATASETS = {
    "nus-wide": "nus_wide",
    "open-images": "open_images",
    "corel5k": "corel5k",
    "coco": "coco",
    "tagged": "tagged",
}


def load_dataset(name: str, root: str | Path, **options: Any) -> Dataset:
    """Load a dataset by CLI name from its folder."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    module = importlib.import_module(f"{__name__}.{DATASETS[name]}")
    dataset: Dataset = module.load(Path(root).expanduser(), **options)
    return dataset
