"""epsilon-tag tui speed, by hand:  python bench/tui.py [--stored 100000]

Prints, measured in this one run with Textual's headless pilot at 80x24, as ratios against
opening an empty library (the first-run screen):
1. launch to the first full screen (tags counted, the top tag's photos listed) on a library
   of --stored photos;
2. adding a word from the dialog (after the app's background warm-up) until its photo
   count is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tagger.engine import default_model
from tagger.tui.app import EpsilonTagApp
from tests.tagging import synthetic_library
from trainer.assets import default_words
from trainer.checkpoint import Bundle
from trainer.embeddings import load_embeddings


async def until(pilot, ready, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not ready():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there")
        await pilot.pause(0.01)


async def open_empty(db: Path) -> float:
    from tagger.tui.screens import FirstRunScreen

    start = time.perf_counter()
    app = EpsilonTagApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, FirstRunScreen))
        return time.perf_counter() - start


async def open_full(db: Path, word: str) -> tuple[float, float, str]:
    start = time.perf_counter()
    app = EpsilonTagApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        tags, photos = app.query_one("#tag-table"), app.query_one("#photo-table")
        await until(pilot, lambda: tags.row_count > 0 and photos.row_count > 0)
        launch = time.perf_counter() - start
        await app.workers.wait_for_complete()  # the background warm-up (word vectors, S), a second's look
        await pilot.press("a", *word)
        await app.workers.wait_for_complete()  # the dialog's suggestions
        start = time.perf_counter()
        await pilot.press("enter")
        status = app.query_one("#status")
        await until(pilot, lambda: f"{word}:" in str(status.render()))
        return launch, time.perf_counter() - start, str(status.render())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args()
    glove = load_embeddings()
    words = [(w, glove.vector(w)) for w in default_words(Bundle.load(default_model()).seen_labels)]
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_library(Path(tmp) / "big.db", args.stored, words).close()
        asyncio.run(open_empty(Path(tmp) / "warm-up.db"))  # imports and Textual's first start
        empty = min(asyncio.run(open_empty(Path(tmp) / f"empty{i}.db")) for i in range(3))
        launch, add, status = asyncio.run(open_full(Path(tmp) / "big.db", "zeppelin"))
    print(
        f"1. launch to first screen, {args.stored:,} photos x {len(words)} words: {launch:.2f} s = "
        f"{launch / empty:.1f}x opening an empty library ({empty:.2f} s)"
    )
    print(f"2. add a word until its count shows: {add:.2f} s = {add / empty:.1f}x the empty open ({status})")


if __name__ == "__main__":
    main()
