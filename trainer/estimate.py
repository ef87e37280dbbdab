"""What a training run will cost before it starts: images, token-cache bytes, time per epoch.

The cached path extracts every image's tokens once (decode + backbone), then trains the
head from the cache; the streaming path runs the frozen backbone inside every epoch. Their
costs follow from four throughputs, each measured here on this machine in a few seconds (or
given): decoding (images/s per worker process), the backbone's forward, the head's training
step, and reading the cache from disk. Scaling to N GPUs divides the GPU parts by N and
gives each GPU its own decode workers: an estimate, not a measurement.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .backbones import build_backbone
from .datasets import load_dataset
from .distributed import setup
from .model import Epsilon, EpsilonConfig
from .tokens import token_shape as probe

# Images in the splits the paper trains and tests on (official counts, as in the papers'
# protocols): NUS-WIDE 161,789 train / 107,859 test; Open Images V4 1,743,042 train (with
# human-verified labels) / 125,436 test; Corel-5K 4,500 / 499.
OFFICIAL_IMAGES = {
    "nus-wide": {"train": 161_789, "test": 107_859},
    "open-images": {"train": 1_743_042, "test": 125_436},
    "corel5k": {"train": 4_500, "test": 499},
}
TOKEN_BYTES = 2  # the cache stores fp16


@dataclass
class Throughputs:
    """Images per second: ``decode`` per worker process, the others per device."""

    decode: float
    backbone: float
    head: float
    disk: float  # cache bytes read per second

    def measured(self) -> dict:
        return asdict(self)


@dataclass
class Estimate:
    dataset: str
    backbone: str
    images: dict  # split -> count
    tokens: tuple[int, int]  # N x D per image
    cache_bytes: int
    throughputs: dict
    workers: int
    epochs: int
    per_gpus: dict  # "1", "N" -> {extract_s, cached_epoch_s, streaming_epoch_s, cached_total_s, streaming_total_s}

    def to_dict(self) -> dict:
        return asdict(self)


def token_shape(backbone: str, device: str = "cpu") -> tuple[int, int]:
    """(tokens, width) of one image: from the model itself (random weights, one forward)."""
    tokens, width, _ = probe(build_backbone(backbone, random_init=True, device=device))
    return tokens, width


def measure(
    backbone: str, tokens: tuple[int, int], *, device: str = "cpu", batch: int = 8, repeat: int = 2
) -> Throughputs:
    """Throughputs of this machine, a few batches each (seconds, not minutes); the head is
    the training default's size (d_model 256, 2 layers, 300-d words)."""
    model = build_backbone(backbone, random_init=True, device=device)
    transform = model.preprocessing.transform()
    # Decoding: a 500 x 375 JPEG (the size of NUS-WIDE's and most Flickr photos), to a tensor.
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 0.5:
        transform(Image.open(io.BytesIO(data)).convert("RGB"))
        count += 1
    decode = count / (time.perf_counter() - start)

    size = model.preprocessing.input_size
    images = torch.randn(batch, 3, size, size, device=device)

    def forward() -> None:
        # As extraction runs it (trainer.features): fp16 autocast on CUDA, plain fp32 elsewhere.
        with torch.autocast("cuda", dtype=torch.float16, enabled=device.startswith("cuda")):
            model(images)

    backbone_rate = _rate(forward, batch, repeat, device)

    head = Epsilon(EpsilonConfig(token_dim=tokens[1], d_model=256, depth=2, d_w=300)).to(device)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-5)
    features = torch.randn(batch, *tokens, device=device)

    def step() -> None:
        optimiser.zero_grad()
        head(features).square().mean().backward()
        optimiser.step()

    head_rate = _rate(step, batch, repeat, device)
    return Throughputs(decode, backbone_rate, head_rate, disk=_disk_rate())


def _rate(step: Callable[[], None], batch: int, repeat: int, device: str) -> float:
    step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * repeat / (time.perf_counter() - start)


def _disk_rate() -> float:
    """Sequential read speed of a fresh 64 MiB file (the page cache makes it optimistic)."""
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(os.urandom(64 << 20))
        handle.flush()
        start = time.perf_counter()
        with open(handle.name, "rb") as again:
            while again.read(8 << 20):
                pass
        return (64 << 20) / (time.perf_counter() - start)


def estimate_run(
    dataset: str,
    backbone: str,
    data: Path | None,
    *,
    device: str,
    rates: tuple[float | None, float | None, float | None, float | None],
    workers: int,
    gpus: int,
    epochs: int,
) -> Estimate:
    """``epsilon-train estimate``: the dataset's images (counted in ``data``, else the
    official counts), the backbone's tokens, and the throughputs ``rates`` gives (decode,
    backbone, head, disk; None: measured here on ``device``), for 1 and ``gpus`` devices
    (0: those visible)."""
    dev = str(setup(device))
    if data is not None:
        loaded = load_dataset(dataset, data)
        images = {"train": len(loaded.train), "test": len(loaded.test)}
    else:
        images = dict(OFFICIAL_IMAGES[dataset])
    tokens = token_shape(backbone, dev)
    if None in rates:
        measured = measure(backbone, tokens, device=dev)
        rates = tuple(r if r is not None else m for r, m in zip(rates, asdict(measured).values()))
    throughputs = Throughputs(*rates)
    n = gpus or max(torch.cuda.device_count(), 1)
    return estimate(dataset, backbone, images, tokens, throughputs, workers=workers, gpus=n, epochs=epochs)


def estimate(
    dataset: str,
    backbone: str,
    images: dict,
    tokens: tuple[int, int],
    rates: Throughputs,
    *,
    workers: int,
    gpus: int,
    epochs: int,
) -> Estimate:
    """Cache size and times, for 1 and ``gpus`` devices."""
    per_image = tokens[0] * tokens[1] * TOKEN_BYTES
    total = sum(images.values())
    train = images.get("train", total)
    per_gpus = {}
    for n in sorted({1, gpus}):
        decode = rates.decode * workers * n  # each device with its own decode workers
        # Extraction decodes and runs the backbone on every image once, in a pipeline.
        extract = total / min(decode, rates.backbone * n)
        # Cached: every epoch reads the training tokens and trains the head on them.
        cached_epoch = max(train / (rates.head * n), train * per_image / rates.disk)
        # Streaming: every epoch decodes, runs the backbone and trains the head; the head
        # waits for the backbone on the same device.
        device_rate = 1 / (1 / rates.backbone + 1 / rates.head) * n
        streaming_epoch = train / min(decode, device_rate) + images.get("test", 0) / min(decode, rates.backbone * n)
        cached_epoch += images.get("test", 0) / (rates.head * 4 * n)  # evaluation: forward only, from the cache
        per_gpus[str(n)] = {
            "extract_s": extract,
            "cached_epoch_s": cached_epoch,
            "streaming_epoch_s": streaming_epoch,
            "cached_total_s": extract + epochs * cached_epoch,
            "streaming_total_s": epochs * streaming_epoch,
        }
    return Estimate(
        dataset, backbone, dict(images), tokens, total * per_image, rates.measured(), workers, epochs, per_gpus
    )


def format_estimate(result: Estimate) -> str:
    lines = [
        f"{result.dataset} with {result.backbone}: {sum(result.images.values()):,} images "
        f"({', '.join(f'{k} {v:,}' for k, v in result.images.items())}), "
        f"{result.tokens[0]} x {result.tokens[1]} tokens each",
        f"token cache (fp16): {_bytes(result.cache_bytes)}",
        "throughputs (images/s): "
        + ", ".join(
            f"{k} {v:,.1f}" + (" per worker" if k == "decode" else "")
            for k, v in result.throughputs.items()
            if k != "disk"
        )
        + f"; disk {_bytes(result.throughputs['disk'])}/s",
    ]
    for n, times in result.per_gpus.items():
        lines.append(
            f"{n} device{'s' if n != '1' else ''}, {result.workers} decode workers each, {result.epochs} epochs: "
            f"cached = extract {_time(times['extract_s'])} + {_time(times['cached_epoch_s'])}/epoch "
            f"(total {_time(times['cached_total_s'])}); streaming = {_time(times['streaming_epoch_s'])}/epoch "
            f"(total {_time(times['streaming_total_s'])})"
        )
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} TB"


def _time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
