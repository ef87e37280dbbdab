"""ZSL and GZSL evaluation, and the paper's table layout.

ZSL ranks the unseen labels only; GZSL ranks seen and unseen labels together. The figures
are fractions in [0, 1]; tables print them as percentages like the paper.
``evaluate_dataset`` is ``epsilon-train evaluate``: a bundle (or ConSE) on a dataset's
test split, from its token cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import Backbone, build_backbone
from .checkpoint import Bundle
from .class_text import ClassText, dataset_imagenet_vectors
from .config import DEFAULT_BACKBONE, ConseConfig
from .datasets import Dataset, LabelMatrix, Split, load_dataset
from .distributed import setup
from .embeddings import DEFAULT_EMBEDDINGS
from .errors import InputError
from .features import FeatureCache, default_cache, extract_features, list_digest
from .memory import return_freed_memory
from .metrics import Protocol, average_precision
from .model import Epsilon, conse_embedding, score
from .tokens import CachedTokens, TokenSource

_BATCH = 512


def evaluate_dataset(
    dataset: str,
    data: Path,
    bundle: Path | None,
    *,
    split: str = "all",
    unseen: Path | None = None,
    conse: ConseConfig | None = None,
    text: ClassText | None = None,
    embeddings: str | None = None,
    backbone: str | None = None,
    backbone_weights: str | None = None,
    cache: Path | None = None,
    device: str = "auto",
    workers: int = 2,
    progress: bool = True,
) -> tuple[dict, str, dict]:
    """The figures of the bundle at ``bundle`` on a dataset's test split (of ConSE from the
    backbone's ImageNet head when it is None, with ``conse`` and ``text``), the title
    of their table, and the bundle's training section (how it was made; ConSE: empty).
    ``split`` and ``unseen`` choose a COCO folder's photos and zero-shot categories;
    ``embeddings`` and ``backbone`` are ConSE's (a bundle has its own)."""
    model = Bundle.load(bundle) if bundle is not None else None
    source = model.embeddings.get("source") if model else embeddings or DEFAULT_EMBEDDINGS
    test_set = _test_set(dataset, data, model, source, split, unseen)
    name = model.backbone.get("name", DEFAULT_BACKBONE) if model else backbone or DEFAULT_BACKBONE
    dev = setup(device)
    net = model.build_backbone(backbone_weights, dev) if model else _conse_backbone(name, backbone_weights, dev)
    # Every COCO folder and split is its own image list: each gets its own default cache.
    cache_name = dataset if dataset != "coco" else f"coco-{list_digest(test_set.test.images)[:12]}"
    folder = (cache or default_cache(cache_name, name, backbone_weights)) / "test"
    features = extract_features(test_set.test.images, net, folder, workers=workers, device=dev, progress=progress)
    rows = np.flatnonzero(features.ok)
    where = f"on {test_set.name} test split ({len(rows)} images):"
    if model is not None:
        figures = evaluate_model(model.model.to(dev), CachedTokens(features, dev), test_set.test, rows, test_set, dev)
        return figures, f"{bundle} {where}", model.training
    conse, text = conse or ConseConfig(), text or ClassText()
    figures = _conse_figures(features, rows, test_set, conse, text)
    return figures, f"ConSE (top {conse.top}, T {conse.temperature:g}, classes named by {text}) {where}", {}


def _test_set(
    dataset: str, data: Path, model: Bundle | None, source: str | None, split: str, unseen: Path | None
) -> Dataset:
    """The dataset in the bundle's word space (or ConSE's), as the bundle was trained on it."""
    options: dict[str, Any] = {"embeddings": source} if source else {}
    if dataset == "corel5k" and model is not None and not model.unseen_labels:
        options["mode"] = "all-seen"
    if dataset == "coco":
        options.update(split=split, unseen=unseen)
    return load_dataset(dataset, data, **options)


def _conse_backbone(name: str, weights: str | None, device: torch.device) -> Backbone:
    net = build_backbone(name, weights, device=device)
    if not net.is_cnn:
        raise InputError("ConSE reads the backbone's ImageNet head: use a CNN backbone such as efficientnet_lite0")
    return net


def _conse_figures(
    features: FeatureCache, rows: np.ndarray, dataset: Dataset, conse: ConseConfig, text: ClassText
) -> dict:
    vectors = torch.from_numpy(dataset_imagenet_vectors(dataset, "ConSE", text))
    logits = torch.from_numpy(np.asarray(features.logits[rows], dtype=np.float32))
    return conse_tasks(logits, dataset, dataset.test, rows, vectors, conse)


def conse_tasks(
    logits: torch.Tensor,
    dataset: Dataset,
    split: Split,
    rows: np.ndarray,
    class_vectors: torch.Tensor,
    conse: ConseConfig,
) -> dict:
    """ConSE's ZSL / GZSL figures on some rows of a split, from the backbone's logits: its
    unit embedding is a one-row S, so that ``score`` gives ``conse_scores``' cosines."""
    embedding = F.normalize(conse_embedding(logits, class_vectors, conse.top, conse.temperature), dim=-1)
    return semantic_tasks(embedding[:, None, :], split, rows, dataset)


@torch.inference_mode()
def semantic_vectors(
    model: Epsilon, source: TokenSource, rows: np.ndarray, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, np.ndarray]:
    """S (on the CPU) for some rows of a token source (``trainer.tokens``), in batches, and
    the rows it covers (an image that fails to decode is left out): fp32, or fp16 where fp32
    would pass 256 MB (Open Images' 125,436 test images x 8 x 300: 1.2 GB), as the tagger
    stores S; scoring converts it back a chunk at a time."""
    model.eval()
    dtype = torch.float16 if len(rows) * model.cfg.rows * model.cfg.d_w * 4 > _FP32_LIMIT else torch.float32
    # Filled in place: a list of batches and their concatenation would hold S twice.
    out, kept, filled = torch.empty(len(rows), model.cfg.rows, model.cfg.d_w, dtype=dtype), [], 0
    for batch in source.batches(rows[start : start + _BATCH] for start in range(0, len(rows), _BATCH)):
        if not len(batch.rows):  # every image of the batch failed to decode
            continue
        out[filled : filled + len(batch.rows)] = model(batch.tokens.to(device)).to(torch.device("cpu"), dtype)
        kept.append(batch.rows)
        filled += len(batch.rows)
    return out[:filled], np.concatenate(kept) if kept else np.zeros(0, np.int64)


_FP32_LIMIT = 1 << 28  # bytes of S kept in fp32


def evaluate_model(
    model: Epsilon,
    source: TokenSource,
    split: Split,
    rows: np.ndarray,
    dataset: Dataset,
    device: str | torch.device = "cpu",
) -> dict:
    """ZSL / GZSL figures of an Epsilon model on the given rows of a split."""
    semantic, kept = semantic_vectors(model, source, rows, device)
    return semantic_tasks(semantic, split, kept, dataset)


def semantic_tasks(semantic: torch.Tensor, split: Split, rows: np.ndarray, dataset: Dataset) -> dict:
    """ZSL / GZSL figures from S (N x M x d_w), scoring a block of classes at a time: Open
    Images' 125,436 test images x 7,586 classes would be 3.8 GB of scores held at once."""
    seen = (dataset.seen_vectors, _rows_of(split.seen, rows))
    result = {}
    if dataset.has_unseen and split.unseen is not None and len(dataset.unseen_vectors):
        unseen = (dataset.unseen_vectors, _rows_of(split.unseen, rows))
        result["zsl"] = blocked_scores(semantic, [unseen], dataset.protocol)
        result["gzsl"] = blocked_scores(semantic, [seen, unseen], dataset.protocol)
    else:
        result["gzsl"] = blocked_scores(semantic, [seen], dataset.protocol)
    return result


def _rows_of(matrix: LabelMatrix, rows: np.ndarray) -> LabelMatrix:
    """Some rows of a label matrix, kept sparse (as columns) when it is sparse."""
    block = matrix[rows]
    return block.tocsc() if hasattr(block, "tocsc") else np.asarray(block, dtype=np.int8)


def _dense(labels: LabelMatrix, start: int, stop: int) -> np.ndarray:
    block = labels[:, start:stop]
    return np.asarray(block.toarray() if hasattr(block, "toarray") else block, dtype=np.int8)


_CLASSES = 64  # classes scored at a time (Open Images: 32 MB of scores)
_IMAGES = 2048  # images scored at a time within a block (their M x B products)


def blocked_scores(semantic: torch.Tensor, segments: list, protocol: Protocol) -> dict:
    """``evaluate_scores`` of ``score(semantic, vectors)`` against labels, for the classes
    of several (vectors, labels) segments side by side (GZSL: seen then unseen), without
    holding the N x C scores: per block of classes, its APs, and a running top-K per image."""
    return_freed_memory()
    n = len(semantic)
    images = np.arange(n)
    if protocol.positive_images_only:
        keep = np.zeros(n, dtype=bool)
        for _, labels in segments:
            positive = labels > 0
            keep |= np.asarray(positive.sum(axis=1)).reshape(-1) > 0
        images = np.flatnonzero(keep)  # S is read through these rows, never copied whole
        segments = [(v, labels[images]) for v, labels in segments]
    total = sum(len(v) for v, _ in segments)
    ks = [k for k in protocol.ks if k <= total]
    kmax = max(ks, default=0)
    best = torch.full((len(images), kmax), -torch.inf)
    best_class = torch.full((len(images), kmax), -1, dtype=torch.long)
    aps, offset, positives = [], 0, 0
    for vectors, labels in segments:
        words = torch.nn.functional.normalize(torch.as_tensor(np.asarray(vectors, dtype=np.float32)), dim=-1)
        for start in range(0, len(words), _CLASSES):
            stop = min(start + _CLASSES, len(words))
            scores = torch.empty(len(images), stop - start)  # filled in place: no list + concatenation
            for i in range(0, len(images), _IMAGES):
                rows = torch.from_numpy(images[i : i + _IMAGES])
                scores[i : i + _IMAGES] = score(semantic[rows].float(), words[start:stop])
            dense = _dense(labels, start, stop)
            ap = average_precision(scores.numpy(), dense)
            if protocol.drop_unannotated_classes:
                ap = ap[(dense != 0).any(axis=0)]
            aps.append(ap)
            positives += int((dense > 0).sum())
            if kmax:  # the block's own top-K first: the merge then handles 2K columns, not K + a block
                values, where = scores.topk(min(kmax, stop - start), dim=1)
                merged, at = torch.cat([best, values], dim=1).topk(kmax, dim=1)
                best_class = torch.cat([best_class, where + offset + start], dim=1).gather(1, at)
                best = merged
        offset += len(words)
    all_aps = np.concatenate(aps) if aps else np.zeros(0)
    result: dict[str, Any] = {"map": float(all_aps.mean()) if all_aps.size else 0.0, "k": {}}
    for k in ks:
        hits = _label_at(segments, best_class[:, :k].numpy()) > 0
        tp = int(hits.sum())
        precision = tp / (len(images) * k) if len(images) else 0.0
        recall = tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        result["k"][k] = {"precision": precision, "recall": recall, "f1": f1}
    return result


def _label_at(segments: list, classes: np.ndarray) -> np.ndarray:
    """Labels of each image (row) at the given global class ids (N x K)."""
    out = np.zeros(classes.shape, dtype=np.int8)
    images = np.repeat(np.arange(classes.shape[0]), classes.shape[1]).reshape(classes.shape)
    offset = 0
    for vectors, labels in segments:
        inside = (classes >= offset) & (classes < offset + len(vectors))
        if inside.any():
            picked = labels[images[inside], classes[inside] - offset]
            out[inside] = np.asarray(picked).reshape(-1)
        offset += len(vectors)
    return out


def format_table(figures: dict, title: str = "") -> str:
    """The paper's Table 1 / 2 layout: mAP, then P / R / F1 at each K, one row per task."""
    ks = sorted({k for f in figures.values() for k in f["k"]}, key=int)
    header = f"{'':6} {'mAP':>6} " + " ".join(f"{'P@' + str(k):>6} {'R@' + str(k):>6} {'F1@' + str(k):>6}" for k in ks)
    lines = [title] if title else []
    lines.append(header)
    for task in ("zsl", "gzsl"):
        if task not in figures:
            continue
        f = figures[task]
        cells = " ".join(
            " ".join(f"{100 * f['k'][k][m]:6.1f}" for m in ("precision", "recall", "f1"))
            if k in f["k"]
            else f"{'-':>6} {'-':>6} {'-':>6}"
            for k in ks
        )
        lines.append(f"{task.upper():6} {100 * f['map']:6.1f} {cells}")
    lines.append("(percentages)")
    return "\n".join(lines)


def to_json(figures: dict) -> dict:
    """JSON-ready figures: keys 'zsl' / 'gzsl', each {'map', 'k': {'3': {...}}}, fractions."""
    return {task: {"map": f["map"], "k": {str(k): dict(v) for k, v in f["k"].items()}} for task, f in figures.items()}
