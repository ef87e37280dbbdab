"""Epsilon: Group Prompts Aggregation + Global Forward Propagation over frozen tokens.

Reads in one sitting, top to bottom, in the order data flows:
tokens F (B x N x D) -> input projection -> GPA (prompts, encoder, cross-attention)
and GFP (M branches, per-channel softmax over tokens) -> semantic fuser -> S (B x M x d_w)
-> score(S, word vectors) = max over the M rows of <S_m, w>.

An optional ImageNet prior (an addition, off by default) keeps what the frozen backbone's
own classifier knows: the photo's ConSE embedding, its top ImageNet classes' word vectors
weighted by probability, joins S as one more row ("row") or is the point every row starts
from ("residual"). The head and class vectors are fixed buffers, stored in the bundle.

The specification followed is ``shared/docs/epsilon-method.md``; the paper leaves the
encoder depth, head count and the input projection open, and that page pins them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# The model's settings are defined with the run's (trainer.config, no torch), and read from here too.
from .config import PRIORS as PRIORS
from .config import VARIANTS as VARIANTS
from .config import EpsilonConfig


class GroupPromptsAggregation(nn.Module):
    """M learnable prompts read the tokens through an encoder, then refine by cross-attention."""

    def __init__(self, cfg: EpsilonConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.prompts = nn.Parameter(torch.randn(cfg.num_groups, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d,
            cfg.heads,
            dim_feedforward=int(d * cfg.mlp_ratio),
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Pre-norm layers leave their output un-normalised, hence the final LayerNorm;
        # nested tensors only apply to post-norm layers with padding masks, so they are off.
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.cross = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.prompts.shape[0]
        prompts = self.prompts.expand(tokens.shape[0], -1, -1)
        grouped = self.encoder(torch.cat([prompts, tokens], dim=1))[:, :m]  # GT_Q
        refined, _ = self.cross(grouped, tokens, tokens, need_weights=False)  # GrS
        return refined


class GlobalForwardPropagation(nn.Module):
    """M independent branches; each weighs the tokens per channel and sums them.

    The M branches' linear maps and MLPs are stored as stacked weights (M x in x out) and
    applied with one einsum each, which is the same maths as M separate nn.Linear layers
    without a Python loop over branches.
    """

    def __init__(self, cfg: EpsilonConfig) -> None:
        super().__init__()
        m, d = cfg.num_groups, cfg.d_model
        h = cfg.gfp_hidden or d
        self.proj_w, self.proj_b = _stacked_linear(m, d, d)
        self.mlp1_w, self.mlp1_b = _stacked_linear(m, d, h)
        self.mlp2_w, self.mlp2_b = _stacked_linear(m, h, d)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        fg = torch.einsum("bnd,mde->bmne", tokens, self.proj_w) + self.proj_b[:, None]  # FG_m
        hidden = F.gelu(torch.einsum("bmnd,mde->bmne", fg, self.mlp1_w) + self.mlp1_b[:, None])
        weights = torch.einsum("bmnh,mhe->bmne", self.dropout(hidden), self.mlp2_w)
        weights = weights + self.mlp2_b[:, None]  # W_m
        attention = weights.softmax(dim=2)  # A_m: over the N tokens, per channel
        return (fg * attention).sum(dim=2)  # GoS: B x M x d_model


def _stacked_linear(m: int, fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    # nn.Linear's default initialisation, once per branch.
    bound = 1.0 / math.sqrt(fan_in)
    weight = nn.Parameter(torch.empty(m, fan_in, fan_out).uniform_(-bound, bound))
    bias = nn.Parameter(torch.empty(m, fan_out).uniform_(-bound, bound))
    return weight, bias


class Epsilon(nn.Module):
    """Frozen-backbone tokens (B x N x D) -> semantic vectors S (B x rows x d_w)."""

    # Buffers of an ImageNet prior (``cfg.prior`` != "none"), registered in __init__.
    prior_weight: torch.Tensor
    prior_bias: torch.Tensor
    prior_vectors: torch.Tensor

    def __init__(self, cfg: EpsilonConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.prior != "none":
            if cfg.prior_classes < cfg.prior_top:
                raise ValueError(
                    f"an ImageNet prior needs the backbone head's class count (prior_classes), "
                    f"at least prior_top = {cfg.prior_top}; got {cfg.prior_classes}"
                )
            # Filled by attach_prior (training) or the bundle (loading); fixed, never trained.
            self.register_buffer("prior_weight", torch.zeros(cfg.prior_classes, cfg.token_dim))
            self.register_buffer("prior_bias", torch.zeros(cfg.prior_classes))
            self.register_buffer("prior_vectors", torch.zeros(cfg.prior_classes, cfg.d_w))
        if cfg.variant == "backbone":
            self.pooled = nn.Linear(cfg.token_dim, cfg.num_groups * cfg.d_w)
            return
        same = cfg.token_dim == cfg.d_model
        self.input_proj = nn.Identity() if same else nn.Linear(cfg.token_dim, cfg.d_model)
        self.gpa = GroupPromptsAggregation(cfg) if cfg.variant in ("full", "gpa") else None
        self.gfp = GlobalForwardPropagation(cfg) if cfg.variant in ("full", "gfp") else None
        branches = (self.gpa is not None) + (self.gfp is not None)
        self.fuser = nn.Linear(branches * cfg.d_model, cfg.d_w)

    def attach_prior(self, weight: torch.Tensor, bias: torch.Tensor, class_vectors: torch.Tensor) -> None:
        """The backbone's ImageNet head (classes x D on mean-pooled tokens) and the classes'
        word vectors (classes x d_w), copied into the prior's buffers."""
        for name, value in (("prior_weight", weight), ("prior_bias", bias), ("prior_vectors", class_vectors)):
            buffer = getattr(self, name)
            if tuple(value.shape) != tuple(buffer.shape):
                raise ValueError(f"{name} must be {tuple(buffer.shape)}, got {tuple(value.shape)}")
            buffer.copy_(value)

    def prior_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """B x d_w, unit length: the photo's ConSE embedding from its backbone tokens."""
        logits = F.linear(tokens.mean(dim=1).float(), self.prior_weight.float(), self.prior_bias.float())
        cfg = self.cfg
        return F.normalize(
            conse_embedding(logits, self.prior_vectors.float(), cfg.prior_top, cfg.prior_temperature), dim=-1
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.variant == "backbone":
            semantic = self.pooled(tokens.mean(dim=1)).view(-1, cfg.num_groups, cfg.d_w)
        else:
            projected = self.input_proj(tokens)
            parts = []
            if self.gfp is not None:
                parts.append(self.gfp(projected))
            if self.gpa is not None:
                parts.append(self.gpa(projected))
            semantic = self.fuser(torch.cat(parts, dim=-1))  # concat(GoS, GrS) -> S
        if cfg.prior == "residual":
            semantic = semantic + self.prior_embedding(tokens)[:, None].to(semantic.dtype)
        if cfg.normalize_rows:
            semantic = F.normalize(semantic, dim=-1)
        if cfg.prior == "row":
            prior = cfg.prior_scale * self.prior_embedding(tokens)
            semantic = torch.cat([semantic, prior[:, None].to(semantic.dtype)], dim=1)
        return semantic


def conse_embedding(
    logits: torch.Tensor, class_vectors: torch.Tensor, top: int = 10, temperature: float = 1.0
) -> torch.Tensor:
    """ConSE (Norouzi et al. 2014), N x d_w: the sum over each image's top-T classes of
    p_t * v_t, divided by the sum of p_t (p: the softmax of the classifier's logits, divided
    by ``temperature``; 1 is the classic method)."""
    probs = (logits.float() / temperature).softmax(dim=-1)
    p, idx = probs.topk(top, dim=-1)
    weighted = (p[..., None] * class_vectors[idx]).sum(dim=1)
    return weighted / p.sum(dim=-1, keepdim=True)


def score(semantic: torch.Tensor, word_vectors: torch.Tensor) -> torch.Tensor:
    """Score of every label for every image: max over the M rows of <S_m, w_c>.

    ``semantic`` is B x M x d_w (or M x d_w for one image), ``word_vectors`` C x d_w;
    the word vectors are L2-normalised here so that any caller gets the same scale.
    Returns B x C (or C).
    """
    words = F.normalize(word_vectors.to(semantic.dtype), dim=-1)
    return (semantic @ words.T).amax(dim=-2)
