"""Bundles: exact round trip, fp16 storage, and clear errors for every kind of damage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainer.checkpoint import CONFIG_FILE, WEIGHTS_FILE, Bundle, BundleError
from trainer.model import Epsilon, EpsilonConfig


def make_bundle(seed: int = 0) -> Bundle:
    torch.manual_seed(seed)
    cfg = EpsilonConfig(token_dim=20, d_model=16, d_w=6, num_groups=3, depth=1, heads=4)
    rng = np.random.default_rng(seed)
    return Bundle(
        model=Epsilon(cfg),
        backbone={
            "name": "efficientnet_lite0",
            "weights": "package:x",
            "token_dim": 20,
            "preprocessing": {"input_size": 224},
        },
        embeddings={"source": "glove-6b-50d", "dim": 6},
        seen_labels=["sky", "water", "polar bear"],
        unseen_labels=["boat", "tree"],
        seen_vectors=rng.normal(size=(3, 6)).astype(np.float32),
        unseen_vectors=rng.normal(size=(2, 6)).astype(np.float32),
        training={"dataset": "toy", "seed": seed},
        metrics={"zsl_map": 0.25},
    )


def test_round_trip_is_exact(tmp_path):
    original = make_bundle()
    original.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    for key, value in original.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    assert loaded.config == original.config
    assert (loaded.seen_labels, loaded.unseen_labels) == (original.seen_labels, original.unseen_labels)
    np.testing.assert_array_equal(loaded.seen_vectors, original.seen_vectors)
    np.testing.assert_array_equal(loaded.unseen_vectors, original.unseen_vectors)
    assert (loaded.backbone, loaded.embeddings) == (original.backbone, original.embeddings)
    assert (loaded.training, loaded.metrics) == (original.training, original.metrics)
    tokens = torch.randn(2, 5, 20)
    assert torch.equal(original.model.eval()(tokens), loaded.model(tokens))
    # Loading through either file of the folder works too.
    assert Bundle.load(tmp_path / "b" / CONFIG_FILE).seen_labels == original.seen_labels


def test_half_precision_halves_the_file_and_loads_as_fp32(tmp_path):
    original = make_bundle()
    original.save(tmp_path / "full")
    original.save(tmp_path / "half", half=True)
    full_size = (tmp_path / "full" / WEIGHTS_FILE).stat().st_size
    half_size = (tmp_path / "half" / WEIGHTS_FILE).stat().st_size
    assert half_size < 0.6 * full_size
    loaded = Bundle.load(tmp_path / "half")
    for key, value in original.model.state_dict().items():
        got = loaded.model.state_dict()[key]
        assert got.dtype == torch.float32
        assert torch.equal(got, value.half().float()), key


def test_truncated_weights_error_clearly(tmp_path):
    make_bundle().save(tmp_path / "b")
    weights = tmp_path / "b" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(BundleError, match="truncated, corrupted, or from another bundle"):
        Bundle.load(tmp_path / "b")


def test_garbage_weights_with_matching_hash_error_clearly(tmp_path):
    from trainer.files import sha256_file

    make_bundle().save(tmp_path / "b")
    (tmp_path / "b" / WEIGHTS_FILE).write_bytes(b"\x00" * 64)
    config = json.loads((tmp_path / "b" / CONFIG_FILE).read_text())
    config["weights_sha256"] = sha256_file(tmp_path / "b" / WEIGHTS_FILE)
    (tmp_path / "b" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match="Cannot read the bundle"):
        Bundle.load(tmp_path / "b")


def test_config_damage_and_mismatch_error_clearly(tmp_path):
    make_bundle().save(tmp_path / "b")
    config_path = tmp_path / "b" / CONFIG_FILE
    good = config_path.read_text()
    config_path.write_text(good[: len(good) // 2])
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(tmp_path / "b")
    config = json.loads(good)
    config["model"]["d_model"] = 32
    config_path.write_text(json.dumps(config))
    with pytest.raises(BundleError, match="do not fit the model"):
        Bundle.load(tmp_path / "b")
    config = json.loads(good)
    config["embeddings"]["dim"] = 300
    config_path.write_text(json.dumps(config))
    with pytest.raises(BundleError, match="300-d but the model outputs 6-d"):
        Bundle.load(tmp_path / "b")
    config = json.loads(good)
    config["version"] = 99
    config_path.write_text(json.dumps(config))
    with pytest.raises(BundleError, match="version 99"):
        Bundle.load(tmp_path / "b")


def test_non_finite_weights_are_never_saved_nor_loaded(tmp_path):
    """A diverged training's weights: refused when saved, and a bundle holding them (written
    by another tool, its hash matching) refused when loaded, naming the tensor."""
    from safetensors.torch import load_file, save_file

    from trainer.files import sha256_file

    bundle = make_bundle()
    with torch.no_grad():
        next(bundle.model.parameters())[0] = float("nan")
    with pytest.raises(BundleError, match=r"Refusing to save .* NaN or infinite"):
        bundle.save(tmp_path / "nan")
    assert not (tmp_path / "nan").exists()
    make_bundle().save(tmp_path / "b")
    weights = tmp_path / "b" / WEIGHTS_FILE
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("inf"))
    save_file(tensors, weights)
    config = json.loads((tmp_path / "b" / CONFIG_FILE).read_text())
    (tmp_path / "b" / CONFIG_FILE).write_text(json.dumps({**config, "weights_sha256": sha256_file(weights)}))
    with pytest.raises(BundleError, match=f"NaN or infinite numbers \\({name}.*lower --lr"):
        Bundle.load(tmp_path / "b")


def test_a_bundle_this_user_cannot_read_or_with_a_wrong_rule_says_which_and_why(tmp_path, monkeypatch):
    import os

    from trainer import checkpoint

    make_bundle().save(tmp_path / "b")
    config_path = tmp_path / "b" / CONFIG_FILE
    good = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**good, "tagging": {"strength": "abc", "min_score": 0.3}}))
    with pytest.raises(BundleError, match=r"config\.json: its tagging section is wrong: .*strength"):
        Bundle.load(tmp_path / "b")
    config_path.write_text(json.dumps(good))
    (tmp_path / "b" / WEIGHTS_FILE).chmod(0o000)  # as another user sees a 0600 file
    if os.geteuid() == 0:  # root reads it anyway: fail as that user's read would

        def refused(path):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(checkpoint, "sha256_file", refused)
    with pytest.raises(BundleError, match=r"cannot be read by this user \(Permission denied\).*chmod a\+r"):
        Bundle.load(tmp_path / "b")


def test_missing_bundle_parts_error_clearly(tmp_path):
    with pytest.raises(BundleError, match="No model bundle"):
        Bundle.load(tmp_path / "absent")
    make_bundle().save(tmp_path / "b")
    (tmp_path / "b" / WEIGHTS_FILE).unlink()
    with pytest.raises(BundleError, match=r"model\.safetensors is missing"):
        Bundle.load(tmp_path / "b")


def test_bundle_has_no_pickle(tmp_path):
    make_bundle().save(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    json.loads((tmp_path / "b" / CONFIG_FILE).read_text())  # plain JSON
    assert (tmp_path / "b" / WEIGHTS_FILE).read_bytes()[8:9] == b"{"  # safetensors header


@pytest.mark.slow
def test_info_command_shows_a_bundle_and_rejects_a_broken_one(tmp_path):
    from tests.test_train_cli import run_cli

    make_bundle().save(tmp_path / "b")
    shown = run_cli("info", tmp_path / "b")  # in process: torch is imported once for the suite
    assert "3 seen, 2 unseen" in shown.stdout and "glove-6b-50d" in shown.stdout
    assert "tag rule    none chosen: every stored tag shows" in shown.stdout
    as_json = run_cli("info", tmp_path / "b", "--json")
    assert json.loads(as_json.stdout)["metrics"] == {"zsl_map": 0.25}
    rule = {"strength": 0.5, "min_score": 0.3, "validation": {"chosen": {"precision": 0.61, "recall": 0.27}}}
    Bundle.update_config(tmp_path / "b", tagging={**rule, "chosen_on": ["tagged-x"]})
    shown = run_cli("info", tmp_path / "b").stdout  # an older rule, told in today's terms
    rule = "shows tags from confidence 0.50 (a photo's best never), at most 10; chosen on tagged-x: P 0.610 R 0.270"
    assert rule + " over its fully tagged photos" in shown
    (tmp_path / "b" / WEIGHTS_FILE).write_bytes(b"")
    # A told error, in process (the console script's own start: tests/test_cli.py).
    broken = run_cli("info", tmp_path / "b", check=False)
    assert broken.returncode == 2
    assert "Error:" in broken.stderr and "Traceback" not in broken.stderr


def test_a_version_1_bundle_loads_and_means_what_it_meant(tmp_path):
    # What the first release wrote: version 1, no prior keys in the model config, no tagging.
    original = make_bundle()
    original.save(tmp_path / "b")
    config = json.loads((tmp_path / "b" / CONFIG_FILE).read_text())
    config["version"] = 1
    for key in ("prior", "prior_top", "prior_temperature", "prior_classes", "prior_scale"):
        del config["model"][key]
    del config["tagging"]
    (tmp_path / "b" / CONFIG_FILE).write_text(json.dumps(config))
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.config.prior == "none" and loaded.config.rows == 3 and loaded.tagging == {}
    tokens = torch.randn(2, 5, 20)
    assert torch.equal(original.model.eval()(tokens), loaded.model(tokens))


def test_a_prior_and_a_tag_rule_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = EpsilonConfig(
        token_dim=20,
        d_model=16,
        d_w=6,
        num_groups=3,
        depth=1,
        heads=4,
        prior="row",
        prior_top=2,
        prior_classes=7,
        prior_scale=1.2,
        normalize_rows=True,
    )
    model = Epsilon(cfg)
    model.attach_prior(torch.randn(7, 20), torch.randn(7), torch.randn(7, 6))
    original = make_bundle()
    original.model = model
    original.tagging = {"strength": 0.5, "min_score": 0.25, "max_tags": 10}
    original.save(tmp_path / "b")
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.config == cfg and loaded.tagging == original.tagging
    assert torch.equal(loaded.model.prior_weight, model.prior_weight)
    tokens = torch.randn(2, 5, 20)
    assert torch.equal(model.eval()(tokens), loaded.model(tokens))
    # The rule can be rewritten alone (calibration): the weights and their hash stay valid.
    Bundle.update_config(tmp_path / "b", tagging={"strength": 0.75, "min_score": 0.1})
    assert Bundle.load(tmp_path / "b").tagging == {"strength": 0.75, "min_score": 0.1}


def test_the_backbone_is_built_with_the_bundles_own_preprocessing_and_weights(tmp_path):
    """A bundle whose preprocessing differs from timm's defaults is run as it records, by
    the tagger and by epsilon-train alike; a backbone weights file is checked by its hash."""
    import shutil

    from PIL import Image

    from tagger.engine import Engine
    from trainer.assets import asset_path
    from trainer.backbones import BackboneError

    folder = tmp_path / "bundle"
    shutil.copytree(asset_path("default"), folder)
    spec = Bundle.load(folder).backbone
    assert spec["preprocessing"]["input_size"] == 224  # timm's default for Lite0
    changed = {**spec["preprocessing"], "input_size": 160, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.25] * 3}
    Bundle.update_config(folder, backbone={**spec, "preprocessing": changed})
    engine = Engine.load(folder, device="cpu")
    pixels = engine.transform()(Image.new("RGB", (300, 200), (191, 191, 191)))
    assert tuple(pixels.shape) == (3, 160, 160)
    assert float(pixels.mean()) == pytest.approx((191 / 255 - 0.5) / 0.25, abs=1e-3)

    weights = tmp_path / "vit.safetensors"
    weights.write_bytes(b"not these weights")
    recorded = {**spec, "name": "vit_base_patch16_224", "weights": "file:vit.safetensors:sha256:0123456789abcdef"}
    Bundle.update_config(folder, backbone=recorded)
    bundle = Bundle.load(folder)
    with pytest.raises(BackboneError, match="pass that file with --backbone-weights FILE"):
        bundle.build_backbone()
    with pytest.raises(BackboneError, match="is not the backbone file this model was trained on"):
        bundle.build_backbone(weights)
