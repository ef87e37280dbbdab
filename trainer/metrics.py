"""mAP and top-K precision / recall / F1 under the LESA / BiAM protocol.

Labels are +1 (present), -1 (absent) and 0 (not annotated, ignored). Everything is
vectorised over images and classes: NUS-WIDE's test set is 107,859 x 1,006 scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Classes are ranked in blocks so that the sort's index and gather arrays stay a few
# hundred MB at NUS-WIDE scale instead of several GB.
_CLASS_BLOCK = 128


def _numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def average_precision(scores, labels) -> np.ndarray:
    """Per-class non-interpolated AP (C), as ``sklearn.metrics.average_precision_score``.

    For each class only images labelled +1 or -1 are ranked; tied scores form one
    threshold, as in sklearn. A class with no positive gets AP 0.
    """
    scores = _numpy(scores).astype(np.float64)
    labels = _numpy(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal N x C arrays")
    n, c = scores.shape
    result = np.zeros(c, dtype=np.float64)
    for start in range(0, c, _CLASS_BLOCK):
        s = scores[:, start:start + _CLASS_BLOCK]
        y = labels[:, start:start + _CLASS_BLOCK]
        valid = y != 0
        # Unannotated cells sink below every real score so they never split a tie group.
        s = np.where(valid, s, -np.inf)
        order = np.argsort(-s, axis=0, kind="stable")
        s_sorted = np.take_along_axis(s, order, axis=0)
        pos = np.take_along_axis(y > 0, order, axis=0)
        seen = np.take_along_axis(valid, order, axis=0)
        tp = np.cumsum(pos, axis=0)
        ranked = np.cumsum(seen, axis=0)
        # A threshold ends where the next score differs (or at the last row).
        ends = np.ones_like(pos)
        ends[:-1] = s_sorted[:-1] != s_sorted[1:]
        ends &= seen
        precision = np.divide(tp, ranked, out=np.zeros(tp.shape), where=ranked > 0)
        # Recall steps by the positives of each tie group; credit them at the group's end.
        tp_at_ends = np.where(ends, tp, 0)
        prev = np.maximum.accumulate(np.vstack([np.zeros((1, tp.shape[1])), tp_at_ends[:-1]]), axis=0)
        gained = np.where(ends, tp - prev, 0)
        npos = pos.sum(axis=0)
        ap = (gained * precision).sum(axis=0)
        result[start:start + s.shape[1]] = np.divide(ap, npos, out=np.zeros(ap.shape), where=npos > 0)
    return result


def mean_average_precision(scores, labels, *, drop_unannotated_classes: bool = False) -> float:
    """mAP over classes. With ``drop_unannotated_classes`` (Open Images GZSL), classes with
    no +1 or -1 cell are left out of the mean instead of counting as AP 0."""
    ap = average_precision(scores, labels)
    if drop_unannotated_classes:
        annotated = (_numpy(labels) != 0).any(axis=0)
        ap = ap[annotated]
    return float(ap.mean()) if ap.size else 0.0


def topk_prf(scores, labels, k: int) -> tuple[float, float, float]:
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


def evaluate_scores(scores, labels, protocol: Protocol) -> dict:
    """{"map": float, "k": {K: {"precision", "recall", "f1"}}} for one task (ZSL or GZSL)."""
    scores = _numpy(scores)
    labels = _numpy(labels)
    if protocol.positive_images_only:
        keep = (labels > 0).any(axis=1)
        scores, labels = scores[keep], labels[keep]
    result = {
        "map": mean_average_precision(
            scores, labels, drop_unannotated_classes=protocol.drop_unannotated_classes
        ),
        "k": {},
    }
    for k in protocol.ks:
        p, r, f1 = topk_prf(scores, labels, k)
        result["k"][k] = {"precision": p, "recall": r, "f1": f1}
    return result
