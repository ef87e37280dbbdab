"""The tags each photo shows, measured as people see them (by hand; minutes):

    python bench/tag_quality.py [--model assets/default] [--work /tmp/tag_quality] [--cli OTHER/epsilon-tag]

Through the public CLI: each set's photos are copied into a folder, `epsilon-tag scan`
(the installed script) tags them into a fresh library, and every photo's shown tags are
read back with `epsilon-tag show PHOTO --json` (run in this process through the same
Typer app, to spare 1,000 interpreter starts; with ``--cli``, another install's script
does both, one process per photo: how an older epsilon-tag is measured the same way). A
shown tag counts as a word of a set's vocabulary when it is one of its forms (one WordNet
concept: plurals and synonyms fold).

- ``../shared/data/everyday_tags`` (240 photos, every one of 102 words marked): precision
  over the shown tags that are words of the 102, recall over each photo's marked words,
  per part (its `set` column) and in all; tags shown per photo; photos showing nothing.
- Corel-5K's 499 test photos (never trained on, never chosen on), against their labels
  over the 374 words: a shown tag of the 374 that the photo's labels lack counts as wrong.
- ``open_images_5`` (669 photos, 5 labels): its 5 words only.
- The sample camera files: tags per photo, photos showing nothing, and any shown word of
  a sensitive class (trainer.assets.SENSITIVE), on every set.

Prints one table; ``--json FILE`` keeps the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from typer.testing import CliRunner  # noqa: E402

from tagger.cli import app  # noqa: E402
from trainer.assets import SENSITIVE, excluded_words, normalise_word  # noqa: E402
from trainer.wordnet import wordnet  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLI = str(Path(sys.executable).with_name("epsilon-tag"))
OTHER_CLI: str | None = None  # --cli: another install's epsilon-tag does the scans and shows


def tag_library(photos: list[Path], folder: Path, model: str) -> dict[Path, list[str]]:
    """Copies of the photos scanned into a fresh library; each original's shown tags."""
    cli = OTHER_CLI or CLI
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "photos").mkdir(parents=True)
    copies = {}
    for i, photo in enumerate(photos):
        copy = folder / "photos" / f"{i:05d}{photo.suffix.lower()}"
        shutil.copyfile(photo, copy)
        copies[photo] = copy
    db = folder / "library.db"
    subprocess.run([cli, "scan", str(folder / "photos"), "--db", str(db), "--model", model, "-q"], check=True)
    runner, out = CliRunner(), {}
    for photo, copy in copies.items():
        args = ["show", str(copy), "--json", "--db", str(db)]
        if OTHER_CLI:
            done = subprocess.run([cli, *args], capture_output=True, text=True)
            code, text = done.returncode, done.stdout
        else:
            result = runner.invoke(app, args)
            code, text = result.exit_code, result.stdout
        out[photo] = [t["word"] for t in json.loads(text)["tags"]] if code == 0 else []
    return out


def fold(words: list[str], vocabulary: list[str]) -> set[str]:
    """Shown tags as words of a vocabulary: a tag that is one of a word's forms is that word."""
    net = wordnet()
    concepts = {net.concept(w): w for w in vocabulary}
    return {w if w in vocabulary else concepts.get(net.concept(w), w) for w in map(normalise_word, words)}


def measure(shown: list[list[str]], truth: list[set[str]], vocabulary: list[str]) -> dict:
    judged = set(vocabulary)
    right = wrong = missed = 0
    for tags, true in zip(shown, truth):
        folded = fold(tags, vocabulary) & judged
        right += len(folded & true)
        wrong += len(folded - true)
        missed += len(true - folded)
    p = right / (right + wrong) if right + wrong else 0.0
    r = right / (right + missed) if right + missed else 0.0
    return {
        "precision": round(p, 3),
        "recall": round(r, 3),
        "f1": round(2 * p * r / (p + r), 3) if right else 0.0,
        "photos": len(shown),
        "showing_nothing": sum(not t for t in shown),
        "tags_per_photo": round(sum(map(len, shown)) / max(len(shown), 1), 2),
    }


def sensitive(shown: list[list[str]]) -> Counter:
    classes = excluded_words()
    return Counter(t for tags in shown for t in tags if classes.get(t) in SENSITIVE)


def everyday(model: str, work: Path) -> dict:
    root = DATA / "everyday_tags"
    vocabulary = [w.strip() for w in (root / "vocabulary.txt").read_text().splitlines() if w.strip()]
    with open(root / "labels.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    photos = [DATA / r["path"] for r in rows]
    tags = tag_library(photos, work / "everyday_tags", model)
    shown = [tags[p] for p in photos]
    truth = [set(filter(None, r["words"].split(";"))) for r in rows]
    out = {"all": measure(shown, truth, vocabulary)}
    for part in dict.fromkeys(r["set"] for r in rows):
        pick = [i for i, r in enumerate(rows) if r["set"] == part]
        out[part] = measure([shown[i] for i in pick], [truth[i] for i in pick], vocabulary)
    out["sensitive"] = dict(sensitive(shown))
    out["shown"] = {str(p.relative_to(DATA)): tags[p] for p in photos}
    return out


def corel_test(model: str, work: Path) -> dict:
    root = DATA / "corel5k"
    with open(root / "annotations.tsv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["split"] == "test"]
    vocabulary = [w.strip() for w in (root / "labels" / "words").read_text().splitlines() if w.strip()]
    photos = [root / r["path"] for r in rows]
    tags = tag_library(photos, work / "corel5k-test", model)
    shown = [tags[p] for p in photos]
    # Corel's words are plurals as often as not ("boats"): fold both sides to one form each.
    truth = [fold(r["words"].split(","), vocabulary) for r in rows]
    return {"all": measure(shown, truth, vocabulary), "sensitive": dict(sensitive(shown))}


def open_images_5(model: str, work: Path) -> dict:
    root = DATA / "open_images_5"
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    words = ["apple", "bicycle", "bird", "boat", "person"]
    photos = [root / "images" / f"{r['image']}.jpg" for r in rows]
    tags = tag_library(photos, work / "open_images_5", model)
    shown = [tags[p] for p in photos]
    truth = [{w for w in words if r[w] == "1"} for r in rows]
    return {
        "all": measure(shown, truth, words),
        "sensitive": dict(sensitive(shown)),
        "shown": {str(p.relative_to(DATA)): tags[p] for p in photos},
    }


def camera_files(model: str, work: Path) -> dict:
    photos = sorted(p for p in (DATA / "photos").rglob("*") if p.is_file())
    tags = tag_library(photos, work / "camera", model)
    shown = [tags[p] for p in photos]
    scanned = [t for t in shown]
    return {
        "photos": len(photos),
        "showing_nothing": sum(not t for t in scanned),
        "tags_per_photo": round(sum(map(len, scanned)) / max(len(scanned), 1), 2),
        "sensitive": dict(sensitive(shown)),
        "commonest": Counter(t for s in shown for t in s).most_common(15),
        "shown": {str(p.relative_to(DATA)): tags[p] for p in photos},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "default"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/tag_quality"))
    parser.add_argument("--json", type=Path, help="also write every figure (and every photo's tags) here")
    parser.add_argument("--cli", help="another install's epsilon-tag script, to measure it the same way")
    args = parser.parse_args()
    global OTHER_CLI
    OTHER_CLI = args.cli
    figures = {
        "everyday_tags": everyday(args.model, args.work),
        "corel5k_test": corel_test(args.model, args.work),
        "open_images_5": open_images_5(args.model, args.work),
        "camera_files": camera_files(args.model, args.work),
    }
    print(f"model {args.model}")
    print(f"{'set':<24} {'P':>6} {'R':>6} {'F1':>6} {'nothing':>8} {'tags/photo':>10}")
    for name in ("everyday_tags", "corel5k_test", "open_images_5"):
        for part, row in figures[name].items():
            if isinstance(row, dict) and "precision" in row:
                label = name if part == "all" else f"  {part}"
                print(
                    f"{label:<24} {row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f} "
                    f"{row['showing_nothing']:>4}/{row['photos']:<4}{row['tags_per_photo']:>9.2f}"
                )
    camera = figures["camera_files"]
    print(
        f"{'camera files':<24} {'':>6} {'':>6} {'':>6} {camera['showing_nothing']:>4}/{camera['photos']:<4}"
        f"{camera['tags_per_photo']:>9.2f}"
    )
    print("commonest tags on the camera files:", ", ".join(f"{w} {n}" for w, n in camera["commonest"]))
    found = {name: figures[name]["sensitive"] for name in figures if figures[name]["sensitive"]}
    print("sensitive words shown:", found or "none")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
