"""Training without a token cache: the backbone inside the loop gives the cached path's
losses, resumes after a kill, and `--cache auto` says what it chose. (Two ranks streaming
under torchrun, held to the cached run's losses: bench/gpu_check.py, whose dry run
tests/test_gpu_check.py runs.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests import child
from tests.test_resume_distributed import TRAIN
from tests.test_train_cli import SMALL, run_cli
from tests.tiny_datasets import make_corel, make_nus_wide
from trainer.checkpoint import Bundle

# The shipped default's knowledge transfer, so the logits streamed per batch are exercised too.
TRANSFER = ["--prior", "row", "--distill", "1.0", "--distill-top", "5", "--imagenet-labels", "3"]


def step_losses(run) -> list[float]:
    return [loss for h in json.loads((run / "history.json").read_text()) for loss in h["step_losses"]]


@pytest.mark.slow
def test_streaming_gives_the_cached_paths_losses_and_figures(tmp_path):
    args = ["nus-wide", "--data", make_nus_wide(tmp_path / "data"), "--epochs", "2", *SMALL]
    cached_run = tmp_path / "cached"
    cached = run_cli(*args, "--out", cached_run, "--cache", tmp_path / "cache")
    streamed = run_cli(*args, "--out", tmp_path / "streamed", "--cache", "none")
    assert "token cache: caching tokens in" in cached.stderr
    assert "token cache: streaming (--cache none)" in streamed.stderr
    # Tokens are rounded to fp16 as the cache holds them; what differs is the backbone's
    # batch (64 in file order when extracting, the training batch when streaming).
    a, b = step_losses(cached_run), step_losses(tmp_path / "streamed")
    assert len(a) == len(b) == 6 and b == pytest.approx(a, rel=1e-3)
    ha = json.loads((cached_run / "history.json").read_text())
    hb = json.loads((tmp_path / "streamed" / "history.json").read_text())
    for part in ("val", "test"):
        for task in ("zsl", "gzsl"):
            assert hb[-1][part][task]["map"] == pytest.approx(ha[-1][part][task]["map"], abs=1e-3)
    # The streamed run's bundle is a bundle like any other: the tagger's backbone spec.
    one, two = Bundle.load(cached_run / "best"), Bundle.load(tmp_path / "streamed" / "best")
    assert one.backbone == two.backbone


@pytest.mark.slow
def test_streaming_leaves_out_an_image_that_does_not_decode(tmp_path):
    data = make_corel(tmp_path / "data")
    broken = sorted((data / "images").glob("*.jpeg"))
    broken[0].write_bytes(broken[0].read_bytes()[:40])  # a training image
    broken[-1].write_bytes(b"")  # a test image
    result = run_cli("corel5k", "--data", data, "--out", tmp_path / "run", "--cache", "none", "--epochs", "1", *SMALL)
    assert result.stderr.count(f"cannot decode {broken[-1]}") >= 1
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert 0.0 <= history[0]["test"]["gzsl"]["map"] <= 1.0


@pytest.mark.slow
def test_a_killed_streaming_run_resumes_to_the_same_model(tmp_path):
    data = make_corel(tmp_path / "data")
    args = ["corel5k", "--data", data, "--cache", "none", "--epochs", "2", *SMALL, "--save-every", "1"]
    run_cli(*args, "--out", tmp_path / "clean")
    killed = child.run(TRAIN, [*args, "--out", tmp_path / "resumed"], env={"KILL_AT": 5})  # mid-way through epoch 2
    assert killed.returncode == -9
    resumed = run_cli(*args, "--out", tmp_path / "resumed")  # in this process: what was killed is the child
    assert "resuming from" in resumed.stderr and "epoch 2, step 1" in resumed.stderr
    a, b = Bundle.load(tmp_path / "clean" / "last"), Bundle.load(tmp_path / "resumed" / "last")
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=1e-6)
    assert step_losses(tmp_path / "resumed") == pytest.approx(step_losses(tmp_path / "clean"), abs=1e-6)


@pytest.mark.slow
def test_ctrl_c_saves_the_step_it_finishes_and_the_run_goes_on_from_there(tmp_path):
    """No save was due (save_every is longer than the run): Ctrl-C saves all the same."""
    data = make_corel(tmp_path / "data")
    args = ["corel5k", "--data", data, "--cache", tmp_path / "cache", "--epochs", "2", *SMALL, "--save-every", "100"]
    run_cli(*args, "--out", tmp_path / "clean")
    stopped = child.run(TRAIN, [*args, "--out", tmp_path / "stopped"], env={"KILL_AT": 2, "DIE_WITH": "SIGINT"})
    assert stopped.returncode != 0 and "Interrupted: saved at epoch 1, step 2 of 3" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    resumed = run_cli(*args, "--out", tmp_path / "stopped")
    assert "epoch 1, step 2" in resumed.stderr
    assert step_losses(tmp_path / "stopped") == pytest.approx(step_losses(tmp_path / "clean"), abs=1e-6)
    again = run_cli(*args, "--out", tmp_path / "stopped")
    assert "has run its 2 epochs: nothing to train" in again.stderr


@pytest.mark.slow
def test_knowledge_transfer_reads_the_streamed_logits_as_it_read_the_cached_ones(tmp_path):
    """The default model's recipe (prior row, distillation, ImageNet labels) takes its
    ImageNet logits per batch: streamed, they give the cached run's losses."""
    data = make_corel(tmp_path / "data")
    args = ["corel5k", "--data", data, "--epochs", "1", *SMALL, *TRANSFER]
    run_cli(*args, "--out", tmp_path / "cached", "--cache", tmp_path / "cache")
    run_cli(*args, "--out", tmp_path / "streamed", "--cache", "none")
    a, b = step_losses(tmp_path / "cached"), step_losses(tmp_path / "streamed")
    assert len(a) == len(b) == 3 and b == pytest.approx(a, rel=1e-3)


def test_auto_caches_what_fits_and_streams_what_does_not(tmp_path):
    from trainer.backbones import build_backbone
    from trainer.tokens import CACHE_SHARE, cache_bytes, choose_cache, free_bytes

    backbone = build_backbone("efficientnet_lite0", random_init=True)
    # EfficientNet-Lite0: 7 x 7 tokens x 1280, 1,000 logits, fp16, a status byte.
    assert cache_bytes(10, 49, 1280, 1000) == 10 * ((49 * 1280 + 1000) * 2 + 1)
    folder = tmp_path / "not" / "made" / "yet"
    free = free_bytes(folder)
    per_image = cache_bytes(1, 49, 1280, 1000)
    fits = int(CACHE_SHARE * free // per_image)
    # Half and twice what fits: other tests write to the same disk meanwhile.
    cached, why = choose_cache("auto", folder, fits // 2, backbone)
    assert cached and "GB free" in why
    cached, why = choose_cache("auto", folder, 2 * fits + 1, backbone)
    assert not cached and "streaming" in why and "--cache FOLDER" in why
    assert choose_cache("none", folder, 1, backbone)[0] is False
    assert choose_cache("tokens", folder, 10**12, backbone)[0] is True  # a folder the user named
    assert not folder.exists()  # choosing writes nothing
