"""The token cache: a frozen backbone's tokens for every image, extracted once.

A cache folder holds ``tokens.f16`` (N x T x D, fp16, memory-mapped), ``logits.f16``
(N x classes: the backbone's own ImageNet head, for ConSE and knowledge transfer),
``status.u8`` (per image: 0 pending, 1 done, 2 failed to decode) and ``meta.json``.
Status is written only after the batch's tokens are flushed, so a kill at any moment
loses at most the batch in flight and the next run continues where it stopped. Under
``torchrun`` each rank extracts every world-th batch into the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir
from torch.utils.data import DataLoader
from tqdm import tqdm

from .backbones import Backbone
from .distributed import barrier, world
from .errors import UserError
from .tokens import Images, encode, token_shape

PENDING, DONE, FAILED = 0, 1, 2


class CacheError(UserError, RuntimeError):
    """A cache folder belongs to other images or another backbone."""


@dataclass
class FeatureCache:
    folder: Path
    tokens: np.memmap  # N x T x D float16
    logits: np.ndarray  # N x K float16 (memory-mapped when K > 0)
    status: np.ndarray  # N uint8

    @property
    def ok(self) -> np.ndarray:
        return self.status == DONE

    @classmethod
    def open(cls, folder: str | Path) -> FeatureCache:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        n, t, d, k = meta["images"], meta["tokens"], meta["token_dim"], meta["classes"]
        # A ViT caches no logits (its head reads the class token the tokens drop): an empty
        # file, which cannot be mapped.
        logits = np.memmap(folder / "logits.f16", dtype=np.float16, mode="r", shape=(n, k)) if n * k else None
        return cls(
            folder,
            np.memmap(folder / "tokens.f16", dtype=np.float16, mode="r", shape=(n, t, d)),
            logits if logits is not None else np.zeros((n, k), dtype=np.float16),
            np.array(np.memmap(folder / "status.u8", dtype=np.uint8, mode="r", shape=(n,))),
        )


def default_cache(dataset: str, backbone: str, weights: str | None) -> Path:
    """Where a dataset's tokens are cached unless a folder is given: the user cache dir,
    one folder per dataset and backbone (and weights file)."""
    tag = backbone if not weights else f"{backbone}-{Path(weights).stem}"
    return Path(user_cache_dir("epsilon-tag")) / "features" / dataset / tag


def list_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha1()
    for path in paths:
        digest.update(str(path).encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def extract_features(
    paths: Sequence[Path],
    backbone: Backbone,
    folder: str | Path,
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> FeatureCache:
    """Fill (or finish) the cache for ``paths``; returns it opened read-only."""
    folder = Path(folder)
    rank = world()[0]
    device = torch.device(device)
    t, d, k = token_shape(backbone)
    if rank == 0:
        _prepare(folder, _meta(paths, backbone, (t, d, k)))
    barrier()
    status = np.fromfile(folder / "status.u8", dtype=np.uint8)
    pending = _pending(status, batch_size)
    loader = DataLoader(
        Images(paths, backbone, pending),
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
        # Its own generator: an iterator drawn from the global one would shift what a run
        # seeds after extracting (the head's initialisation), unlike a streaming run.
        generator=torch.Generator(),
    )
    bar = _progress(len(pending), int((status == DONE).sum()), progress and rank == 0, "extracting tokens")
    started, done = time.perf_counter(), 0
    with (
        _RowWriter(folder / "tokens.f16", t * d * 2) as token_file,
        _RowWriter(folder / "logits.f16", k * 2) as logit_file,
        _RowWriter(folder / "status.u8", 1) as status_file,
    ):
        for index, pixels, ok in loader:
            rows = index.numpy()
            batch_tokens, batch_logits = encode(backbone, pixels, device, k)
            token_file.write(rows, batch_tokens)
            logit_file.write(rows, batch_logits)
            token_file.sync()
            logit_file.sync()
            # Status last: a kill before this line leaves the batch pending, never half-written.
            status_file.write(rows, np.where(ok.numpy(), DONE, FAILED).astype(np.uint8))
            status_file.sync()
            done += len(rows)
            bar.update(len(rows))
            bar.set_postfix(images_per_s=f"{done / (time.perf_counter() - started):.1f}")
    bar.close()
    barrier()
    return FeatureCache.open(folder)


def _meta(paths: Sequence[Path], backbone: Backbone, shape: tuple[int, int, int]) -> dict:
    """What a cache folder holds: the shape of its files (tokens, width, classes per image),
    and the images and backbone they come from."""
    t, d, k = shape
    return {
        "images": len(paths),
        "tokens": int(t),
        "token_dim": int(d),
        "classes": k,
        "backbone": backbone.spec(),
        "paths_sha1": list_digest(paths),
    }


def _pending(status: np.ndarray, batch_size: int) -> np.ndarray:
    """This rank's images still to extract. Batches are fixed slices of the image list and
    rank r takes every size-th one; failed images are tried again (a file fixed since the
    last run gets its tokens)."""
    rank, size = world()
    n = len(status)
    starts = range(rank * batch_size, n, batch_size * size)
    pending = np.concatenate([np.arange(s, min(s + batch_size, n)) for s in starts] or [np.zeros(0, np.int64)])
    return pending[status[pending] != DONE]


class _RowWriter:
    """Writes fixed-size rows at their offsets with pwrite.

    Not a writable memmap: mapped pages would count in the process's resident memory and
    grow with the library; written pages stay in the kernel's cache instead, so extraction
    memory is flat however many images there are.
    """

    def __init__(self, path: Path, row_bytes: int) -> None:
        self.path, self.row_bytes = path, row_bytes

    def __enter__(self) -> _RowWriter:
        self.fd = os.open(self.path, os.O_WRONLY)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, index: np.ndarray, rows: np.ndarray | torch.Tensor) -> None:
        if isinstance(rows, torch.Tensor):
            rows = rows.float().cpu().numpy().astype(np.float16)
        rows = np.ascontiguousarray(rows)
        for i, row in zip(index, rows):
            os.pwrite(self.fd, row.tobytes(), int(i) * self.row_bytes)

    def sync(self) -> None:
        os.fdatasync(self.fd)


def _prepare(folder: Path, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old != json.loads(json.dumps(meta)):
            raise CacheError(
                f"{folder} caches other images or another backbone ({old.get('images')} images, "
                f"{old.get('backbone', {}).get('name')}); delete it or pass another --cache folder."
            )
        return
    n, t, d, k = meta["images"], meta["tokens"], meta["token_dim"], meta["classes"]
    for name, count in (("tokens.f16", n * t * d * 2), ("logits.f16", n * k * 2), ("status.u8", n)):
        with open(folder / name, "wb") as handle:
            handle.truncate(count)  # sparse file of zeros: status 0 = pending
    meta_path.write_text(json.dumps(meta, indent=2))  # last: its presence means the files exist


def _progress(total: int, already: int, enabled: bool, what: str) -> tqdm:
    if already:
        print(f"{what}: {already} images already cached, {total} to go", file=sys.stderr)
    return tqdm(total=total, unit="img", desc=what, disable=not enabled, dynamic_ncols=True)
