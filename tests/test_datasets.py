"""Dataset loaders: vocabularies, label values and splits, on generated trees and real Corel-5K."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import DATA, require
from tests.tiny_datasets import make_corel, make_nus_wide, make_open_images
from trainer.assets import asset_path
from trainer.datasets import DataError, has_positive, held_out_fold, label_rows, load_dataset


def test_nus_wide_vocabularies_and_labels(tmp_path):
    data = make_nus_wide(tmp_path)
    d = load_dataset("nus-wide", data)
    concepts = asset_path("nus_wide", "Concepts81.txt").read_text().split()
    assert len(d.seen_labels) == 925 and d.unseen_labels == concepts
    assert not set(d.seen_labels) & set(concepts)  # the 75 overlapping tags are not seen labels
    assert d.seen_vectors.shape == (925, 300) and d.embeddings["source"] == "nus-wide-glove-300"
    flags = np.loadtxt(data / "NUS_WID_Tags" / "AllTags1k.txt", dtype=int)
    tags = asset_path("nus_wide", "TagList1k.txt").read_text().split()
    first = tags.index(d.seen_labels[0])
    np.testing.assert_array_equal(d.train.seen[:, 0], flags[:24, first] * 2 - 1)  # 1 -> +1, 0 -> -1
    sky = np.loadtxt(data / "Groundtruth" / "AllLabels" / "Labels_sky.txt", dtype=int)
    np.testing.assert_array_equal(d.test.unseen[:, concepts.index("sky")], sky[24:] * 2 - 1)
    assert d.test.images[0] == data / "Flickr" / "actor" / "0024_1024.jpg"


def test_nus_wide_missing_images_are_left_out(tmp_path, capsys):
    data = make_nus_wide(tmp_path)
    (data / "Flickr" / "actor" / "0000_1000.jpg").unlink()
    d = load_dataset("nus-wide", data)
    assert len(d.train) == 23 and "1 of 24 images are missing" in capsys.readouterr().err


def test_open_images_vocabularies_and_sparse_labels(tmp_path):
    d = load_dataset("open-images", make_open_images(tmp_path))
    assert len(d.seen_labels) == 7186 and len(d.unseen_labels) == 400
    assert d.unseen_labels[0] == "Fauna"  # row 991 of unseen_labels.txt (the csv starts with a BOM)
    assert d.test.seen.nnz == 36 and set(np.unique(d.test.seen.data)) == {-1, 1}
    rows = label_rows(d.test.unseen, np.arange(3))
    assert rows.shape == (3, 400) and (rows[0, :6] == [1, 0, 0, -1, 0, 0]).all()
    assert has_positive(d.train.seen, np.arange(24)).all()


def test_corel_zsl_split_and_all_seen_mode(tmp_path):
    data = make_corel(tmp_path)
    zsl = load_dataset("corel5k", data)
    unseen = asset_path("corel5k", "zsl_unseen_words.txt").read_text().split()
    assert zsl.unseen_labels == unseen and len(zsl.seen_labels) == 324
    assert (zsl.train.unseen > 0).any()  # kept for the held-out fold, never trained on
    every = load_dataset("corel5k", data, mode="all-seen")
    assert len(every.seen_labels) == 374 and not every.has_unseen
    with pytest.raises(DataError, match="mode"):
        load_dataset("corel5k", data, mode="half")


def test_real_corel5k_split():
    d = load_dataset("corel5k", require(DATA / "corel5k"))
    assert (len(d.train), len(d.test)) == (4500, 499)  # test_label lists image 161092 twice
    assert (len(d.seen_labels), len(d.unseen_labels)) == (324, 50)
    assert all(path.exists() for path in d.test.images[:20])


def test_held_out_fold_is_seeded_disjoint_and_capped():
    kept, held = held_out_fold(100, 0.1, seed=3)
    assert len(held) == 10 and not set(kept) & set(held) and len(kept) + len(held) == 100
    np.testing.assert_array_equal(held, held_out_fold(100, 0.1, seed=3)[1])
    assert not np.array_equal(held, held_out_fold(100, 0.1, seed=4)[1])
    assert len(held_out_fold(100, 0.5, seed=0, limit=7)[1]) == 7


def test_a_tagged_folder_marks_every_word_on_every_photo(tmp_path):
    from tests.photo_factory import make_photo
    from trainer.datasets.tagged import groups

    root = tmp_path / "tagged"
    root.mkdir()
    make_photo(root / "a.jpg", seed=1)
    make_photo(tmp_path / "beside" / "b.jpg", seed=2)  # paths may start at the folder above
    (root / "vocabulary.txt").write_text("sky\nboat\nPolar Bear\n")
    (root / "labels.tsv").write_text("set\tpath\twords\none\ta.jpg\tsky;boat\ntwo\tbeside/b.jpg\t\n")
    data = load_dataset("tagged", root)
    assert data.seen_labels == ["sky", "boat", "polar bear"] and len(data.train) == 0
    assert [p.name for p in data.test.images] == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(data.test.seen, [[1, 1, -1], [-1, -1, -1]])  # unmarked: absent
    assert groups(root) == ["one", "two"]
    (root / "labels.tsv").write_text("path\twords\na.jpg\tzeppelin\n")
    with pytest.raises(DataError, match=r"marked 'zeppelin', which vocabulary\.txt lacks"):
        load_dataset("tagged", root)
    (root / "labels.tsv").write_text("path\twords\na.jpg\t\n")
    with pytest.raises(DataError, match="marks no word on any photo"):
        load_dataset("tagged", root)
    (root / "labels.tsv").write_text("path\twords\n../../etc/hostname\tsky\n")
    with pytest.raises(DataError, match="not a file under"):
        load_dataset("tagged", root)
