"""Token extraction and training speed, by hand:  python bench/extraction.py [--data DIR]

Prints, all measured in this one run on Corel-5K photos:
1. extraction images/s against the pipeline limit cores / (d + f), where d is one core's
   seconds to decode and preprocess one photo (draft mode) and f the backbone's
   core-seconds per photo (batched forward wall time x its threads);
2. training steps from the token cache against steps that decode and run the backbone;
3. peak resident memory of an extraction subprocess over --memory-images photos.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainer.backbones import Backbone, build_backbone
from trainer.datasets import Dataset, label_rows, load_dataset
from trainer.features import extract_features
from trainer.images import load_rgb
from trainer.loss import epsilon_loss
from trainer.model import Epsilon, EpsilonConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "corel5k"


def decode_seconds(paths, backbone) -> float:
    transform = backbone.preprocessing.transform()
    min_side = backbone.preprocessing.decode_side
    start = time.process_time()  # one core's CPU seconds
    for path in paths:
        transform(load_rgb(path, min_side))
    return (time.process_time() - start) / len(paths)


def backbone_core_seconds(backbone, batch: int = 32, repeats: int = 3) -> float:
    images = torch.randn(batch, 3, 224, 224)
    backbone(images)
    best = min(_timed(lambda: backbone(images)) for _ in range(repeats))
    return best * torch.get_num_threads() / batch


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=1000, help="photos for the extraction throughput")
    parser.add_argument("--memory-images", type=int, default=5000, help="photos for the peak-memory run")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed each way")
    parser.add_argument("--d-model", type=int, default=256, help="width of the trained head (the default model: 128)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory run")
    args = parser.parse_args()
    dataset = load_dataset("corel5k", args.data)
    paths = dataset.train.images + dataset.test.images
    backbone = build_backbone()
    extraction_rate(paths, backbone, args.images)
    training_steps(dataset, backbone, args.steps, args.d_model)
    if not args.skip_memory:
        peak_memory(paths, args.memory_images)


def extraction_rate(paths: list[Path], backbone: Backbone, images: int) -> None:
    """1. Extraction against the pipeline limit cores / (d + f)."""
    cores = os.cpu_count() or 1
    d = decode_seconds(paths[:200], backbone)
    f = backbone_core_seconds(backbone)
    limit = cores / (d + f)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        extract_features(paths[:images], backbone, Path(tmp) / "cache", workers=cores, progress=False)
        rate = images / (time.perf_counter() - start)
    print(
        f"1. decode d = {d * 1e3:.1f} ms/photo (one core), backbone f = {f * 1e3:.1f} core-ms/photo, "
        f"{cores} cores -> limit {limit:.1f} photos/s; extraction {rate:.1f} photos/s = {rate / limit:.2f} of the limit"
    )


def training_steps(dataset: Dataset, backbone: Backbone, steps: int, d_model: int) -> None:
    """2. Training steps: tokens from the cache versus decoding + backbone every time."""
    model = Epsilon(EpsilonConfig(token_dim=1280, d_model=d_model, depth=2, heads=4, d_w=dataset.seen_vectors.shape[1]))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    words = torch.from_numpy(dataset.seen_vectors)
    batch = 96

    def step(tokens: torch.Tensor, labels: torch.Tensor) -> None:
        optimiser.zero_grad()
        epsilon_loss(model(tokens), words, labels).total.backward()
        optimiser.step()

    rows = np.arange(batch * steps)
    batches = [rows[s * batch : (s + 1) * batch] for s in range(steps)]
    with tempfile.TemporaryDirectory() as tmp:
        cores = os.cpu_count() or 1
        cache = extract_features(
            dataset.train.images[: len(rows)], backbone, Path(tmp) / "c", workers=cores, progress=False
        )
        transform = backbone.preprocessing.transform()
        start = time.perf_counter()
        for r in batches:
            tokens = torch.from_numpy(np.asarray(cache.tokens[r], dtype=np.float32))
            step(tokens, torch.from_numpy(label_rows(dataset.train.seen, r)))
        cached = time.perf_counter() - start
        start = time.perf_counter()
        for r in batches:
            side = backbone.preprocessing.decode_side
            pixels = torch.stack([transform(load_rgb(dataset.train.images[i], side)) for i in r])
            step(backbone(pixels), torch.from_numpy(label_rows(dataset.train.seen, r)))
        raw = time.perf_counter() - start
    print(
        f"2. {steps} training steps of {batch} (d_model {d_model}): from the cache {cached:.1f} s, "
        f"from raw images {raw:.1f} s "
        f"-> the cache is {raw / cached:.1f}x faster"
    )


def peak_memory(paths: list[Path], memory_images: int) -> None:
    """3. Peak memory of an extraction over many photos, in a child process of its own."""
    peaks = {}
    for n in (memory_images // 5, min(memory_images, len(paths))):
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "paths.txt"
            listing.write_text("\n".join(map(str, paths[:n])))
            code = (
                "import sys; from pathlib import Path; from trainer.backbones import build_backbone; "
                "from trainer.features import extract_features; "
                "paths=[Path(p) for p in Path(sys.argv[1]).read_text().splitlines()]; "
                "extract_features(paths, build_backbone(), sys.argv[2], workers=2, progress=False); "
                "import resource as r; "
                "print(r.getrusage(r.RUSAGE_SELF).ru_maxrss, r.getrusage(r.RUSAGE_CHILDREN).ru_maxrss)"
            )
            done = subprocess.run(
                [sys.executable, "-c", code, str(listing), str(Path(tmp) / "cache")],
                check=True,
                capture_output=True,
                text=True,
            )
            peaks[n] = [int(v) / 1024 for v in done.stdout.split()[-2:]]
    (small, (a, wa)), (large, (b, wb)) = sorted(peaks.items())
    print(
        f"3. peak resident memory of extraction: {small} photos {a:.0f} MiB (largest decode worker {wa:.0f} MiB), "
        f"{large} photos {b:.0f} MiB ({wb:.0f} MiB) -> {b / a:.2f}x for {large / small:.0f}x the photos; "
        f"the token cache on disk for {large} photos is {large * 49 * 1280 * 2 / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
