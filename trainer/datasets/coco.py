"""COCO-format labelled photo folders: a photo's labels are the categories annotated in it.

This is what most people who label photos have (COCO itself, Roboflow and CVAT exports,
``open_images_5``): ``annotations/instances_<split>.json`` files with ``images``,
``annotations`` and ``categories``, and the images they name. A category with no
annotation in a photo is absent from it (-1): instances files annotate every category
they list. Without an unseen-category file every category is ranked together (the GZSL
row); with one, its categories are the zero-shot ones (ZSL) and the rest seen.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..embeddings import DEFAULT_EMBEDDINGS, UnknownWordError, load_embeddings
from ..metrics import NUS_WIDE
from . import DataError, Dataset, Split

LAYOUT = """\
  annotations/instances_<split>.json   COCO instances files: "images" (id, file_name),
                                       "annotations" (image_id, category_id), "categories" (id, name)
  images/<split>/<file_name>, images/<file_name>, <split>/<file_name> or <file_name>
                                       the images (file_name as the instances file gives it)"""


def load(
    root: Path,
    *,
    split: str = "all",
    unseen: str | Path | None = None,
    embeddings: str = DEFAULT_EMBEDDINGS,
) -> Dataset:
    """The photos of every instances file (``split="all"``) or of one (``split="val"``
    reads ``instances_val.json``) as the test split; the training split is empty."""
    files = _instances_files(root, split)
    categories: dict[int, str] = {}
    images: list[Path] = []
    rows: list[set[int]] = []  # each photo's categories
    for path in files:
        _read_instances(root, path, categories, images, rows)
    _check_found(root, files, categories, images, rows)

    ids = sorted(categories)
    names = [categories[i] for i in ids]
    unseen_names = _unseen(unseen, names)
    seen_cols = [c for c, n in enumerate(names) if n not in unseen_names]
    unseen_cols = [c for c, n in enumerate(names) if n in unseen_names]
    column = {cid: c for c, cid in enumerate(ids)}
    labels = -np.ones((len(images), len(ids)), dtype=np.int8)
    for r, present in enumerate(rows):
        labels[r, [column[c] for c in present]] = 1

    vectors = load_embeddings(embeddings)
    try:
        label_vectors = vectors.matrix(names)
    except UnknownWordError as exc:
        raise DataError(
            f"A category of {root} has no word vector: {exc} Rename the category in the "
            f"instances files, or pass --embeddings with vectors that know it."
        ) from exc
    empty = Split([], np.zeros((0, len(seen_cols)), np.int8), np.zeros((0, len(unseen_cols)), np.int8))
    return Dataset(
        name=f"coco-{root.name}" + ("" if split == "all" else f"-{split}"),
        seen_labels=[names[c] for c in seen_cols],
        unseen_labels=[names[c] for c in unseen_cols],
        seen_vectors=label_vectors[seen_cols],
        unseen_vectors=label_vectors[unseen_cols],
        train=empty,
        test=Split(images, labels[:, seen_cols], labels[:, unseen_cols] if unseen_cols else None),
        protocol=NUS_WIDE,  # every photo counts; K = 3 and 5
        embeddings={"source": vectors.source_id, "dim": vectors.dim},
    )


def _read_instances(
    root: Path, path: Path, categories: dict[int, str], images: list[Path], rows: list[set[int]]
) -> None:
    """Add one instances file's categories, photos and their labels to those of the files before it."""
    data = _read_json(path)
    for category in _records(data, "categories", path, ("id", "name")):
        cid, cname = _id(category, "id", "categories", path), category["name"]
        if not isinstance(cname, str) or not cname.strip():
            raise DataError(f"{path}: category {cid} has no name (name: {json.dumps(cname)})")
        cname = cname.strip()
        if categories.setdefault(cid, cname) != cname:
            raise DataError(f"{path}: category {cid} is {cname!r} here but {categories[cid]!r} in another file")
    found: dict[int, int] = {}
    split = path.stem.removeprefix("instances_")
    for image in _records(data, "images", path, ("id", "file_name")):
        iid = _id(image, "id", "images", path)
        if iid in found:  # the later entry would silently take the earlier photo's labels
            raise DataError(f'{path}: two "images" entries have id {iid}; each photo needs an id of its own')
        found[iid] = len(images)
        images.append(_image_path(root, split, image["file_name"], path))
        rows.append(set())
    for annotation in _records(data, "annotations", path, ("image_id", "category_id")):
        iid, cid = (_id(annotation, field, "annotations", path) for field in ("image_id", "category_id"))
        if cid not in categories:
            raise DataError(f'{path}: an annotation names category {cid}, which no "categories" entry defines')
        if iid not in found:
            raise DataError(f'{path}: an annotation names image {iid}, which no "images" entry defines')
        rows[found[iid]].add(cid)


def _check_found(
    root: Path, files: list[Path], categories: dict[int, str], images: list[Path], rows: list[set[int]]
) -> None:
    """Something to measure: categories, photos that are there, and labels on them."""
    named = ", ".join(str(f) for f in files)
    if not categories:
        raise DataError(f"No categories in {named}\nExpected layout under {root}:\n{LAYOUT}")
    if not images:
        raise DataError(f'No images in {named}: its "images" lists are empty')
    if not any(rows):  # every photo would count as showing none of the categories
        raise DataError(f"No annotations in {named}: no photo is labelled, so nothing can be measured on it")
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(images)} images named in the instances files are missing, e.g. "
            f"{', '.join(str(p) for p in missing[:3])}\nExpected layout under {root}:\n{LAYOUT}"
        )


def _instances_files(root: Path, split: str) -> list[Path]:
    folder = root / "annotations"
    if not folder.is_dir():
        raise DataError(f"No annotations folder in {root}\nExpected layout under {root}:\n{LAYOUT}")
    files = sorted(folder.glob("instances_*.json"))
    if not files:
        raise DataError(f"No instances_*.json file in {folder}\nExpected layout under {root}:\n{LAYOUT}")
    if split == "all":
        return files
    chosen = [f for f in files if f.stem == f"instances_{split}"]
    if not chosen:
        names = ", ".join(f.stem.removeprefix("instances_") for f in files)
        raise DataError(f"No {folder / f'instances_{split}.json'}: the splits there are {names} (or all)")
    return chosen


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}): is it a COCO instances file?") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise DataError(
            f"{path} is not a COCO instances file: it must hold an object with images, annotations and categories"
        )
    return data


def _records(data: dict, key: str, path: Path, fields: tuple[str, ...]) -> list[dict]:
    records = data.get(key, [] if key == "annotations" else None)
    if not isinstance(records, list):
        raise DataError(f'{path} has no "{key}" list: is it a COCO instances file?')
    for number, record in enumerate(records):
        if not isinstance(record, dict) or any(f not in record for f in fields):
            raise DataError(f'{path}: "{key}" entry {number} lacks one of {", ".join(fields)}')
    return records


def _id(record: dict, field: str, key: str, path: Path) -> int:
    value = record[field]
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(f'{path}: a "{key}" entry has {field} {json.dumps(value)}; COCO ids are whole numbers')
    return value


def _image_path(root: Path, split: str, file_name: object, path: Path) -> Path:
    """Where an image lies: the first of the usual export layouts that holds it. A name that
    leads out of the folder (absolute, or through ..) is refused, not followed."""
    relative = Path(file_name) if isinstance(file_name, str) and file_name.strip() else None
    if relative is None or relative.is_absolute() or ".." in relative.parts:
        raise DataError(
            f"{path}: file_name {json.dumps(file_name)} is not a path inside {root}; images are named relative to "
            "the dataset folder"
        )
    file_name = str(relative)
    candidates = [
        root / "images" / split / file_name,
        root / "images" / file_name,
        root / split / file_name,
        root / file_name,
    ]
    return next((c for c in candidates if c.is_file()), candidates[1])


def _unseen(path: str | Path | None, names: list[str]) -> set[str]:
    if path is None:
        return set()
    path = Path(path)
    try:
        listed = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(f"Cannot read the unseen-category file {path}: {exc.strerror or exc}") from exc
    unknown = [n for n in listed if n not in names]
    if unknown:
        raise DataError(
            f"{path} names categories the instances files do not define: {', '.join(unknown[:5])} "
            f"(they define: {', '.join(names[:20])})"
        )
    return set(listed)
