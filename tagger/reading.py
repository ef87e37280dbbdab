"""Reading photos and tagging them: the expensive part of a scan.

DataLoader worker processes decode photos (JPEG draft mode, EXIF, orientation) while the
main process runs the model on the previous batch; each batch is committed on its own, so
Ctrl-C or a kill loses at most the batch in flight and the next scan continues from there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .images import UnreadablePhoto, jpeg_damage, open_photo, photo_size, read_meta
from .keywords import read_own
from .library import Failure, Library, PhotoRecord
from .scanplan import Job, quick_hash, sidecar_signature
from .vocabulary import Vocabulary, renormalise, top_tags

if TYPE_CHECKING:  # torch and the engine are imported when photos are read, not when a scan only decides
    import torch

    from .engine import Engine

NON_FINITE = "the model gave non-finite numbers for this photo (an overflow); not tagged"


class Read(NamedTuple):
    """What reading one file gives, but its pixels."""

    digest: str
    meta: dict  # PhotoMeta's fields
    size: tuple[int | None, int | None]  # (width, height), upright
    damage: str | None  # tagged all the same, but listed: damage, impossible EXIF values
    keywords: list[str]  # the photographer's own, from the file and its sidecars
    sidecars: str  # their signature (scanplan.sidecar_signature)
    confirmed: list[str]  # what a person confirmed on it in epsilon-tag, as its sidecars record


Found = Read | str  # or why the file could not be read


@dataclass
class ReadCounts:
    """What reading did, for the scan's report."""

    new: int = 0
    updated: int = 0
    failed: int = 0
    damaged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # tagged, with what is wrong with the file
    interrupted: bool = False
    stopped: str | None = None  # why reading stopped before its end, when something else stopped it


class _Reader:
    """Runs in DataLoader workers: one file -> (pixels, metadata) or the reason it failed."""

    def __init__(self, jobs: Sequence[Job], transform: Callable, decode_side: int, input_size: int):
        self.jobs, self.transform = jobs, transform
        self.decode_side, self.input_size = decode_side, input_size

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, Found]:
        import torch

        job = self.jobs[i]
        try:
            digest = quick_hash(job.path)
            meta = read_meta(job.path)
            image = open_photo(job.path, self.decode_side)
            pixels = self.transform(image)
            # Tagged all the same, but listed with the failures: damage, impossible EXIF values.
            noted = "; ".join(p for p in (jpeg_damage(job.path, image), *meta.problems) if p) or None
            (keywords, confirmed), sidecars = read_own(job.path), sidecar_signature(job.path)
            size = photo_size(job.path, meta.orientation)
            if size == (None, None):  # no header Pillow reads (JPEG XL): the decoded picture's, upright
                size = image.size
            return i, pixels, Read(digest, asdict(meta), size, noted, keywords, sidecars, confirmed)
        except FileNotFoundError:
            reason = "vanished during the scan"
        except UnreadablePhoto as exc:
            reason = str(exc)
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
        except Exception as exc:  # any decoder error: recorded, the scan goes on
            reason = f"cannot decode: {type(exc).__name__}: {exc}"
        return i, torch.zeros(3, self.input_size, self.input_size), reason


def _collate(items: list[tuple[int, Any, Found]]) -> tuple[list[int], torch.Tensor, list[Found]]:
    import torch

    return [i for i, _, _ in items], torch.stack([p for _, p, _ in items]), [r for _, _, r in items]


def read_and_tag(
    library: Library,
    engine: Engine,
    jobs: Sequence[tuple[Job, bool]],
    folders: Sequence[str],
    *,
    stage: bool = False,
    batch_size: int = 32,
    workers: int | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReadCounts:
    """Read ``jobs`` ((file, already in the library)), run the model and store each batch in
    its own transaction: tagged, or with ``stage`` kept apart for a switch to the engine's
    model. Stops early, keeping what was stored, on Ctrl-C or when one of ``folders`` is
    forgotten meanwhile (``roots forget`` in another process)."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    counts = ReadCounts()
    reader = _Reader(
        [job for job, _ in jobs], engine.transform(), engine.decode_side, engine.backbone.preprocessing.input_size
    )
    loader: Iterable = DataLoader(
        reader,  # type: ignore[arg-type]  # a map-style dataset by its __len__ / __getitem__
        batch_size=batch_size,
        num_workers=default_workers() if workers is None else workers,
        collate_fn=_collate,
        pin_memory=engine.device.type == "cuda",
    )
    bar = tqdm(
        total=len(jobs),
        unit="photo",
        desc="tagging",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    done = 0
    try:
        for indices, pixels, results in loader:
            batch = [jobs[i] for i in indices]
            counts.stopped = _store_batch(library, engine, batch, pixels, results, counts, folders, stage)
            if counts.stopped:
                break
            bar.update(len(indices))
            done += len(indices)
            if on_progress is not None:
                on_progress(done, len(jobs))
    except KeyboardInterrupt:
        # The batch in flight was rolled back by its transaction; everything before it is stored.
        counts.interrupted = True
    finally:
        bar.close()
    return counts


def _store_batch(
    library: Library,
    engine: Engine,
    jobs: list[tuple[Job, bool]],
    pixels: torch.Tensor,
    results: list[Found],
    counts: ReadCounts,
    folders: Sequence[str],
    stage: bool,
) -> str | None:
    """Run the model on one batch and store it in one transaction; returns why the scan
    must stop instead, if it must."""
    ok = [n for n, r in enumerate(results) if not isinstance(r, str)]
    semantic, classes = (
        engine.recognise(pixels[ok]) if ok else (np.zeros((0, *engine.semantic_shape), np.float16), None)
    )
    semantic, classes = _finite_only(semantic, classes, results, ok)
    with library.transaction():
        # Under the write lock, so that `roots forget` cannot slip between the check and the
        # write: a folder forgotten during the scan gets no more photos.
        forgotten = [f for f in folders if f not in library.get_meta("roots", [])]
        if forgotten:  # not a cut to continue from: what was asked is no longer wanted
            return f"{', '.join(forgotten)} was forgotten (roots forget) during the scan"
        # The words as they are now, under the write lock: another process may have added
        # or removed some since the last batch (`vocab add` while scanning).
        tags = (
            [[] for _ in semantic]
            if stage
            else top_tags(semantic, classes, Vocabulary.of_library(library), library.tags_per_photo, library.tag_rule)
        )
        records, failures = _records(jobs, results, semantic, classes, tags)
        if stage:
            library.stage_batch(records, failures, engine.model_id)
        else:
            library.save_batch(records, failures, engine.model_id)
            # A photo new to this library whose sidecar records what a person confirmed on
            # it (an export from another library, a lost .db): theirs again.
            library.restore_confirmed(
                [
                    (job.path, r.confirmed)
                    for (job, known), r in zip(jobs, results)
                    if isinstance(r, Read) and r.confirmed and not known
                ]
            )
            renormalise(library)  # the first photos, then each time the library grew by a quarter
    # Counted once stored: a batch cut by Ctrl-C was rolled back and counts nothing.
    updated = sum(in_library for (_, in_library), r in zip(jobs, results) if not isinstance(r, str))
    counts.updated += updated
    counts.new += len(records) - updated
    damaged = [(r.path, r.damage) for r in records if r.damage]
    counts.damaged += len(damaged)
    counts.warnings.extend(damaged)
    counts.failed += len(failures)
    counts.failures.extend((f.path, f.reason) for f in failures)
    return None


def _records(
    jobs: list[tuple[Job, bool]],
    results: list[Found],
    semantic: np.ndarray,
    classes: np.ndarray | None,
    tags: list,
) -> tuple[list[PhotoRecord], list[Failure]]:
    """The batch's photos as records to store (in order), and its failures."""
    records, failures = [], []
    tagged = zip(semantic, [None] * len(semantic) if classes is None else classes, tags)
    for (job, _), result in zip(jobs, results):
        if isinstance(result, str):
            failures.append(Failure(job.path, result, job.size, job.mtime_ns))
            continue
        s, c, t = next(tagged)
        width, height = result.size
        records.append(
            PhotoRecord(
                job.path,
                job.size,
                job.mtime_ns,
                result.digest,
                width,
                height,
                result.meta,
                s,
                t,
                result.damage,
                c,
                result.keywords,
                result.sidecars,
            )
        )
    return records, failures


def _finite_only(
    semantic: np.ndarray, classes: np.ndarray | None, results: list[Found], ok: list[int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Photos whose S is not finite become failures: one NaN row would otherwise reach the
    library's scores, its side file and every search that ranks it."""
    finite = np.isfinite(semantic).all(axis=tuple(range(1, semantic.ndim)))  # (no reshape: 0 photos is a batch)
    if finite.all():
        return semantic, classes
    for n, good in zip(ok, finite):
        if not good:
            results[n] = NON_FINITE
    return semantic[finite], None if classes is None else classes[finite]


def default_workers() -> int:
    """Decode worker processes: one per core, at most 8 (the model needs cores too)."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
