"""mAP against sklearn, top-K P/R/F1 against hand counts, and the two datasets' protocols."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from trainer.metrics import (
    NUS_WIDE,
    OPEN_IMAGES,
    average_precision,
    evaluate_scores,
    mean_average_precision,
    topk_prf,
)


def sklearn_map(scores, labels, drop_unannotated=False):
    aps = []
    for c in range(scores.shape[1]):
        valid = labels[:, c] != 0
        if drop_unannotated and not valid.any():
            continue
        y = labels[valid, c] > 0
        aps.append(average_precision_score(y, scores[valid, c]) if y.any() else 0.0)
    return float(np.mean(aps))


def random_labels(rng, n, c, p_zero=0.3, p_pos=0.2):
    labels = np.where(rng.random((n, c)) < p_pos, 1, -1)
    labels[rng.random((n, c)) < p_zero] = 0
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_map_equals_sklearn_with_ignored_cells(seed):
    rng = np.random.default_rng(seed)
    n, c = 300, 140  # more classes than one internal block of 128
    scores = rng.normal(size=(n, c)).astype(np.float32)
    labels = random_labels(rng, n, c)
    labels[:, 5] = -1  # a class with no positive counts as AP 0
    labels[:, 6] = 0  # a class with no annotation at all
    assert mean_average_precision(scores, labels) == pytest.approx(sklearn_map(scores, labels), abs=1e-9)
    assert average_precision(scores, labels)[5] == 0.0


def test_map_handles_tied_scores_like_sklearn():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, size=(200, 30)).astype(np.float32)  # many ties
    labels = random_labels(rng, 200, 30)
    assert mean_average_precision(scores, labels) == pytest.approx(sklearn_map(scores, labels), abs=1e-9)


def test_map_hand_computed():
    # One class; ranked by score: +, -, (ignored), + -> AP = (1/1 + 2/3) / 2.
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    labels = np.array([[1], [-1], [0], [1]])
    assert mean_average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2)


def test_topk_hand_counted():
    scores = np.array(
        [
            [0.9, 0.8, 0.1, 0.0],  # top-2: classes 0, 1 -> one TP (class 0)
            [0.1, 0.2, 0.9, 0.3],  # top-2: classes 2, 3 -> two TPs
            [0.5, 0.4, 0.3, 0.2],  # top-2: classes 0, 1 -> none (its positive is class 3)
        ]
    )
    labels = np.array(
        [
            [1, -1, 1, -1],
            [-1, 0, 1, 1],
            [-1, -1, 0, 1],
        ]
    )
    p, r, f1 = topk_prf(scores, labels, 2)
    assert p == pytest.approx(3 / 6)  # TP / (N * K)
    assert r == pytest.approx(3 / 5)  # TP / positive cells
    assert f1 == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    p1, r1, _ = topk_prf(scores, labels, 1)
    assert (p1, r1) == (pytest.approx(2 / 3), pytest.approx(2 / 5))


def test_topk_rejects_k_beyond_classes():
    with pytest.raises(ValueError, match="k must be"):
        topk_prf(np.zeros((2, 3)), np.ones((2, 3)), 4)


def test_open_images_protocol_drops_images_and_classes():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(50, 30))
    labels = random_labels(rng, 50, 30)
    labels[:10] = np.where(labels[:10] > 0, -1, labels[:10])  # 10 images with no positive
    labels[:, 4] = 0  # a class never annotated
    result = evaluate_scores(scores, labels, OPEN_IMAGES)
    kept = (labels > 0).any(axis=1)
    assert result["map"] == pytest.approx(sklearn_map(scores[kept], labels[kept], drop_unannotated=True))
    assert result["k"][10]["precision"] == pytest.approx(topk_prf(scores[kept], labels[kept], 10)[0])
    assert set(result["k"]) == {10, 20}
    # NUS-WIDE counts every image and every class (an unannotated class is AP 0).
    nus = evaluate_scores(scores, labels, NUS_WIDE)
    assert nus["map"] == pytest.approx(sklearn_map(scores, labels))
    assert set(nus["k"]) == {3, 5}


def test_torch_inputs_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 12)).astype(np.float32)
    labels = random_labels(rng, 40, 12)
    assert mean_average_precision(torch.from_numpy(scores), torch.from_numpy(labels)) == pytest.approx(
        mean_average_precision(scores, labels)
    )


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("protocol_name", ["NUS_WIDE", "OPEN_IMAGES"])
def test_class_blocks_give_the_figures_of_the_whole_score_matrix(monkeypatch, sparse, protocol_name):
    """Scoring 7 classes at a time (and 13 images at a time) equals scoring all at once."""
    import scipy.sparse
    import torch

    from trainer import evaluate, metrics
    from trainer.datasets import Split, label_rows
    from trainer.model import score

    monkeypatch.setattr(evaluate, "_CLASSES", 7)
    monkeypatch.setattr(evaluate, "_IMAGES", 13)
    rng = np.random.default_rng(4)
    n, seen_c, unseen_c = 60, 23, 11
    semantic = torch.from_numpy(rng.standard_normal((n, 3, 16)).astype(np.float32))
    seen_v, unseen_v = rng.standard_normal((seen_c, 16)), rng.standard_normal((unseen_c, 16))
    seen_l = rng.choice([-1, 0, 1], size=(n, seen_c), p=[0.3, 0.6, 0.1]).astype(np.int8)
    unseen_l = rng.choice([-1, 0, 1], size=(n, unseen_c), p=[0.2, 0.7, 0.1]).astype(np.int8)
    seen_l[:5] = np.minimum(seen_l[:5], 0)  # some images with no positive
    unseen_l[:5] = np.minimum(unseen_l[:5], 0)
    unseen_l[:, 3] = 0  # a class never annotated
    protocol = getattr(metrics, protocol_name)
    store = (lambda m: scipy.sparse.csr_matrix(m)) if sparse else (lambda m: m)
    split = Split(images=[f"{i}.jpg" for i in range(n)], seen=store(seen_l), unseen=store(unseen_l))
    rows = np.arange(n)

    class Data:
        seen_vectors, unseen_vectors, has_unseen = seen_v.astype(np.float32), unseen_v.astype(np.float32), True

    Data.protocol = protocol
    blocked = evaluate.semantic_tasks(semantic, split, rows, Data)
    # The reference: the whole N x C score matrices, through evaluate_scores.
    seen_scores = score(semantic, torch.from_numpy(Data.seen_vectors)).numpy()
    unseen_scores = score(semantic, torch.from_numpy(Data.unseen_vectors)).numpy()
    whole = {
        "zsl": evaluate_scores(unseen_scores, label_rows(split.unseen, rows), protocol),
        "gzsl": evaluate_scores(
            np.concatenate([seen_scores, unseen_scores], axis=1),
            np.concatenate([label_rows(split.seen, rows), label_rows(split.unseen, rows)], axis=1),
            protocol,
        ),
    }
    assert blocked.keys() == whole.keys() == {"zsl", "gzsl"}
    for task in whole:
        assert blocked[task]["map"] == pytest.approx(whole[task]["map"], abs=1e-9)
        assert blocked[task]["k"].keys() == whole[task]["k"].keys()
        for k, figures in whole[task]["k"].items():
            assert blocked[task]["k"][k] == pytest.approx(figures, abs=1e-12), (task, k)
