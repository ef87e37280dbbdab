"""ConSE against a hand computation, ImageNet class names, and the knowledge-transfer options."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.test_train_cli import SMALL, run_cli
from tests.tiny_datasets import make_corel
from trainer.baselines import conse_embedding, conse_scores, imagenet_class_vectors
from trainer.embeddings import load_embeddings


def test_conse_embedding_is_the_probability_weighted_mean_of_the_top_classes():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    classes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    got = conse_embedding(logits, classes, top=2)
    expected = (0.5 * classes[0] + 0.3 * classes[1]) / 0.8
    torch.testing.assert_close(got[0], expected)
    labels = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    scores = conse_scores(logits, classes, labels, top=2)[0]
    unit = expected / expected.norm()
    torch.testing.assert_close(scores, torch.stack([unit[0], unit[1], -unit[0]]))


def test_imagenet_class_names_take_the_first_name():
    glove = load_embeddings()
    names, vectors = imagenet_class_vectors(glove)
    assert len(names) == 1000 and names[292] == "tiger" and names[340] == "zebra"
    np.testing.assert_allclose(vectors[292], glove.vector("tiger"), rtol=1e-6)
    assert (np.linalg.norm(vectors, axis=1) > 0).mean() > 0.95  # nearly every class is nameable


@pytest.mark.slow
def test_knowledge_transfer_options_change_training(tmp_path):
    data = make_corel(tmp_path / "data")
    cache = tmp_path / "cache"
    losses = {}
    for name, extra in (
        ("plain", []),
        ("distill", ["--distill", "1.0"]),
        ("names", ["--imagenet-labels", "3", "--imagenet-max-negative", "0.5"]),
    ):
        run_cli("corel5k", "--data", data, "--cache", cache, "--out", tmp_path / name, "--epochs", "1", *SMALL, *extra)
        history = json.loads((tmp_path / name / "history.json").read_text())
        losses[name] = history[0]["step_losses"]
    # Same seed, same batches: only the added terms can move the first step's loss.
    assert losses["distill"][0] > losses["plain"][0]  # 1 - cos adds a positive term
    assert losses["names"][0] != pytest.approx(losses["plain"][0], abs=1e-6)
