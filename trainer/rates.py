"""The throughputs a run's cost follows from, where they were measured, and how noisy they are.

Four rates: decoding a photo (images/s per worker process), the frozen backbone's
forward, the head's training step (images/s per device) and reading the cache (bytes/s).
Each is measured ``REPEATS`` times and given as the median with the min-max spread: on a
shared machine one measurement can be off several fold (the same estimate read 57.3 h,
then 9.6 h twenty seconds later). Rates carry the device they were measured on, so that
CPU rates are never scaled to GPUs: bench/gpu_check.py measures them on a GPU machine
and writes them to a file (``write_rates``) that ``epsilon-train estimate --rates`` reads.
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .backbones import build_backbone
from .errors import InputError
from .model import Epsilon, EpsilonConfig
from .tokens import token_shape as probe

REPEATS = 3
FORMAT = "epsilon-tag rates"
RATES = ("decode", "backbone", "head", "disk")
# The head whose training step is timed: the training default's, or the paper recipe's.
HEADS = {"default": {"d_model": 256, "depth": 2}, "paper": {"d_model": 768, "depth": 3}}
GPU_CHECK = "bash bench/gpu_check.sh"  # writes gpu-rates.json beside the checkout's root


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
class Rates:
    """Throughputs (medians) with where they come from and their spread over the repeats."""

    values: Throughputs
    device: str  # "AMD EPYC 7B13 (2 cores)", "NVIDIA H100 80GB HBM3", or "given"
    kind: str  # "cpu", "cuda", or "given" (typed on the command line: whatever they are)
    origin: str  # "measured here", "given", or the rates file
    when: str = ""
    repeats: int = 0
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)  # rate -> (min, max)

    def bound(self, end: int) -> Throughputs:
        """The throughputs at one end of the spread (0: slowest, 1: fastest)."""
        return Throughputs(**{k: self.spread.get(k, (v, v))[end] for k, v in self.values.measured().items()})

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "values"}


def device_name(device: str) -> str:
    """The processor the rates are measured on: the GPU's name, or the CPU's model and cores."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux
    return f"{model or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _timed(step: Callable[[], None], images: int, device: str) -> float:
    """Images per second of one run of ``step`` (which handles ``images``)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def _jpeg() -> bytes:
    """A 500 x 375 JPEG: the size of NUS-WIDE's and most Flickr photos."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _decode_rate(transform: Callable, data: bytes) -> float:
    """Photos decoded and transformed per second, over 0.3 s."""
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 0.3:
        transform(Image.open(io.BytesIO(data)).convert("RGB"))
        count += 1
    return count / (time.perf_counter() - start)


def measure(
    backbone: str, *, device: str = "cpu", batch: int = 8, heads: tuple[str, ...] = ("default",), steps: int = 1
) -> dict[str, list[float]]:
    """``REPEATS`` samples of each rate on this machine (seconds, not minutes): decode,
    backbone, disk, and ``head`` (the training default's head) or ``head_paper``."""
    model = build_backbone(backbone, random_init=True, device=device)
    tokens = probe(model)[:2]
    transform = model.preprocessing.transform()
    size = model.preprocessing.input_size
    images = torch.randn(batch, 3, size, size, device=device)

    def forward() -> None:
        # As extraction runs it (trainer.features): fp16 autocast on CUDA, plain fp32 elsewhere.
        with torch.autocast("cuda", dtype=torch.float16, enabled=device.startswith("cuda")):
            for _ in range(steps):
                model(images)

    forward()  # warm-up
    data = _jpeg()
    samples: dict[str, list[float]] = {"decode": [], "backbone": []}
    for _ in range(REPEATS):
        samples["decode"].append(_decode_rate(transform, data))
        samples["backbone"].append(_timed(forward, batch * steps, device))
    for head in heads:
        samples["head" if head == "default" else f"head_{head}"] = _head_samples(head, tokens, device, batch, steps)
    samples["disk"] = _disk_samples()
    return samples


def _head_samples(head: str, tokens: tuple[int, int], device: str, batch: int, steps: int) -> list[float]:
    net = Epsilon(EpsilonConfig(token_dim=tokens[1], d_w=300, **HEADS[head])).to(device)  # type: ignore[arg-type]
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-5)
    features = torch.randn(batch, *tokens, device=device)

    def train() -> None:
        for _ in range(steps):
            optimiser.zero_grad()
            net(features).square().mean().backward()
            optimiser.step()

    train()  # warm-up
    return [_timed(train, batch * steps, device) for _ in range(REPEATS)]


def _disk_samples() -> list[float]:
    """Sequential reads of a fresh 64 MiB file (the page cache makes them optimistic)."""
    size = 64 << 20
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(os.urandom(size))
        handle.flush()
        found = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            with open(handle.name, "rb") as again:
                while again.read(8 << 20):
                    pass
            found.append(size / (time.perf_counter() - start))
        return found


def summarise(samples: dict[str, list[float]], head: str, *, device: str, kind: str, origin: str, when: str) -> Rates:
    """Rates from samples: the median of each, with its min-max."""
    key = {"head": "head" if head == "default" else f"head_{head}"}
    chosen = {rate: samples[key.get(rate, rate)] for rate in RATES}
    values = Throughputs(**{rate: statistics.median(v) for rate, v in chosen.items()})
    spread = {rate: (min(v), max(v)) for rate, v in chosen.items()}
    repeats = min(len(v) for v in chosen.values())
    return Rates(values, device, kind, origin, when, repeats, spread)


def write_rates(path: Path, device: str, backbones: list[str], batch: int, steps: int = 1) -> dict:
    """Measure every backbone's rates (both heads) on ``device`` and write them to ``path``
    as JSON: the file bench/gpu_check.py leaves for ``epsilon-train estimate --rates``."""
    record = {
        "format": FORMAT,
        "device": device_name(device),
        "kind": torch.device(device).type,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "batch": batch,
        "repeats": REPEATS,
        "backbones": {
            name: measure(name, device=device, batch=batch, heads=tuple(HEADS), steps=steps) for name in backbones
        },
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_rates(path: Path, backbone: str, head: str) -> tuple[Rates, int]:
    """A rates file's rates for ``backbone`` and the head, and the cores of its machine."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the rates file {path}: {exc}. It is what `{GPU_CHECK}` writes.") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f'{path} is not a rates file (no "format": "{FORMAT}"); `{GPU_CHECK}` writes one')
    samples = record["backbones"].get(backbone)
    if samples is None:
        raise InputError(
            f"{path} has rates for {', '.join(record['backbones'])}, not {backbone}: run "
            f"`python bench/gpu_check.py --vit {backbone}` on that machine, or pass --backbone one of them"
        )
    rates = summarise(
        samples, head, device=record["device"], kind=record["kind"], origin=str(path), when=record["when"]
    )
    return rates, int(record.get("cores") or 1)
