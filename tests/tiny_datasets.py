"""Tiny NUS-WIDE, Open Images and Corel-5K trees in their official layouts, made on the fly.

Images are small JPEGs whose colour follows their first label, so a model has something
to learn; label files follow each dataset's real format and real label lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from trainer.assets import asset_path

COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 220, 50), (30, 30, 30), (240, 240, 240)]


def _image(path: Path, colour_index: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.array(COLOURS[colour_index % len(COLOURS)], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, size=(48, 64, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_nus_wide(root: Path, n_train: int = 24, n_test: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tags = asset_path("nus_wide", "TagList1k.txt").read_text().split()
    concepts = asset_path("nus_wide", "Concepts81.txt").read_text().split()
    seen_pool = [i for i, t in enumerate(tags) if t not in set(concepts)][:6]
    n = n_train + n_test
    names = [f"{['actor', 'beach', 'sky'][i % 3]}/{i:04d}_{1000 + i}.jpg" for i in range(n)]
    flags = np.zeros((n, len(tags)), dtype=np.uint8)
    concept_flags = np.zeros((n, len(concepts)), dtype=np.uint8)
    for i in range(n):
        first = i % len(seen_pool)
        flags[i, [seen_pool[first], seen_pool[(first + 1) % len(seen_pool)]]] = 1
        concept_flags[i, [first % 5, 5 + rng.integers(0, 5)]] = 1
        _image(root / "Flickr" / names[i], first, rng)
    windows = ["C:\\ImageData\\Flickr\\" + name.replace("/", "\\") for name in names]
    (root / "ImageList").mkdir(parents=True)
    (root / "ImageList" / "Imagelist.txt").write_text("\n".join(windows) + "\n")
    (root / "ImageList" / "TrainImagelist.txt").write_text("\n".join(windows[:n_train]) + "\n")
    (root / "ImageList" / "TestImagelist.txt").write_text("\n".join(windows[n_train:]) + "\n")
    (root / "NUS_WID_Tags").mkdir()
    (root / "NUS_WID_Tags" / "AllTags1k.txt").write_text("\n".join("\t".join(map(str, row)) for row in flags) + "\n")
    (root / "Groundtruth" / "AllLabels").mkdir(parents=True)
    for c, concept in enumerate(concepts):
        (root / "Groundtruth" / "AllLabels" / f"Labels_{concept}.txt").write_text(
            "\n".join(map(str, concept_flags[:, c])) + "\n"
        )
    return root


def make_open_images(root: Path, n_train: int = 24, n_test: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    seen = asset_path("open_images", "classes-trainable.txt").read_text().split()[:8]
    pool = asset_path("open_images", "unseen_labels.txt").read_text().split()
    picks = [int(v) for v in asset_path("open_images", "top_400_unseen.csv").read_text(encoding="utf-8-sig").split()]
    unseen = [pool[i] for i in picks[:6]]
    for split, count, offset in (("train", n_train, 0), ("test", n_test, n_train)):
        rows = ["ImageID,Source,LabelName,Confidence"]
        for i in range(count):
            image_id = f"{offset + i:016x}"
            first = i % 6
            rows += [
                f"{image_id},verification,{seen[first]},1",
                f"{image_id},verification,{seen[(first + 1) % 8]},1",
                f"{image_id},verification,{seen[(first + 4) % 8]},0",
                f"{image_id},crowdsource-verification,{unseen[first]},1",
                f"{image_id},verification,{unseen[(first + 3) % 6]},0",
            ]
            _image(root / split / f"{image_id}.jpg", first, rng)
        (root / f"{split}-annotations-human-imagelabels.csv").write_text("\n".join(rows) + "\n")
    return root


def make_corel(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    words = asset_path("corel5k", "words").read_text().split()
    unseen = asset_path("corel5k", "zsl_unseen_words.txt").read_text().split()
    seen_idx = [i for i, w in enumerate(words) if w not in set(unseen)][:6]
    unseen_idx = [words.index(w) for w in unseen[:3]]
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "words").write_text("\n".join(words) + "\n")
    annotations = ["id\tsplit\tpath\twords"]
    for split, count, offset in (("training_label", n_train, 0), ("test_label", n_test, n_train)):
        lines = []
        for i in range(count):
            image_id = str(1000 + offset + i)
            first = i % 6
            chosen = [seen_idx[first], seen_idx[(first + 2) % 6], unseen_idx[first % 3]]
            lines.append(image_id + " " + " ".join(str(c + 1) for c in chosen))
            path = f"images/{image_id}.jpeg"
            _image(root / path, first, rng)
            annotations.append(
                f"{image_id}\t{'train' if split == 'training_label' else 'test'}\t{path}\t"
                + ",".join(words[c] for c in chosen)
            )
        (root / "labels" / split).write_text("\n".join(lines) + "\n")
    (root / "annotations.tsv").write_text("\n".join(annotations) + "\n")
    return root


COCO_CATEGORIES = ["apple", "bicycle", "bird", "boat", "person"]


def make_coco(root: Path, splits: dict[str, int] | None = None, *, layout: str = "images/split", seed: int = 0) -> Path:
    """A COCO-format folder: annotations/instances_<split>.json and its images. Photo i of a
    split shows category i % 5 (its colour) and, every third photo, "person" too; every
    fourth photo of a split has no annotation at all (none of the categories)."""
    import json

    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": 10 + i, "name": name} for i, name in enumerate(COCO_CATEGORIES)]
    for split, n in (splits or {"train": 6, "val": 4}).items():
        images, annotations = [], []
        for i in range(n):
            name = f"{split}_{i:03d}.jpg"
            folder = {"images/split": root / "images" / split, "images": root / "images", "flat": root}[layout]
            _image(folder / name, i % 5, rng)
            images.append({"id": 100 + i, "file_name": name, "width": 64, "height": 48})
            if i % 4 == 3:
                continue
            present = {i % 5} | ({4} if i % 3 == 0 else set())
            annotations += [
                {
                    "id": len(annotations),
                    "image_id": 100 + i,
                    "category_id": 10 + c,
                    "bbox": [0, 0, 10, 10],
                    "area": 100,
                    "iscrowd": 0,
                }
                for c in sorted(present)
            ]
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories})
        )
    return root


def coco_labels(split_n: int) -> np.ndarray:
    """The labels make_coco gives a split of n photos (rows: photos, columns: COCO_CATEGORIES)."""
    labels = -np.ones((split_n, 5), dtype=np.int8)
    for i in range(split_n):
        if i % 4 != 3:
            labels[i, i % 5] = 1
            if i % 3 == 0:
                labels[i, 4] = 1
    return labels
