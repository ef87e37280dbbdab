"""Open Images V4, image-level human labels: 7,186 seen (trainable) and 400 unseen classes.

The unseen classes are the rows of ``unseen_labels.txt`` picked (0-based) by
``top_400_unseen.csv``; names come from ``class-descriptions.csv``; a label's vector is the
mean word vector of its name. Labels are kept as CSR matrices: +1 (Confidence 1), -1
(Confidence 0), implicit 0 (not annotated), since a dense 9M x 7,186 matrix would not fit.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np

from ..assets import asset_path
from ..embeddings import DEFAULT_EMBEDDINGS, UnknownWordError, WordVectors, load_embeddings
from ..errors import optional
from ..metrics import OPEN_IMAGES
from . import DataError, Dataset, LabelMatrix, Split, keep_present, require_files

LAYOUT = """\
  train-annotations-human-imagelabels.csv   ImageID,Source,LabelName,Confidence
  test-annotations-human-imagelabels.csv    the same for the test images
  train/<ImageID>.jpg                       the training images
  test/<ImageID>.jpg                        the test images
  (classes-trainable.txt, unseen_labels.txt, top_400_unseen.csv and class-descriptions.csv
   are optional: copies ship with epsilon-tag)"""


def load(root: Path, embeddings: str = DEFAULT_EMBEDDINGS) -> Dataset:
    require_files(
        root,
        ["train-annotations-human-imagelabels.csv", "test-annotations-human-imagelabels.csv", "train", "test"],
        LAYOUT,
    )
    seen_ids = _label_file(root, "classes-trainable.txt").read_text().split()
    unseen_pool = _label_file(root, "unseen_labels.txt").read_text().split()
    picks = [int(v) for v in _label_file(root, "top_400_unseen.csv").read_text(encoding="utf-8-sig").split()]
    if max(picks) >= len(unseen_pool):
        raise DataError(f"top_400_unseen.csv picks row {max(picks)} but unseen_labels.txt has {len(unseen_pool)}")
    unseen_ids = [unseen_pool[i] for i in picks]
    with open(_label_file(root, "class-descriptions.csv"), encoding="utf-8", newline="") as handle:
        names = {row[0]: row[1] for row in csv.reader(handle) if len(row) >= 2}
    absent = [c for c in seen_ids + unseen_ids if c not in names]
    if absent:
        raise DataError(f"class-descriptions.csv has no name for {len(absent)} classes, e.g. {absent[:3]}")

    vectors = load_embeddings(embeddings)
    seen_names = [names[c] for c in seen_ids]
    unseen_names = [names[c] for c in unseen_ids]

    def split(name: str) -> Split:
        images, (seen, unseen) = _read_labels(
            root / f"{name}-annotations-human-imagelabels.csv", [seen_ids, unseen_ids]
        )
        on_disk = {entry.name for entry in os.scandir(root / name) if entry.is_file()}
        present = np.array([f"{image}.jpg" in on_disk for image in images], dtype=bool)
        rows = keep_present(present, f"Open Images {name} (labelled)", root / name, LAYOUT)
        return Split([root / name / f"{images[r]}.jpg" for r in rows], seen[rows], unseen[rows])

    return Dataset(
        name="open-images",
        seen_labels=seen_names,
        unseen_labels=unseen_names,
        seen_vectors=_name_vectors(vectors, seen_names),
        unseen_vectors=_name_vectors(vectors, unseen_names),
        train=split("train"),
        test=split("test"),
        protocol=OPEN_IMAGES,
        embeddings={"source": vectors.source_id, "dim": vectors.dim},
    )


def _label_file(root: Path, name: str) -> Path:
    return root / name if (root / name).exists() else asset_path("open_images", name)


def _read_labels(path: Path, class_lists: list[list[str]]) -> tuple[list[str], list[LabelMatrix]]:
    """(image ids, one CSR label matrix per class list), reading the CSV once."""
    # pyarrow's CSV reader is imported here, by the one dataset that needs it (Open
    # Images' 9M-row files); scipy is an extra.
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    csr_matrix = optional("scipy.sparse", "Reading Open Images' labels").csr_matrix

    try:
        table = pacsv.read_csv(
            path, convert_options=pacsv.ConvertOptions(include_columns=["ImageID", "LabelName", "Confidence"])
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise DataError(f"{path} is not an image-labels CSV (ImageID,Source,LabelName,Confidence): {exc}") from exc
    images = pc.unique(table["ImageID"]).to_pylist()
    row = pc.index_in(table["ImageID"], value_set=pa.array(images, pa.string()))
    sign = np.where(table["Confidence"].to_numpy() > 0, 1, -1).astype(np.int8)
    matrices = []
    for classes in class_lists:
        col = pc.index_in(table["LabelName"], value_set=pa.array(classes, pa.string()))
        keep = pc.is_valid(col).to_numpy(zero_copy_only=False)
        matrix = csr_matrix(
            (sign[keep], (row.to_numpy(zero_copy_only=False)[keep], pc.filter(col, pc.is_valid(col)).to_numpy())),
            shape=(len(images), len(classes)),
            dtype=np.int8,
        )
        matrix.sum_duplicates()
        matrix.data = np.clip(matrix.data, -1, 1)  # an image labelled twice keeps one sign
        matrices.append(matrix)
    return images, matrices


def _name_vectors(vectors: WordVectors, names: list[str]) -> np.ndarray:
    """Mean word vectors of label names; a name with no known word gets a zero vector."""
    out = np.zeros((len(names), vectors.dim), dtype=np.float32)
    unknown = []
    for i, name in enumerate(names):
        try:
            out[i] = vectors.vector(name, strict=False)
        except UnknownWordError:
            unknown.append(name)
    if unknown:
        print(
            f"Open Images: {len(unknown)} of {len(names)} label names have no word in "
            f"{vectors.source_id} (e.g. {', '.join(unknown[:3])}); they score 0",
            file=sys.stderr,
        )
    return out
