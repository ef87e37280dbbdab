"""Every setting of a run, defined once: the model's hyper-parameters (``EpsilonConfig``),
the training schedule (``TrainConfig``) and ConSE's (``ConseConfig``).

A field a person may set carries its command-line help (and its flag, choices and bounds
where they are not the obvious ones) in ``option(...)``; ``trainer.options`` turns those
fields into epsilon-train's options, and a config file (``--config``, JSON or TOML) uses
the same names. Importing this costs no torch: ``epsilon-train --help`` reads it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .devices import DEVICES, check_device
from .errors import InputError

VARIANTS: tuple[str, ...] = ("full", "gpa", "gfp", "backbone")
PRIORS: tuple[str, ...] = ("none", "row", "residual")
NAMINGS: tuple[str, ...] = ("first", "lemmas", "photo")  # how an ImageNet class is put into words (class_text)
RECIPES: tuple[str, ...] = ("none", "paper")  # their settings: trainer.recipe
DEFAULT_BACKBONE = "efficientnet_lite0"  # offline: its weights ship as a registry package
# The Fast0Tag-style baseline is Epsilon's "backbone only" variant with M = 1 (trainer.baselines).
FAST0TAG = {"variant": "backbone", "num_groups": 1}


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    factory: Any = MISSING,
    flag: str | None = None,
    short: str | None = None,
    choices: Sequence[str] | None = None,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """A dataclass field that is also a command-line option. ``flag`` defaults to the
    field's name in kebab case (``--lr-halve-epoch``); a bool is ``--x/--no-x``."""
    how = described(help, flag=flag, short=short, choices=choices, min=min, max=max)
    return field(default=default, default_factory=factory, metadata=how)


def described(
    help: str,
    *,
    flag: str | None = None,
    short: str | None = None,
    choices: Sequence[str] | None = None,
    min: float | None = None,
    max: float | None = None,
) -> dict[str, Any]:
    """The metadata of a field that is an option (``option`` makes the field; this is for a
    ``field(default=None, metadata=described(...))`` of a type that is not immutable)."""
    return {"option": {"help": help, "flag": flag, "short": short, "choices": choices, "min": min, "max": max}}


def reject_unknown_keys(cls: type, data: dict, what: str) -> None:
    """A config file's typo must fail loudly, not be ignored."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise InputError(f"unknown {what} keys: {', '.join(unknown)}")


@dataclass
class EpsilonConfig:
    """Every hyper-parameter of the model; the defaults are the paper's where it gives one."""

    token_dim: int = 768  # D: backbone token width (ViT-B/16: 768, EfficientNet-Lite0: 1280)
    d_model: int = option(768, "Width of the heads (a linear projection maps the tokens to it).")
    d_w: int = 300  # word-vector size (GloVe 300-d in the paper)
    num_groups: int = option(8, "M: group prompts, GFP branches, rows of S (paper: 8).", flag="--groups", short="-M")
    depth: int = option(3, "Transformer encoder layers in GPA.")
    heads: int = option(8, "Attention heads.")
    mlp_ratio: float = 4.0  # encoder feed-forward width / d_model
    gfp_hidden: int = 0  # hidden width of each GFP branch's MLP; 0 means d_model
    dropout: float = option(0.0, "Dropout in the heads.")
    # Ablations of the paper's Table 3: "full" = GPA + GFP, "gpa" / "gfp" = one module,
    # "backbone" = mean-pooled tokens and one linear map to M x d_w.
    variant: str = option("full", "Table 3 ablations: GPA + GFP, one of them, or the backbone only.", choices=VARIANTS)
    # Off in the paper; exposed because the score scale matters on small training sets.
    normalize_rows: bool = option(False, "L2-normalise the M rows of S before scoring (cosine, not dot product).")
    # ImageNet prior: "none" (the paper's model), "row" (the photo's ConSE embedding is an
    # extra row of S: M + 1 rows, scored by the same max) or "residual" (S_m = prior + the
    # fuser's row m). It reads the backbone's head (prior_classes outputs) from the tokens
    # and weighs the top prior_top classes' word vectors.
    prior: str = option(
        "none",
        "ImageNet prior: none (the paper's model), row (the photo's ConSE embedding is one more row of S) or "
        "residual (every row starts from it).",
        choices=PRIORS,
    )
    prior_top: int = option(50, "ImageNet prior: how many ImageNet classes it weighs.")
    prior_temperature: float = option(1.0, "ImageNet prior: temperature of the head's softmax (above 1 weighs more).")
    prior_classes: int = 0
    # Above 1, ImageNet's objects win the max over the trained rows more often.
    prior_scale: float = option(1.0, "ImageNet prior row: its length, i.e. its cosines are multiplied by this.")

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.prior not in PRIORS:
            raise InputError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        # prior_classes is 0 until training reads it off the backbone's head.
        if self.prior != "none" and not self.prior_temperature > 0:
            raise InputError(f"prior_temperature must be > 0, got {self.prior_temperature}")
        if self.prior != "none" and not 1 <= self.prior_top <= (self.prior_classes or self.prior_top):
            raise InputError(
                f"prior_top must be between 1 and the head's {self.prior_classes} classes, got {self.prior_top}"
            )
        if self.num_groups < 1:
            raise InputError(f"num_groups (M) must be at least 1, got {self.num_groups}")
        if self.variant in ("full", "gpa") and self.d_model % self.heads:
            raise InputError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")

    @property
    def rows(self) -> int:
        """Rows of S: the M groups, plus the prior's own row."""
        return self.num_groups + (self.prior == "row")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EpsilonConfig:
        reject_unknown_keys(cls, data, "model config")
        return cls(**data)


@dataclass(frozen=True)
class ClassText:
    """How an ImageNet class is put into words (trainer.class_text).

    ``naming``: "first" = the first lemma only (classic ConSE: "tabby"), "lemmas" = the
    mean of every lemma's unit vector ("tabby", "tabby cat"), "photo" = the sentence "a
    photo of a tabby" (for a sentence encoder; in a word space, "photo" would dominate). ``definition``: weight of the
    definition's words against the names (0: names only); the class vector is the
    normalised sum of the two normalised means.
    """

    naming: str = "first"
    definition: float = 0.0

    def __post_init__(self) -> None:
        if self.naming not in NAMINGS:
            raise InputError(f"class naming must be one of {', '.join(NAMINGS)}, got {self.naming!r}")
        if not self.definition >= 0:
            raise InputError(f"the definition weight must be >= 0, got {self.definition}")

    def __str__(self) -> str:
        return self.naming + (f"+{self.definition:g}xdefinition" if self.definition else "")


def _training_model() -> EpsilonConfig:
    # Departure from the method page's encoder depth 3 and the paper's 768-wide heads: for
    # 49 CNN tokens a 256-wide, 2-layer head costs 0.12x the backbone per image (768 / 3
    # layers: 1.07x, bench/heads_vs_backbone.py) and trains in minutes on a CPU.
    return EpsilonConfig(d_model=256, depth=2)


@dataclass
class TrainConfig:
    """Every training choice; defaults are the paper's schedule (Adam, lr 1e-5, 7 epochs...)."""

    model: EpsilonConfig = field(default_factory=_training_model)
    lr: float = option(1e-5, "Adam learning rate (paper: 1e-5).")
    weight_decay: float = option(4e-3, "Adam weight decay (paper: 4e-3).")
    batch_size: int = option(96, "Global batch size, split across torchrun ranks (paper: 96).")
    epochs: int = option(7, "Epochs (paper: 7).")
    lr_halve_epoch: int = option(4, "The lr halves at the start of this (1-based) epoch (paper: 4; 0 never).")
    lam: float = option(0.3, "Weight of the variance regulariser (paper: 0.3).", flag="--lambda")
    seed: int = option(0, "Seed for initialisation, the held-out fold and batch order.")
    val_fraction: float = option(0.1, "Part of the training split held out to choose the best epoch.")
    val_max: int = 20_000  # ...but at most this many images (Open Images' 10% would be 900,000)
    patience: int = option(0, "Stop after this many epochs without a better held-out figure (0: never).")
    # Knowledge transfer from the backbone's ImageNet head: each training image also gets
    # its top-k ImageNet class names (probability >= imagenet_min_prob) as positive labels
    # and the improbable ones (< imagenet_max_negative) as negatives.
    imagenet_labels: int = option(
        0, "Knowledge transfer: add each image's top-k confident ImageNet class names as labels (0: off)."
    )
    imagenet_min_prob: float = option(
        0.3, "Knowledge transfer: an ImageNet class is a positive label from this probability on."
    )
    imagenet_max_negative: float = option(
        0.01, "Knowledge transfer: an ImageNet class is a negative label below this probability."
    )
    # Knowledge transfer by distillation (in the spirit of MKT): the row of S closest to the
    # image's ConSE embedding (its top ImageNet classes' name vectors, weighted by
    # probability) is pulled towards it.
    distill: float = option(
        0.0, "Knowledge transfer: weight of pulling a row of S towards the image's ConSE embedding (0: off)."
    )
    distill_top: int = option(10, "Knowledge transfer: how many ImageNet classes make the distillation target.")
    distill_temperature: float = option(
        1.0, "Knowledge transfer: temperature of the softmax the distillation target weighs classes by."
    )
    # Wherever the ImageNet classes are used (distillation, ImageNet names as labels, the
    # prior row, ConSE), as trainer.class_text puts them into words.
    class_naming: str = option(
        "first",
        "How ImageNet classes are put into words (for the ImageNet prior row, distillation, ImageNet labels and "
        "ConSE): first (name), lemmas (all names) or photo ('a photo of a <first name>', for a sentence encoder).",
        choices=NAMINGS,
    )
    class_definition: float = option(
        0.0, "Weight of the words of an ImageNet class's definition beside its names (0: names only).", min=0.0
    )
    backbone: str = option(DEFAULT_BACKBONE, "Any timm model name (efficientnet_lite0 is offline).")
    backbone_weights: str | None = option(
        None, "Weights file for the backbone (needed for ViT-B/16: vit_base_patch16_224)."
    )
    device: str = option("auto", f"Where the model runs: {DEVICES}.")
    amp: bool = option(True, "bf16 mixed precision on CUDA (ignored on the CPU).")
    workers: int = option(2, "Image decoding processes (extraction, or every epoch when streaming).")
    # Where tokens come from: "auto" caches them when the cache fits in the cache folder's
    # free space and streams otherwise; "none" streams (the backbone runs in the loop);
    # "tokens" always caches. The command line's --cache names a folder instead of "tokens".
    cache: str = "auto"
    extract_batch: int = 64
    save_every: int = option(200, "Optimiser steps between resumable saves inside an epoch (and every epoch's end).")
    # Recorded in the run's config and its bundles, so that `info` and evaluation read them
    # against the paper's figures.
    recipe: str = option(
        "none",
        "paper: every setting of the paper at once (ViT-B/16, M 8, d_model 768, depth 3, the schedule, no held-out "
        "fold; nus-wide and open-images), printed at start; options given beside it override it.",
        choices=RECIPES,
    )

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.recipe not in RECIPES:
            raise InputError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")

    @property
    def class_text(self) -> ClassText:
        return ClassText(self.class_naming, self.class_definition)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        reject_unknown_keys(cls, data, "training config")
        data = dict(data)
        model = data.pop("model", None)
        cfg = cls(**data)
        if model is not None:
            cfg.model = EpsilonConfig.from_dict(model) if isinstance(model, dict) else model
        return cfg


@dataclass
class ConseConfig:
    """ConSE (trainer.baselines): the backbone's top ImageNet classes vote with their names."""

    top: int = option(10, "ConSE: how many ImageNet classes vote.", flag="--conse-top", min=1)
    temperature: float = option(
        1.0, "ConSE: temperature of the ImageNet softmax (1: classic).", flag="--conse-temperature", min=0.01
    )


def read_config_file(path: Path) -> dict:
    """A JSON or TOML file of TrainConfig keys (the model's under "model")."""
    try:
        text = path.read_text()
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read config {path}: {exc}") from exc


def train_config(file: Path | None, given: dict, *, fast0tag: bool = False) -> TrainConfig:
    """A run's config: the defaults, then the recipe's settings (``--recipe`` or the file's
    ``recipe``), then the config file, then Fast0Tag's model (for that method), then the
    settings ``given`` on the command line (nested as the file is)."""
    from .recipe import recipe_settings

    data = read_config_file(file) if file else {}
    recipe = recipe_settings(str(given.get("recipe", data.get("recipe", "none"))))
    model = {**TrainConfig().model.to_dict(), **recipe.pop("model", {}), **data.pop("model", {})}
    model.update(FAST0TAG if fast0tag else {}, **given.get("model", {}))
    data = {**recipe, **data, **{k: v for k, v in given.items() if k != "model"}}
    try:
        return TrainConfig.from_dict(dict(data, model=EpsilonConfig.from_dict(model)))
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
