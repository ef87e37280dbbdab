"""``--recipe paper``: every setting of the paper and of the method notes at once, and the
checks that must pass before such a run does any work.

The values are pinned here, not read from the defaults, so that a later change of a
default (the training head is 256 wide, 2 layers, for CPUs) never changes the recipe.
Flags and a config file still override them (trainer.config.train_config), and the run
says which settings then depart from the paper.

ViT-B/16's weights ship with no registry package; the run needs a file and checks that it
is ViT-B/16 before it reads the dataset. Neither the paper ("the pre-trained ViT-B/16
(Dosovitskiy et al. 2020)") nor the method notes name a pretraining: the recipe pins what
``timm.create_model("vit_base_patch16_224", pretrained=True)`` loads, ImageNet-21k
pretrained and ImageNet-1k fine-tuned (``augreg2_in21k_ft_in1k``). Every ViT-B/16 at
224 px with a 1,000-class head has the same keys and shapes, so the check tells another
architecture from ViT-B/16, not one of its pretrainings from another.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BackboneError, InputError

if TYPE_CHECKING:
    import torch

    from .config import TrainConfig

VIT = "vit_base_patch16_224"
VIT_TAG = "augreg2_in21k_ft_in1k"
VIT_WEIGHTS = f"{VIT}.{VIT_TAG}"
VIT_FILE = f"{VIT_WEIGHTS}.safetensors"
VIT_TOKENS = (196, 768)  # 224 px / 16 = 14 x 14 patches; the class token is dropped
PAPER_DATASETS = ("nus-wide", "open-images")
GLOVE_DIM = 300  # the paper's (and LESA's, BiAM's) GloVe vectors

PAPER: dict[str, Any] = {
    "backbone": VIT,
    "lr": 1e-5,
    "weight_decay": 4e-3,
    "batch_size": 96,
    "epochs": 7,
    "lr_halve_epoch": 4,
    "lam": 0.3,
    # The paper trains on the whole official training split and reports the model its
    # schedule ends with: no held-out fold, so the last epoch is the one kept.
    "val_fraction": 0.0,
    "patience": 0,
    "imagenet_labels": 0,
    "distill": 0.0,
    "model": {
        "d_model": 768,
        "depth": 3,
        "heads": 8,
        "num_groups": 8,
        "mlp_ratio": 4.0,
        "gfp_hidden": 0,
        "dropout": 0.0,
        "variant": "full",
        "normalize_rows": False,
        "prior": "none",
    },
}
_SETTINGS: dict[str, dict[str, Any]] = {"none": {}, "paper": PAPER}
# How a run is carried out, not what it computes: never a departure from the paper.
_RUNTIME = frozenset({"device", "amp", "workers", "extract_batch", "save_every", "cache", "recipe", "seed"})


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings a recipe fixes, nested as a config file nests them."""
    if name not in _SETTINGS:
        raise InputError(f"recipe must be one of {', '.join(_SETTINGS)}, got {name!r}")
    settings = dict(_SETTINGS[name])
    if "model" in settings:
        settings["model"] = dict(settings["model"])
    return settings


def departures(cfg: TrainConfig) -> list[str]:
    """The settings of a paper-recipe config that differ from the paper's, as 'name value (paper: x)'."""
    found = []
    for key, paper in PAPER.items():
        if key == "model":
            found += [
                f"{name} {getattr(cfg.model, name)} (paper: {value})"
                for name, value in paper.items()
                if getattr(cfg.model, name) != value
            ]
        elif key not in _RUNTIME and getattr(cfg, key) != paper:
            found.append(f"{key} {getattr(cfg, key)} (paper: {paper})")
    return found


def describe(dataset: str, cfg: TrainConfig, embeddings: str | None) -> str:
    """Every setting of a paper-recipe run, printed before it starts."""
    from .paper import reported

    m = cfg.model
    protocol = {
        "nus-wide": "every test image counts; ZSL over the 81 unseen labels, GZSL over all 1,006; "
        "mAP and top-K P / R / F1 at K = 3 and 5",
        "open-images": "test images with a positive label count; ZSL over the 400 unseen labels, GZSL over "
        "7,586 (classes unannotated in the test split dropped); mAP and top-K P / R / F1 at K = 10 and 20",
    }[dataset]
    words = embeddings or ("nus-wide-glove-300 (the 300-d GloVe label vectors in assets/nus_wide/)")
    paper = reported(dataset)
    lines = [
        f"recipe paper on {dataset}: the paper's settings, as the method notes read them (docs/method-notes.md)",
        f"  backbone      {cfg.backbone} (timm {VIT_WEIGHTS}), frozen, {VIT_TOKENS[0]} x {VIT_TOKENS[1]} "
        f"tokens at 224 px; weights {cfg.backbone_weights or '(none given)'}",
        f"  word vectors  {words}, L2-normalised",
        f"  model         Epsilon {m.variant} (GPA + GFP + fuser), M = {m.num_groups}, d_model {m.d_model}, "
        f"encoder depth {m.depth}, {m.heads} heads, feed-forward x{m.mlp_ratio:g}, dropout {m.dropout:g}, "
        f"prior {m.prior}",
        f"  loss          ranking (softplus, / |P||Q|) x diversity weight omega, variance regulariser, "
        f"lambda {cfg.lam:g}",
        f"  schedule      Adam, lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, batch {cfg.batch_size}, "
        f"{cfg.epochs} epochs, lr halved from epoch {cfg.lr_halve_epoch}, seed {cfg.seed}",
        f"  selection     held-out fraction {cfg.val_fraction:g}"
        + (" (none: the whole training split trains, the last epoch is kept)" if not cfg.val_fraction else ""),
        f"  evaluation    {protocol}, after every epoch",
    ]
    if paper is not None:
        zsl, gzsl = paper.maps["zsl"], paper.maps["gzsl"]
        lines.append(f"  to compare    the paper's {paper.table}: ZSL mAP {zsl}, GZSL mAP {gzsl} (printed beside ours)")
    changed = departures(cfg)
    lines.append("  departures    " + ("; ".join(changed) if changed else "none: every setting is the paper's"))
    return "\n".join(lines)


def prepare(dataset: str, cfg: TrainConfig, embeddings: str | None, method: str, say: Callable[[str], None]) -> None:
    """Before a paper-recipe run does any work: its settings said, then what it needs checked."""
    if dataset not in PAPER_DATASETS:
        raise InputError(
            f"--recipe paper is the paper's NUS-WIDE and Open Images runs (the paper reports no {dataset} "
            f"figures): use it with {' or '.join(PAPER_DATASETS)}"
        )
    if method != "epsilon":
        raise InputError(f"--recipe paper trains Epsilon: leave out --method {method}")
    say(describe(dataset, cfg, embeddings))
    check_embeddings(dataset, embeddings)
    if cfg.backbone == VIT:  # a --backbone given beside the recipe has weights of its own
        say(check_weights(cfg.backbone_weights))


def against_paper(dataset: str, training: dict, figures: dict) -> str | None:
    """For a bundle trained with the paper's recipe on ``dataset`` (its ``training``
    section): how it was trained against the paper, then ``figures`` beside the paper's."""
    from .config import TrainConfig
    from .paper import comparison

    config = training.get("config", {})
    if config.get("recipe") != "paper" or training.get("dataset") != dataset:
        return None
    changed = departures(TrainConfig.from_dict(config))
    how = "; ".join(changed) if changed else "none: every setting is the paper's"
    return f"trained with --recipe paper; departures: {how}\n" + (comparison(dataset, figures) or "")


def weights_help(problem: str) -> str:
    """What is wrong with the ViT-B/16 weights, and exactly which file works and how to make it."""
    return (
        f"{problem}\n"
        f"The paper's recipe runs on ViT-B/16; its weights ship with no package, so the run needs a file. "
        f"The recipe pins timm's {VIT_WEIGHTS} (ImageNet-21k pretrained, ImageNet-1k fine-tuned, 224 px: what "
        f'timm.create_model("{VIT}", pretrained=True) loads; the paper names no pretraining). On a machine with '
        f"internet, after `pip install timm safetensors`, run in Python:\n"
        f"    import timm, safetensors.torch\n"
        f'    safetensors.torch.save_file(timm.create_model("{VIT_WEIGHTS}", pretrained=True).state_dict(), '
        f'"{VIT_FILE}")\n'
        f"copy {VIT_FILE} to this machine and pass it: --backbone-weights {VIT_FILE} "
        f"(a torch.save of the same state dict works too). Nothing has been read or extracted yet."
    )


def check_weights(path: str | None) -> str:
    """Check a ViT-B/16 weights file before any work: its keys and shapes are timm's
    ViT-B/16's, it loads, and a forward on a fixed input gives 196 x 768 finite tokens.
    Returns a note to print (a warning when the weights look untrained)."""
    if not path:
        raise BackboneError(weights_help("No ViT-B/16 weights given (--backbone-weights FILE)."))
    file = Path(path).expanduser()
    if not file.is_file():
        raise BackboneError(weights_help(f"The ViT-B/16 weights file {file} does not exist."))
    _check_shapes(file, _file_shapes(file))
    from .backbones import build_backbone

    backbone = build_backbone(VIT, file)
    tokens = backbone(_probe_images())
    if tuple(tokens.shape[1:]) != VIT_TOKENS or not bool(tokens.isfinite().all()):
        raise BackboneError(
            weights_help(
                f"{file} loads, but a forward on a fixed image gives tokens of shape {tuple(tokens.shape[1:])} "
                f"(finite: {bool(tokens.isfinite().all())}), not {VIT_TOKENS[0]} x {VIT_TOKENS[1]} finite numbers."
            )
        )
    note = f"ViT-B/16 weights {file.name}: ViT-B/16's keys and shapes, probe forward {VIT_TOKENS[0]} x 768 tokens"
    # timm starts the class token at N(0, 1e-6); training moves it far from that.
    if float(backbone.model.cls_token.detach().float().std()) < 1e-4:
        note += (
            "; WARNING: its class token is timm's untrained initial value, so these look like random weights: "
            "the figures will not be the paper's"
        )
    return note


def _probe_images() -> torch.Tensor:
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 224, 224, generator=generator) * 2 - 1  # the [-1, 1] range of mean = std = 0.5


def _file_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a safetensors file (its header only) or a torch state dict (as timm
    reads one: possibly under 'state_dict' or 'model', keys possibly prefixed 'module.')."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), "pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118  # not a dict
    except (SafetensorError, OSError, ValueError):
        pass  # not safetensors: a torch file, perhaps
    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for a file that is not its own
        raise BackboneError(
            weights_help(f"{file} is neither a safetensors file nor a torch state dict ({exc}).")
        ) from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise BackboneError(weights_help(f"{file} holds a {type(state).__name__}, not a state dict."))
    return {k.removeprefix("module."): tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def _check_shapes(file: Path, found: dict[str, tuple[int, ...]]) -> None:
    """The file's keys and shapes against timm's ViT-B/16's, built without memory (meta device)."""
    import timm
    import torch

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in timm.create_model(VIT, pretrained=False).state_dict().items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    both = sorted(set(found) & set(expected))
    wrong = [f"{k} {found[k]} (ViT-B/16: {expected[k]})" for k in both if found[k] != expected[k]]
    if not (missing or extra or wrong):
        return
    width = found.get("pos_embed", (0, 0, 0))[-1]
    guess = f" (its tokens are {width} wide: another ViT)" if width and width != VIT_TOKENS[1] else ""
    head_only = not missing and not extra and all(w.startswith("head.") for w in wrong)
    what = "a ViT-B/16 with another classifier head (another pretraining, e.g. ImageNet-21k)" if head_only else ""
    details = "; ".join(
        part
        for part in (
            f"{len(missing)} keys missing, e.g. {', '.join(missing[:3])}" if missing else "",
            f"{len(extra)} keys ViT-B/16 does not have, e.g. {', '.join(extra[:3])}" if extra else "",
            f"{len(wrong)} shapes differ, e.g. {'; '.join(wrong[:3])}" if wrong else "",
        )
        if part
    )
    raise BackboneError(weights_help(f"{file} is not {VIT_WEIGHTS}{guess}: {what or 'another model'}. {details}."))


def check_embeddings(dataset: str, embeddings: str | None) -> None:
    """Open Images' labels in the paper are scored in 300-d GloVe, which does not ship (the
    offline GloVe is 50-d): the run needs a file, checked by its header before any work."""
    if dataset != "open-images":
        return
    how = (
        "The paper's recipe scores Open Images labels by the mean 300-d GloVe vector of their words: download "
        "glove.6B.300d.txt (in glove.6B.zip, https://nlp.stanford.edu/projects/glove/) on a machine with internet "
        "and pass --embeddings glove.6B.300d.txt. Nothing has been read or extracted yet."
    )
    if not embeddings:
        raise InputError("No 300-d word vectors given (--embeddings FILE). " + how)
    file = Path(embeddings).expanduser()
    if not file.is_file():
        raise InputError(f"The word-vector file {file} does not exist. " + how)
    dim = _vector_file_dim(file)
    if dim is not None and dim != GLOVE_DIM:
        raise InputError(f"{file} holds {dim}-d vectors, not {GLOVE_DIM}-d. " + how)


def _vector_file_dim(file: Path) -> int | None:
    """The dimension a GloVe text file (word v1 ... vd) or a word2vec file ('count dim'
    header) gives, from its first line; None for a format that has no such line."""
    with file.open("rb") as handle:
        first = handle.readline(1 << 16).split()
    try:
        numbers = [float(v) for v in first[1:]]
    except ValueError:
        return None
    if len(first) == 2 and numbers[0].is_integer():  # word2vec: "count dim"
        return int(numbers[0])
    return len(numbers) or None
