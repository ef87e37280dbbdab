"""The model bundle: what ``epsilon-train`` writes and ``epsilon-tag`` loads.

A bundle is a folder with two files and no pickle anywhere:

- ``model.safetensors``: the Epsilon head's weights (``model.*``) and the label word
  vectors it was trained and evaluated with (``labels.seen``, ``labels.unseen``);
- ``config.json``: the model config, the backbone (name, weights, preprocessing), the
  word-vector source and dimension, the seen and unseen label words, how it was trained
  and what it scored, plus the SHA-256 of the weights file so that a truncated or
  mismatched pair is caught on load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .assets import normalise_word
from .backbones import PACKAGED_WEIGHTS_ID, Backbone, Preprocessing, build_backbone
from .errors import BackboneError, BundleError, InputError
from .files import as_umask_allows, sha256_file
from .model import Epsilon, EpsilonConfig
from .tagrule import TagRule

FORMAT = "epsilon-bundle"
# Version 2 adds the ImageNet prior (model keys prior / prior_top / prior_classes and the
# buffers model.prior_*) and the tagger's calibrated tag rule ("tagging"). A version-1
# bundle has none of them, and their defaults (no prior, no rule) are what it meant.
VERSION = 2
READABLE = (1, 2)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class Bundle:
    """A trained model with everything needed to use it on new photos."""

    model: Epsilon
    backbone: dict  # Backbone.spec(): name, weights id, token_dim, preprocessing
    embeddings: dict  # {"source": id, "dim": d_w}
    seen_labels: list[str]
    unseen_labels: list[str] = field(default_factory=list)
    seen_vectors: np.ndarray | None = None  # len(seen_labels) x d_w
    unseen_vectors: np.ndarray | None = None  # len(unseen_labels) x d_w
    training: dict = field(default_factory=dict)  # data, config, seed, how it was made
    metrics: dict = field(default_factory=dict)
    # The tagger's rule, chosen on validation photos (epsilon-train calibrate): hubness
    # correction strength, the score a kept tag needs, how many a photo keeps. Empty: raw
    # scores, every stored tag shown (what a version-1 bundle meant).
    tagging: dict = field(default_factory=dict)

    @property
    def config(self) -> EpsilonConfig:
        return self.model.cfg

    def save(self, path: str | Path, *, half: bool = False) -> Path:
        """Write the bundle folder; ``half`` stores weights as fp16 (loading restores fp32)."""
        path = Path(path)
        self._check()
        if not all(bool(torch.isfinite(v).all()) for v in self.model.state_dict().values()):
            raise BundleError(f"Refusing to save {path}: the model's weights hold NaN or infinite numbers.")
        path.mkdir(parents=True, exist_ok=True)
        dtype = torch.float16 if half else torch.float32
        tensors = {f"model.{k}": v.detach().to("cpu", dtype).contiguous() for k, v in self.model.state_dict().items()}
        for name, vectors in (("seen", self.seen_vectors), ("unseen", self.unseen_vectors)):
            if vectors is not None and len(vectors):
                tensors[f"labels.{name}"] = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        weights_tmp = path / (WEIGHTS_FILE + ".tmp")
        save_file(tensors, str(weights_tmp))
        as_umask_allows(weights_tmp)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "weights_sha256": sha256_file(weights_tmp),
            "weights_dtype": str(dtype).removeprefix("torch."),
            "model": self.config.to_dict(),
            "backbone": self.backbone,
            "embeddings": self.embeddings,
            "seen_labels": list(self.seen_labels),
            "unseen_labels": list(self.unseen_labels),
            "training": self.training,
            "metrics": self.metrics,
            "tagging": self.tagging,
        }
        config_tmp = path / (CONFIG_FILE + ".tmp")
        config_tmp.write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
        # Weights first: a crash between the two renames leaves a hash mismatch, which
        # load() reports, never a silently wrong model.
        os.replace(weights_tmp, path / WEIGHTS_FILE)
        os.replace(config_tmp, path / CONFIG_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Bundle:
        """Read and check a bundle folder (or either of its two files)."""
        folder = Path(path).expanduser()
        if folder.is_file() and folder.name in (CONFIG_FILE, WEIGHTS_FILE):
            folder = folder.parent
        config = _read_config(folder)
        tensors = _read_weights(folder, config)
        model = _model(folder, config, tensors)
        model.to(device).eval()
        labels = {name: tensors[f"labels.{name}"].numpy() for name in ("seen", "unseen") if f"labels.{name}" in tensors}
        bundle = cls(
            model=model,
            backbone=config.get("backbone", {}),
            embeddings=config.get("embeddings", {}),
            seen_labels=list(config.get("seen_labels", [])),
            unseen_labels=list(config.get("unseen_labels", [])),
            seen_vectors=labels.get("seen"),
            unseen_vectors=labels.get("unseen"),
            training=config.get("training", {}),
            metrics=config.get("metrics", {}),
            tagging=config.get("tagging", {}),
        )
        try:
            bundle._check()
        except ValueError as exc:
            raise BundleError(f"The bundle at {folder} is inconsistent: {exc}") from exc
        return bundle

    def build_backbone(self, weights: str | Path | None = None, device: str | torch.device = "cpu") -> Backbone:
        """The backbone this model was trained on, as it was used: the shipped weights, or
        the weights file it names (checked by its hash; pass it as ``weights``), with the
        preprocessing recorded in the bundle (not timm's current defaults)."""
        spec = self.backbone
        recorded = str(spec.get("weights", ""))
        if recorded == PACKAGED_WEIGHTS_ID:
            backbone = build_backbone(spec["name"], device=device)
        elif recorded.startswith("file:"):
            if weights is None:
                raise BackboneError(
                    f"This model was trained on backbone {spec['name']!r} with weights from the file "
                    f"{recorded.split(':')[1]!r}: pass that file with --backbone-weights FILE."
                )
            expected = recorded.rsplit(":", 1)[-1]
            if sha256_file(Path(weights))[: len(expected)] != expected:
                raise BackboneError(
                    f"{weights} is not the backbone file this model was trained on (expected SHA-256 starting "
                    f"{expected})."
                )
            backbone = build_backbone(spec["name"], weights, device=device)
        else:
            raise BackboneError(f"The model records backbone weights {recorded!r}, which cannot be rebuilt.")
        if spec.get("preprocessing"):
            backbone.preprocessing = Preprocessing.from_dict(spec["preprocessing"])
        return backbone

    def label_table(self) -> dict[str, np.ndarray]:
        """The model's own label vectors (what it was trained and evaluated with), unit
        length, by label written as a vocabulary word (trainer.assets.normalise_word)."""
        table = {}
        for labels, vectors in ((self.seen_labels, self.seen_vectors), (self.unseen_labels, self.unseen_vectors)):
            if vectors is not None:
                table.update({normalise_word(w): v / max(np.linalg.norm(v), 1e-12) for w, v in zip(labels, vectors)})
        return table

    @staticmethod
    def update_config(path: str | Path, **sections: Any) -> None:
        """Replace top-level sections of a bundle's config.json (e.g. ``tagging``) in place,
        atomically; the weights, and so their hash, are untouched."""
        config_path = Path(path) / CONFIG_FILE
        config = json.loads(config_path.read_text())
        config.update(sections)
        tmp = config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
        os.replace(tmp, config_path)

    def _check(self) -> None:
        d_w = self.config.d_w
        if int(self.embeddings.get("dim", d_w)) != d_w:
            raise ValueError(f"word vectors are {self.embeddings.get('dim')}-d but the model outputs {d_w}-d")
        if int(self.backbone.get("token_dim", self.config.token_dim)) != self.config.token_dim:
            raise ValueError(
                f"backbone tokens are {self.backbone.get('token_dim')}-d but the model reads {self.config.token_dim}-d"
            )
        for name, labels, vectors in (
            ("seen", self.seen_labels, self.seen_vectors),
            ("unseen", self.unseen_labels, self.unseen_vectors),
        ):
            if vectors is not None and len(labels) and np.shape(vectors) != (len(labels), d_w):
                raise ValueError(f"{len(labels)} {name} labels but {name} vectors of shape {np.shape(vectors)}")


_LAYOUT = f"a model bundle is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}, as written by epsilon-train"


def _read_config(folder: Path) -> dict:
    """A bundle's config.json, checked to be one this release reads."""
    config_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise BundleError(f"No model bundle at {folder}: {_LAYOUT}.")
    for needed in (config_path, folder / WEIGHTS_FILE):
        if not needed.is_file():
            raise BundleError(f"{needed} is missing: {_LAYOUT}.")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{config_path} is not valid JSON ({exc}); the bundle is damaged, re-export it.") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise BundleError(f"{config_path} is not an epsilon bundle config: {_LAYOUT}.")
    if config.get("version") not in READABLE:
        raise BundleError(
            f"{config_path} has bundle version {config.get('version')}, this epsilon-tag reads "
            f"versions {', '.join(map(str, READABLE))}: upgrade epsilon-tag or re-export the bundle."
        )
    try:
        TagRule.from_dict(config.get("tagging") or None)
    except InputError as exc:
        raise BundleError(f"{config_path}: its tagging section is wrong: {exc}") from exc
    return config


def _read_weights(folder: Path, config: dict) -> dict[str, torch.Tensor]:
    """The weights file's tensors: the file the config names (by its hash), all finite."""
    weights_path = folder / WEIGHTS_FILE
    try:
        digest = sha256_file(weights_path)
    except PermissionError as exc:
        raise BundleError(
            f"{weights_path} cannot be read by this user ({exc.strerror}): make it readable "
            f"(chmod a+r {weights_path}) or copy the bundle somewhere yours."
        ) from exc
    if digest != config.get("weights_sha256"):
        raise BundleError(
            f"{weights_path} does not match {folder / CONFIG_FILE} (truncated, corrupted, or from another "
            f"bundle): copy the bundle folder again or re-run the training that made it."
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"Cannot read the bundle at {folder}: {exc}") from exc
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise BundleError(
            f"{weights_path} holds NaN or infinite numbers ({', '.join(broken[:3])}): the training that made "
            f"it diverged. Retrain with a lower --lr, or use another bundle."
        )
    return tensors


def _model(folder: Path, config: dict, tensors: dict[str, torch.Tensor]) -> Epsilon:
    """The model the config describes, with the weights, which must fit it exactly."""
    try:
        model = Epsilon(EpsilonConfig.from_dict(config["model"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"Cannot read the bundle at {folder}: {exc}") from exc
    state = {k.removeprefix("model."): v.float() for k, v in tensors.items() if k.startswith("model.")}
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or extra or wrong:
        raise BundleError(
            f"The weights in {folder / WEIGHTS_FILE} do not fit the model in {folder / CONFIG_FILE} "
            f"(missing: {missing[:5]}, unexpected: {extra[:5]}, wrong shape: {wrong[:5]})."
        )
    model.load_state_dict(state)
    return model


def _json_default(value: object) -> object:
    if isinstance(value, np.floating | np.integer):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
