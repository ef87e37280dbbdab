"""Everyday photos, through the public CLI, for one or more models (by hand):

    python bench/everyday.py --model assets/default --model /tmp/old_default [--work /tmp/everyday]

For each model, in fresh libraries made by `epsilon-tag scan`:
1. open_images_5 (669 photos, apple / bicycle / bird / boat / person): `epsilon-tag search
   LABEL --json -n 1000` per label; mAP over the 5 labels (every photo ranked per label)
   and F1@3 (each photo's 3 best of the 5 labels by their search scores);
2. hubness on the sample camera files and on open_images_5: how many photos have each
   vocabulary word among their 3 best stored tags; the skewness of those counts over the
   vocabulary (a few words everywhere = high), the most frequent words, and `snake`;
3. Corel-5K's 499 test photos (linked, not copied; no model here trained on them) ranked
   by `epsilon-tag search WORD` for each of its 374 words: mAP over the words, and P/R/F1 of
   each photo's 3 best words by their search scores;
4. everyday_tags' 240 photos (every one of its 102 words marked on each) ranked by
   `epsilon-tag search WORD` for each word marked on 3 or more of them: mAP over those words.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import skew
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.cli import app  # noqa: E402
from tagger.library import Library  # noqa: E402
from trainer.metrics import average_precision, topk_prf  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LABELS = ["apple", "bicycle", "bird", "boat", "person"]
CLI = str(Path(sys.executable).with_name("epsilon-tag"))


def scan(folder: Path, db: Path, model: str) -> None:
    if not db.exists():
        subprocess.run(
            [CLI, "scan", str(folder), "--db", str(db), "--model", model, "-q"], check=True, stdout=subprocess.DEVNULL
        )


def open_images_5(db: Path) -> tuple[float, float, np.ndarray]:
    with open(DATA / "open_images_5" / "labels.csv") as handle:
        truth = {row["image"]: row for row in csv.DictReader(handle)}
    names = sorted(truth)
    score = np.full((len(names), len(LABELS)), -np.inf)
    for j, label in enumerate(LABELS):
        hits = json.loads(
            subprocess.run(
                [CLI, "search", label, "--json", "-n", "100000", "--min-score", "0", "--db", str(db)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )["hits"]
        for hit in hits:
            score[names.index(Path(hit["path"]).stem), j] = hit["score"]
    labels = np.array([[1 if truth[n][c] == "1" else -1 for c in LABELS] for n in names])
    ap = average_precision(score, labels)
    return float(ap.mean()), topk_prf(score, labels, 3)[2], ap


def hubness(db: Path) -> dict:
    with Library(db, create=False, readonly=True) as library:
        words = {w.id: w.word for w in library.words()}
        stored = library.tags_of(library.photo_ids())
        rows = list(Counter(w for tags in stored.values() for w, _, _ in tags[:3]).items())  # best first
        photos = library.counts()["photos"]
    counts = dict(rows)
    vector = np.array([counts.get(i, 0) for i in words])
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    snake = next((counts.get(i, 0) for i, w in words.items() if w == "snake"), 0)
    return {
        "photos": photos,
        "skew": float(skew(vector)),
        "snake": snake,
        "top": ", ".join(f"{words[i]} {n}" for i, n in top),
    }


def search_scores(db: Path, names: list[str], vocabulary: list[str]) -> np.ndarray:
    """Every photo (by file stem) x word, the score of `epsilon-tag search WORD` (in this
    process, through the same Typer app: an interpreter start per word spared); 0 where a
    photo is not found."""
    score = np.zeros((len(names), len(vocabulary)))
    row = {n: i for i, n in enumerate(names)}
    runner = CliRunner()
    for j, word in enumerate(vocabulary):
        found = runner.invoke(app, ["search", word, "--json", "-n", "100000", "--min-score", "0", "--db", str(db)])
        for hit in json.loads(found.stdout)["hits"]:
            score[row[Path(hit["path"]).stem], j] = hit["score"]
    return score


def corel_search(db: Path) -> tuple[float, tuple[float, float, float]]:
    """Corel-5K's test photos ranked by `epsilon-tag search WORD` for each of its 374 words:
    mAP over the words (a word no photo has counts 0) and P/R/F1 of each photo's 3 best
    words."""
    corel = DATA / "corel5k"
    vocabulary = (corel / "labels" / "words").read_text().split()
    truth = {}
    for line in (corel / "labels" / "test_label").read_text().splitlines():
        parts = line.split()
        if parts:
            truth[parts[0]] = {vocabulary[int(i) - 1] for i in parts[1:]}
    names = sorted(truth)
    score = search_scores(db, names, vocabulary)
    labels = np.array([[1 if w in truth[n] else -1 for w in vocabulary] for n in names])
    return float(average_precision(score, labels).mean()), topk_prf(score, labels, 3)


def everyday_rows() -> list[dict]:
    with open(DATA / "everyday_tags" / "labels.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def everyday_search(db: Path, min_photos: int = 3) -> tuple[float, int]:
    """everyday_tags' 240 photos ranked by `epsilon-tag search WORD` for each of its words
    marked on at least ``min_photos`` photos: mAP over those words, and their number."""
    rows = everyday_rows()
    vocabulary = [w for w in (DATA / "everyday_tags" / "vocabulary.txt").read_text().split("\n") if w.strip()]
    truth = [set(filter(None, r["words"].split(";"))) for r in rows]
    words = [w for w in vocabulary if sum(w in t for t in truth) >= min_photos]
    names = [Path(r["path"]).stem for r in rows]
    score = search_scores(db, names, words)
    labels = np.array([[1 if w in t else -1 for w in words] for t in truth])
    return float(average_precision(score, labels).mean()), len(words)


def link_everyday(folder: Path) -> None:
    """everyday_tags' photos linked (not copied) into one folder: its two parts share none."""
    folder.mkdir(parents=True)
    for row in everyday_rows():
        source = DATA / row["path"]
        os.symlink(source.resolve(), folder / source.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="a bundle folder; repeat to compare")
    parser.add_argument("--work", type=Path, default=Path("/tmp/epsilon-everyday"))
    args = parser.parse_args()
    corel_links = args.work / "corel-test"
    if not corel_links.exists():
        corel_links.mkdir(parents=True)
        with open(DATA / "corel5k" / "annotations.tsv") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                if row["split"] == "test":
                    os.symlink((DATA / "corel5k" / row["path"]).resolve(), corel_links / f"{row['id']}.jpeg")
    everyday_links = args.work / "everyday-tags"
    if not everyday_links.exists():
        link_everyday(everyday_links)
    for model in args.model:
        tag = Path(model).resolve().as_posix().strip("/").replace("/", "_")
        dbs = {name: args.work / f"{tag}-{name}.db" for name in ("oi5", "camera", "corel", "everyday")}
        scan(DATA / "open_images_5" / "images", dbs["oi5"], model)
        scan(DATA / "photos", dbs["camera"], model)
        scan(corel_links, dbs["corel"], model)
        scan(everyday_links, dbs["everyday"], model)
        mean_ap, f1, ap = open_images_5(dbs["oi5"])
        print(f"\n{model}")
        print(
            f"  open_images_5 through the CLI: mAP {mean_ap:.3f} ("
            + ", ".join(f"{n} {a:.3f}" for n, a in zip(LABELS, ap))
            + f"), F1@3 {f1:.3f}"
        )
        for name in ("camera", "oi5"):
            h = hubness(dbs[name])
            print(
                f"  hubness, {name} ({h['photos']} photos): skewness of top-3 counts {h['skew']:.2f}, "
                f"snake in the top 3 of {h['snake']}; most frequent: {h['top']}"
            )
        corel_map, (p, r, f) = corel_search(dbs["corel"])
        print(
            f"  Corel-5K test through the CLI, 374 words: mAP {corel_map:.3f}; 3 best: P {p:.3f} R {r:.3f} F1 {f:.3f}"
        )
        everyday_map, count = everyday_search(dbs["everyday"])
        print(f"  everyday_tags through the CLI, {count} words marked on 3 or more photos: mAP {everyday_map:.3f}")


if __name__ == "__main__":
    main()
