"""A kill mid-extraction resumes exactly and torchrun's ranks share an extraction; a run
resumes with other runtime values, never as another run. (A killed training run:
tests/test_streaming.py; two ranks under torchrun: bench/gpu_check.sh --dry-run, which
tests/test_gpu_check.py runs.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import child
from tests.test_train_cli import SMALL, run_cli
from tests.tiny_datasets import make_corel
from trainer.features import DONE, PENDING, FeatureCache

# Run in a child process: token extraction that SIGKILLs itself at batch KILL_AT, and
# epsilon-train that does at optimiser step KILL_AT.
EXTRACT = "tests.programs.extract_dies_at_batch"
TRAIN = "tests.programs.train_dies_at_step"


@pytest.mark.slow
def test_killed_extraction_resumes_where_it_stopped_and_ranks_share_it(tmp_path, monkeypatch):
    data = make_corel(tmp_path / "data", n_train=20, n_test=2)
    paths = sorted((data / "images").glob("*.jpeg"))
    killed = child.run(EXTRACT, [tmp_path / "cache", *paths], env={"KILL_AT": 3})
    assert killed.returncode == -9  # SIGKILL, mid-run
    status = FeatureCache.open(tmp_path / "cache").status
    assert (status == DONE).sum() == 8 and (status == PENDING).sum() == len(paths) - 8  # two batches of 4 landed
    from trainer import features
    from trainer.backbones import build_backbone
    from trainer.features import extract_features

    # Resumed in this process (what was killed is the child), counting the images it encodes.
    backbone = build_backbone("efficientnet_lite0")
    encoded = []
    forward = backbone.forward

    def counting(images):
        if images.shape[0] > 1:  # not the one-image shape probe
            encoded.append(images.shape[0])
        return forward(images)

    backbone.forward = counting
    extract_features(paths, backbone, tmp_path / "cache", batch_size=4, workers=0, progress=False)
    assert sum(encoded) == len(paths) - 8  # only what was missing
    backbone.forward = forward
    # The same images extracted in one go.
    extract_features(paths, backbone, tmp_path / "clean", batch_size=4, workers=0, progress=False)
    a, b = FeatureCache.open(tmp_path / "cache"), FeatureCache.open(tmp_path / "clean")
    assert a.ok.all()
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logits, b.logits)

    # As two torchrun ranks would, one after the other (rank 0 lays the cache out): each
    # takes every other batch, and together they fill the cache as one process does.
    for rank in (0, 1):
        monkeypatch.setattr(features, "world", lambda rank=rank: (rank, 2))
        extract_features(paths, backbone, tmp_path / "sharded", batch_size=4, workers=0, progress=False)
        status = FeatureCache.open(tmp_path / "sharded").status
        if rank == 0:
            taken = [i for i in range(len(paths)) if (i // 4) % 2 == 0]
            assert np.flatnonzero(status == DONE).tolist() == taken
    sharded = FeatureCache.open(tmp_path / "sharded")
    assert sharded.ok.all()
    np.testing.assert_array_equal(sharded.tokens, b.tokens)
    np.testing.assert_array_equal(sharded.logits, b.logits)


@pytest.mark.slow
def test_resume_takes_more_epochs_and_another_device_but_not_another_run(tmp_path):
    data = make_corel(tmp_path / "data")
    common = ["corel5k", "--data", data, "--cache", tmp_path / "cache", "--out", tmp_path / "run"]
    run_cli(*common, "--epochs", "1", *SMALL)
    changed = run_cli(*common, "--epochs", "1", *SMALL, "--lambda", "0.9", check=False)
    assert changed.returncode == 2 and "another config" in changed.stderr and "differs in lam" in changed.stderr
    # How it runs is not what it is: more epochs, another device value, other workers.
    more = [a for a in SMALL if a not in ("--workers", "0", "--device", "cpu")]
    resumed = run_cli(*common, "--epochs", "2", *more, "--device", "auto", "--workers", "1")
    assert "resuming from" in resumed.stderr
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (saved["epochs"], saved["device"], saved["workers"]) == (2, "auto", 1)


def test_training_leaves_the_callers_config_as_it_was(tmp_path):
    from trainer.datasets import load_dataset
    from trainer.train import TrainConfig, train

    data = load_dataset("corel5k", make_corel(tmp_path / "data"))
    cfg = TrainConfig(epochs=1, batch_size=8, workers=0, device="cpu")
    cfg.model.d_model, cfg.model.depth, cfg.model.heads = 32, 1, 4
    before = cfg.to_dict()
    train(data, cfg, tmp_path / "run", tmp_path / "cache", progress=False)
    assert cfg.to_dict() == before  # token_dim and d_w were decided on a copy
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["model"]["token_dim"] == 1280
