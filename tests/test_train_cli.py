"""epsilon-train end to end on tiny generated trees: cache, train, evaluate, bundle, errors."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from tests.tiny_datasets import make_corel, make_nus_wide, make_open_images
from trainer.checkpoint import Bundle
from trainer.config import ConseConfig, EpsilonConfig, TrainConfig
from trainer.options import expand, given, group

# A small head so a CPU epoch takes a second; everything else is the real pipeline.
SMALL = [
    "--d-model",
    "32",
    "--depth",
    "1",
    "--heads",
    "4",
    "--batch-size",
    "8",
    "--lr",
    "1e-3",
    "--workers",
    "0",
    "--quiet",
    "--device",
    "cpu",
]


def run_cli(*args, check=True) -> subprocess.CompletedProcess:
    """``epsilon-train ARGS`` in this process through typer's runner: torch is imported once
    for the whole suite, not once per call. (The console script itself: tests/test_cli.py;
    `python -m trainer.cli` in real processes: torchrun's ranks in bench/gpu_check.py's dry
    run.) A crash (not a clean exit) fails the test with its traceback."""
    import traceback

    from typer.testing import CliRunner

    from trainer.cli import app

    ran = CliRunner().invoke(app, [str(a) for a in args])
    if ran.exception is not None and not isinstance(ran.exception, SystemExit):
        raise AssertionError("epsilon-train crashed:\n" + "".join(traceback.format_exception(ran.exception)))
    result = subprocess.CompletedProcess(args, ran.exit_code, ran.stdout, ran.stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"epsilon-train {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return result


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,make,ks", [("nus-wide", make_nus_wide, ("3", "5")), ("open-images", make_open_images, ("10", "20"))]
)
def test_train_evaluate_end_to_end(tmp_path, name, make, ks):
    data = make(tmp_path / "data")
    out, cache = tmp_path / "run", tmp_path / "cache"
    run_cli(name, "--data", data, "--out", out, "--cache", cache, "--epochs", "2", *SMALL)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert set(history[-1]["test"]) == {"zsl", "gzsl"}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    effective = json.loads((out / "config.json").read_text())
    assert effective["config"]["model"]["d_model"] == 32 and effective["config"]["epochs"] == 2
    assert (cache / "train" / "tokens.f16").exists()

    bundle = Bundle.load(out / "best")
    assert len(bundle.unseen_labels) == (81 if name == "nus-wide" else 400)
    report = tmp_path / "figures.json"
    shown = run_cli(
        "evaluate",
        out / "last",
        "--dataset",
        name,
        "--data",
        data,
        "--cache",
        cache,
        "--json",
        report,
        "--quiet",
        "--device",
        "cpu",
    )
    assert "ZSL" in shown.stdout and "GZSL" in shown.stdout and f"F1@{ks[0]}" in shown.stdout
    figures = json.loads(report.read_text())
    assert set(figures) == {"zsl", "gzsl"}
    for task in figures.values():
        assert set(task["k"]) == set(ks)
        assert 0.0 <= task["map"] <= 1.0
        assert all(set(v) == {"precision", "recall", "f1"} for v in task["k"].values())
    # The last epoch's test figures in the history are what `evaluate` recomputes.
    assert figures["zsl"]["map"] == pytest.approx(history[-1]["test"]["zsl"]["map"], abs=1e-6)
    assert figures["gzsl"]["k"][ks[0]]["f1"] == pytest.approx(history[-1]["test"]["gzsl"]["k"][ks[0]]["f1"], abs=1e-6)


@pytest.mark.slow
def test_corel_all_seen_and_fast0tag_and_conse(tmp_path):
    data = make_corel(tmp_path / "data")
    cache = tmp_path / "cache"
    run_cli(
        "corel5k", "--data", data, "--out", tmp_path / "all", "--cache", cache, "--all-seen", "--epochs", "1", *SMALL
    )
    bundle = Bundle.load(tmp_path / "all" / "best")
    assert len(bundle.seen_labels) == 374 and bundle.unseen_labels == []
    run_cli(
        "corel5k",
        "--data",
        data,
        "--out",
        tmp_path / "f0",
        "--cache",
        cache,
        "--method",
        "fast0tag",
        "--epochs",
        "1",
        *SMALL,
    )
    f0 = Bundle.load(tmp_path / "f0" / "best").config
    assert (f0.variant, f0.num_groups) == ("backbone", 1)
    conse = run_cli(
        "corel5k", "--data", data, "--out", tmp_path / "conse", "--cache", cache, "--method", "conse", "--quiet"
    )
    assert "ConSE (top 10, T 1, first)" in conse.stdout
    metrics = json.loads((tmp_path / "conse" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["zsl"]["map"] <= 1.0


@pytest.mark.slow
def test_config_file_sets_options_and_flags_override(tmp_path):
    data = make_corel(tmp_path / "data")
    config = tmp_path / "run.toml"
    config.write_text('epochs = 1\nlam = 0.5\n[model]\nvariant = "gpa"\nnum_groups = 2\n')
    out = tmp_path / "run"
    run_cli(
        "corel5k",
        "--data",
        data,
        "--out",
        out,
        "--cache",
        tmp_path / "cache",
        "--config",
        config,
        "--lambda",
        "0.1",
        *SMALL,
    )
    effective = json.loads((out / "config.json").read_text())["config"]
    assert effective["lam"] == 0.1 and effective["epochs"] == 1
    assert effective["model"]["variant"] == "gpa" and effective["model"]["num_groups"] == 2


@pytest.mark.parametrize(
    "name,make,remove,expected",
    [
        ("nus-wide", make_nus_wide, "NUS_WID_Tags/AllTags1k.txt", "AllTags1k.txt"),
        ("nus-wide", make_nus_wide, "Groundtruth/AllLabels/Labels_sky.txt", "Labels_sky.txt"),
        (
            "open-images",
            make_open_images,
            "test-annotations-human-imagelabels.csv",
            "test-annotations-human-imagelabels.csv",
        ),
        ("corel5k", make_corel, "labels/words", "labels/words"),
    ],
)
def test_broken_data_folder_says_which_file_and_the_layout(tmp_path, name, make, remove, expected):
    data = make(tmp_path / "data")
    (data / remove).unlink()
    result = run_cli(
        name, "--data", data, "--out", tmp_path / "run", "--cache", tmp_path / "cache", *SMALL, check=False
    )
    assert result.returncode == 2
    assert expected in result.stderr and "layout" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_folder_that_does_not_exist(tmp_path):
    result = run_cli("corel5k", "--data", tmp_path / "nowhere", *SMALL, check=False)
    assert result.returncode == 2 and "Data folder not found" in result.stderr


def test_truncated_label_file_is_reported(tmp_path):
    data = make_nus_wide(tmp_path / "data")
    tags = data / "NUS_WID_Tags" / "AllTags1k.txt"
    tags.write_text("\n".join(tags.read_text().splitlines()[:-3]) + "\n")
    result = run_cli(
        "nus-wide", "--data", data, "--out", tmp_path / "run", "--cache", tmp_path / "cache", *SMALL, check=False
    )
    assert result.returncode == 2 and "AllTags1k.txt has" in result.stderr and "expected 36 x 1000" in result.stderr


@pytest.mark.slow
def test_undecodable_images_are_skipped_and_reported(tmp_path):
    data = make_corel(tmp_path / "data")
    (data / "images" / "1003.jpeg").write_bytes(b"")  # zero bytes
    truncated = data / "images" / "1004.jpeg"
    truncated.write_bytes(truncated.read_bytes()[:200])
    out, cache = tmp_path / "run", tmp_path / "cache"
    result = run_cli("corel5k", "--data", data, "--out", out, "--cache", cache, "--epochs", "1", *SMALL)
    assert "cannot decode" in result.stderr and "1003.jpeg" in result.stderr and "1004.jpeg" in result.stderr
    from trainer.features import FAILED, FeatureCache

    status = FeatureCache.open(cache / "train").status
    assert (status == FAILED).sum() == 2 and (status != FAILED).sum() == 18
    assert Bundle.load(out / "best").seen_labels  # training went on without them


@pytest.mark.slow
def test_cache_of_other_images_and_missing_backbone_weights_error_clearly(tmp_path):
    data = make_corel(tmp_path / "data")
    other = make_corel(tmp_path / "other", n_train=12)
    cache = tmp_path / "cache"
    run_cli("corel5k", "--data", data, "--out", tmp_path / "a", "--cache", cache, "--epochs", "1", *SMALL)
    clash = run_cli(
        "corel5k", "--data", other, "--out", tmp_path / "b", "--cache", cache, "--epochs", "1", *SMALL, check=False
    )
    assert clash.returncode == 2 and "caches other images" in clash.stderr and "Traceback" not in clash.stderr
    vit = run_cli(
        "corel5k",
        "--data",
        data,
        "--out",
        tmp_path / "c",
        "--cache",
        tmp_path / "c2",
        "--backbone",
        "vit_base_patch16_224",
        *SMALL,
        check=False,
    )
    assert vit.returncode == 2 and "--backbone-weights" in vit.stderr and "Traceback" not in vit.stderr


def _tagged_folder(root, n: int = 12):
    """Photos with every one of four words marked, at random."""
    import numpy as np

    from tests.photo_factory import make_photo

    root.mkdir()
    words = ["tree", "sky", "dog", "car"]
    rng = np.random.default_rng(0)
    rows = ["path\twords"]
    for i in range(n):
        make_photo(root / f"{i}.jpg", seed=i)
        rows.append(f"{i}.jpg\t" + ";".join(w for w in words if rng.random() < 0.4))
    (root / "vocabulary.txt").write_text("\n".join(words) + "\n")
    (root / "labels.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_calibrate_writes_the_installed_model_only_when_named(tmp_path):
    """`calibrate --write` on the installed default would change every library on it: it is
    refused before any work, as is a target that cannot be written or is not empty;
    --write-to DIR writes a copy with the new rule and leaves the installed model alone."""
    from trainer.assets import asset_path

    installed = asset_path("default")
    before = (installed / "config.json").read_bytes()
    tagged = _tagged_folder(tmp_path / "tagged")
    common = ["--tagged", tagged, "--cache", tmp_path / "cache", "--workers", "0", "--quiet", "--device", "cpu"]

    refused = run_cli("calibrate", installed, *common, "--write", check=False)
    assert refused.returncode == 2 and "--write-to DIR" in refused.stderr and "confidence" not in refused.stdout
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    for target, says in ((tmp_path / "full", "is not empty"), (tmp_path / "full" / "x" / "sub", "cannot write")):
        failed = run_cli("calibrate", installed, *common, "--write-to", target, check=False)
        assert failed.returncode == 2 and says in failed.stderr and "confidence" not in failed.stdout
    assert (tmp_path / "full" / "x").read_text() == "mine"
    no_tagged = run_cli("calibrate", installed, "--write-to", tmp_path / "new", check=False)
    assert no_tagged.returncode == 2 and not (tmp_path / "new").exists()  # a failed run leaves no folder

    run_cli("calibrate", installed, *common, "--write-to", tmp_path / "mine")
    assert (installed / "config.json").read_bytes() == before
    copy = Bundle.load(tmp_path / "mine")
    assert copy.tagging["chosen_on"] == ["tagged-tagged"]
    assert (
        json.loads((tmp_path / "mine" / "config.json").read_text())["weights_sha256"]
        == json.loads(before)["weights_sha256"]
    )


def test_a_diverged_training_stops_and_saves_nothing_non_finite(tmp_path):
    """--lr 1e30 makes the loss infinite within an epoch: the run stops with what to change,
    and no bundle it leaves (best or last) holds a NaN for the tagger to scan with."""
    data = make_corel(tmp_path / "data")
    out = tmp_path / "run"
    args = ["corel5k", "--data", data, "--out", out, "--cache", tmp_path / "cache", "--epochs", "3", *SMALL]
    diverged = run_cli(*[a if a != "1e-3" else "1e30" for a in args], check=False)
    assert diverged.returncode == 2 and "Training diverged" in diverged.stderr and "Lower --lr" in diverged.stderr
    for name in ("best", "last"):
        if (out / name).exists():
            bundle = Bundle.load(out / name)  # refuses non-finite weights
            assert all(torch.isfinite(v).all() for v in bundle.model.state_dict().values())


def test_options_are_the_config_fields_and_say_what_was_given():
    """A command's groups of settings are options typer parses as its own: only what was
    given reaches ``given``, nested as a config file nests it, with plain values."""
    seen = {}

    def command(settings: dict = given(TrainConfig), conse: ConseConfig = group(ConseConfig)) -> None:
        seen.update(settings=settings, conse=conse)

    app = typer.Typer()
    app.command()(expand(command))
    args = ["--lambda", "0.1", "-M", "2", "--no-amp", "--class-naming", "lemmas", "--conse-top", "3"]
    ran = CliRunner().invoke(app, args)
    assert ran.exit_code == 0, ran.output
    assert seen["settings"] == {"model": {"num_groups": 2}, "lam": 0.1, "amp": False, "class_naming": "lemmas"}
    assert type(seen["settings"]["class_naming"]) is str and seen["conse"] == ConseConfig(top=3)
    assert CliRunner().invoke(app, ["--conse-top", "0"]).exit_code == 2  # the field's bounds are the option's


def test_every_training_setting_is_listed_with_its_help():
    from trainer.cli import app

    shown = CliRunner().invoke(app, ["corel5k", "--help"])
    text = " ".join(shown.output.split())  # as read, whatever the help's line breaks
    for cls in (TrainConfig, EpsilonConfig):
        for f in fields(cls):
            if "option" in f.metadata:
                flag = f.metadata["option"]["flag"] or "--" + f.name.replace("_", "-")
                assert flag in text and " ".join(f.metadata["option"]["help"][:30].split()) in text, f.name
    assert "(default: 1e-05)" in text and "<full|gpa|gfp|backbone>" in text


def test_export_writes_a_new_readable_bundle_and_never_over_files(tmp_path):
    import shutil

    from trainer.assets import asset_path

    bundle = Path(shutil.copytree(asset_path("default"), tmp_path / "bundle"))  # never the installed one itself
    before = (bundle / "model.safetensors").read_bytes()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "photo.jpg").write_bytes(b"mine")
    for target in (bundle, tmp_path / "photos"):  # the bundle itself, a folder holding other files
        refused = run_cli("export", bundle, target, check=False)
        assert refused.returncode == 2 and "is not a new or empty folder" in refused.stderr
    assert (bundle / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["photo.jpg"]
    done = run_cli("export", bundle, tmp_path / "shipped", "--note", "a test")
    assert "fp16 weights" in done.stdout
    assert Bundle.load(tmp_path / "shipped").training["note"] == "a test"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "shipped" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask
