"""NUS-WIDE in its official download layout: 925 seen tags, 81 unseen concepts.

Seen labels are the 1,000 Flickr tags minus the 81 concepts (the 75 tags that are also
concepts are dropped from the seen vocabulary, i.e. zeroed); unseen labels are the 81
human-annotated concepts (``Groundtruth/AllLabels``). Word vectors are the GloVe 300-d
label vectors shipped in ``assets/nus_wide/`` (rows in TagList1k / Concepts81 order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..assets import asset_path
from ..embeddings import NUS_VECTORS, load_embeddings
from ..metrics import NUS_WIDE
from . import DataError, Dataset, Split, keep_present, require_files

LAYOUT = """\
  ImageList/Imagelist.txt            all 269,648 images, one path per line (C:\\ImageData\\Flickr\\<folder>\\<file>.jpg)
  ImageList/TrainImagelist.txt       the 161,789 training images (same format)
  ImageList/TestImagelist.txt        the 107,859 test images
  NUS_WID_Tags/AllTags1k.txt         one row of 1,000 0/1 tag flags per image, in Imagelist order
  Groundtruth/AllLabels/Labels_<concept>.txt   one 0/1 per image, for each of the 81 concepts
  Flickr/<folder>/<file>.jpg         the images
  (NUS_WID_Tags/TagList1k.txt and ConceptsList/Concepts81.txt are optional: copies ship with epsilon-tag)"""


def load(root: Path, embeddings: str = NUS_VECTORS) -> Dataset:
    require_files(
        root,
        [
            "ImageList/Imagelist.txt",
            "ImageList/TrainImagelist.txt",
            "ImageList/TestImagelist.txt",
            "NUS_WID_Tags/AllTags1k.txt",
            "Groundtruth/AllLabels",
        ],
        LAYOUT,
    )
    tags = _label_list(root / "NUS_WID_Tags" / "TagList1k.txt", "TagList1k.txt")
    concepts = _label_list(root / "ConceptsList" / "Concepts81.txt", "Concepts81.txt")
    missing = [c for c in concepts if not (root / "Groundtruth" / "AllLabels" / f"Labels_{c}.txt").exists()]
    if missing:
        raise DataError(
            f"Missing {root / 'Groundtruth' / 'AllLabels' / f'Labels_{missing[0]}.txt'} "
            f"({len(missing)} concept label files missing)\nExpected layout under {root}:\n{LAYOUT}"
        )
    images = [_relative(line) for line in _lines(root / "ImageList" / "Imagelist.txt")]
    n = len(images)
    tag_flags = _flags(root / "NUS_WID_Tags" / "AllTags1k.txt", n, len(tags))
    concept_flags = np.stack(
        [_flags(root / "Groundtruth" / "AllLabels" / f"Labels_{c}.txt", n, 1)[:, 0] for c in concepts], axis=1
    )
    concept_set = set(concepts)
    seen_cols = [i for i, t in enumerate(tags) if t not in concept_set]
    # 1 -> +1, 0 -> -1: NUS-WIDE annotates every cell.
    seen = tag_flags[:, seen_cols].astype(np.int8) * 2 - 1
    unseen = concept_flags.astype(np.int8) * 2 - 1

    seen_names = [tags[i] for i in seen_cols]
    vectors = load_embeddings(embeddings)
    return Dataset(
        name="nus-wide",
        seen_labels=seen_names,
        unseen_labels=concepts,
        seen_vectors=vectors.matrix(seen_names),
        unseen_vectors=vectors.matrix(concepts),
        train=_split(root, "TrainImagelist.txt", images, seen, unseen),
        test=_split(root, "TestImagelist.txt", images, seen, unseen),
        protocol=NUS_WIDE,
        embeddings={"source": vectors.source_id, "dim": vectors.dim},
    )


def _split(root: Path, list_file: str, images: list[str], seen: np.ndarray, unseen: np.ndarray) -> Split:
    """The images a split's list names (of those in Imagelist.txt, whose rows ``seen`` and
    ``unseen`` label), less those missing under Flickr/ (said on stderr)."""
    row_of = {path: i for i, path in enumerate(images)}
    listed = []
    for line in _lines(root / "ImageList" / list_file):
        path = _relative(line)
        if path not in row_of:
            raise DataError(f"{root / 'ImageList' / list_file} lists {path}, which Imagelist.txt does not")
        listed.append(row_of[path])
    rows = np.asarray(listed)
    present = np.array([(root / "Flickr" / images[r]).is_file() for r in rows])
    rows = rows[keep_present(present, f"NUS-WIDE {list_file}", root / "Flickr", LAYOUT)]
    return Split([root / "Flickr" / images[r] for r in rows], seen[rows], unseen[rows])


def _label_list(path: Path, asset: str) -> list[str]:
    shipped = asset_path("nus_wide", asset).read_text().split()
    if path.exists():
        own = path.read_text().split()
        if own != shipped:
            raise DataError(
                f"{path} differs from the official list shipped with epsilon-tag "
                f"({len(own)} vs {len(shipped)} entries): the label vectors follow the official order."
            )
    return shipped


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def _relative(line: str) -> str:
    """'C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg' -> 'actor/0001_2124494179.jpg'."""
    parts = line.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def _flags(path: Path, rows: int, cols: int) -> np.ndarray:
    """A file of 0/1 digits (any separators) as a rows x cols uint8 matrix, parsed at memory speed."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    digits = data[(data == ord("0")) | (data == ord("1"))] - ord("0")
    if digits.size != rows * cols:
        raise DataError(
            f"{path} has {digits.size} 0/1 values, expected {rows} x {cols} = {rows * cols} "
            f"(one row per image of ImageList/Imagelist.txt)"
        )
    return digits.reshape(rows, cols)
