"""A kill mid-extraction or mid-training resumes exactly; torchrun matches one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from tests.conftest import entry_point
from tests.test_train_cli import SMALL, run_cli
from tests.tiny_datasets import make_corel
from trainer.checkpoint import Bundle
from trainer.features import DONE, PENDING, FeatureCache

# Runs in a child process: counts backbone batches, and SIGKILLs itself at batch KILL_AT.
EXTRACT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from trainer.backbones import build_backbone
    from trainer.features import extract_features
    folder, paths = sys.argv[1], [Path(p) for p in sys.argv[2:]]
    backbone = build_backbone("efficientnet_lite0")
    kill_at, seen = int(os.environ.get("KILL_AT", 0)), []
    original = backbone.forward
    def forward(images):
        if images.shape[0] > 1:  # not the one-image shape probe
            seen.append(images.shape[0])
            if len(seen) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(images)
    backbone.forward = forward
    extract_features(paths, backbone, folder, batch_size=4, workers=0, progress=False)
    print(sum(seen))
""")

# Runs epsilon-train in a child process that SIGKILLs itself at optimiser step KILL_AT.
TRAIN = textwrap.dedent("""
    import os, signal, sys, torch
    kill_at, calls = int(os.environ.get("KILL_AT", 0)), [0]
    original = torch.optim.Adam.step
    def step(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)
    torch.optim.Adam.step = step
    from trainer.cli import main
    sys.argv = ["epsilon-train"] + sys.argv[1:]
    main()
""")


def child(script: str, args, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, KILL_AT=str(kill_at))
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_killed_extraction_resumes_where_it_stopped(tmp_path):
    data = make_corel(tmp_path / "data", n_train=20, n_test=2)
    paths = sorted((data / "images").glob("*.jpeg"))
    killed = child(EXTRACT, [tmp_path / "cache", *paths], kill_at=3)
    assert killed.returncode == -9  # SIGKILL, mid-run
    status = FeatureCache.open(tmp_path / "cache").status
    assert (status == DONE).sum() == 8 and (status == PENDING).sum() == len(paths) - 8  # two batches of 4 landed
    resumed = child(EXTRACT, [tmp_path / "cache", *paths])
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stdout.split()[-1]) == len(paths) - 8  # only what was missing
    from trainer.backbones import build_backbone
    from trainer.features import extract_features

    # The same images extracted in one go, in this process.
    extract_features(
        paths, build_backbone("efficientnet_lite0"), tmp_path / "clean", batch_size=4, workers=0, progress=False
    )
    a, b = FeatureCache.open(tmp_path / "cache"), FeatureCache.open(tmp_path / "clean")
    assert a.ok.all()
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logits, b.logits)


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_model(tmp_path):
    data = make_corel(tmp_path / "data")
    cache = tmp_path / "cache"
    args = ["corel5k", "--data", data, "--cache", cache, "--epochs", "3", *SMALL]
    run_cli(*args, "--out", tmp_path / "clean")  # uninterrupted, in this process
    # 18 training images at batch 8 -> 3 steps an epoch; step 5 is mid-way through epoch 2.
    killed = child(TRAIN, [*args, "--out", tmp_path / "resumed"], kill_at=5)
    assert killed.returncode == -9
    assert (
        not (tmp_path / "resumed" / "history.json").exists()
        or len(json.loads((tmp_path / "resumed" / "history.json").read_text())) == 1
    )
    resumed = child(TRAIN, [*args, "--out", tmp_path / "resumed"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr
    a, b = Bundle.load(tmp_path / "clean" / "last"), Bundle.load(tmp_path / "resumed" / "last")
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=1e-6)
    ha = json.loads((tmp_path / "clean" / "history.json").read_text())
    hb = json.loads((tmp_path / "resumed" / "history.json").read_text())
    flat_a = [loss for h in ha for loss in h["step_losses"]]
    flat_b = [loss for h in hb for loss in h["step_losses"]]
    assert len(flat_a) == 9 and flat_b == pytest.approx(flat_a, abs=1e-6)


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


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    data = make_corel(tmp_path / "data", n_train=26)
    args = ["corel5k", "--data", data, "--epochs", "2", *SMALL]
    run_cli(*args, "--out", tmp_path / "one", "--cache", tmp_path / "cache1")
    torchrun = entry_point("torchrun")
    double = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "trainer.cli",
            *map(str, args),
            "--out",
            str(tmp_path / "two"),
            "--cache",
            str(tmp_path / "cache2"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert double.returncode == 0, double.stderr[-3000:]
    # Extraction was sharded across the two ranks, and gave the same tokens.
    one, two = FeatureCache.open(tmp_path / "cache1" / "train"), FeatureCache.open(tmp_path / "cache2" / "train")
    assert two.ok.all()
    np.testing.assert_allclose(one.tokens.astype(np.float32), two.tokens.astype(np.float32), atol=2e-2)
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    steps1 = [loss for h in h1 for loss in h["step_losses"]]
    steps2 = [loss for h in h2 for loss in h["step_losses"]]
    assert len(steps1) == len(steps2) == 6
    assert steps2 == pytest.approx(steps1, rel=1e-4, abs=1e-5)
