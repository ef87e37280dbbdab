"""Choosing the tagger's rule (trainer.tagrule) on labelled validation photos.

Each validation set is a library in miniature: its photos' raw scores against its labelled
words, every word's mean over those photos, and labels saying which tags are right. For
every hubness-correction strength and keep-threshold on a grid, the tags each photo keeps
(``TagRule.kept``: its ``max_tags`` best, at or above the threshold) are compared with its
labels (micro F1 over photo x word cells); the rule with the best mean F1 over the sets
wins. Validation only: the Corel-5K fold the bundle was held out of when it was trained,
and COCO-format folders such as ``open_images_5``, never a test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .tagrule import TagRule

if TYPE_CHECKING:  # the datasets import torch; calibration imports them when it runs
    from .datasets import Dataset, Split

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(-0.5, 1.0, 0.01))


@dataclass
class ValidationSet:
    name: str
    raw: np.ndarray  # N photos x W words: the model's raw scores
    labels: np.ndarray  # N x W in {+1, -1, 0}; 0 (not annotated) is neither right nor wrong

    def means(self) -> np.ndarray:
        return self.raw.mean(axis=0, dtype=np.float64).astype(np.float32)


def kept_prf(kept: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of kept tags against labels (unannotated cells ignored)."""
    annotated = labels != 0
    tp = int((kept & (labels > 0)).sum())
    shown = int((kept & annotated).sum())
    positives = int((labels > 0).sum())
    precision = tp / shown if shown else 0.0
    recall = tp / positives if positives else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if tp else 0.0)


def choose_rule(sets: list[ValidationSet], max_tags: int = 10) -> tuple[TagRule, list[dict]]:
    """The rule with the best mean kept-tag F1 over the sets (ties: the weaker correction,
    then the lower threshold), and every strength's best row for the record."""
    rows: list[dict[str, Any]] = []
    for strength in STRENGTHS:
        corrected = [TagRule(strength).correct(s.raw, s.means()) for s in sets]
        for threshold in THRESHOLDS:
            rule = TagRule(strength, threshold, max_tags)
            figures = [kept_prf(rule.kept(c), s.labels) for c, s in zip(corrected, sets)]
            rows.append(
                {
                    "strength": float(strength),
                    "min_score": float(threshold),
                    "f1": float(np.mean([f[2] for f in figures])),
                    "sets": {s.name: {"precision": p, "recall": r, "f1": f} for s, (p, r, f) in zip(sets, figures)},
                }
            )
    best = max(rows, key=lambda r: (round(r["f1"], 6), -r["strength"], -r["min_score"]))
    per_strength = [max((r for r in rows if r["strength"] == s), key=lambda r: r["f1"]) for s in STRENGTHS]
    return TagRule(float(best["strength"]), float(best["min_score"]), max_tags), per_strength


def validation_sets(
    bundle,
    *,
    corel: str | Path | None = None,
    coco: str | Path | None = None,
    cache: Path,
    workers: int = 2,
    device="cpu",
    progress: bool = True,
) -> list[ValidationSet]:
    """The bundle's raw scores and the labels of each validation set asked for."""
    import torch

    from .datasets import held_out_fold, label_rows, load_dataset
    from .evaluate import semantic_vectors
    from .features import extract_features, list_digest
    from .model import score
    from .tokens import CachedTokens

    backbone = bundle.build_backbone(device=device)
    source = bundle.embeddings.get("source")
    sets: list[tuple[str, Dataset, Split, np.ndarray | None]] = []
    if corel is not None:
        # The fold this bundle's training held out (its seed and fraction), all 374 words.
        train_cfg = bundle.training.get("config", {})
        data = load_dataset("corel5k", corel, mode="all-seen", embeddings=source)
        _, rows = held_out_fold(
            len(data.train),
            train_cfg.get("val_fraction", 0.1),
            train_cfg.get("seed", 0),
            train_cfg.get("val_max", 20_000),
        )
        sets.append(("corel5k-held-out", data, data.train, rows))
    if coco is not None:
        data = load_dataset("coco", coco, embeddings=source)
        sets.append((f"coco-{Path(coco).name}", data, data.test, None))
    out = []
    for name, data, split, rows in sets:
        if rows is not None:  # only the photos used are read
            split = split.subset(rows)
        folder = cache / f"{name}-{list_digest(split.images)[:12]}"  # another fold or folder: another cache
        features = extract_features(split.images, backbone, folder, workers=workers, device=device, progress=progress)
        ok = np.flatnonzero(features.ok)
        semantic, ok = semantic_vectors(bundle.model.to(device), CachedTokens(features, device), ok, device)
        raw = score(semantic, torch.from_numpy(data.seen_vectors)).numpy()
        out.append(ValidationSet(name, raw, label_rows(split.seen, ok)))
    return out
