"""Epsilon's shapes, gradient flow, the score rule, and that it can learn a tiny batch."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.backbones import build_backbone
from trainer.loss import epsilon_loss
from trainer.model import VARIANTS, Epsilon, EpsilonConfig, score


def tiny_config(**overrides) -> EpsilonConfig:
    base = dict(token_dim=24, d_model=16, d_w=12, num_groups=3, depth=2, heads=4)
    base.update(overrides)
    return EpsilonConfig(**base)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m", [1, 2, 8])
def test_output_shape_for_every_ablation(variant, m):
    model = Epsilon(tiny_config(variant=variant, num_groups=m))
    out = model(torch.randn(5, 49, 24))
    assert out.shape == (5, m, 12)


def test_input_projection_only_when_widths_differ():
    assert isinstance(Epsilon(tiny_config(token_dim=16)).input_proj, torch.nn.Identity)
    assert isinstance(Epsilon(tiny_config()).input_proj, torch.nn.Linear)


def test_modules_present_per_variant():
    full, gpa, gfp = (Epsilon(tiny_config(variant=v)) for v in ("full", "gpa", "gfp"))
    assert full.gpa is not None and full.gfp is not None and full.fuser.in_features == 32
    assert gpa.gfp is None and gpa.fuser.in_features == 16
    assert gfp.gpa is None and gfp.fuser.in_features == 16


def test_gfp_softmax_is_over_tokens_per_channel():
    # With the MLP zeroed, every channel weighs the N tokens equally, so each branch
    # returns the mean over tokens of its own linear map.
    model = Epsilon(tiny_config(variant="gfp", token_dim=16))
    gfp = model.gfp
    with torch.no_grad():
        gfp.mlp2_w.zero_()
        gfp.mlp2_b.zero_()
    tokens = torch.randn(2, 7, 16)
    out = gfp(tokens)
    for m in range(3):
        expected = (tokens @ gfp.proj_w[m] + gfp.proj_b[m]).mean(dim=1)
        torch.testing.assert_close(out[:, m], expected, rtol=1e-5, atol=1e-6)


def test_score_is_max_over_rows_of_normalised_dot_products():
    semantic = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    words = torch.tensor([[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    got = score(semantic, words)
    torch.testing.assert_close(got, torch.tensor([[1.0, 2.0, math.sqrt(2)]]))
    torch.testing.assert_close(score(semantic[0], words), got[0])


def test_normalised_rows_bound_scores():
    model = Epsilon(tiny_config(normalize_rows=True))
    scores = score(model(torch.randn(4, 9, 24) * 50), torch.randn(20, 12))
    assert scores.abs().max() <= 1.0 + 1e-5


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="variant"):
        EpsilonConfig(variant="both")
    with pytest.raises(ValueError, match="divisible"):
        EpsilonConfig(d_model=30, heads=8)
    with pytest.raises(ValueError, match="unknown model config keys: typo"):
        EpsilonConfig.from_dict({"typo": 1})
    assert EpsilonConfig.from_dict(tiny_config().to_dict()) == tiny_config()


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_head_parameter_and_never_the_backbone(variant):
    torch.manual_seed(0)
    backbone = build_backbone("efficientnet_lite0", random_init=True)
    images = torch.randn(3, 3, 96, 96)
    tokens = backbone(images)  # 3 x 9 x 1280
    model = Epsilon(EpsilonConfig(token_dim=1280, d_model=32, d_w=12, num_groups=4, depth=1, heads=4, variant=variant))
    words = torch.randn(6, 12)
    labels = torch.tensor([[1, -1, -1, 1, -1, -1], [-1, 1, -1, -1, 1, -1], [1, 1, -1, -1, -1, 1]])
    epsilon_loss(model(tokens), words, labels).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert all(not p.requires_grad and p.grad is None for p in backbone.parameters())


@pytest.mark.slow
def test_short_optimisation_learns_a_tiny_batch():
    torch.manual_seed(0)
    tokens = torch.randn(8, 10, 24)
    words = torch.randn(12, 12)
    labels = -torch.ones(8, 12, dtype=torch.long)
    for i in range(8):  # 2 or 3 positives per image, different sets
        labels[i, [i, (i + 3) % 12, (i + 7) % 12][: 2 + i % 2]] = 1
    model = Epsilon(tiny_config(d_model=32, heads=4))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = epsilon_loss(model(tokens), words, labels).total.item()
    for _ in range(300):
        optimiser.zero_grad()
        loss = epsilon_loss(model(tokens), words, labels)
        loss.total.backward()
        optimiser.step()
    assert loss.total.item() < 0.2 * first
    with torch.no_grad():
        scores = score(model.eval()(tokens), words)
    for i in range(8):
        assert scores[i][labels[i] > 0].min() > scores[i][labels[i] < 0].max(), f"image {i} ranks a negative first"


def prior_model(prior: str, **overrides) -> Epsilon:
    torch.manual_seed(0)
    model = Epsilon(tiny_config(prior=prior, prior_top=3, prior_classes=6, normalize_rows=True, **overrides))
    model.attach_prior(torch.randn(6, 24), torch.randn(6), torch.randn(6, 12))
    return model


def test_prior_row_is_the_conse_embedding_of_the_backbones_head():
    model = prior_model("row", prior_scale=1.5, prior_temperature=2.0)
    tokens = torch.randn(4, 9, 24)
    semantic = model(tokens)
    assert semantic.shape == (4, 3 + 1, 12) and model.cfg.rows == 4
    # By hand: the head on mean-pooled tokens, softmax at temperature 2, the top 3 classes'
    # vectors weighted by probability, normalised, times the scale.
    probs = ((tokens.mean(1) @ model.prior_weight.T + model.prior_bias) / 2.0).softmax(-1)
    p, idx = probs.topk(3, dim=-1)
    expected = (p[..., None] * model.prior_vectors[idx]).sum(1)
    expected = 1.5 * expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(semantic[:, -1], expected, rtol=1e-5, atol=1e-6)
    # The trained rows are the model without a prior.
    plain = Epsilon(tiny_config(normalize_rows=True))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("prior")})
    torch.testing.assert_close(semantic[:, :3], plain(tokens))


def test_residual_prior_starts_every_row_from_it():
    model = prior_model("residual")
    tokens = torch.randn(2, 9, 24)
    with torch.no_grad():
        model.fuser.weight.zero_()
        model.fuser.bias.zero_()
    semantic = model(tokens)
    assert semantic.shape == (2, 3, 12)
    for m in range(3):  # nothing learnt yet: each row is the prior itself
        torch.testing.assert_close(semantic[:, m], model.prior_embedding(tokens))


@pytest.mark.parametrize("prior", ["row", "residual"])
def test_prior_is_fixed_and_the_heads_still_learn(prior):
    model = prior_model(prior)
    words = torch.randn(5, 12)
    labels = torch.tensor([[1, -1, -1, 1, -1], [-1, 1, -1, -1, 1]])
    epsilon_loss(model(torch.randn(2, 9, 24)), words, labels, lam=0.3).total.backward()
    trained = [p for p in model.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    # The prior lives in buffers: never a parameter, never updated by an optimiser.
    assert {n for n, _ in model.named_buffers()} == {"prior_weight", "prior_bias", "prior_vectors"}
    assert not any(n.startswith("prior") for n, _ in model.named_parameters())


def test_prior_needs_the_heads_class_count():
    with pytest.raises(ValueError, match="prior_classes"):
        Epsilon(tiny_config(prior="row", prior_top=5))
    with pytest.raises(ValueError, match="prior must be one of"):
        tiny_config(prior="sideways")
    model = prior_model("row")
    with pytest.raises(ValueError, match="prior_weight must be"):
        model.attach_prior(torch.randn(5, 24), torch.randn(6), torch.randn(6, 12))


def test_imagenet_head_of_the_offline_backbone_reads_pooled_tokens():
    backbone = build_backbone()
    weight, bias = backbone.imagenet_head()
    assert weight.shape == (1000, 1280) and bias.shape == (1000,)
    images = torch.randn(2, 3, 224, 224)
    tokens = backbone(images)
    torch.testing.assert_close(tokens.mean(1) @ weight.T + bias, backbone.logits(images), rtol=1e-4, atol=1e-3)
