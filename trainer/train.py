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
import signal
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .backbones import Backbone, build_backbone
from .baselines import conse_embedding
from .checkpoint import Bundle
from .class_text import dataset_imagenet_vectors
from .config import TrainConfig as TrainConfig  # where it was defined before trainer.config: callers import it here
from .datasets import Dataset, has_positive, held_out_fold, label_rows
from .distributed import all_sum, barrier, is_main, setup, world
from .errors import InputError, TrainingDiverged, optional
from .evaluate import evaluate_model, format_table
from .features import extract_features
from .loss import epsilon_loss
from .model import Epsilon
from .paper import comparison
from .state import resume, save_state
from .tokens import CachedTokens, StreamedTokens, TokenBatch, TokenSource, choose_cache, token_shape


@dataclass
class _Run:
    """What the loop carries from step to step: the data, the model and where it stands."""

    dataset: Dataset
    cfg: TrainConfig  # as given, with what the backbone and the data decide
    out: Path
    device: torch.device
    progress: bool
    train_tokens: TokenSource
    test_tokens: TokenSource
    fit_rows: np.ndarray  # the training images the loop draws batches from
    val_rows: np.ndarray  # the held-out fold that chooses the best epoch
    test_rows: np.ndarray
    word_vectors: torch.Tensor  # what the loss scores against: seen words (+ ImageNet's classes)
    transfer: _Transfer | None
    model: Epsilon
    ddp: torch.nn.Module  # the model, wrapped for DistributedDataParallel under torchrun
    optimiser: torch.optim.Optimizer
    backbone_spec: dict
    history: list[dict]
    start_epoch: int
    start_step: int
    best: float = -math.inf
    stale: int = 0  # epochs since the best

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.fit_rows) / self.cfg.batch_size)


class _CtrlC:
    """Ctrl-C while training: the step under way finishes, the run is saved there and stops
    (a second Ctrl-C stops at once). One process only: under torchrun the ranks could stop
    at different steps, so there the saves every ``save_every`` steps are what resumes."""

    def __init__(self) -> None:
        self.asked = False
        self.previous: Any = None

    def __enter__(self) -> _CtrlC:
        if world()[1] == 1 and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print("\nCtrl-C: saving after this step (press it again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(
    dataset: Dataset, cfg: TrainConfig, out: str | Path, cache_root: str | Path, *, progress: bool = True
) -> dict:
    """Train (or resume) into ``out``; returns the history. Bundles: out/best, out/last."""
    run = _start(dataset, cfg, Path(out), Path(cache_root), progress)
    if run.start_epoch >= run.cfg.epochs and is_main():
        print(f"{out} has run its {run.cfg.epochs} epochs: nothing to train (--epochs N adds more)", file=sys.stderr)
    with _CtrlC() as ctrl_c:
        for epoch in range(run.start_epoch, run.cfg.epochs):
            losses = _train_epoch(run, epoch, ctrl_c)
            if _finish_epoch(run, epoch, losses):
                if is_main():
                    print(f"early stop: {cfg.patience} epochs without a better held-out figure", file=sys.stderr)
                break
    barrier()
    return {"history": run.history, "best": run.best}


def _start(dataset: Dataset, cfg: TrainConfig, out: Path, cache_root: Path, progress: bool) -> _Run:
    """Everything a run needs before its first step, from scratch or from ``out/state``."""
    device = setup(cfg.device)
    size = world()[1]
    if cfg.batch_size % size:
        raise InputError(f"batch size {cfg.batch_size} must be divisible by the {size} torchrun processes")
    torch.manual_seed(cfg.seed)  # before the backbone is built: its construction draws too
    backbone = build_backbone(cfg.backbone, cfg.backbone_weights, device=device)
    head = backbone.imagenet_head() if cfg.model.prior != "none" else None
    cfg = _decided(cfg, backbone, dataset, head)
    _check_or_write_config(out, cfg, dataset)
    classes = token_shape(backbone)[2]
    spec = backbone.spec()
    train_tokens, test_tokens = _token_sources(dataset, backbone, cfg, cache_root, device, progress)
    del backbone  # the streaming sources hold it; the cached ones never run it again
    vectors, transfer = _transfer(dataset, classes, cfg)
    fit_rows, val_rows, test_rows = _rows(dataset, cfg, train_tokens, test_tokens)

    model = Epsilon(cfg.model)
    if head is not None:
        model.attach_prior(*head, torch.from_numpy(_imagenet_names(dataset, classes, "--prior", cfg)))
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, start_step, history = resume(out / "state", model, optimiser)
    ddp: torch.nn.Module = model
    if size > 1:
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run = _Run(
        dataset=dataset,
        cfg=cfg,
        out=out,
        device=device,
        progress=progress,
        train_tokens=train_tokens,
        test_tokens=test_tokens,
        fit_rows=fit_rows,
        val_rows=val_rows,
        test_rows=test_rows,
        word_vectors=torch.from_numpy(vectors).to(device),
        transfer=transfer,
        model=model,
        ddp=ddp,
        optimiser=optimiser,
        backbone_spec=spec,
        history=history,
        start_epoch=start_epoch,
        start_step=start_step,
    )
    finished = [h["select"] for h in history if "select" in h]
    if finished:
        run.best, run.stale = max(finished), len(finished) - 1 - int(np.argmax(finished))
    return run


def _decided(
    cfg: TrainConfig, backbone: Backbone, dataset: Dataset, head: tuple[torch.Tensor, torch.Tensor] | None
) -> TrainConfig:
    """The config with what the backbone and the data decide, on a copy: the caller's stays as given."""
    prior_classes = int(head[0].shape[0]) if head is not None else cfg.model.prior_classes
    model = replace(
        cfg.model, token_dim=backbone.token_dim, d_w=int(dataset.seen_vectors.shape[1]), prior_classes=prior_classes
    )
    return replace(cfg, model=model)


def _rows(
    dataset: Dataset, cfg: TrainConfig, train_tokens: TokenSource, test_tokens: TokenSource
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows trained on, held out and tested: every image whose tokens can be had,
    and for training only those with a positive seen label (the method's rule)."""
    fit_rows, val_rows = held_out_fold(len(dataset.train), cfg.val_fraction, cfg.seed, cfg.val_max)
    fit_rows, val_rows = train_tokens.usable(fit_rows), train_tokens.usable(val_rows)
    fit_rows = fit_rows[has_positive(dataset.train.seen, fit_rows)]
    if len(fit_rows) == 0:
        raise InputError("no training image has a positive seen label")
    return fit_rows, val_rows, test_tokens.usable(np.arange(len(dataset.test)))


def _train_epoch(run: _Run, epoch: int, ctrl_c: _CtrlC | None = None) -> list[float]:
    """One epoch's steps from where the run stands; the loss of each step. After a Ctrl-C
    (``ctrl_c``): saved at the step reached, then KeyboardInterrupt."""
    cfg = run.cfg
    halved = cfg.lr_halve_epoch and epoch + 1 >= cfg.lr_halve_epoch
    for group in run.optimiser.param_groups:
        group["lr"] = cfg.lr * (0.5 if halved else 1.0)
    order = np.random.default_rng([cfg.seed, epoch]).permutation(run.fit_rows)
    run.model.train()
    steps = run.steps_per_epoch
    bar = _bar(steps, run.start_step, f"epoch {epoch + 1}/{cfg.epochs}", run.progress and is_main())
    last = run.history[-1] if run.history else {}
    losses = list(last.get("partial_losses", [])) if last.get("epoch") == epoch else []
    run.history = [h for h in run.history if h.get("epoch") != epoch]
    shares = _shares(order, range(run.start_step, steps), cfg.batch_size)
    for step, batch in enumerate(run.train_tokens.batches(shares), start=run.start_step):
        losses.append(_step(run, batch, epoch, step))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        stopping = ctrl_c is not None and ctrl_c.asked
        if stopping or (cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < steps):
            _check_weights(run.model, epoch, step, cfg, run.out)
            partial = [*run.history, {"epoch": epoch, "partial_losses": losses}]
            save_state(run.out / "state", run.model, run.optimiser, epoch, step + 1, partial)
        if stopping:
            bar.close()
            print(
                f"Interrupted: saved at epoch {epoch + 1}, step {step + 1} of {steps}; run the same command to "
                f"go on from there.",
                file=sys.stderr,
            )
            raise KeyboardInterrupt
    bar.close()
    # A finite loss can still take a step to infinite weights (the last step of an epoch).
    _check_weights(run.model, epoch, steps - 1, cfg, run.out)
    run.start_step = 0
    return losses


def _shares(order: np.ndarray, steps: range, batch_size: int) -> list[np.ndarray]:
    """This rank's share of every global batch: what a DistributedSampler hands out, but
    cut from the one global order, so N ranks take the steps one process takes and resume
    at a step (streaming decodes only this share)."""
    rank, size = world()
    shares = []
    for step in steps:
        global_batch = order[step * batch_size : (step + 1) * batch_size]
        share = math.ceil(len(global_batch) / size)
        shares.append(np.sort(global_batch[rank * share : (rank + 1) * share]))
    return shares


def _step(run: _Run, batch: TokenBatch, epoch: int, step: int) -> float:
    """One optimiser step on a batch; the global batch's mean loss."""
    cfg, device = run.cfg, run.device
    labels = label_rows(run.dataset.train.seen, batch.rows)
    if run.transfer is not None and cfg.imagenet_labels:
        labels = np.concatenate([labels, run.transfer.labels(batch.logits)], axis=1)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
        semantic = run.ddp(batch.tokens)
    parts = epsilon_loss(semantic.float(), run.word_vectors, torch.from_numpy(labels).to(device), lam=cfg.lam)
    per_image = parts.per_image
    if run.transfer is not None and cfg.distill:
        target = run.transfer.teacher(batch.logits)[parts.used]
        # Only the trained rows: a prior row is the teacher already.
        trained = semantic.float()[parts.used][:, : cfg.model.num_groups]
        closest = torch.nn.functional.cosine_similarity(trained, target[:, None], dim=-1)
        per_image = per_image + cfg.distill * (1.0 - closest.amax(dim=1))
    # The mean over the global batch's used images, whatever each rank holds: DDP
    # averages gradients over ranks, hence the factor of the world size.
    used = all_sum(torch.tensor(float(parts.images), device=device))
    loss = per_image.sum() / used.clamp(min=1) * world()[1]
    if not bool(torch.isfinite(all_sum(loss.detach()))):  # every rank sees the same sum: all stop together
        raise _diverged("the loss is not a finite number", epoch, step, cfg, run.out)
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    return float(all_sum(per_image.detach().sum()) / used.clamp(min=1))


def _finish_epoch(run: _Run, epoch: int, losses: list[float]) -> bool:
    """Evaluate, save the bundles, the curves and the state; whether to stop early."""
    cfg, dataset = run.cfg, run.dataset
    record: dict = {
        "epoch": epoch,
        "loss": float(np.mean(losses)) if losses else float("nan"),
        "lr": run.optimiser.param_groups[0]["lr"],
        "step_losses": losses,
    }
    if is_main():
        if len(run.val_rows):
            record["val"] = evaluate_model(
                run.model, run.train_tokens, dataset.train, run.val_rows, dataset, run.device
            )
        else:
            record["val"] = {}
        record["test"] = evaluate_model(run.model, run.test_tokens, dataset.test, run.test_rows, dataset, run.device)
        record["select"] = _selection_figure(record)
        run.history.append(record)
        improved = record["select"] > run.best
        bundle = _bundle(run.model, dataset, cfg, run.history, record, run.backbone_spec)
        bundle.save(run.out / "last")
        if improved:
            run.best = record["select"]
            bundle.save(run.out / "best")
        _plot(run.history, run.out / "curves.png")
        (run.out / "history.json").write_text(json.dumps(run.history, indent=2))
        _report(record, dataset, improved, cfg.recipe)
        run.stale = 0 if improved else run.stale + 1
    save_state(run.out / "state", run.model, run.optimiser, epoch + 1, 0, run.history)
    stop = torch.tensor(float(cfg.patience and run.stale >= cfg.patience), device=run.device)
    return float(all_sum(stop)) > 0


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


def _token_sources(
    dataset: Dataset, backbone: Backbone, cfg: TrainConfig, cache_root: Path, device: torch.device, progress: bool
) -> tuple[TokenSource, TokenSource]:
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

    def source(part: str, images: list[Path]) -> TokenSource:
        if not cached:
            return StreamedTokens(images, backbone, device, cfg.workers)
        features = extract_features(
            images,
            backbone,
            cache_root / part,
            batch_size=cfg.extract_batch,
            workers=cfg.workers,
            device=device,
            progress=progress,
        )
        return CachedTokens(features, device)

    return source("train", dataset.train.images), source("test", dataset.test.images)


def _imagenet_names(dataset: Dataset, classes: int, option: str, cfg: TrainConfig) -> np.ndarray:
    """Word vectors of the 1,000 ImageNet classes, in the dataset's word space."""
    if not classes:
        raise InputError(f"{option} needs a CNN backbone whose ImageNet head is cached")
    return dataset_imagenet_vectors(dataset, option, cfg.class_text)


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


def _bundle(
    model: Epsilon, dataset: Dataset, cfg: TrainConfig, history: list[dict], record: dict, backbone: dict
) -> Bundle:
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


def _report(record: dict, dataset: Dataset, improved: bool, recipe: str) -> None:
    note = " (best so far: saved to best/)" if improved else ""
    print(f"\nepoch {record['epoch'] + 1}: loss {record['loss']:.4f}{note}", file=sys.stderr)
    if record.get("val"):
        print(format_table(record["val"], "held-out fold of the training split:"), file=sys.stderr)
    print(format_table(record["test"], f"{dataset.name} test split:"), file=sys.stderr)
    against = comparison(dataset.name, record["test"], f"epoch {record['epoch'] + 1} test split against the paper:")
    if recipe == "paper" and against:
        print(against, file=sys.stderr)


def _plot(history: list[dict], path: Path) -> None:
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


def _bar(total: int, initial: int, desc: str, enabled: bool) -> tqdm:
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
