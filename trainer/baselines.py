"""Baselines in the same harness: ConSE (training-free) and the Fast0Tag-style linear map.

- **ConSE** (Norouzi et al. 2014): an image's embedding is the probability-weighted mean of
  the word vectors of its backbone's top-T ImageNet classes; a label scores the cosine of
  its word vector with that embedding. Classically each ImageNet class is named by its
  first name ("tiger, Panthera tigris" -> "tiger"); ``ClassText`` (trainer.class_text)
  adds every lemma and the class's definition.
- **Fast0Tag-style**: mean-pooled tokens, one linear map to the word space, the same
  ranking loss: Epsilon's "backbone only" variant with M = 1 (``trainer.config.FAST0TAG``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import build_backbone
from .class_text import ClassText, class_vectors, dataset_imagenet_vectors, imagenet_classes
from .config import ConseConfig, TrainConfig
from .datasets import Dataset, held_out_fold
from .distributed import setup
from .embeddings import WordVectors
from .errors import InputError
from .evaluate import conse_tasks
from .features import extract_features
from .model import conse_embedding


def imagenet_class_vectors(vectors: WordVectors, text: ClassText = ClassText()) -> tuple[list[str], np.ndarray]:
    """The 1,000 ImageNet classes' first names and their vectors (zero where no word is known)."""
    return [lemmas[0] for lemmas, _ in imagenet_classes()], class_vectors(vectors, text)


def conse_scores(
    logits: torch.Tensor,
    class_vectors: torch.Tensor,
    label_vectors: torch.Tensor,
    top: int = 10,
    temperature: float = 1.0,
) -> torch.Tensor:
    """N x C cosine scores of every label for every image."""
    embedding = F.normalize(conse_embedding(logits, class_vectors, top, temperature), dim=-1)
    return embedding @ F.normalize(label_vectors.float(), dim=-1).T


def run_conse(dataset: Dataset, cfg: TrainConfig, cache_root: Path, conse: ConseConfig, progress: bool = True) -> dict:
    """ConSE's figures on the held-out fold and the test split: {"val": ..., "test": ...}.

    Uses the same token cache as training (its logits), the same held-out fold (``cfg``'s
    seed and fraction), the same class naming and the same evaluation, so the numbers
    compare one to one.
    """
    device = setup(cfg.device)
    backbone = build_backbone(cfg.backbone, cfg.backbone_weights, device=device)
    if not backbone.is_cnn:
        raise InputError("ConSE reads the backbone's ImageNet head from the token cache: use a CNN backbone")
    text = cfg.class_text
    vectors = torch.from_numpy(dataset_imagenet_vectors(dataset, "ConSE", text))
    _, val_rows = held_out_fold(len(dataset.train), cfg.val_fraction, cfg.seed, cfg.val_max)
    results = {}
    for part, split, rows in (("val", dataset.train, val_rows), ("test", dataset.test, None)):
        cache = extract_features(
            split.images,
            backbone,
            Path(cache_root) / ("train" if part == "val" else "test"),
            batch_size=cfg.extract_batch,
            workers=cfg.workers,
            device=device,
            progress=progress,
        )
        rows = np.flatnonzero(cache.ok) if rows is None else rows[cache.ok[rows]]
        logits = torch.from_numpy(np.asarray(cache.logits[rows], dtype=np.float32))
        results[part] = conse_tasks(logits, dataset, split, rows, vectors, conse)
    return results
