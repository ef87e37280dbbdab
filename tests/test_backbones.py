"""Frozen token extractors: real offline EfficientNet-Lite0 weights, user weight files, errors."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from trainer.backbones import PACKAGED_WEIGHTS_ID, BackboneError, build_backbone, fold_batchnorm


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet_lite0")


def test_lite0_loads_packaged_weights_and_gives_49_tokens(lite0):
    assert lite0.weights_id == PACKAGED_WEIGHTS_ID
    tokens = lite0(torch.randn(2, 3, 224, 224))
    assert tokens.shape == (2, 49, 1280)
    assert lite0.preprocessing.input_size == 224 and lite0.preprocessing.mean == (0.5, 0.5, 0.5)


def test_channels_last_tokens_equal_default_layout(lite0):
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        reference = lite0.model.forward_features(images.contiguous()).flatten(2).transpose(1, 2)
    torch.testing.assert_close(lite0(images), reference, rtol=1e-4, atol=1e-4)


def test_batchnorm_folded_into_the_convolutions_gives_the_same_tokens_and_logits(lite0):
    import timm

    from trainer.backbones import _packaged_efficientnet_lite0_state

    original = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    original.load_state_dict(_packaged_efficientnet_lite0_state())
    original.eval()
    # Every BatchNorm of Lite0 follows a convolution: none is left in the backbone in use.
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in original.modules()) == 49
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.model.modules())
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(lite0.logits(images), original(images), rtol=1e-4, atol=1e-3)
        reference = original.forward_features(images).flatten(2).transpose(1, 2)
    torch.testing.assert_close(lite0(images), reference, rtol=1e-4, atol=1e-4)


def test_a_batchnorm_that_does_not_follow_the_convolution_before_it_is_not_folded():
    class Branches(torch.nn.Module):
        # Registered conv -> norm, but the norm reads the input, not the conv's output.
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            self.norm = torch.nn.BatchNorm2d(3)
            self.norm.running_mean.fill_(0.5)
            self.norm.running_var.fill_(4.0)

        def forward(self, x):
            return self.conv(x) + self.norm(x)

    model = Branches().eval()
    assert fold_batchnorm(model) is model
    straight = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    straight[1].running_var.fill_(9.0)
    folded = fold_batchnorm(straight)
    assert isinstance(folded[1], torch.nn.Identity)
    probe = torch.randn(1, 3, 8, 8)
    # Hand computation of the folded conv: weight * gamma / sqrt(var + eps), shifted bias.
    scale = straight[1].weight / torch.sqrt(straight[1].running_var + straight[1].eps)
    torch.testing.assert_close(folded[0].weight, straight[0].weight * scale[:, None, None, None])
    with torch.no_grad():
        torch.testing.assert_close(folded(probe), straight(probe), rtol=1e-5, atol=1e-5)


def test_backbone_stays_frozen(lite0):
    lite0.train()
    assert not lite0.model.training
    assert not any(p.requires_grad for p in lite0.parameters())


# Corel-5K photos and the ImageNet class each one shows (index into ImageNet-1k).
REAL_PHOTOS = [
    ("images/108000/108002.jpeg", 292, "tiger"),
    ("images/130000/130038.jpeg", 340, "zebra"),
    ("images/41000/41051.jpeg", 294, "brown bear"),
]


@pytest.mark.parametrize("path,imagenet_class,name", REAL_PHOTOS)
def test_real_photo_gets_its_imagenet_class_in_top5(lite0, corel, path, imagenet_class, name):
    image = Image.open(corel / path).convert("RGB")
    pixels = lite0.preprocessing.transform()(image)[None]
    top5 = lite0.logits(pixels).topk(5).indices[0].tolist()
    assert imagenet_class in top5, f"{name} photo: top-5 ImageNet classes {top5}"


def test_vit_tokens_drop_the_class_token():
    vit = build_backbone("vit_tiny_patch16_224", random_init=True)
    assert vit.weights_id == "random"
    assert vit(torch.randn(1, 3, 224, 224)).shape == (1, 196, 192)


def test_vit_without_weights_says_what_to_pass():
    with pytest.raises(BackboneError, match="--backbone-weights"):
        build_backbone("vit_base_patch16_224")


def test_weights_from_a_user_file(tmp_path):
    from safetensors.torch import save_file

    source = build_backbone("vit_tiny_patch16_224", random_init=True)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, str(tmp_path / "vit.safetensors"))
    loaded = build_backbone("vit_tiny_patch16_224", tmp_path / "vit.safetensors")
    assert loaded.weights_id.startswith("file:vit.safetensors:sha256:")
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_broken_weights_file_and_bad_names_error_clearly(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="Could not load weights"):
        build_backbone("vit_tiny_patch16_224", broken)
    with pytest.raises(BackboneError, match="not found"):
        build_backbone("vit_tiny_patch16_224", tmp_path / "absent.pth")
    with pytest.raises(BackboneError, match="Unknown timm backbone"):
        build_backbone("resnet_9000", random_init=True)
