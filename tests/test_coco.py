"""COCO-format folders as a dataset: labels from instances files, real open_images_5, clear errors,
and `epsilon-train evaluate --dataset coco` end to end (a bundle, ConSE)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.helpers import DATA, require
from tests.test_train_cli import run_cli
from tests.tiny_datasets import COCO_CATEGORIES, coco_labels, make_coco
from trainer.assets import asset_path
from trainer.datasets import DataError, label_rows, load_dataset
from trainer.embeddings import load_embeddings


def test_labels_are_the_categories_annotated_in_each_photo(tmp_path):
    root = make_coco(tmp_path / "coco", {"train": 6, "val": 4})
    data = load_dataset("coco", root)
    assert data.seen_labels == COCO_CATEGORIES and data.unseen_labels == []
    assert len(data.test) == 10 and len(data.train) == 0
    assert [p.name for p in data.test.images] == [f"train_{i:03d}.jpg" for i in range(6)] + [
        f"val_{i:03d}.jpg" for i in range(4)
    ]
    expected = np.concatenate([coco_labels(6), coco_labels(4)])
    np.testing.assert_array_equal(label_rows(data.test.seen, np.arange(10)), expected)
    np.testing.assert_allclose(data.seen_vectors, load_embeddings().matrix(COCO_CATEGORIES), atol=1e-6)
    only_val = load_dataset("coco", root, split="val")
    assert len(only_val.test) == 4 and only_val.name.endswith("-val")
    np.testing.assert_array_equal(label_rows(only_val.test.seen, np.arange(4)), coco_labels(4))


@pytest.mark.parametrize("layout", ["images", "flat"])
def test_images_are_found_in_the_usual_export_layouts(tmp_path, layout):
    data = load_dataset("coco", make_coco(tmp_path / "coco", {"test": 3}, layout=layout))
    assert all(p.is_file() for p in data.test.images)


def test_an_unseen_file_splits_zsl_and_gzsl(tmp_path):
    root = make_coco(tmp_path / "coco", {"val": 8})
    (tmp_path / "unseen.txt").write_text("bird\nperson\n")
    data = load_dataset("coco", root, unseen=tmp_path / "unseen.txt")
    assert data.seen_labels == ["apple", "bicycle", "boat"] and data.unseen_labels == ["bird", "person"]
    full = coco_labels(8)
    np.testing.assert_array_equal(label_rows(data.test.seen, np.arange(8)), full[:, [0, 1, 3]])
    np.testing.assert_array_equal(label_rows(data.test.unseen, np.arange(8)), full[:, [2, 4]])
    (tmp_path / "bad.txt").write_text("bird\nzebra\n")
    with pytest.raises(DataError, match="zebra"):
        load_dataset("coco", root, unseen=tmp_path / "bad.txt")


def test_broken_folders_get_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"(?s)No annotations folder.*Expected layout"):
        load_dataset("coco", tmp_path)
    root = make_coco(tmp_path / "coco", {"val": 4})
    instances = root / "annotations" / "instances_val.json"
    good = json.loads(instances.read_text())
    instances.write_text(instances.read_text()[:50])
    with pytest.raises(DataError, match=r"instances_val.json is not valid JSON \(line 1"):
        load_dataset("coco", root)
    broken = dict(good, annotations=good["annotations"] + [{"image_id": 100, "category_id": 99}])
    instances.write_text(json.dumps(broken))
    with pytest.raises(DataError, match='category 99, which no "categories" entry defines'):
        load_dataset("coco", root)
    instances.write_text(json.dumps(dict(good, categories=good["categories"] + [{"id": 77, "name": "qzxwvkk"}])))
    with pytest.raises(DataError, match=r"(?s)has no word vector.*qzxwvkk"):
        load_dataset("coco", root)
    instances.write_text(json.dumps(good))
    (root / "images" / "val" / "val_002.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of 4 images .* are missing, e\.g\. .*val_002\.jpg"):
        load_dataset("coco", root)
    with pytest.raises(DataError, match="the splits there are val"):
        load_dataset("coco", root, split="test")


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: d["images"].append(dict(d["images"][0], file_name=d["images"][1]["file_name"])), "two .* id 100"),
        (lambda d: d.update(images=[], annotations=[]), "No images in"),
        (lambda d: d.update(annotations=[]), "No annotations in .* no photo is labelled"),
        (lambda d: d["images"][0].update(id=[1]), r"has id \[1\]; COCO ids are whole numbers"),
        (lambda d: d["annotations"][0].update(category_id="2"), 'category_id "2"; COCO ids'),
        (lambda d: d["images"][0].update(file_name="/etc/hostname"), '"/etc/hostname" is not a path inside'),
        (lambda d: d["images"][0].update(file_name="../../x.jpg"), '"../../x.jpg" is not a path inside'),
        (lambda d: d["categories"][0].update(name=None), "category 10 has no name"),
    ],
    ids=["duplicate-id", "no-images", "no-annotations", "list-id", "string-id", "absolute", "escaping", "null-name"],
)
def test_ids_names_and_paths_are_checked_not_guessed(tmp_path, change, says):
    """Each of these once loaded as something else: a duplicate id took the first photo's
    labels, no annotations scored 0.0 (and calibrate stored the rule it found), an absolute
    file_name was read outside the dataset, a null name became the word "None"."""
    root = make_coco(tmp_path / "coco", {"val": 4})
    instances = root / "annotations" / "instances_val.json"
    data = json.loads(instances.read_text())
    change(data)
    instances.write_text(json.dumps(data))
    with pytest.raises(DataError, match=says):
        load_dataset("coco", root)


def test_open_images_5_reads_as_its_label_table():
    root = require(DATA / "open_images_5")
    data = load_dataset("coco", root)
    assert data.seen_labels == COCO_CATEGORIES and len(data.test) == 669
    with open(root / "labels.csv") as handle:
        table = {row["image"]: row for row in csv.DictReader(handle)}
    labels = label_rows(data.test.seen, np.arange(len(data.test)))
    expected = np.array([[1 if table[p.stem][c] == "1" else -1 for c in COCO_CATEGORIES] for p in data.test.images])
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.slow
def test_evaluate_a_bundle_and_conse_on_a_coco_folder(tmp_path):
    root = make_coco(tmp_path / "coco", {"val": 10})
    out = tmp_path / "figures.json"
    shown = run_cli(
        "evaluate",
        asset_path("default"),
        "--dataset",
        "coco",
        "--data",
        root,
        "--cache",
        tmp_path / "c1",
        "--json",
        out,
        "--workers",
        "0",
        "--quiet",
        "--device",
        "cpu",
    )
    assert "GZSL" in shown.stdout and "(10 images)" in shown.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"gzsl"} and set(figures["gzsl"]["k"]) == {"3", "5"}
    assert 0 < figures["gzsl"]["map"] <= 1
    (tmp_path / "unseen.txt").write_text("bird\nperson\n")
    conse = run_cli(
        "evaluate",
        "--method",
        "conse",
        "--dataset",
        "coco",
        "--data",
        root,
        "--unseen",
        tmp_path / "unseen.txt",
        "--class-naming",
        "lemmas",
        "--class-definition",
        "1",
        "--conse-top",
        "50",
        "--cache",
        tmp_path / "c2",
        "--json",
        out,
        "--workers",
        "0",
        "--quiet",
        "--device",
        "cpu",
    )
    assert "ConSE (top 50, T 1, classes named by lemmas+1xdefinition)" in conse.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"zsl", "gzsl"} and set(figures["zsl"]["k"]) == set()  # 2 unseen: no top-3
    assert set(figures["gzsl"]["k"]) == {"3", "5"}
    missing = run_cli("evaluate", "--dataset", "coco", "--data", root, check=False)
    assert missing.returncode == 2 and "give the bundle" in missing.stderr
