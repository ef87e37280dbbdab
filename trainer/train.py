"""Training Epsilon from the token cache: one process or many under torchrun (DDP).

The loop reads cached tokens (the backbone is frozen, so it never runs here), evaluates
ZSL and GZSL after every epoch on a held-out fold of the training split and on the test
split, keeps the best bundle by the held-out figure (never the test split), plots the
curves, and can be killed at any step: ``state/`` holds the model, the optimiser and the
position, written atomically every ``save_every`` steps and at every epoch's end.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .backbones import DEFAULT_BACKBONE, build_backbone
from .baselines import conse_embedding, dataset_imagenet_vectors
from .checkpoint import Bundle
from .class_text import ClassText
from .datasets import Dataset, has_positive, held_out_fold, label_rows
from .distributed import all_sum, barrier, is_main, setup, world
from .errors import InputError, TrainingDiverged
from .evaluate import evaluate_model, format_table
from .features import extract_features
from .loss import epsilon_loss
from .model import Epsilon, EpsilonConfig, reject_unknown_keys
from .tokens import CachedTokens, StreamedTokens, choose_cache, token_shape


@dataclass
class TrainConfig:
    """Every training choice; defaults are the paper's schedule (Adam, lr 1e-5, 7 epochs...)."""

    # Departure from the method page's encoder depth 3 and the paper's 768-wide heads: for
    # 49 CNN tokens a 256-wide, 2-layer head costs 0.12x the backbone per image (768 / 3
    # layers: 1.07x, bench/heads_vs_backbone.py) and trains in minutes on a CPU.
    model: EpsilonConfig = field(default_factory=lambda: EpsilonConfig(d_model=256, depth=2))
    lr: float = 1e-5
    weight_decay: float = 4e-3
    batch_size: int = 96  # global: split across torchrun ranks
    epochs: int = 7
    lr_halve_epoch: int = 4  # the lr halves at the start of this (1-based) epoch; 0: never
    lam: float = 0.3  # weight of the variance regulariser
    seed: int = 0
    val_fraction: float = 0.1  # held out of the training split to choose the best epoch
    val_max: int = 20_000  # ...but at most this many images (Open Images' 10% would be 900,000)
    patience: int = 0  # stop after this many epochs without a better held-out figure; 0: never
    # Knowledge transfer from the backbone's ImageNet head: each training image also gets
    # its top-k ImageNet class names (probability >= imagenet_min_prob) as positive labels
    # and the improbable ones (< imagenet_max_negative) as negatives. 0: off.
    imagenet_labels: int = 0
    imagenet_min_prob: float = 0.3
    imagenet_max_negative: float = 0.01
    # Knowledge transfer by distillation (in the spirit of MKT): the row of S closest to the
    # image's ConSE embedding (its top ImageNet classes' name vectors, weighted by
    # probability) is pulled towards it with weight `distill` (0: off).
    distill: float = 0.0
    distill_top: int = 10
    distill_temperature: float = 1.0  # of the ImageNet softmax the target weighs classes by
    # How the ImageNet classes are put into words wherever they are used (distillation,
    # ImageNet names as labels, the prior row): "first" name or all "lemmas", plus this
    # weight of their definitions' words (trainer.class_text).
    class_naming: str = "first"
    class_definition: float = 0.0
    backbone: str = DEFAULT_BACKBONE
    backbone_weights: str | None = None
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    workers: int = 2  # image decoding processes (extraction, or every epoch when streaming)
    # Where tokens come from: "auto" caches them when the cache fits in the cache folder's
    # free space and streams otherwise; "none" streams (the backbone runs in the loop);
    # "tokens" always caches.
    cache: str = "auto"
    extract_batch: int = 64
    save_every: int = 200  # steps between resumable saves

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


def train(
    dataset: Dataset, cfg: TrainConfig, out: str | Path, cache_root: str | Path, *, progress: bool = True
) -> dict:
    """Train (or resume) into ``out``; returns the history. Bundles: out/best, out/last."""
    out = Path(out)
    device = setup(cfg.device)
    rank, size = world()
    if cfg.batch_size % size:
        raise InputError(f"batch size {cfg.batch_size} must be divisible by the {size} torchrun processes")
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(cfg.backbone, cfg.backbone_weights, device=device)
    head = backbone.imagenet_head() if cfg.model.prior != "none" else None
    # What the backbone and the data decide, on a copy: the caller's config stays as given.
    cfg = replace(
        cfg,
        model=replace(
            cfg.model,
            token_dim=backbone.token_dim,
            d_w=int(dataset.seen_vectors.shape[1]),
            prior_classes=int(head[0].shape[0]) if head is not None else cfg.model.prior_classes,
        ),
    )
    _check_or_write_config(out, cfg, dataset)
    classes = token_shape(backbone)[2]
    spec = backbone.spec()
    train_tokens, test_tokens = _token_sources(dataset, backbone, cfg, Path(cache_root), device, progress)
    del backbone  # the streaming sources hold it; the cached ones never run it again

    fit_rows, val_rows = held_out_fold(len(dataset.train), cfg.val_fraction, cfg.seed, cfg.val_max)
    fit_rows, val_rows = train_tokens.usable(fit_rows), train_tokens.usable(val_rows)
    test_rows = test_tokens.usable(np.arange(len(dataset.test)))
    vectors, transfer = _transfer(dataset, classes, cfg)
    # Images with no positive seen label are left out of training batches (the method's rule).
    fit_rows = fit_rows[has_positive(dataset.train.seen, fit_rows)]
    if len(fit_rows) == 0:
        raise InputError("no training image has a positive seen label")

    model = Epsilon(cfg.model)
    if head is not None:
        model.attach_prior(*head, torch.from_numpy(_imagenet_names(dataset, classes, "--prior", cfg)))
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, start_step, history = _resume(out / "state", model, optimiser)
    ddp = model
    if size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    word_vectors = torch.from_numpy(vectors).to(device)
    use_amp = cfg.amp and device.type == "cuda"
    steps_per_epoch = math.ceil(len(fit_rows) / cfg.batch_size)
    finished = [h for h in history if "select" in h]
    best = max((h["select"] for h in finished), default=-math.inf)
    stale = len(finished) - 1 - int(np.argmax([h["select"] for h in finished])) if finished else 0
    for epoch in range(start_epoch, cfg.epochs):
        halved = cfg.lr_halve_epoch and epoch + 1 >= cfg.lr_halve_epoch
        for group in optimiser.param_groups:
            group["lr"] = cfg.lr * (0.5 if halved else 1.0)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(fit_rows)
        model.train()
        bar = _bar(steps_per_epoch, start_step, f"epoch {epoch + 1}/{cfg.epochs}", progress and is_main())
        losses = list(history[-1].get("partial_losses", [])) if history and history[-1].get("epoch") == epoch else []
        history = [h for h in history if h.get("epoch") != epoch]
        # This rank's share of every global batch: what a DistributedSampler hands out, but
        # cut from the one global order, so N ranks take the steps one process takes and
        # resume at a step (streaming decodes only this share).
        shares = []
        for step in range(start_step, steps_per_epoch):
            global_batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            share = math.ceil(len(global_batch) / size)
            shares.append(np.sort(global_batch[rank * share : (rank + 1) * share]))
        for step, batch in enumerate(train_tokens.batches(shares), start=start_step):
            labels = label_rows(dataset.train.seen, batch.rows)
            if transfer is not None and cfg.imagenet_labels:
                labels = np.concatenate([labels, transfer.labels(batch.logits)], axis=1)
            labels = torch.from_numpy(labels).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                semantic = ddp(batch.tokens)
            parts = epsilon_loss(semantic.float(), word_vectors, labels, lam=cfg.lam)
            per_image = parts.per_image
            if transfer is not None and cfg.distill:
                target = transfer.teacher(batch.logits)[parts.used]
                # Only the trained rows: a prior row is the teacher already.
                trained = semantic.float()[parts.used][:, : cfg.model.num_groups]
                closest = torch.nn.functional.cosine_similarity(trained, target[:, None], dim=-1)
                per_image = per_image + cfg.distill * (1.0 - closest.amax(dim=1))
            # The mean over the global batch's used images, whatever each rank holds: DDP
            # averages gradients over ranks, hence the factor `size`.
            used = all_sum(torch.tensor(float(parts.images), device=device))
            loss = per_image.sum() / used.clamp(min=1) * size
            if not bool(torch.isfinite(all_sum(loss.detach()))):  # every rank sees the same sum: all stop together
                raise _diverged("the loss is not a finite number", epoch, step, cfg, out)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            batch_loss = all_sum(per_image.detach().sum()) / used.clamp(min=1)
            losses.append(float(batch_loss))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < steps_per_epoch:
                _check_weights(model, epoch, step, cfg, out)
                _save_state(
                    out / "state",
                    model,
                    optimiser,
                    epoch,
                    step + 1,
                    history + [{"epoch": epoch, "partial_losses": losses}],
                )
        bar.close()
        # A finite loss can still take a step to infinite weights (the last step of an epoch).
        _check_weights(model, epoch, steps_per_epoch - 1, cfg, out)
        start_step = 0
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "lr": optimiser.param_groups[0]["lr"],
            "step_losses": losses,
        }
        if is_main():
            record["val"] = (
                evaluate_model(model, train_tokens, dataset.train, val_rows, dataset, device) if len(val_rows) else {}
            )
            record["test"] = evaluate_model(model, test_tokens, dataset.test, test_rows, dataset, device)
            record["select"] = _selection_figure(record)
            history.append(record)
            improved = record["select"] > best
            bundle = _bundle(model, dataset, cfg, history, record, spec)
            bundle.save(out / "last")
            if improved:
                best = record["select"]
                bundle.save(out / "best")
            _plot(history, out / "curves.png")
            (out / "history.json").write_text(json.dumps(history, indent=2))
            _report(record, dataset, improved)
            stale = 0 if improved else stale + 1
        _save_state(out / "state", model, optimiser, epoch + 1, 0, history)
        stop = torch.tensor(float(cfg.patience and stale >= cfg.patience), device=device)
        if float(all_sum(stop)) > 0:
            if is_main():
                print(f"early stop: {cfg.patience} epochs without a better held-out figure", file=sys.stderr)
            break
    barrier()
    return {"history": history, "best": best}


def _diverged(what: str, epoch: int, step: int, cfg: TrainConfig, out: Path) -> TrainingDiverged:
    return TrainingDiverged(
        f"Training diverged at epoch {epoch + 1}, step {step + 1}: {what}. Lower --lr (now {cfg.lr:g}); "
        f"nothing of this epoch was saved, and {out / 'best'} holds the best epoch before it, if any."
    )


def _check_weights(model: torch.nn.Module, epoch: int, step: int, cfg: TrainConfig, out: Path) -> None:
    """Before anything is saved: DDP keeps every rank's weights equal, so all ranks stop together."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise _diverged("the weights hold NaN or infinite numbers", epoch, step, cfg, out)


def _selection_figure(record: dict) -> float:
    """Held-out ZSL mAP (GZSL where there are no unseen labels); the last epoch wins without a fold."""
    figures = record.get("val") or {}
    task = figures.get("zsl") or figures.get("gzsl")
    return task["map"] if task else float(record["epoch"])


def _token_sources(dataset: Dataset, backbone, cfg: TrainConfig, cache_root: Path, device, progress: bool):
    """The training and test splits' tokens: from the cache (extracted first, once) or
    streamed from the images every epoch, as ``cfg.cache`` and the free disk space say."""
    images = len(dataset.train) + len(dataset.test)
    cached, why = choose_cache(cfg.cache, cache_root, images, backbone)
    # One choice for every rank (each node sees its own disk): cache only where all can.
    votes = all_sum(torch.tensor(float(cached), device=device))
    if cached and int(votes) < world()[1]:
        cached, why = False, "streaming: another rank's cache folder has too little free space"
    if is_main():
        print(f"token cache: {why}", file=sys.stderr)
    if not cached:
        return tuple(
            StreamedTokens(split.images, backbone, device, cfg.workers) for split in (dataset.train, dataset.test)
        )
    return tuple(
        CachedTokens(
            extract_features(
                split.images,
                backbone,
                cache_root / part,
                batch_size=cfg.extract_batch,
                workers=cfg.workers,
                device=device,
                progress=progress,
            ),
            device,
        )
        for part, split in (("train", dataset.train), ("test", dataset.test))
    )


def _imagenet_names(dataset: Dataset, classes: int, option: str, cfg: TrainConfig) -> np.ndarray:
    """Word vectors of the 1,000 ImageNet classes, in the dataset's word space."""
    if not classes:
        raise InputError(f"{option} needs a CNN backbone whose ImageNet head is cached")
    return dataset_imagenet_vectors(dataset, option, ClassText(cfg.class_naming, cfg.class_definition))


@dataclass
class _Transfer:
    """Knowledge transfer from the backbone's ImageNet head, computed per batch from its logits."""

    cfg: TrainConfig
    class_vectors: torch.Tensor  # 1,000 x d_w, a zero row for a class no word names

    def labels(self, logits: torch.Tensor) -> np.ndarray:
        """Each image's top confident classes as positives, the improbable ones as negatives."""
        probs = logits.float().softmax(dim=1).cpu().numpy()
        top = np.argsort(-probs, axis=1)[:, : self.cfg.imagenet_labels]
        extra = np.where(probs < self.cfg.imagenet_max_negative, -1, 0).astype(np.int8)
        rows = np.arange(len(probs))[:, None]
        confident = probs[rows, top] >= self.cfg.imagenet_min_prob
        extra[np.broadcast_to(rows, top.shape)[confident], top[confident]] = 1
        extra[:, ~(self.class_vectors.norm(dim=1) > 0).numpy()] = 0
        return extra

    def teacher(self, logits: torch.Tensor) -> torch.Tensor:
        """Each image's ConSE embedding (unit length), the distillation target."""
        vectors = self.class_vectors.to(logits.device)
        target = conse_embedding(logits.float(), vectors, self.cfg.distill_top, self.cfg.distill_temperature)
        return torch.nn.functional.normalize(target, dim=-1)


def _transfer(dataset: Dataset, classes: int, cfg: TrainConfig) -> tuple[np.ndarray, _Transfer | None]:
    """The word vectors training scores against (seen words, then ImageNet's classes when
    they are labels) and the transfer, when any is on."""
    if not (cfg.imagenet_labels or cfg.distill):
        return dataset.seen_vectors, None
    option = "--imagenet-labels" if cfg.imagenet_labels else "--distill"
    class_vectors = _imagenet_names(dataset, classes, option, cfg)
    transfer = _Transfer(cfg, torch.from_numpy(class_vectors))
    if not cfg.imagenet_labels:
        return dataset.seen_vectors, transfer
    return np.concatenate([dataset.seen_vectors, class_vectors]), transfer


def _bundle(model, dataset, cfg, history, record, backbone: dict) -> Bundle:
    return Bundle(
        model=model,
        backbone=backbone,
        embeddings=dataset.embeddings,
        seen_labels=dataset.seen_labels,
        unseen_labels=dataset.unseen_labels,
        seen_vectors=dataset.seen_vectors,
        unseen_vectors=dataset.unseen_vectors,
        training={
            "dataset": dataset.name,
            "config": cfg.to_dict(),
            "epoch": record["epoch"] + 1,
            "history": [{k: h[k] for k in ("epoch", "loss", "select") if k in h} for h in history],
        },
        metrics={"val": record.get("val", {}), "test": record.get("test", {})},
    )


def _report(record: dict, dataset: Dataset, improved: bool) -> None:
    note = " (best so far: saved to best/)" if improved else ""
    print(f"\nepoch {record['epoch'] + 1}: loss {record['loss']:.4f}{note}", file=sys.stderr)
    if record.get("val"):
        print(format_table(record["val"], "held-out fold of the training split:"), file=sys.stderr)
    print(format_table(record["test"], f"{dataset.name} test split:"), file=sys.stderr)


def _plot(history: list[dict], path: Path) -> None:
    from .errors import optional

    optional("matplotlib", "Drawing the training curves").use("Agg")
    plt = optional("matplotlib.pyplot", "Drawing the training curves")

    epochs = [h["epoch"] + 1 for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["loss"] for h in history], marker="o")
    left.set(title="training loss", xlabel="epoch")
    for part, style in (("val", "--"), ("test", "-")):
        for task, colour in (("zsl", "C0"), ("gzsl", "C1")):
            values = [h.get(part, {}).get(task, {}).get("map") for h in history]
            if any(v is not None for v in values):
                right.plot(
                    epochs,
                    [np.nan if v is None else v for v in values],
                    style,
                    color=colour,
                    marker="o",
                    label=f"{task.upper()} mAP ({'held-out' if part == 'val' else 'test'})",
                )
    right.set(title="mAP", xlabel="epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)


# How a run is carried out, not what it computes: a run may resume with other values (on a
# GPU after a CPU, with more epochs, other workers).
RUNTIME_FIELDS = frozenset({"device", "amp", "workers", "extract_batch", "save_every", "epochs", "patience", "cache"})


def _check_or_write_config(out: Path, cfg: TrainConfig, dataset: Dataset) -> None:
    """The effective config beside the checkpoints; a resumed run must define the same run
    (everything but ``RUNTIME_FIELDS``), and the file then records the values it resumed with."""
    effective = json.loads(json.dumps({"dataset": dataset.name, "config": cfg.to_dict()}))
    path = out / "config.json"
    if path.exists():
        saved = json.loads(path.read_text())

        def defining(record: dict) -> dict:
            config = {k: v for k, v in record.get("config", {}).items() if k not in RUNTIME_FIELDS}
            return {**record, "config": config}

        if defining(saved) != defining(effective):
            changed = sorted(
                k
                for k in {*saved.get("config", {}), *effective["config"]} - RUNTIME_FIELDS
                if saved.get("config", {}).get(k) != effective["config"].get(k)
            )
            raise InputError(
                f"{out} holds a run with another config ({path}; differs in {', '.join(changed) or 'dataset'}): "
                f"resume with the same options or use another --out"
            )
    barrier()
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(effective, indent=2))
    barrier()


def _save_state(folder: Path, model, optimiser, epoch: int, step: int, history: list) -> None:
    """Model + optimiser tensors and the position (in the header) in one file, renamed into place."""
    if not is_main():
        return
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimiser.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()  # this rank's device (dropout draws there)
    position = {"epoch": epoch, "step": step, "history": history, "param_groups": opt["param_groups"]}
    save_file(tensors, str(folder / "state.safetensors.tmp"), metadata={"position": json.dumps(position)})
    os.replace(folder / "state.safetensors.tmp", folder / "state.safetensors")


def _resume(folder: Path, model, optimiser) -> tuple[int, int, list]:
    path = folder / "state.safetensors"
    if not path.exists():
        return 0, 0, []
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        position = json.loads(handle.metadata()["position"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": position["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():  # a run moved to the CPU has no use for it
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if is_main():
        print(f"resuming from {path}: epoch {position['epoch'] + 1}, step {position['step']}", file=sys.stderr)
    return position["epoch"], position["step"], position["history"]
