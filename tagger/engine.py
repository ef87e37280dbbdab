"""A loaded model bundle: batches of pixels in, semantic vectors S out, on the chosen device."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.assets import asset_path
from trainer.devices import resolve_device
from trainer.errors import BundleError
from trainer.tagrule import top_classes
from trainer.wordnet import IMAGENET_CLASSES

# torch (and what imports it: trainer.checkpoint, trainer.memory) is imported only when a
# model is loaded or run: deciding a rescan, or a search, needs none.
if TYPE_CHECKING:
    import torch

    from trainer.backbones import Backbone
    from trainer.checkpoint import Bundle

CONFIG_FILE = "config.json"  # trainer.checkpoint.CONFIG_FILE, without importing torch


def default_model() -> Path:
    """The bundle shipped with epsilon-tag (EfficientNet-Lite0 + Epsilon head, GloVe 50-d)."""
    return asset_path("default")


def _folder(model: str | Path | None) -> Path:
    folder = Path(model).expanduser() if model else default_model()
    return folder.parent if folder.is_file() else folder


def model_config(model: str | Path | None = None) -> dict:
    """A bundle's config.json, read alone (no weights, no torch)."""
    return json.loads((_folder(model) / CONFIG_FILE).read_text())


def model_id(model: str | Path | None = None) -> str:
    """A short id of a bundle's weights and backbone, read from its config alone (cheap),
    so that a rescan can tell whether photos were tagged by this model without loading it."""
    try:
        config = model_config(model)
        return f"{config['weights_sha256'][:16]}+{config['backbone']['weights']}"
    except (OSError, ValueError, KeyError, TypeError):
        from trainer.checkpoint import Bundle

        folder = _folder(model)
        Bundle.load(folder)  # raises the bundle's own clear error
        raise BundleError(f"The bundle at {folder} has no weights hash in {CONFIG_FILE}; re-export it.") from None


def records_classes(model: dict) -> bool:
    """Whether a model (a bundle config's "model" section) carries the backbone's ImageNet-1k
    head (its prior), whose best classes a scan records for the tag rule's ImageNet evidence."""
    return model.get("prior", "none") != "none" and model.get("prior_classes") == IMAGENET_CLASSES


@dataclass
class Engine:
    bundle: Bundle
    backbone: Backbone
    device: torch.device
    model_id: str
    model_path: Path

    @classmethod
    def load(
        cls, model: str | Path | None = None, *, device: str = "auto", backbone_weights: str | Path | None = None
    ) -> Engine:
        """Load a bundle and the backbone it was trained on. A backbone that is not shipped
        (a ViT from a file) needs ``backbone_weights``, checked against the bundle's record."""
        from trainer.checkpoint import Bundle
        from trainer.memory import keep_freed_memory

        keep_freed_memory()  # this process is about to run the model on batch after batch
        # Absolute: the library remembers it, and a later scan may run from another folder.
        folder = Path(model).expanduser().resolve() if model else default_model()
        dev = resolve_device(device)
        bundle = Bundle.load(folder, device=dev)
        return cls(bundle, bundle.build_backbone(backbone_weights, device=dev), dev, model_id(folder), folder)

    @property
    def shipped(self) -> bool:
        """Whether this is the model shipped with epsilon-tag (a library then records no path)."""
        return self.model_path == default_model()

    @property
    def decode_side(self) -> int:
        return self.backbone.preprocessing.decode_side

    def transform(self) -> Callable:
        return self.backbone.preprocessing.transform()

    @property
    def semantic_shape(self) -> tuple[int, int]:
        return (self.bundle.config.rows, self.bundle.config.d_w)

    def label_table(self) -> dict[str, np.ndarray]:
        """The model's own label vectors (what it was trained and evaluated with)."""
        return self.bundle.label_table()

    def semantic(self, pixels: torch.Tensor) -> np.ndarray:
        """B x 3 x H x W preprocessed pixels -> B x M x d_w semantic vectors (float16)."""
        return self.recognise(pixels)[0]

    def recognise(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """B x 3 x H x W preprocessed pixels -> the semantic vectors S (B x M x d_w, float16)
        and, where the model carries the backbone's ImageNet head, each photo's best classes
        (B x 2 x CLASSES_KEPT: indices over probabilities, as the library keeps them)."""
        import torch
        import torch.nn.functional as F

        model = self.bundle.model
        pixels = pixels.to(self.device, non_blocking=True)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            tokens = self.backbone(pixels)
            s = model(tokens)
        semantic = s.float().cpu().numpy().astype(np.float16)
        if not self.has_classes:
            return semantic, None
        with torch.inference_mode():
            logits = F.linear(tokens.mean(dim=1).float(), model.prior_weight.float(), model.prior_bias.float())
        return semantic, top_classes(logits.cpu().numpy())

    @property
    def has_classes(self) -> bool:
        return records_classes(self.bundle.config.to_dict())
