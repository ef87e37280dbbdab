"""`--recipe paper`: the paper's settings at once, checked before any work, and the paper's
own figures printed beside a run's."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests.test_train_cli import run_cli
from tests.tiny_datasets import make_corel, make_nus_wide, make_open_images
from trainer.config import train_config
from trainer.errors import BackboneError, InputError
from trainer.paper import REPORTED, comparison
from trainer.recipe import VIT, VIT_WEIGHTS, check_embeddings, check_weights, departures

PAPER_FILE = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "paper" / "epsilon-paper.md"


@pytest.mark.skipif(not PAPER_FILE.exists(), reason="the paper's markdown is not beside the checkout")
def test_the_stored_figures_are_the_papers_rows_ours():
    rows = [line for line in PAPER_FILE.read_text().splitlines() if line.startswith("Ours\t")]
    assert len(rows) == 2  # Table 1 (NUS-WIDE), then Table 2 (Open Images)
    for row, dataset in zip(rows, ("nus-wide", "open-images")):
        printed = [float(v) for v in re.sub(r"</?b>", "", row).split("\t")[1:]]
        paper = REPORTED[dataset]
        stored = [
            value
            for task in ("zsl", "gzsl")
            for value in [paper.maps[task], *(v for k in paper.ks for v in paper.topk[task][k])]
        ]
        assert printed == stored, dataset
    assert REPORTED["nus-wide"].maps == {"zsl": 33.2, "gzsl": 14.7} and REPORTED["nus-wide"].ks == (3, 5)


def test_a_comparison_shows_the_papers_figures_ours_and_the_difference():
    ours = {  # as history.json and a bundle keep them: fractions, K as a string
        "zsl": {"map": 0.30, "k": {"3": {"precision": 0.311, "recall": 0.417, "f1": 0.356}}},
        "gzsl": {"map": 0.2, "k": {}},
    }
    text = comparison("nus-wide", ours)
    assert text is not None and "Table 1" in text
    zsl = text.splitlines()[1:5]
    assert zsl[1].split() == ["paper", "33.2", "31.1", "41.7", "35.6", "24.9", "52.7", "33.8"]
    assert zsl[2].split() == ["ours", "30.0", "31.1", "41.7", "35.6", "-", "-", "-"]
    assert zsl[3].split()[:3] == ["diff", "-3.2", "+0.0"]
    assert text.splitlines()[8].split()[:2] == ["diff", "+5.3"]  # GZSL mAP 20.0 against 14.7
    assert comparison("corel5k", ours) is None


def test_the_recipe_sets_the_papers_settings_and_what_is_given_overrides_it(tmp_path):
    cfg = train_config(None, {"recipe": "paper"})
    assert (cfg.backbone, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs, cfg.lr_halve_epoch) == (
        VIT,
        1e-5,
        4e-3,
        96,
        7,
        4,
    )
    assert (cfg.model.d_model, cfg.model.depth, cfg.model.heads, cfg.model.num_groups) == (768, 3, 8, 8)
    assert cfg.lam == 0.3 and cfg.val_fraction == 0.0 and cfg.model.variant == "full" and departures(cfg) == []
    assert train_config(None, {}).model.d_model == 256  # without it, the CPU-sized head
    given = train_config(None, {"recipe": "paper", "epochs": 1, "model": {"depth": 1}})
    assert given.epochs == 1 and given.model.depth == 1 and given.model.d_model == 768
    assert departures(given) == ["epochs 1 (paper: 7)", "depth 1 (paper: 3)"]
    (tmp_path / "run.json").write_text(json.dumps({"recipe": "paper", "lr": 2e-5}))
    from_file = train_config(tmp_path / "run.json", {"batch_size": 8})
    assert (from_file.lr, from_file.batch_size, from_file.model.depth) == (2e-5, 8, 3)


def test_without_weights_the_run_stops_before_reading_the_dataset(tmp_path, monkeypatch):
    import trainer.datasets

    def never(*args, **kwargs):
        raise AssertionError("the dataset was read before the weights were checked")

    monkeypatch.setattr(trainer.datasets, "load_dataset", never)
    data = make_nus_wide(tmp_path / "data", n_train=6, n_test=3)
    out, cache = tmp_path / "run", tmp_path / "cache"
    ran = run_cli("nus-wide", "--recipe", "paper", "--data", data, "--out", out, "--cache", cache, check=False)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "No ViT-B/16 weights given" in ran.stderr and VIT_WEIGHTS in ran.stderr
    assert f'safetensors.torch.save_file(timm.create_model("{VIT_WEIGHTS}", pretrained=True).state_dict()' in ran.stderr
    assert f"--backbone-weights {VIT_WEIGHTS}.safetensors" in ran.stderr
    # Every setting was printed first; nothing was extracted or written.
    for setting in ("d_model 768", "encoder depth 3", "M = 8", "lambda 0.3", "batch 96", "7 epochs", "K = 3 and 5"):
        assert setting in ran.stdout, setting
    assert not out.exists() and not cache.exists()


def test_weights_of_another_model_are_refused_with_what_works(tmp_path):
    import timm

    tiny = tmp_path / "tiny.pth"
    torch.save({"state_dict": timm.create_model("vit_tiny_patch16_224").state_dict()}, tiny)
    with pytest.raises(BackboneError, match=r"is not vit_base_patch16_224\.augreg2_in21k_ft_in1k \(its tokens are 192"):
        check_weights(str(tiny))
    cnn = tmp_path / "cnn.safetensors"
    from safetensors.torch import save_file

    save_file({"conv_stem.weight": torch.zeros(32, 3, 3, 3)}, str(cnn))
    with pytest.raises(BackboneError, match="152 keys missing") as missing:
        check_weights(str(cnn))
    assert "pretrained=True" in str(missing.value)  # and what works instead
    (tmp_path / "junk.bin").write_bytes(b"not weights")
    with pytest.raises(BackboneError, match="neither a safetensors file nor a torch state dict"):
        check_weights(str(tmp_path / "junk.bin"))
    with pytest.raises(BackboneError, match="does not exist"):
        check_weights(str(tmp_path / "absent.safetensors"))


def test_open_images_needs_300d_vectors_and_corel5k_has_no_paper_figures(tmp_path):
    with pytest.raises(InputError, match=r"glove\.6B\.300d\.txt"):
        check_embeddings("open-images", None)
    fifty = tmp_path / "glove50.txt"
    fifty.write_text("the " + " ".join(["0.1"] * 50) + "\n")
    with pytest.raises(InputError, match="holds 50-d vectors, not 300-d"):
        check_embeddings("open-images", str(fifty))
    three_hundred = tmp_path / "glove300.txt"
    three_hundred.write_text("the " + " ".join(["0.1"] * 300) + "\n")
    check_embeddings("open-images", str(three_hundred))
    data = make_open_images(tmp_path / "oi", n_train=4, n_test=2)
    ran = run_cli("open-images", "--recipe", "paper", "--data", data, "--out", tmp_path / "o", check=False)
    assert ran.returncode == 2 and "No 300-d word vectors given" in ran.stderr and "K = 10 and 20" in ran.stdout
    corel = run_cli("corel5k", "--recipe", "paper", "--data", make_corel(tmp_path / "c"), check=False)
    assert corel.returncode == 2 and "use it with nus-wide or open-images" in corel.stderr


@pytest.mark.slow  # ViT-B/16 on the CPU: its 86 M parameters written, checked, then one step (15-25 s)
def test_random_vit_b16_weights_run_one_step_and_print_the_papers_figures_beside_ours(tmp_path):
    import safetensors.torch
    import timm

    weights = tmp_path / "vit.safetensors"
    # The snippet the weights message gives, with random weights: no download in a test.
    safetensors.torch.save_file(timm.create_model(VIT_WEIGHTS, pretrained=False).state_dict(), str(weights))
    data = make_nus_wide(tmp_path / "data", n_train=10, n_test=5)
    out = tmp_path / "run"
    common = ["--workers", "0", "--device", "cpu", "--quiet", "--cache", tmp_path / "cache"]
    ran = run_cli("nus-wide", "--recipe", "paper", "--data", data, "--out", out, "--backbone-weights", weights,
                  "--epochs", "1", *common)  # fmt: skip
    assert "departures    epochs 1 (paper: 7)" in ran.stdout
    assert "ViT-B/16's keys and shapes, probe forward 196 x 768 tokens" in ran.stdout
    assert "look like random weights" in ran.stdout
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and len(history[0]["step_losses"]) == 1  # 10 images, batch 96: one step
    lines = ran.stderr.splitlines()
    paper_rows = [line.split() for line in lines if line.startswith("paper ")]
    assert paper_rows == [["paper", "33.2", "31.1", "41.7", "35.6", "24.9", "52.7", "33.8"],
                          ["paper", "14.7", "32.8", "13.1", "18.7", "28.1", "18.8", "22.5"]]  # fmt: skip
    ours = [line.split() for line in lines if line.startswith("ours ")]
    assert float(ours[0][1]) == pytest.approx(100 * history[0]["test"]["zsl"]["map"], abs=0.06)
    assert any(line.startswith("diff ") for line in lines)
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["recipe"] == "paper" and saved["model"]["d_model"] == 768 and saved["backbone"] == VIT
    info = run_cli("info", out / "best")
    assert "trained with --recipe paper; departures: epochs 1 (paper: 7)" in info.stdout
    assert "paper    33.2" in info.stdout and "Table 1" in info.stdout
