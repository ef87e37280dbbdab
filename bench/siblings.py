"""What folding sibling words costs a re-tag, at worst, by hand:

    python bench/siblings.py [--library /tmp/epsilon-scale/lib-100000.db] [--photos 20000]

On a library made by bench/library_scale.py: `top_tags` (what a scan and a re-tag run) on
the first --photos photos with every stored tag shown (threshold 0, so every photo has ten
words to fold), the library's own rule with siblings "all" and "one", alternated, best of
--repeat each; prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.library import Library  # noqa: E402
from tagger.vocabulary import Vocabulary, top_tags  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, default=Path("/tmp/epsilon-scale/lib-100000.db"))
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with Library(args.library, create=False, readonly=True) as library:
        stored = library.semantic_vectors()
        vocabulary = Vocabulary.of_library(library)
        rule, k = replace(library.tag_rule, threshold=0.0), library.tags_per_photo
    semantic = stored.semantic[: args.photos]
    classes = None if stored.classes is None else stored.classes[: args.photos]
    best = {"all": float("inf"), "one": float("inf")}
    shown = {}
    for _ in range(args.repeat):
        for siblings in best:
            start = time.perf_counter()
            tags = top_tags(semantic, classes, vocabulary, k, replace(rule, siblings=siblings))
            best[siblings] = min(best[siblings], time.perf_counter() - start)
            shown[siblings] = sum(on for row in tags for _, _, on in row)
    print(f"{len(semantic):,} photos, {len(vocabulary)} words, {k} tags each")
    for siblings, seconds in best.items():
        print(f"  siblings {siblings}: {seconds:.2f} s, {shown[siblings]:,} tags shown")
    print(f"  folding costs {best['one'] / best['all']:.2f}x")


if __name__ == "__main__":
    main()
