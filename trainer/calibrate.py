"""Choosing the tagger's rule (trainer.tagrule) on labelled validation photos.

Each validation set is a library in miniature: its photos' raw scores against its labelled
words and against the rest of the vocabulary a library starts with (``default_words``:
the model's labels and the shipped photo tags), every word's mean over those photos, and
labels saying which tags are right (the rest of the vocabulary is unlabelled: neither
right nor wrong). The kept tags of a photo (``TagRule.kept``: its ``max_tags`` best, at or
above the threshold) are compared with its labels (micro F1 over photo x word cells).

Two steps, because the two parts of the rule answer different questions:
1. the hubness correction, its level (the mean or a quantile) and strength: for each pair
   on a grid, its best threshold with the labelled words alone; the pair with the best mean
   F1 over the sets wins (a hub that tops the labelled words of many photos costs F1 in
   every set). Quantiles stop at 0.9: above it a word's level rests on less than a tenth of
   the library (10 photos of 100), and the rarer words it lets through are not labelled in
   step 1 (on the default model, 0.95 edged 0.9 there, 0.456 to 0.450, and put ``hot dog``
   among the 3 best tags of 26 ``open_images_5`` photos; trainer/results/everyday.md);
2. the keep threshold for that correction, with each photo's words ranked over the whole
   vocabulary, as a library ranks them: the F1 of each set weighted by the part of the
   vocabulary its labels cover. Chosen with the labelled words alone, the default's
   threshold (+0.23, where the 5 words of ``open_images_5`` separate) kept all 10 best of
   its 871 words on every real photo; a set whose labels cover a few words of the
   vocabulary cannot price a tag it does not label.
Validation only: the Corel-5K fold the bundle was held out of when it was trained, and
COCO-format folders such as ``open_images_5``, never a test split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .assets import default_words, normalise_word
from .embeddings import load_embeddings
from .tagrule import TagRule

if TYPE_CHECKING:  # the datasets import torch; calibration imports them when it runs
    from .datasets import Dataset, Split

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
QUANTILES = (None, 0.5, 0.75, 0.9)  # None: the mean
THRESHOLDS = tuple(round(t, 2) for t in np.arange(-0.5, 1.0, 0.01))


@dataclass
class ValidationSet:
    name: str
    raw: np.ndarray  # N photos x W words: the model's raw scores
    labels: np.ndarray  # N x W in {+1, -1, 0}; 0 (not annotated) is neither right nor wrong
    vocabulary: np.ndarray | None = None  # N x V raw scores of the vocabulary's unlabelled words

    def labelled(self, rule: TagRule) -> tuple[np.ndarray, np.ndarray]:
        """Corrected scores of the labelled words (each by its own level over the set), and their labels."""
        return rule.correct(self.raw, rule.levels(self.raw)), self.labels

    def ranked(self, rule: TagRule) -> tuple[np.ndarray, np.ndarray]:
        """Corrected scores of the labelled words and the rest of the vocabulary side by side
        (each corrected by its own level over the set, as a library does), and their labels."""
        every = self.raw if self.vocabulary is None else np.hstack([self.raw, self.vocabulary])
        labels = np.zeros(every.shape, dtype=self.labels.dtype)
        labels[:, : self.raw.shape[1]] = self.labels
        return rule.correct(every, rule.levels(every)), labels

    @property
    def share(self) -> float:
        """The part of the ranked vocabulary its labels cover."""
        return self.raw.shape[1] / (self.raw.shape[1] + (0 if self.vocabulary is None else self.vocabulary.shape[1]))


def kept_prf(kept: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of kept tags against labels (unannotated cells ignored)."""
    annotated = labels != 0
    tp = int((kept & (labels > 0)).sum())
    shown = int((kept & annotated).sum())
    positives = int((labels > 0).sum())
    precision = tp / shown if shown else 0.0
    recall = tp / positives if positives else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if tp else 0.0)


def _grid(
    correction: TagRule, columns: list[tuple[np.ndarray, np.ndarray]], weights: list[float], names: list[str]
) -> list[dict[str, Any]]:
    """Every threshold for one correction: each set's kept-tag P/R/F1 (and tags kept per
    photo) on its (corrected scores, labels), and their weighted mean F1."""
    rows: list[dict[str, Any]] = []
    for threshold in THRESHOLDS:
        rule = replace(correction, min_score=threshold)
        kept = [rule.kept(c) for c, _ in columns]
        figures = [kept_prf(k, labels) for k, (_, labels) in zip(kept, columns)]
        rows.append(
            {
                "quantile": rule.quantile,
                "strength": float(rule.strength),
                "min_score": float(threshold),
                "f1": float(np.average([f[2] for f in figures], weights=weights)),
                "sets": {
                    name: {"precision": p, "recall": r, "f1": f, "kept_per_photo": float(k.sum(axis=1).mean())}
                    for name, (p, r, f), k in zip(names, figures, kept)
                },
            }
        )
    return rows


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    # Ties: the weaker correction, then the mean before quantiles (lowest first), then the lower threshold.
    return max(
        rows,
        key=lambda r: (round(r["f1"], 6), -r["strength"], -(r["quantile"] or 0.0), -r["min_score"]),
    )


def choose_rule(sets: list[ValidationSet], max_tags: int = 10) -> tuple[TagRule, list[dict], dict]:
    """The correction (level and strength) with the best mean kept-tag F1 over the sets'
    labelled words, then the threshold for it with the whole vocabulary ranked (module
    docstring). Returns the rule, every correction's best row (labelled words) and the
    threshold's row."""
    names = [s.name for s in sets]
    per_correction = []
    for quantile in QUANTILES:
        for strength in STRENGTHS:
            if not strength and quantile is not None:  # no correction: its level does not matter
                continue
            correction = TagRule(float(strength), None, max_tags, quantile)
            labelled = [s.labelled(correction) for s in sets]
            per_correction.append(_best(_grid(correction, labelled, [1.0] * len(sets), names)))
    best = _best(per_correction)
    correction = TagRule(best["strength"], None, max_tags, best["quantile"])
    kept = _best(_grid(correction, [s.ranked(correction) for s in sets], [s.share for s in sets], names))
    return replace(correction, min_score=float(kept["min_score"])), per_correction, kept


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
    # The vocabulary a library of this model starts with, and the vectors it looks words up in.
    vocabulary = default_words(bundle.seen_labels, bundle.unseen_labels)
    words = load_embeddings(source) if source else load_embeddings()
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
        labelled = {normalise_word(w) for w in data.seen_labels}
        others = [w for w in vocabulary if w not in labelled and w in words]
        rest = score(semantic, torch.from_numpy(words.matrix(others))).numpy() if others else None
        out.append(ValidationSet(name, raw, label_rows(split.seen, ok), rest))
    return out
