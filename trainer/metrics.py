"""mAP and top-K precision / recall / F1 under the LESA / BiAM protocol.

Labels are +1 (present), -1 (absent) and 0 (not annotated, ignored). Everything is
vectorised over images and classes: NUS-WIDE's test set is 107,859 x 1,006 scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

# Scores and labels as callers have them: arrays, lists, or tensors on any device.
ArrayLike = npt.ArrayLike | torch.Tensor

# Classes are ranked in blocks so that the sort's index and gather arrays stay a few
# hundred MB at NUS-WIDE scale instead of several GB.
_CLASS_BLOCK = 128


def _numpy(array: ArrayLike) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def average_precision(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Per-class non-interpolated AP (C), as ``sklearn.metrics.average_precision_score``.

    For each class only images labelled +1 or -1 are ranked; tied scores form one
    threshold, as in sklearn. A class with no positive gets AP 0.
    """
    scores = _numpy(scores)
    labels = _numpy(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal N x C arrays")
    dtype = torch.float64 if scores.dtype == np.float64 else torch.float32
    result = np.zeros(scores.shape[1], dtype=np.float64)
    # Classes at a time: 128, or fewer where there are many images, so that the sort's
    # temporaries (about 64 bytes a cell) stay near 32 MB at Open Images' 125,436 images.
    block = max(1, min(_CLASS_BLOCK, (1 << 19) // max(scores.shape[0], 1)))
    for start in range(0, scores.shape[1], block):
        # One row per class (contiguous), so the sort runs along memory, not across it.
        s = torch.as_tensor(np.ascontiguousarray(scores[:, start : start + block].T)).to(dtype)
        y = torch.as_tensor(np.ascontiguousarray(labels[:, start : start + block].T))
        valid = y != 0
        # Unannotated cells sink below every real score so they never split a tie group.
        s = s.masked_fill(~valid, float("-inf"))
        s_sorted, order = s.sort(dim=1, descending=True)
        pos = (y > 0).gather(1, order)
        seen = valid.gather(1, order)
        tp = pos.cumsum(dim=1, dtype=torch.float64)
        ranked = seen.cumsum(dim=1, dtype=torch.float64)
        # A threshold ends where the next score differs (or at the last row).
        ends = torch.ones_like(pos)
        ends[:, :-1] = s_sorted[:, :-1] != s_sorted[:, 1:]
        ends &= seen
        precision = tp / ranked.clamp(min=1)
        # Recall steps by the positives of each tie group; credit them at the group's end.
        tp_at_ends = torch.where(ends, tp, 0.0)
        before = torch.cat([torch.zeros_like(tp[:, :1]), tp_at_ends[:, :-1]], dim=1).cummax(dim=1).values
        gained = torch.where(ends, tp - before, 0.0)
        npos = tp[:, -1]
        ap = (gained * precision).sum(dim=1) / npos.clamp(min=1)
        result[start : start + s.shape[0]] = ap.numpy()
    return result


def mean_average_precision(scores: ArrayLike, labels: ArrayLike, *, drop_unannotated_classes: bool = False) -> float:
    """mAP over classes. With ``drop_unannotated_classes`` (Open Images GZSL), classes with
    no +1 or -1 cell are left out of the mean instead of counting as AP 0."""
    ap = average_precision(scores, labels)
    if drop_unannotated_classes:
        annotated = (_numpy(labels) != 0).any(axis=0)
        ap = ap[annotated]
    return float(ap.mean()) if ap.size else 0.0


def topk_prf(scores: ArrayLike, labels: ArrayLike, k: int) -> tuple[float, float, float]:
    """Top-K precision, recall and F1 from global counts.

    Every image predicts its K highest-scoring labels: P = TP / (N * K),
    R = TP / (number of +1 cells), F1 = 2PR / (P + R).
    """
    scores = torch.as_tensor(_numpy(scores)).float()
    labels = torch.as_tensor(_numpy(labels))
    n, c = scores.shape
    if not 1 <= k <= c:
        raise ValueError(f"k must be between 1 and the number of classes ({c}), got {k}")
    top = scores.topk(k, dim=1).indices
    tp = int((labels.gather(1, top) > 0).sum())
    positives = int((labels > 0).sum())
    precision = tp / (n * k) if n else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


@dataclass(frozen=True)
class Protocol:
    """How a dataset's test scores are turned into the paper's table figures."""

    ks: tuple[int, ...]
    positive_images_only: bool = False  # Open Images: images with no positive do not count
    drop_unannotated_classes: bool = False  # Open Images: classes never annotated are dropped


NUS_WIDE = Protocol(ks=(3, 5))
OPEN_IMAGES = Protocol(ks=(10, 20), positive_images_only=True, drop_unannotated_classes=True)


def evaluate_scores(scores: ArrayLike, labels: ArrayLike, protocol: Protocol) -> dict:
    """{"map": float, "k": {K: {"precision", "recall", "f1"}}} for one task (ZSL or GZSL)."""
    scores = _numpy(scores)
    labels = _numpy(labels)
    if protocol.positive_images_only:
        keep = (labels > 0).any(axis=1)
        scores, labels = scores[keep], labels[keep]
    result: dict[str, Any] = {
        "map": mean_average_precision(scores, labels, drop_unannotated_classes=protocol.drop_unannotated_classes),
        "k": {},
    }
    # A K beyond the number of labels ranks everything: there is no top-K to speak of.
    for k in (k for k in protocol.ks if k <= scores.shape[1]):
        p, r, f1 = topk_prf(scores, labels, k)
        result["k"][k] = {"precision": p, "recall": r, "f1": f1}
    return result
