"""epsilon-tag on big libraries, by hand:  python bench/library_scale.py [--photos 100000 1000000]

For each size, a synthetic library made straight into SQLite (random unit S of the default
model's shape, the default vocabulary, every photo tagged by the library's own rule, and an
empty file on disk per photo so that a rescan has files to compare), then whole processes,
each the best of --repeat runs:
  search (zero-shot word), search (vocabulary word), vocab add (then remove), stats,
  TUI launch to its first full screen (headless pilot), rescan of the unchanged files,
with wall time, peak memory (max RSS) and the ratio over `python -c "import numpy, sqlite3"`
measured in the same run. Made once into --work (default /tmp/epsilon-scale) and reused.
--embeddings minilm-l6-v2: the same library with words (and S) in the sentence encoder's
384-d space, as a default trained there would store them (no rescan: no such model ships).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.adopt import VOCABULARY_POLICY, follow_tag_rule  # noqa: E402
from tagger.engine import model_id  # noqa: E402
from tagger.library import Library, PhotoRecord  # noqa: E402
from tagger.vocabulary import Vocabulary, WordSource, fill_vocabulary, scores, top_tags, word_levels  # noqa: E402
from trainer.assets import asset_path, default_words  # noqa: E402
from trainer.checkpoint import CONFIG_FILE  # noqa: E402
from trainer.embeddings import DEFAULT_EMBEDDINGS  # noqa: E402
from trainer.tagrule import top_classes  # noqa: E402

PYTHON = sys.executable
CLI = [str(Path(PYTHON).parent / "epsilon-tag")]  # the console script, as people run it


def build(db: Path, photos: int, folder: Path, embeddings: str = DEFAULT_EMBEDDINGS) -> None:
    """A library of ``photos`` synthetic photos, tagged as a scan would, written through the
    library's own API (save_batch), so that it follows the schema wherever it goes."""
    config = json.loads((asset_path("default") / CONFIG_FILE).read_text())
    rows = config["model"]["num_groups"] + (config["model"].get("prior") == "row")
    source = WordSource(embeddings, seen=config["seen_labels"])
    shape = (rows, config["model"]["d_w"] if embeddings == DEFAULT_EMBEDDINGS else source.vectors.dim)
    source.dim = shape[1]
    if db.exists():
        with Library(db) as library:
            follow_tag_rule(library, config.get("tagging"))  # a rule chosen again since, as a scan does
        return
    tmp = db.with_suffix(".building")
    for stale in tmp.parent.glob(tmp.name + "*"):
        stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with Library(tmp) as library:
        # The default model's id: a rescan then finds every photo tagged by today's model.
        model = model_id()
        library.set_meta(
            model_id=model,
            semantic_shape=list(shape),
            embeddings=embeddings,
            seen_words=config["seen_labels"],
            tags_per_photo=10,
            tag_rule=config.get("tagging"),
            roots=[str(folder)],
            vocabulary_ready=True,
            vocabulary_policy=VOCABULARY_POLICY,
        )
        fill_vocabulary(library, source, default_words(config["seen_labels"]))
        words = library.words()
        rule = library.tag_rule
        sample = rng.standard_normal((min(photos, 20_000), *shape)).astype(np.float32)
        vectors = np.stack([w.vector for w in words])
        levels = word_levels(scores(sample / np.linalg.norm(sample, axis=-1, keepdims=True), vectors), rule)
        library.set_word_means(dict(zip([w.id for w in words], levels.tolist())))
        library.set_meta(means_photos=photos)
        vocabulary = Vocabulary.of_library(library)
        for start in range(0, photos, 10_000):
            n = min(10_000, photos - start)
            semantic = rng.standard_normal((n, *shape)).astype(np.float32)
            semantic = (semantic / np.linalg.norm(semantic, axis=-1, keepdims=True)).astype(np.float16)
            classes = top_classes(rng.normal(0, 3, (n, 1000)).astype(np.float32))  # what a scan records
            tags = top_tags(semantic, classes, vocabulary, 10, rule)
            ids = range(start + 1, start + n + 1)
            paths = [folder / f"{i // 1000:04d}" / f"IMG_{i:07d}.jpg" for i in ids]
            for p in paths:
                p.parent.mkdir(exist_ok=True)
                p.touch()
            library.save_batch(
                [
                    PhotoRecord(
                        str(p),
                        0,
                        os.stat(p).st_mtime_ns,
                        f"h{i}",
                        4000,
                        3000,
                        {"taken_at": f"20{10 + i % 15}-06-01T12:00:00"},
                        s,
                        t,
                        None,
                        c,
                    )
                    for i, p, s, t, c in zip(ids, paths, semantic, tags, classes)
                ],
                [],
                model,
            )
            print(f"  built {start + n:,} photos", file=sys.stderr, flush=True)
        library.refresh_side_files()  # as a scan leaves them
    os.replace(tmp, db)
    for side in (library.vectors_path, library.classes_path, library.summary_path):
        os.replace(side, db.with_name(db.name + side.name[len(tmp.name) :]))


# Runs one command as its own child and reports that child alone: wall time and max RSS.
_MEASURE = (
    "import resource, subprocess, sys, time; start = time.perf_counter(); "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode; "
    "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def run(args: list[str], repeat: int, undo: list[str] | None = None) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs of a whole process (``undo`` run after each), and
    its peak RSS in MiB."""
    best, peak = float("inf"), 0.0
    for _ in range(repeat):
        done = subprocess.run([PYTHON, "-c", _MEASURE, *args], capture_output=True, text=True, cwd=ROOT)
        wall, rss, code = done.stdout.split()
        if int(code) != 0:
            raise SystemExit(f"{' '.join(args)} failed (exit {code})")
        best, peak = min(best, float(wall)), max(peak, int(rss) / 1024)
        if undo:
            subprocess.run(undo, check=True, capture_output=True, cwd=ROOT)
    return best, peak


TUI = """
import asyncio, sys, time
from tagger.tui.app import EpsilonTagApp
from textual.widgets import DataTable
async def main():
    app = EpsilonTagApp(sys.argv[1], refresh_seconds=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.query_one('#photo-table', DataTable).row_count:
            await pilot.pause(0.01)
asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/epsilon-scale"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=[], help="Run the cases whose name starts with one of these.")
    parser.add_argument("--embeddings", default=DEFAULT_EMBEDDINGS, help="The library's word space (minilm-l6-v2).")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base, _ = run([PYTHON, "-c", "import numpy, sqlite3"], args.repeat)
    print(f"baseline: python -c 'import numpy, sqlite3' {base:.3f} s")
    for photos in args.photos:
        space = "" if args.embeddings == DEFAULT_EMBEDDINGS else f"-{args.embeddings}"
        db = args.work / f"lib-{photos}{space}.db"
        print(f"\n{photos:,} photos ({db})", flush=True)
        build(db, photos, args.work / f"files-{photos}", args.embeddings)
        env = ["--db", str(db)]
        cases = [
            ("search, zero-shot word (blimp)", [*CLI, "search", "blimp", *env], None),
            ("search, vocabulary word (beach)", [*CLI, "search", "beach", *env], None),
            (
                "vocab add (zeppelin)",
                [*CLI, "vocab", "add", "zeppelin", *env],
                [*CLI, "vocab", "remove", "zeppelin", *env],
            ),
            ("stats", [*CLI, "stats", *env], None),
            ("TUI launch to first screen", [PYTHON, "-c", TUI, str(db)], None),
            ("rescan of unchanged files", [*CLI, "scan", "-q", *env], None),
        ]
        for name, command, undo in cases:
            if args.only and not name.startswith(tuple(args.only)):
                continue
            if space and name.startswith("rescan"):
                continue  # a rescan on the shipped model would re-tag every photo in its own space
            wall, peak = run(command, 1 if name.startswith(("rescan", "TUI")) else args.repeat, undo)
            print(f"  {name:34} {wall:7.3f} s  = {wall / base:6.1f}x baseline, peak {peak:7.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
