"""Teaching by example, by hand:  python bench/feedback.py [--work DIR] [--k 3 5 10]

On ../shared/data/everyday_tags (every one of 102 words marked on 240 photos: validation)
and Corel-5K's test split (499 photos, 374 words), each scanned once with the default model
into --work: a user looks down a word's search results (`search WORD --min-score 0`) and
confirms the first k photos that show it and rejects the first k that do not (`epsilon-tag
tag`, through tagger.api: the word learns, the library is scored again). Mean AP over the
photos not touched, before (the word alone) and after, per word set, against a linear probe
(logistic regression on each photo's S, flattened) trained on the same 2k labels alone.
`--grid` instead sweeps the learning weights on everyday_tags (raw scores, quick) to choose
them. Then `search --like` on Corel-5K: how many of a photo's 10 nearest share a label with
it, against chance.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from tagger import api  # noqa: E402
from tagger.learning import learned_vector  # noqa: E402
from tagger.library import Library  # noqa: E402
from tagger.search import like, rank  # noqa: E402
from tests.helpers import DATA  # noqa: E402
from trainer.datasets import corel5k, tagged  # noqa: E402


def library_of(work: Path, name: str, images: list[Path]) -> tuple[Path, list[str]]:
    """The photos scanned once into work/name.db (through symlinks: the photos stay where they are)."""
    folder, db = work / name, work / f"{name}.db"
    if not db.exists():
        folder.mkdir(parents=True, exist_ok=True)
        for n, image in enumerate(images):
            link = folder / f"{n:04d}{image.suffix.lower()}"
            if not link.exists():
                link.symlink_to(image.resolve())
        api.scan(db, [folder], api.ScanOptions(progress=False))
    return db, [str((folder / f"{n:04d}{image.suffix.lower()}").resolve()) for n, image in enumerate(images)]


def sets(work: Path) -> list[tuple[str, Path, list[str], list[str], np.ndarray]]:
    """(name, library, photo paths, words, labels N x words in 1/-1) per set."""
    out = []
    everyday = tagged.load(DATA / "everyday_tags")
    db, paths = library_of(work, "everyday", everyday.test.images)
    out.append(("everyday_tags", db, paths, everyday.seen_labels, np.asarray(everyday.test.seen)))
    corel = corel5k.load(DATA / "corel5k", mode="all-seen")
    db, paths = library_of(work, "corel-test", corel.test.images)
    labels = np.asarray(corel.test.seen)
    out.append(("Corel-5K test", db, paths, corel.seen_labels, labels))
    return out


def examples(order: np.ndarray, truth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The first k true and the first k false photos down a ranking, or None if there are not."""
    true, false = order[truth[order] > 0][:k], order[truth[order] <= 0][:k]
    return (true, false) if len(true) == k and len(false) == k else None


def word_ranking(library: Library, word: str, ids: np.ndarray) -> np.ndarray:
    """Each photo's (in ``ids`` order) search score for ``word`` alone, every photo listed."""
    ranking = rank(library, [word], min_score=0.0)
    score = dict(zip(ranking.ids.tolist(), ranking.scores.tolist()))
    return np.array([score.get(int(i), 0.0) for i in ids])


def probe(features: np.ndarray, truth: np.ndarray, true: np.ndarray, false: np.ndarray, rest: np.ndarray) -> float:
    taught = np.concatenate([true, false])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(features[taught], truth[taught] > 0)
    return average_precision_score(truth[rest] > 0, model.decision_function(features[rest]))


def teach(db: Path, paths: list[str], words: list[str], labels: np.ndarray, k: int) -> dict[str, list[float]]:
    """AP before, after and of the probe, per word, on a copy of the library for each word."""
    results: dict[str, list[float]] = {"before": [], "after": [], "probe": []}
    with tempfile.TemporaryDirectory() as tmp:
        for w, word in enumerate(words):
            copy = Path(tmp) / "lib.db"
            for suffix in ("", "-vectors", "-classes", "-floors", "-summary.json"):
                if Path(str(db) + suffix).exists():
                    shutil.copy(str(db) + suffix, str(copy) + suffix)
            with Library(copy) as library:
                ids = np.array([library.photo_by_path(p)["id"] for p in paths])
                stored = library.semantic_vectors(ids=ids)
                features = np.asarray(stored.semantic, np.float32).reshape(len(ids), -1)
                before = word_ranking(library, word, ids)
                chosen = examples(np.argsort(-before, kind="stable"), labels[:, w], k)
                if chosen is None or (labels[:, w] > 0).sum() < k + 3:
                    continue
                true, false = chosen
                rest = np.setdiff1d(np.arange(len(ids)), np.concatenate(chosen))
                if not (labels[rest, w] > 0).any():
                    continue
                api.tag(library, [int(i) for i in ids[true]], add=[word])
                api.tag(library, [int(i) for i in ids[false]], remove=[word])
                after = word_ranking(library, word, ids)
            truth = labels[rest, w] > 0
            results["before"].append(average_precision_score(truth, before[rest]))
            results["after"].append(average_precision_score(truth, after[rest]))
            results["probe"].append(probe(features, labels[:, w], true, false, rest))
    return results


def grid(db: Path, paths: list[str], words: list[str], labels: np.ndarray, k: int) -> None:
    """Mean AP after k + k examples for learning weights, on raw scores (max over S's rows)."""
    import tagger.learning as learning

    with Library(db) as library:
        ids = np.array([library.photo_by_path(p)["id"] for p in paths])
        semantic = np.asarray(library.semantic_vectors(ids=ids).semantic, np.float32)
        source = api.word_source(library)
        bases = {w: source.vector(w) for w in words}
    for confirmed in (0.5, 1.0, 2.0, 4.0):
        for rejected in (0.0, 0.5, 1.0):
            learning.LEARN_CONFIRMED, learning.LEARN_REJECTED = confirmed, rejected
            aps = []
            for w, word in enumerate(words):
                base = bases[word] / np.linalg.norm(bases[word])
                before = (semantic @ base).max(axis=1)
                chosen = examples(np.argsort(-before, kind="stable"), labels[:, w], k)
                if chosen is None or (labels[:, w] > 0).sum() < k + 3:
                    continue
                rest = np.setdiff1d(np.arange(len(ids)), np.concatenate(chosen))
                vector = learned_vector(base, semantic[chosen[0]], semantic[chosen[1]])
                aps.append(average_precision_score(labels[rest, w] > 0, (semantic[rest] @ vector).max(axis=1)))
            print(f"  confirmed {confirmed}, rejected {rejected}: mean AP {np.mean(aps):.3f} over {len(aps)} words")


def like_precision(db: Path, paths: list[str], labels: np.ndarray) -> None:
    with Library(db) as library:
        ids = [library.photo_by_path(p)["id"] for p in paths]
        row = {i: n for n, i in enumerate(ids)}
        positive = labels > 0
        shares = (positive.astype(np.int32) @ positive.T.astype(np.int32)) > 0
        chance = (shares.sum() - len(ids)) / (len(ids) * (len(ids) - 1))
        hits = [np.mean([shares[n, row[int(i)]] for i in like(library, photo).ids[:10]]) for n, photo in enumerate(ids)]
    print(
        f"--like on {len(ids)} Corel-5K test photos: precision at 10 {np.mean(hits):.3f}, chance {chance:.3f} "
        f"({np.mean(hits) / chance:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "epsilon-feedback")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--grid", action="store_true", help="sweep the learning weights on everyday_tags")
    parser.add_argument("--sets", type=int, default=2, help="1: everyday_tags only")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    found = sets(args.work)
    if args.grid:
        name, db, paths, words, labels = found[0]
        for k in args.k:
            print(f"{name}, k = {k}:")
            grid(db, paths, words, labels, k)
        return
    print("set              k  words  word alone  after k+k  probe on 2k  after - alone")
    for name, db, paths, words, labels in found[: args.sets]:
        for k in args.k:
            r = teach(db, paths, words, labels, k)
            before, after, linear = (np.mean(r[key]) for key in ("before", "after", "probe"))
            figures = f"{before:10.3f}  {after:9.3f}  {linear:11.3f}  {after - before:+.3f}"
            print(f"{name:15} {k:2}  {len(r['before']):5}  {figures}")
    if args.sets > 1:
        like_precision(*found[1][1:3], found[1][4])


if __name__ == "__main__":
    main()
