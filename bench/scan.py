"""epsilon-tag scan and library speed, by hand:  python bench/scan.py [--photos 500]

Prints, all measured in this one run (ratios, not absolute thresholds):
1. end-to-end scan photos/s of 12-megapixel JPEGs against the pipeline limit
   cores / (d + f): d = one core's seconds to decode one photo for the model (draft
   mode + resize), f = the backbone's core-seconds per photo (batched forward wall x threads);
2. a rescan of 10,000 unchanged files (the scan() call, and the whole CLI process);
3. `vocab add` and a zero-shot search over 100,000 stored photos;
4. peak memory of a scan process at N/2 and N photos (flat = 1.0x).

The 12 MP JPEGs are Corel-5K photos upscaled to 4000 x 3000 (quality 90), made once into
--work (default /tmp/epsilon-bench) and reused.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extraction import backbone_core_seconds

from tagger.engine import Engine
from tagger.images import open_photo
from tagger.library import Library, PhotoRecord
from tagger.scan import ScanOptions, scan
from tagger.search import search
from tagger.vocabulary import WordSource, add_words
from trainer.assets import default_words
from trainer.embeddings import load_embeddings

CODE_ROOT = Path(__file__).resolve().parents[1]
COREL = CODE_ROOT.parent / "shared" / "data" / "corel5k" / "images"


def twelve_megapixel_jpegs(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(COREL.rglob("*.jpeg"))
    out = []
    for i in range(n):
        path = folder / f"IMG_{i:05d}.jpg"
        if not path.exists():
            with Image.open(sources[i * 7 % len(sources)]) as image:
                big = image.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
            big.save(path.with_suffix(".tmp"), "JPEG", quality=90)
            os.replace(path.with_suffix(".tmp"), path)
        out.append(path)
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=500, help="12 MP JPEGs for the throughput run")
    parser.add_argument("--unchanged", type=int, default=10_000, help="files for the rescan run")
    parser.add_argument("--stored", type=int, default=100_000, help="stored photos for vocab add / search")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "epsilon-bench")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: 1,2,3,4")
    parser.add_argument("--scan-once", nargs=2, metavar=("FOLDER", "DB"), help=argparse.SUPPRESS)  # part 4's child
    args = parser.parse_args()
    if args.scan_once:
        scan_once(*args.scan_once)
        return
    skip = set(args.skip.split(","))
    engine = Engine.load(device="cpu")
    parts = {"1": throughput, "2": rescan, "3": stored_words, "4": peak_memory}
    for name, part in parts.items():
        if name not in skip:
            part(args, engine)


def throughput(args: argparse.Namespace, engine: Engine) -> None:
    photos = twelve_megapixel_jpegs(args.work / "12mp", args.photos)
    transform, side = engine.transform(), engine.decode_side
    start = time.process_time()
    for path in photos[:30]:
        transform(open_photo(path, side))
    d = (time.process_time() - start) / 30
    f = backbone_core_seconds(engine.backbone)
    cores = len(os.sched_getaffinity(0))
    limit = cores / (d + f)
    with tempfile.TemporaryDirectory() as tmp, Library(Path(tmp) / "lib.db") as library:
        wall, report = timed(lambda: scan(library, [photos[0].parent], ScanOptions(progress=False), engine=engine))
    assert report.new == len(photos), report
    rate = len(photos) / wall
    print(
        f"1. scan of {len(photos)} 12 MP JPEGs: {rate:.1f} photos/s; d = {d * 1e3:.1f} ms (draft decode + resize, "
        f"one core), f = {f * 1e3:.1f} core-ms (backbone), {cores} cores -> limit {limit:.1f} photos/s; "
        f"scan = {rate / limit:.2f} of the limit"
    )


def rescan(args: argparse.Namespace, engine: Engine) -> None:
    folder = args.work / "unchanged"
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{i // 1000:02d}" / f"p{i:05d}.jpg" for i in range(args.unchanged)]
    for path in files:
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"\xff\xd8" + path.name.encode())
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lib.db"
        with Library(db) as library:
            library.set_meta(model_id=engine.model_id, semantic_shape=list(engine.semantic_shape))
            zero = np.zeros(engine.semantic_shape, np.float16)
            library.save_batch(
                [
                    PhotoRecord(str(p), p.stat().st_size, p.stat().st_mtime_ns, str(i), 1, 1, {}, zero, [])
                    for i, p in enumerate(files)
                ],
                [],
                engine.model_id,
            )
            wall, report = timed(lambda: scan(library, [folder], ScanOptions(progress=False)))
        assert report.unchanged == len(files) and report.new == 0, report
        cli, done = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "tagger.cli", "scan", str(folder), "--db", str(db), "-q"],
                capture_output=True,
                text=True,
                check=True,
            )
        )
    print(
        f"2. rescan of {len(files):,} unchanged files: scan() {wall:.2f} s; the whole `epsilon-tag scan` "
        f"process {cli:.2f} s ({done.stdout.strip()})"
    )


def stored_words(args: argparse.Namespace, engine: Engine) -> None:
    from tests.tagging import synthetic_library

    glove = load_embeddings()
    words = [(w, glove.vector(w)) for w in default_words(engine.bundle.seen_labels)]
    with tempfile.TemporaryDirectory() as tmp:
        build, library = timed(lambda: synthetic_library(Path(tmp) / "lib.db", args.stored, words))
        source = WordSource.of_library(library)
        source.vector("zeppelin")  # the word vectors loaded once, as a long-lived TUI holds them
        add_cold, counts = timed(lambda: add_words(library, ["zeppelin"], source))  # reads every S first
        find, _ = timed(lambda: search(library, "airship", limit=20, source=source))
        known, _ = timed(lambda: search(library, "beach", limit=20, source=source))
        add_warm, _ = timed(lambda: add_words(library, ["dirigible"], source))  # S already in memory
        library.close()
        cli, _ = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "tagger.cli", "search", "blimp", "--db", str(Path(tmp) / "lib.db")],
                capture_output=True,
                check=True,
            )
        )
        cli_add, _ = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "tagger.cli", "vocab", "add", "balloon", "--db", str(Path(tmp) / "lib.db")],
                capture_output=True,
                check=True,
            )
        )
    print(
        f"3. {args.stored:,} stored photos x {len(words)} words (built in {build:.0f} s): "
        f"vocab add {add_cold:.2f} s "
        f"reading every stored S first, {add_warm:.2f} s with S in memory ({counts['zeppelin']:,} photos now carry "
        f"'zeppelin'); zero-shot search {find:.2f} s, vocabulary-word search {known:.2f} s; whole CLI processes "
        f"(start, imports, word vectors): search {cli:.2f} s, vocab add {cli_add:.2f} s"
    )


def peak_memory(args: argparse.Namespace, engine: Engine) -> None:
    photos = twelve_megapixel_jpegs(args.work / "12mp", args.photos)
    peaks = {}
    for n in (len(photos) // 2, len(photos)):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            for p in photos[:n]:
                (folder / p.name).symlink_to(p)
            done = subprocess.run(
                [sys.executable, __file__, "--scan-once", str(folder), str(Path(tmp) / "lib.db")],
                check=True,
                capture_output=True,
                text=True,
                cwd=CODE_ROOT,
            )
            peaks[n] = [int(v) / 1024 for v in done.stdout.split()[-2:]]
    (small, (a, wa)), (large, (b, wb)) = sorted(peaks.items())
    print(
        f"4. peak memory of a scan: {small} photos {a:.0f} MiB (largest decode worker {wa:.0f} MiB), "
        f"{large} photos "
        f"{b:.0f} MiB ({wb:.0f} MiB) -> {b / a:.2f}x for {large / small:.0f}x the photos"
    )


def scan_once(folder: str, db: str) -> None:
    """Part 4's child: one scan, then this process's and its largest worker's peak memory."""
    with Library(db) as library:
        scan(library, [folder], ScanOptions(device="cpu", progress=False))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


if __name__ == "__main__":
    main()
