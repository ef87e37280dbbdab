"""The vectorised loss against a slow reference written with explicit loops."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.loss import epsilon_loss


def softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x)))


def unbiased_var(values: list[torch.Tensor]) -> torch.Tensor:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def reference_loss(semantic, words, labels, lam):
    """epsilon-method.md's formulas, one image, one pair, one dimension at a time."""
    b, m, d = semantic.shape
    c = words.shape[0]
    unit = [words[j] / torch.sqrt((words[j] ** 2).sum()) for j in range(c)]
    total, used = 0.0, 0
    for i in range(b):
        scores = [max((semantic[i, r] * unit[j]).sum() for r in range(m)) for j in range(c)]
        pos = [j for j in range(c) if labels[i, j] > 0]
        neg = [j for j in range(c) if labels[i, j] < 0]
        if not pos or not neg:
            continue
        rank = sum(softplus(scores[j] - scores[k]) for j in neg for k in pos) / (len(pos) * len(neg))
        omega = 1.0
        if len(pos) > 1:
            omega = 1.0 + sum(unbiased_var([unit[k][t] for k in pos]) for t in range(d))
        reg = sum(unbiased_var([semantic[i, r, t] for r in range(m)]) for t in range(d)) if m > 1 else 0.0
        total = total + omega * (1 - lam) * rank + lam * reg
        used += 1
    return total / used


def random_case(b, m, c, d, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    semantic = (torch.randn(b, m, d, generator=g) * scale).requires_grad_(True)
    words = torch.randn(c, d, generator=g)
    labels = torch.randint(-1, 2, (b, c), generator=g)  # +1, -1 and ignored 0 cells
    labels[0] = -1
    labels[0, 1] = 1  # an image with exactly one positive: omega = 1
    if b > 2:
        labels[1] = torch.where(labels[1] > 0, 0, labels[1])  # an image with no positive
    return semantic, words, labels


@pytest.mark.parametrize("b,m,c,d", [(2, 1, 5, 3), (4, 3, 7, 4), (6, 8, 20, 5), (9, 2, 11, 6)])
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.9])
def test_loss_matches_loop_reference(b, m, c, d, lam):
    semantic, words, labels = random_case(b, m, c, d, seed=b * 100 + m)
    fast = epsilon_loss(semantic, words, labels, lam=lam)
    (grad_fast,) = torch.autograd.grad(fast.total, semantic)
    slow = reference_loss(semantic.double(), words.double(), labels, lam)
    (grad_slow,) = torch.autograd.grad(slow, semantic)
    assert fast.total.item() == pytest.approx(slow.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(grad_fast, grad_slow.float(), rtol=1e-4, atol=1e-6)
    expected_images = sum(1 for i in range(b) if (labels[i] > 0).any() and (labels[i] < 0).any())
    assert fast.images == expected_images


def test_images_without_positives_do_not_change_the_loss():
    semantic, words, labels = random_case(5, 4, 9, 6, seed=7)
    base = epsilon_loss(semantic, words, labels).total.item()
    # Append images that have only negatives or only ignored cells: the mean must not move.
    extra_s = torch.randn(2, 4, 6)
    extra_l = torch.stack([torch.full((9,), -1), torch.zeros(9, dtype=torch.long)])
    mixed = epsilon_loss(torch.cat([semantic, extra_s]), words, torch.cat([labels, extra_l]))
    assert mixed.total.item() == pytest.approx(base, rel=1e-6)


def test_batch_without_any_positive_is_zero_and_differentiable():
    semantic = torch.randn(3, 2, 4, requires_grad=True)
    parts = epsilon_loss(semantic, torch.randn(5, 4), torch.full((3, 5), -1))
    parts.total.backward()
    assert parts.total.item() == 0.0 and parts.images == 0
    assert torch.all(semantic.grad == 0)


def test_diversity_weight_hand_computed():
    # Two positives with orthogonal unit vectors e1, e2: per-dimension unbiased variance is
    # 0.5 in each of the two dimensions, so omega = 1 + 1 = 2. One positive: omega = 1.
    words = torch.eye(3)
    semantic = torch.zeros(2, 1, 3)
    labels = torch.tensor([[1, 1, -1], [1, -1, -1]])
    parts = epsilon_loss(semantic, words, labels, lam=0.0)
    # All scores are 0, so every pair costs log 2: L = mean(2 * log 2, 1 * log 2).
    assert parts.total.item() == pytest.approx(1.5 * math.log(2), rel=1e-6)


def test_large_scores_stay_finite():
    semantic, words, labels = random_case(4, 3, 7, 4, seed=3, scale=1e4)
    fast = epsilon_loss(semantic, words, labels, lam=0.0)
    fast.total.backward()
    slow = reference_loss(semantic.detach().double(), words.double(), labels, 0.0)
    assert math.isfinite(fast.total.item()) and torch.isfinite(semantic.grad).all()
    assert fast.total.item() == pytest.approx(slow.item(), rel=1e-4)
