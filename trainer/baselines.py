"""Baselines in the same harness: ConSE (training-free) and the Fast0Tag-style linear map.

- **ConSE** (Norouzi et al. 2014): an image's embedding is the probability-weighted mean of
  the word vectors of its backbone's top-T ImageNet classes; a label scores the cosine of
  its word vector with that embedding. Each ImageNet class is named by the first name of
  its description ("tiger, Panthera tigris" -> "tiger").
- **Fast0Tag-style**: mean-pooled tokens, one linear map to the word space, the same
  ranking loss: Epsilon's "backbone only" variant with M = 1 (``FAST0TAG`` below).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .embeddings import UnknownWordError, WordVectors

FAST0TAG = {"variant": "backbone", "num_groups": 1}


def imagenet_class_vectors(vectors: WordVectors) -> tuple[list[str], np.ndarray]:
    """The 1,000 ImageNet classes' first names and their vectors (zero where no word is known)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]
    out = np.zeros((len(names), vectors.dim), dtype=np.float32)
    for i, name in enumerate(names):
        try:
            out[i] = vectors.vector(name, strict=False)
        except UnknownWordError:
            pass  # a class no word describes cannot vote
    return names, out


def dataset_imagenet_vectors(dataset, why: str) -> np.ndarray:
    """The ImageNet class-name vectors in a dataset's word space (which must know words)."""
    from .embeddings import load_embeddings

    source = dataset.embeddings.get("source", "")
    try:
        vectors = load_embeddings(source)
    except FileNotFoundError as exc:
        raise ValueError(f"{why} needs word-level vectors to name ImageNet classes; {source} has none: "
                         "pass --embeddings glove-6b-50d") from exc
    return imagenet_class_vectors(vectors)[1]


def conse_embedding(logits: torch.Tensor, class_vectors: torch.Tensor, top: int = 10) -> torch.Tensor:
    """N x d_w: sum over the top-T classes of p_t * v_t, divided by sum of p_t."""
    probs = logits.float().softmax(dim=-1)
    p, idx = probs.topk(top, dim=-1)
    weighted = (p[..., None] * class_vectors[idx]).sum(dim=1)
    return weighted / p.sum(dim=-1, keepdim=True)


def conse_scores(logits: torch.Tensor, class_vectors: torch.Tensor, label_vectors: torch.Tensor, top: int = 10) -> torch.Tensor:
    """N x C cosine scores of every label for every image."""
    embedding = F.normalize(conse_embedding(logits, class_vectors, top), dim=-1)
    return embedding @ F.normalize(label_vectors.float(), dim=-1).T


def run_conse(dataset, cfg, cache_root, top: int = 10, progress: bool = True) -> dict:
    """ConSE's figures on the held-out fold and the test split: {"val": ..., "test": ...}.

    Uses the same token cache as training (its logits), the same held-out fold (``cfg``'s
    seed and fraction) and the same evaluation, so the numbers compare one to one.
    """
    from pathlib import Path

    from .backbones import build_backbone
    from .datasets import held_out_fold
    from .distributed import setup
    from .evaluate import tasks
    from .features import extract_features

    device = setup(cfg.device)
    backbone = build_backbone(cfg.backbone, cfg.backbone_weights, device=device)
    if not backbone.is_cnn:
        raise ValueError("ConSE reads the backbone's ImageNet head from the token cache: use a CNN backbone")
    class_vectors = torch.from_numpy(dataset_imagenet_vectors(dataset, "ConSE"))
    _, val_rows = held_out_fold(len(dataset.train), cfg.val_fraction, cfg.seed, cfg.val_max)
    results = {}
    for part, split, rows in (("val", dataset.train, val_rows), ("test", dataset.test, None)):
        cache = extract_features(split.images, backbone, Path(cache_root) / ("train" if part == "val" else "test"),
                                 batch_size=cfg.extract_batch, workers=cfg.workers, device=device, progress=progress)
        rows = np.flatnonzero(cache.ok) if rows is None else rows[cache.ok[rows]]
        logits = torch.from_numpy(np.asarray(cache.logits[rows], dtype=np.float32))
        seen = conse_scores(logits, class_vectors, torch.from_numpy(dataset.seen_vectors), top).numpy()
        unseen = (conse_scores(logits, class_vectors, torch.from_numpy(dataset.unseen_vectors), top).numpy()
                  if dataset.has_unseen else None)
        results[part] = tasks(seen, unseen, split, rows, dataset.protocol)
    return results
