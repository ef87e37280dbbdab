"""What a training run will cost before it starts: images, token-cache bytes, time per epoch.

The cached path extracts every image's tokens once (decode + backbone), then trains the
head from the cache; the streaming path runs the frozen backbone inside every epoch. Their
costs follow from four throughputs (trainer.rates), measured here in a few seconds, read
from a file bench/gpu_check.py wrote on a GPU machine, or given. Scaling to N GPUs divides
the GPU parts by N and gives each GPU its own decode workers: an estimate, not a
measurement, and only ever of GPU rates (a CPU's say nothing of a GPU's).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from .backbones import build_backbone
from .datasets import load_dataset
from .distributed import setup
from .errors import InputError
from .features import default_cache
from .rates import GPU_CHECK, RATES, Rates, Throughputs, device_name, measure, read_rates, summarise
from .tokens import CACHE_SHARE, free_bytes
from .tokens import token_shape as probe

__all__ = ["Estimate", "Throughputs", "estimate", "estimate_run", "format_estimate"]

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
    rates_from: dict | None = None  # Rates.describe(): device, kind, origin, when, repeats, spread
    # "1", "N" -> the totals at the slowest and the fastest end of the rates' spread
    ranges: dict | None = None
    cache_folder: str | None = None  # where --cache auto would put the tokens
    cache_free_bytes: int | None = None  # free space there now

    def to_dict(self) -> dict:
        return asdict(self)


def token_shape(backbone: str, device: str = "cpu") -> tuple[int, int]:
    """(tokens, width) of one image: from the model itself (random weights, one forward)."""
    tokens, width, _ = probe(build_backbone(backbone, random_init=True, device=device))
    return tokens, width


def _rates(
    given: tuple[float | None, ...], rates_file: Path | None, backbone: str, head: str, device: str, gpus: int
) -> tuple[Rates | None, int | None]:
    """Where the rates come from, before anything is measured: all given (None), a file
    (and its machine's cores), or this machine, which must then not be a CPU scaled to GPUs."""
    if rates_file is not None:
        rates, cores = read_rates(rates_file, backbone, head)
    elif None not in given:
        return None, None
    else:
        rates, cores = None, None
    kind = rates.kind if rates else torch.device(device).type
    if gpus > 1 and kind == "cpu":
        where = rates.device if rates else device_name(device)
        raise InputError(
            f"cannot scale CPU rates to {gpus} GPUs: the rates {'in ' + str(rates_file) if rates else 'measured here'} "
            f"are a CPU's ({where}), and say nothing of a GPU's. On a machine with the GPUs run `{GPU_CHECK}` (or "
            f"`python bench/gpu_check.py`): it writes the rates it measures to gpu-rates.json; then pass that file, "
            f"--rates gpu-rates.json --gpus {gpus} (or give every rate: --decode-rate, --backbone-rate, --head-rate, "
            f"--disk-rate)"
        )
    return rates, cores


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
    rates_file: Path | None = None,
    head: str = "default",
) -> Estimate:
    """``epsilon-train estimate``: the dataset's images (counted in ``data``, else the
    official counts), the backbone's tokens, and the throughputs: ``rates`` (decode,
    backbone, head, disk) where given, else from ``rates_file``, else measured here on
    ``device`` (median of repeats), for 1 and ``gpus`` devices (0: those visible).
    ``workers`` 0: one per core of the machine the rates are from."""
    dev = str(setup(device))
    source, cores = _rates(rates, rates_file, backbone, head, dev, gpus)
    if data is not None:
        loaded = load_dataset(dataset, data)
        images = {"train": len(loaded.train), "test": len(loaded.test)}
    else:
        images = dict(OFFICIAL_IMAGES[dataset])
    tokens = token_shape(backbone, dev)
    if source is None and None in rates:
        when = datetime.now(UTC).isoformat(timespec="seconds")
        samples = measure(backbone, device=dev, heads=(head,))
        kind = torch.device(dev).type
        source = summarise(samples, head, device=device_name(dev), kind=kind, origin="measured here", when=when)
    if source is None:
        source = Rates(Throughputs(*rates), "given", "given", "given")  # type: ignore[arg-type]
    overridden = {k: v for k, v in zip(RATES, rates) if v is not None}
    if overridden:  # a rate given on the command line replaces the measured one, spread and all
        source.values = Throughputs(**{**source.values.measured(), **overridden})
        source.spread = {k: v for k, v in source.spread.items() if k not in overridden}
    workers = workers or cores or os.cpu_count() or 1
    n = gpus or max(torch.cuda.device_count(), 1)
    result = estimate(dataset, backbone, images, tokens, source.values, workers=workers, gpus=n, epochs=epochs)
    result.rates_from = source.describe()
    folder = default_cache(dataset, backbone, None)
    result.cache_folder, result.cache_free_bytes = str(folder), free_bytes(folder)
    if source.spread:
        ends = [
            estimate(dataset, backbone, images, tokens, source.bound(end), workers=workers, gpus=n, epochs=epochs)
            for end in (0, 1)
        ]
        result.ranges = {
            k: {t: [ends[1].per_gpus[k][t], ends[0].per_gpus[k][t]] for t in ("cached_total_s", "streaming_total_s")}
            for k in result.per_gpus
        }
    return result


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
    source = result.rates_from or {}
    lines = [
        f"{result.dataset} with {result.backbone}: {sum(result.images.values()):,} images "
        f"({', '.join(f'{k} {v:,}' for k, v in result.images.items())}), "
        f"{result.tokens[0]} x {result.tokens[1]} tokens each",
        f"token cache (fp16): {_bytes(result.cache_bytes)}" + _fits(result),
        _rates_line(source),
        "throughputs (images/s, median"
        + (f" of {source['repeats']}, min-max" if source.get("spread") else "")
        + "): "
        + ", ".join(_rate(k, v, source.get("spread", {}).get(k)) for k, v in result.throughputs.items()),
    ]
    device = source.get("device", "device")
    for n, times in result.per_gpus.items():
        spread = (result.ranges or {}).get(n, {})
        lines.append(
            f"{n} x {device}{' (scaled: an estimate)' if n != '1' else ''}, {result.workers} decode workers each, "
            f"{result.epochs} epochs: cached = extract {_time(times['extract_s'])} + "
            f"{_time(times['cached_epoch_s'])}/epoch (total {_total(times, spread, 'cached_total_s')}); streaming = "
            f"{_time(times['streaming_epoch_s'])}/epoch (total {_total(times, spread, 'streaming_total_s')})"
        )
    return "\n".join(lines)


def _fits(result: Estimate) -> str:
    """Whether --cache auto would cache or stream, from the free space where it would cache."""
    if result.cache_free_bytes is None:
        return ""
    free = f"{_bytes(result.cache_free_bytes)} free in {result.cache_folder}"
    if result.cache_bytes <= CACHE_SHARE * result.cache_free_bytes:
        return f"; {free}: --cache auto caches there"
    return f"; only {free}: --cache auto would stream (or --cache FOLDER on a disk with room)"


def _rates_line(source: dict) -> str:
    if source.get("kind", "given") == "given":
        return "rates: given on the command line"
    wide = any(low > 0 and high / low > 1.5 for low, high in source.get("spread", {}).values())
    return f"rates: {source['origin']} on {source['device']} ({source['kind'].upper()}), {source['when']}" + (
        "; the spread is wide (a busy machine?): measure again when it is idle" if wide else ""
    )


def _rate(name: str, value: float, spread: list[float] | tuple[float, float] | None) -> str:
    shown = _bytes(value) + "/s" if name == "disk" else f"{value:,.1f}" + (" per worker" if name == "decode" else "")
    if not spread:
        return f"{name} {shown}"
    low, high = (_bytes(v) + "/s" for v in spread) if name == "disk" else (f"{v:,.1f}" for v in spread)
    return f"{name} {shown} ({low}-{high})"


def _total(times: dict, spread: dict, key: str) -> str:
    if key not in spread:
        return _time(times[key])
    fast, slow = spread[key]
    return f"{_time(times[key])}, {_time(fast)}-{_time(slow)} over the spread"


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
