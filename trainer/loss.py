"""Epsilon's training loss: normalised RankNet term, diversity weight, variance regulariser.

Per image i (``shared/docs/epsilon-method.md``, "Loss"):

    L_r   = 1/(|P||Q|) * sum_{j in Q, k in P} softplus(score_j - score_k)
    omega = 1 + sum_d var_k(w_k)          (unbiased, over the positives' word vectors; 0 if |P| = 1)
    L_reg = sum_d var_m(S[m, d])          (unbiased, across the M rows; 0 if M = 1)
    L     = mean_i [ omega * (1 - lambda) * L_r + lambda * L_reg ]

P is the image's positive seen labels (+1) and Q its negative ones (-1). A 0 cell means "not
annotated" as everywhere else in this project (the metrics ignore it too), so it is in
neither P nor Q; where a dataset marks every non-positive as -1, Q is exactly "all other
seen labels" as the method page says. Images with no positive (or no negative) have no
ranking pair and are left out of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import score


@dataclass
class LossParts:
    total: torch.Tensor  # the differentiable loss
    rank: torch.Tensor  # mean L_r over the images used (detached, for logging)
    reg: torch.Tensor  # mean L_reg over the images used (detached)
    images: int  # how many images of the batch had a ranking pair
    per_image: torch.Tensor  # the loss of each of those images (differentiable)
    used: torch.Tensor  # B bools: which images of the batch those are


def diversity_weight(labels: torch.Tensor, word_vectors: torch.Tensor) -> torch.Tensor:
    """omega per image (B): 1 + the summed unbiased variance of its positives' word vectors."""
    words = F.normalize(word_vectors.float(), dim=-1)
    positive = (labels > 0).float()
    count = positive.sum(dim=1)
    total = positive @ words  # B x d_w: sum of the positives' vectors
    squares = positive @ (words * words).sum(dim=1)  # B: sum of their squared norms
    # sum_d var = (sum_k |w_k|^2 - n |mean|^2) / (n - 1); defined as 0 for n <= 1.
    spread = squares - (total * total).sum(dim=1) / count.clamp(min=1)
    variance = torch.where(count > 1, spread / (count - 1).clamp(min=1), torch.zeros_like(spread))
    return 1.0 + variance.clamp(min=0)


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_r per image (B); NaN where an image has no positive or no negative.

    Positives per image are few, so the pairs are formed as B x P_max x C (P_max = the most
    positives any image has) rather than B x C x C, which would not fit for Open Images'
    7,186 labels.
    """
    positive = labels > 0
    negative = labels < 0
    p_max = int(positive.sum(dim=1).max().item()) if labels.numel() else 0
    if p_max == 0:
        return torch.full(scores.shape[:1], float("nan"), device=scores.device)
    # Gather each image's positive scores to the front; padded slots are masked out.
    order = positive.float().argsort(dim=1, descending=True, stable=True)[:, :p_max]
    pos_scores = scores.gather(1, order)  # B x P_max
    pos_valid = positive.gather(1, order)  # B x P_max
    pairs = F.softplus(scores[:, None, :] - pos_scores[:, :, None])  # B x P_max x C: s_j - s_k
    mask = pos_valid[:, :, None] & negative[:, None, :]
    total = (pairs * mask).sum(dim=(1, 2))
    count = mask.sum(dim=(1, 2))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def variance_regulariser(semantic: torch.Tensor) -> torch.Tensor:
    """L_reg per image (B): the L1 norm of the per-dimension variance across the M rows."""
    if semantic.shape[1] < 2:
        return semantic.new_zeros(semantic.shape[0])
    return semantic.var(dim=1, unbiased=True).sum(dim=1)


def epsilon_loss(
    semantic: torch.Tensor,
    word_vectors: torch.Tensor,
    labels: torch.Tensor,
    lam: float = 0.3,
) -> LossParts:
    """The full loss for a batch: S (B x M x d_w), seen word vectors (C x d_w), labels (B x C)."""
    semantic = semantic.float()
    scores = score(semantic, word_vectors.float())
    rank = ranking_loss(scores, labels)
    used = ~torch.isnan(rank)
    if not bool(used.any()):
        # Nothing to rank: a zero that still belongs to the graph, so backward() works.
        zero = semantic.sum() * 0.0
        return LossParts(zero, zero.detach(), zero.detach(), 0, zero[None][:0], used)
    omega = diversity_weight(labels[used], word_vectors)
    reg = variance_regulariser(semantic[used])
    per_image = omega * (1.0 - lam) * rank[used] + lam * reg
    return LossParts(
        per_image.mean(), rank[used].mean().detach(), reg.mean().detach(), int(used.sum()), per_image, used
    )
