"""Where training and evaluation get a frozen backbone's tokens: the cache, or the images.

Both sources hand out the same thing for a list of row batches: each batch's rows that
decoded, their tokens and ImageNet logits, rounded to fp16 as the cache stores them, so a
cached and a streaming run compute the same losses. Streaming decodes in DataLoader
workers and runs the backbone on the training device, batch by batch, under autocast on
CUDA; it is what the paper's scale needs when the cache does not fit on the disk
(NUS-WIDE with ViT-B/16: 81 GB, ``epsilon-train estimate``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .backbones import Backbone
from .images import load_rgb

if TYPE_CHECKING:  # features reads images through this module's Images: no import cycle at run time
    from .features import FeatureCache


@dataclass
class TokenBatch:
    rows: np.ndarray  # the batch's rows whose image decoded (the others are left out)
    tokens: torch.Tensor  # len(rows) x T x D, float32, on the device
    logits: torch.Tensor  # len(rows) x K, float32 (K = 0 for a backbone without a cached head)


class Images(TorchDataset):
    """Decodes images in DataLoader workers; a file that fails to decode becomes a flagged blank."""

    def __init__(self, paths: Sequence[Path], backbone: Backbone, indices: np.ndarray | None = None):
        self.paths = paths
        self.indices = np.arange(len(paths)) if indices is None else indices
        self.transform = backbone.preprocessing.transform()
        self.min_side = backbone.preprocessing.decode_side
        self.side = backbone.preprocessing.input_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, bool]:
        index = int(self.indices[i])
        try:
            return index, self.transform(load_rgb(self.paths[index], self.min_side)), True
        except Exception as exc:  # any decoder error: record, keep going
            print(f"cannot decode {self.paths[index]}: {exc}", file=sys.stderr)
            return index, torch.zeros(3, self.side, self.side), False


def token_shape(backbone: Backbone) -> tuple[int, int, int]:
    """(tokens, width, ImageNet classes cached beside them) of one image, from one forward
    of a blank image. ViTs' heads read the class token, which the tokens drop: no classes."""
    side = backbone.preprocessing.input_size
    probe = backbone(torch.zeros(1, 3, side, side, device=next(backbone.model.parameters()).device))
    classes = int(_head(backbone, probe).shape[1]) if backbone.is_cnn else 0
    return int(probe.shape[1]), int(probe.shape[2]), classes


@torch.no_grad()
def encode(
    backbone: Backbone, pixels: torch.Tensor, device: torch.device, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's tokens and logits, fp16 (what the cache holds); fp16 autocast on CUDA."""
    with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
        tokens = backbone(pixels.to(device, non_blocking=True))
        logits = _head(backbone, tokens) if classes else tokens.new_zeros(len(tokens), 0)
    return tokens.half(), logits.half()


class CachedTokens:
    """Rows of a filled token cache (``trainer.features``); failed images are left out."""

    def __init__(self, cache: FeatureCache, device: str | torch.device) -> None:
        self.cache, self.device = cache, torch.device(device)

    def usable(self, rows: np.ndarray) -> np.ndarray:
        return rows[self.cache.ok[rows]]

    def batches(self, batches: Iterable[np.ndarray]) -> Iterator[TokenBatch]:
        for rows in batches:
            rows = self.usable(np.asarray(rows, dtype=np.int64))
            yield TokenBatch(rows, self._read(self.cache.tokens, rows), self._read(self.cache.logits, rows))

    def _read(self, matrix: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(matrix[rows], dtype=np.float32)).to(self.device)


class StreamedTokens:
    """The frozen backbone run on the images themselves, a batch at a time."""

    def __init__(self, paths: Sequence[Path], backbone: Backbone, device: str | torch.device, workers: int) -> None:
        self.paths, self.backbone, self.workers = paths, backbone, workers
        self.device = torch.device(device)
        self.classes = token_shape(backbone)[2]

    def usable(self, rows: np.ndarray) -> np.ndarray:
        """All of them: whether an image decodes is known when its batch is read."""
        return rows

    def batches(self, batches: Iterable[np.ndarray]) -> Iterator[TokenBatch]:
        batches = [np.asarray(rows, dtype=np.int64) for rows in batches]
        loader = DataLoader(
            Images(self.paths, self.backbone),
            # A rank whose share of a step is empty still takes the step (DDP needs every rank).
            batch_sampler=[rows.tolist() for rows in batches if len(rows)],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
            generator=torch.Generator(),  # its own: the global one draws the model's dropout
        )
        decoded = iter(loader)
        for rows in batches:
            if not len(rows):
                yield TokenBatch(rows, *(torch.zeros(0, device=self.device),) * 2)
                continue
            index, pixels, ok = next(decoded)
            tokens, logits = encode(self.backbone, pixels, self.device, self.classes)
            keep = ok.to(self.device)
            yield TokenBatch(index.numpy()[ok.numpy()], tokens[keep].float(), logits[keep].float())


# Where a run's tokens come from: both hand out the same batches.
TokenSource = CachedTokens | StreamedTokens


def cache_bytes(images: int, tokens: int, width: int, classes: int) -> int:
    """Bytes of a token cache: fp16 tokens and logits, one status byte per image."""
    return images * ((tokens * width + classes) * 2 + 1)


def free_bytes(folder: Path) -> int:
    """Free space where ``folder`` is, or would be once made."""
    folder = Path(folder).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


# A cache may take this part of the free space at most: checkpoints, logs and the system
# need the rest.
CACHE_SHARE = 0.8


def choose_cache(mode: str, folder: Path, images: int, backbone: Backbone) -> tuple[bool, str]:
    """Whether to cache tokens (``mode`` auto | none | tokens), and the reason, said aloud."""
    if mode == "none":
        return False, "streaming (--cache none): the backbone runs inside the training loop"
    need = cache_bytes(images, *token_shape(backbone))
    if mode != "auto":
        return True, f"caching tokens in {folder} ({need / 1e9:,.1f} GB)"
    if (Path(folder) / "train" / "meta.json").exists():
        return True, f"caching tokens in {folder}: a cache is already there ({need / 1e9:,.1f} GB in all)"
    free = free_bytes(folder)
    if need <= CACHE_SHARE * free:
        return True, f"caching tokens in {folder}: {need / 1e9:,.1f} GB needed, {free / 1e9:,.1f} GB free"
    return False, (
        f"streaming: the token cache would take {need / 1e9:,.1f} GB and {folder} has {free / 1e9:,.1f} GB free, "
        f"so the backbone runs inside the training loop (--cache FOLDER on a larger disk caches instead)"
    )


def _head(backbone: Backbone, tokens: torch.Tensor) -> torch.Tensor:
    """The backbone's own ImageNet head on its tokens (CNN tokens back into the B x D x H x W
    map the head pools)."""
    b, n, d = tokens.shape
    side = round(n**0.5)
    return backbone.model.forward_head(tokens.transpose(1, 2).reshape(b, d, side, n // side))
