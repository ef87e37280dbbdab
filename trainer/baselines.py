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
