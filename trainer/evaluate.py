"""ZSL and GZSL evaluation from cached tokens, and the paper's table layout.

ZSL ranks the unseen labels only; GZSL ranks seen and unseen labels together. The figures
are fractions in [0, 1]; tables print them as percentages like the paper.
"""

from __future__ import annotations

import numpy as np
import torch

from .datasets import Dataset, Split, label_rows
from .metrics import Protocol, evaluate_scores
from .model import Epsilon, score

_BATCH = 512


@torch.inference_mode()
def semantic_vectors(model: Epsilon, tokens: np.ndarray, rows: np.ndarray, device="cpu") -> torch.Tensor:
    """S (len(rows) x M x d_w, float32 on the CPU) for cached token rows, in batches."""
    model.eval()
    out = []
    for start in range(0, len(rows), _BATCH):
        batch = torch.from_numpy(np.asarray(tokens[rows[start : start + _BATCH]], dtype=np.float32)).to(device)
        out.append(model(batch).float().cpu())
    if not out:
        return torch.zeros(0, model.cfg.rows, model.cfg.d_w)
    return torch.cat(out)


def tasks(scores_seen, scores_unseen, split: Split, rows: np.ndarray, protocol: Protocol) -> dict:
    """{"zsl": figures, "gzsl": figures} for one split (ZSL only where there are unseen labels)."""
    seen = label_rows(split.seen, rows)
    result = {}
    if split.unseen is not None and scores_unseen is not None and scores_unseen.shape[1]:
        unseen = label_rows(split.unseen, rows)
        result["zsl"] = evaluate_scores(scores_unseen, unseen, protocol)
        result["gzsl"] = evaluate_scores(
            np.concatenate([scores_seen, scores_unseen], axis=1), np.concatenate([seen, unseen], axis=1), protocol
        )
    else:
        result["gzsl"] = evaluate_scores(scores_seen, seen, protocol)
    return result


def evaluate_model(
    model: Epsilon, tokens: np.ndarray, split: Split, rows: np.ndarray, dataset: Dataset, device="cpu"
) -> dict:
    """ZSL / GZSL figures of an Epsilon model on the given rows of a split."""
    semantic = semantic_vectors(model, tokens, rows, device)
    seen = score(semantic, torch.from_numpy(dataset.seen_vectors)).numpy()
    unseen = score(semantic, torch.from_numpy(dataset.unseen_vectors)).numpy() if dataset.has_unseen else None
    return tasks(seen, unseen, split, rows, dataset.protocol)


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
