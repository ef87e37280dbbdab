"""The bundle epsilon-tag ships as its default: present, small, documented, and good on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import DATA, require
from trainer.assets import asset_path
from trainer.backbones import PACKAGED_WEIGHTS_ID, build_backbone
from trainer.checkpoint import WEIGHTS_FILE, Bundle
from trainer.datasets import label_rows, load_dataset
from trainer.embeddings import load_embeddings
from trainer.images import load_rgb
from trainer.metrics import topk_prf
from trainer.model import score


@pytest.fixture(scope="module")
def default():
    return Bundle.load(asset_path("default"))


def test_default_bundle_is_complete_and_small(default):
    assert default.backbone["name"] == "efficientnet_lite0" and default.backbone["weights"] == PACKAGED_WEIGHTS_ID
    assert default.embeddings == {"source": "glove-6b-50d", "dim": 50}
    assert len(default.seen_labels) == 374 and default.unseen_labels == []
    assert "epsilon-train corel5k" in default.training["note"]
    assert "gzsl" in default.metrics["test"]
    assert (asset_path("default") / WEIGHTS_FILE).stat().st_size < 5 * 2**20
    # The stored label vectors are GloVe's, so any other GloVe word scores on the same scale.
    glove = load_embeddings()
    np.testing.assert_allclose(default.seen_vectors[:5], glove.matrix(default.seen_labels[:5]), atol=1e-6)


def test_the_shipped_tag_rule_is_the_one_its_validation_run_chose(default):
    """`epsilon-train calibrate --write` stores the threshold grid it chose from beside the
    rule: the shipped threshold must be the grid's best F0.5 (ties: the lower threshold), its
    fallback at or below it, siblings folded, and its seen-label calibration cover the model's
    own labels."""
    from trainer.calibrate import THRESHOLDS
    from trainer.tagrule import TagRule

    tagging = default.tagging
    chosen = TagRule.from_dict(tagging)
    grid = tagging["validation"]["threshold_grid"]
    assert [row["threshold"] for row in grid] == list(THRESHOLDS)
    best = max(grid, key=lambda r: (round(r["f_half"], 4), -r["threshold"]))
    assert chosen.threshold == best["threshold"]
    assert chosen.fallback is not None and chosen.fallback <= chosen.threshold
    assert chosen.siblings == "one"  # the grid counted what a library shows: siblings folded
    assert chosen.seen is not None and set(chosen.seen.words) == set(default.seen_labels)
    assert tagging["chosen_on"] == ["tagged-everyday_tags", "corel5k-held-out"]
    chosen_figures = tagging["validation"]["chosen"]
    assert chosen_figures["precision"] > 0.6 and chosen_figures["photos_showing_nothing"] <= 0.03 * 240


@pytest.mark.slow
def test_default_tags_real_photos_far_above_chance(default):
    dataset = load_dataset("corel5k", require(DATA / "corel5k"), mode="all-seen")
    rows = np.arange(0, len(dataset.test), 5)  # 100 test photos the model never trained on
    backbone = build_backbone()
    transform = backbone.preprocessing.transform()
    pixels = torch.stack(
        [transform(load_rgb(dataset.test.images[i], backbone.preprocessing.decode_side)) for i in rows]
    )
    with torch.inference_mode():
        scores = score(default.model(backbone(pixels)), torch.from_numpy(default.seen_vectors)).numpy()
    labels = label_rows(dataset.test.seen, rows)
    precision, _, _ = topk_prf(scores, labels, 5)
    chance = (labels > 0).sum() / labels.size
    assert precision > 10 * chance, f"P@5 {precision:.3f} vs chance {chance:.3f}"
