"""Words that learn from a person's examples: a word a person confirmed on some photos and
rejected on others is scored from a vector moved towards the first and away from the
second, over the whole library, from the stored vectors (no photo is read again)."""

from __future__ import annotations

import numpy as np

from .library import Library, NewWord
from .vocabulary import WordSource, score_words

# How much a person's examples move a word: the word's unit vector plus the unit mean of the
# confirmed photos' rows that best match it, less that of the rejected photos' rows, each
# weighted by n / (n + LEARN_HALF) for n examples, so that one example (perhaps a slip)
# moves the word a third as far as five do. Chosen with bench/feedback.py's simulation
# (/tmp scripts): at 5 + 5 examples the same move as the unshrunk 1.0 / 1.0 that --grid
# chose, and mean AP after 1 + 1 examples +0.007 / +0.021 (everyday_tags / Corel-5K test)
# against -0.007 / +0.007.
LEARN_CONFIRMED, LEARN_REJECTED, LEARN_HALF = 2.0, 2.0, 5


def learned_vector(base: np.ndarray, confirmed: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """A word's vector moved towards the photos a person confirmed it on and away from those
    they rejected it on (Rocchio's rule on each photo's row that best matches the word; S is
    photos x rows x d_w). Without a confirmed photo: the word's own vector, as rejections
    alone would push it away from every photo (they hide the tag on their photos only)."""
    vector = np.asarray(base, np.float32) / max(float(np.linalg.norm(base)), 1e-12)
    if not len(confirmed):
        return vector
    moved = vector.copy()
    for photos, weight in ((confirmed, LEARN_CONFIRMED), (rejected, -LEARN_REJECTED)):
        if len(photos):
            rows = np.asarray(photos, np.float32)
            best = rows[np.arange(len(rows)), np.argmax(rows @ vector, axis=1)]
            mean = best.mean(axis=0)
            share = len(rows) / (len(rows) + LEARN_HALF)
            moved += weight * share * mean / max(float(np.linalg.norm(mean)), 1e-12)
    return moved / max(float(np.linalg.norm(moved)), 1e-12)


def relearn(library: Library, word: str, source: WordSource, *, examples: bool = True) -> None:
    """Score the library for ``word`` again from what people said of it on photos, from the
    word's own vector (kept aside the first time examples move it; restored when there are
    none left, or without ``examples``: the tags people gave stay, the word forgets them)."""
    confirmed, rejected = library.feedback(word) if examples else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    entry = source.describe(word)  # the vocabulary's vector where the word is in it
    base = library.word_base(word)
    base = entry.vector if base is None else base
    stored = library.semantic_vectors(ids=np.concatenate([confirmed, rejected]))
    by_id = {int(i): n for n, i in enumerate(stored.ids)}
    semantic = np.asarray(stored.semantic, np.float32)
    pick = [[by_id[int(i)] for i in ids if int(i) in by_id] for ids in (confirmed, rejected)]
    vector = learned_vector(base, semantic[pick[0]], semantic[pick[1]])
    with library.transaction():
        score_words(library, [NewWord(entry.word, entry.kind, vector, entry.label, entry.classes, entry.origin)])
        library.set_word_base(entry.word, base if len(confirmed) else None)
