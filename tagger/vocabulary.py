"""The vocabulary: words, their vectors, and scoring stored semantic vectors against them.

Every photo keeps its top ``tags_per_photo`` words. Because each photo's semantic vectors
S are stored, a word added later is scored against the whole library from the database,
without decoding a single photo: score = max over the M rows of <S_m, w> (the model's own
rule, ``trainer.model.score``), corrected for hubness by the model's tag rule
(``trainer.tagrule``: a part of each word's level, its mean or a quantile of its scores
over the library, is subtracted).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence

import numpy as np

from trainer.assets import normalise_word
from trainer.embeddings import DEFAULT_EMBEDDINGS, UnknownWordError, WordVectors, load_embeddings
from trainer.errors import UserError
from trainer.tagrule import TagRule

from .library import SEEN, ZERO_SHOT, Library, Rows

# Rows of S scored at once: bounds memory whatever the library's size.
_CHUNK = 16384
# Word levels (means or quantiles) are estimated from at most this many photos (evenly
# spread): a word's level over 20,000 photos is as good as over a million, at a fiftieth
# of the cost.
LEVEL_SAMPLE = 20_000
# The stored levels (the words table's ``mean`` column) are refreshed (and every photo
# re-tagged) once the library has grown or shrunk by this factor since they were computed:
# re-tagging stays linear in the photos.
REFRESH_FACTOR = 1.25


class VocabularyError(UserError, RuntimeError):
    """A word cannot be added, removed or looked up; the message says why and what to do."""


class WordSource:
    """Vectors for words: a fixed table first (the library's vocabulary, a model's labels),
    then the word embeddings, loaded only when a word is not in the table."""

    def __init__(
        self,
        embeddings: str = DEFAULT_EMBEDDINGS,
        table: dict[str, np.ndarray] | None = None,
        seen: Iterable[str] = (),
        dim: int | None = None,
        means: dict[str, float] | None = None,
    ) -> None:
        self.embeddings_id = embeddings
        self.table = dict(table or {})
        self.seen = {normalise_word(w) for w in seen}
        self.dim = dim  # the model's word-vector size; None accepts any
        self.means = dict(means or {})  # library levels of the table's words, where computed
        self._vectors: WordVectors | None = None

    @classmethod
    def of_library(cls, library: Library) -> WordSource:
        shape = library.get_meta("semantic_shape")
        words = library.words()
        return cls(
            library.get_meta("embeddings", DEFAULT_EMBEDDINGS),
            {w.word: w.vector for w in words},
            library.get_meta("seen_words", []),
            shape[-1] if shape else None,
            {w.word: w.mean for w in words if w.mean is not None},
        )

    @property
    def vectors(self) -> WordVectors:
        if self._vectors is None:
            try:
                self._vectors = load_embeddings(self.embeddings_id)
            except FileNotFoundError as exc:
                raise VocabularyError(
                    f"{exc} The library's words come from {self.embeddings_id!r}; pass --embeddings FILE "
                    f"with vectors of the same kind to look up new words."
                ) from exc
        return self._vectors

    def kind(self, word: str) -> str:
        return SEEN if normalise_word(word) in self.seen else ZERO_SHOT

    def vector(self, word: str) -> np.ndarray:
        """Unit vector of a word or phrase; raises ``UnknownWordError`` with suggestions."""
        key = normalise_word(word)
        if key in self.table:
            return np.asarray(self.table[key], dtype=np.float32)
        vector = self.vectors.vector(key)
        if self.dim is not None and len(vector) != self.dim:
            raise VocabularyError(
                f"The word vectors {self.embeddings_id!r} are {len(vector)}-d but the model needs {self.dim}-d "
                f"vectors: pass --embeddings with the kind it was trained with."
            )
        return vector

    def neighbours(self, word: str, n: int = 10) -> list[tuple[str, float]]:
        return self.vectors.neighbours(normalise_word(word), n)


def check_embeddings(source: str) -> None:
    """Load a word-vector source now, so that a typo fails before anything is written."""
    _ = WordSource(source).vectors  # raises VocabularyError saying what is wrong


def scores(semantic: np.ndarray | Rows, vectors: np.ndarray) -> np.ndarray:
    """N x W scores of stored S (N x M x d_w, any float type) against W word vectors:
    ``trainer.model.score``'s rule (max over rows of <S_m, unit w>), in NumPy so that a
    search never pays for importing torch; tests hold the two equal."""
    words = np.asarray(vectors, dtype=np.float32)
    out = np.empty((len(semantic), len(words)), dtype=np.float32)
    if not len(words):  # an emptied vocabulary: every photo has no word to score
        return out
    words = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)

    def score_chunk(start: int) -> None:
        # A chunk at a time: memory stays flat at any library size. NumPy releases the GIL
        # while it converts and multiplies, so the chunks of a big library share the cores.
        part = np.asarray(semantic[start : start + _CHUNK], dtype=np.float32)
        # One (N*M) x d_w product, not N small M x d_w ones: 2.8x faster for 871 words.
        flat = part.reshape(-1, part.shape[-1]) @ words.T
        out[start : start + _CHUNK] = flat.reshape(len(part), -1, len(words)).max(axis=1)

    starts = range(0, len(semantic), _CHUNK)
    if len(starts) < 4:
        for start in starts:
            score_chunk(start)
        return out
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        list(pool.map(score_chunk, starts))
    return out


def sample_rows(n: int) -> slice | np.ndarray:
    """The photos a word's level is estimated from: all of them, or LEVEL_SAMPLE spread evenly."""
    if n <= LEVEL_SAMPLE:
        return slice(None)
    return np.linspace(0, n - 1, LEVEL_SAMPLE).round().astype(np.int64)


def needs_refresh(photos: int, photos_at_last: int | None) -> bool:
    """Whether the library changed enough since its means were computed to compute them again."""
    if not photos:
        return False
    if not photos_at_last:
        return True
    return photos >= photos_at_last * REFRESH_FACTOR or photos * REFRESH_FACTOR <= photos_at_last


def word_levels(raw: np.ndarray, rule: TagRule) -> np.ndarray:
    """Each word's level over the photos (N x W raw scores -> W), from an even sample of a
    large library: what the hubness correction subtracts a part of."""
    return rule.levels(raw[sample_rows(len(raw))])


def library_levels(semantic: np.ndarray | Rows, vectors: np.ndarray, rule: TagRule) -> np.ndarray:
    """``word_levels`` of stored S against word vectors, scoring only the sampled photos."""
    return word_levels(scores(semantic[sample_rows(len(semantic))], vectors), rule)


def top_tags(
    semantic: np.ndarray,
    word_ids: np.ndarray,
    vectors: np.ndarray,
    k: int,
    *,
    means: np.ndarray | None = None,
    rule: TagRule = TagRule(),
) -> list[list[tuple[int, float]]]:
    """Each photo's k best words as (word id, corrected score), best first."""
    if len(word_ids) == 0:
        return [[] for _ in range(len(semantic))]
    s = scores(semantic, vectors)
    if means is not None:
        s = rule.correct(s, means)
    k = min(k, s.shape[1])
    best = np.argpartition(-s, k - 1, axis=1)[:, :k]
    out = []
    for row, cols in zip(s, best):
        cols = cols[np.argsort(-row[cols], kind="stable")]
        out.append([(int(word_ids[c]), float(row[c])) for c in cols])
    return out


def vocabulary_matrix(library: Library) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word ids, their vectors (W x d_w) and their library means (0 where not computed yet)."""
    words = library.words()
    if not words:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float32), np.zeros(0, np.float32)
    return (
        np.array([w.id for w in words], dtype=np.int64),
        np.stack([w.vector for w in words]),
        np.array([0.0 if w.mean is None else w.mean for w in words], dtype=np.float32),
    )


def add_words(library: Library, words: Sequence[str], source: WordSource) -> dict[str, int]:
    """Add words (checked against the word vectors first: nothing is written if one is
    unknown), score the whole library against them from the stored vectors, and return
    how many present photos carry each word among their top tags."""
    if library.model_id is None:  # its words would miss the model's own, and their kinds
        raise VocabularyError("The library has no photos tagged yet: run `epsilon-tag scan FOLDER` first.")
    wanted = list(dict.fromkeys(normalise_word(w) for w in words if normalise_word(w)))
    if not wanted:
        raise VocabularyError("Give at least one word to add.")
    existing = {w.word for w in library.words()}
    entries = [(w, source.kind(w), source.vector(w)) for w in wanted if w not in existing]
    rule = library.tag_rule
    with library.transaction():
        if entries:
            stored = library.semantic_vectors(floors=True)
            photo_ids = stored.ids
            raw = scores(stored.semantic, np.stack([e[2] for e in entries]))
            means = word_levels(raw, rule)
            new_ids = library.add_words(entries, list(means))
            new_scores = rule.correct(raw, means)
            rows, cols = np.nonzero(new_scores > stored.floor[:, None])  # where a new word beats a photo's floor
            offers = zip(photo_ids[rows].tolist(), np.asarray(new_ids)[cols].tolist(), new_scores[rows, cols].tolist())
            library.offer_tags(list(offers))
    ids = {w.word: w.id for w in library.words() if w.word in wanted}
    counts = library.word_counts(list(ids.values()))
    return {w: counts.get(ids[w], 0) for w in wanted}


def remove_words(library: Library, words: Sequence[str]) -> dict[str, int]:
    """Remove words and give the photos that carried them their next best words.
    Returns how many photos each word was taken from."""
    by_word = {w.word: w for w in library.words()}
    wanted = list(dict.fromkeys(normalise_word(w) for w in words))
    for word in wanted:
        if word not in by_word:
            close = difflib.get_close_matches(word, list(by_word), n=5, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise VocabularyError(f"{word!r} is not in the vocabulary.{hint} `epsilon-tag vocab list` shows it.")
    ids = [by_word[w].id for w in wanted]
    counts = library.word_counts(ids)
    taken = {w: counts.get(by_word[w].id, 0) for w in wanted}
    with library.transaction():
        affected = library.photos_tagged(ids)
        library.remove_words(ids)
        retag(library, affected)
    return taken


def retag(library: Library, photo_ids: Sequence[int] | np.ndarray | None = None) -> int:
    """Recompute the top tags of some photos (all when None) from their stored vectors;
    only the tag rows that change are written."""
    word_ids, vectors, means = vocabulary_matrix(library)
    stored = library.semantic_vectors(ids=photo_ids)
    ids, semantic = stored.ids, stored.semantic
    k, rule = library.tags_per_photo, library.tag_rule
    with library.transaction():
        for start in range(0, len(ids), _CHUNK):
            chunk_ids = [int(i) for i in ids[start : start + _CHUNK]]
            chunk = top_tags(semantic[start : start + _CHUNK], word_ids, vectors, k, means=means, rule=rule)
            library.replace_tags(dict(zip(chunk_ids, chunk)), library.tags_of(chunk_ids), keep_floors=True)
    return len(ids)


def renormalise(library: Library, *, force: bool = False) -> bool:
    """Recompute every word's library level and re-tag every photo with them, when the
    library has changed enough since the last time (or ``force``). Returns whether it did."""
    count = library.count_scored()
    if not force and not needs_refresh(count, library.get_meta("means_photos")):
        return False
    word_ids, vectors, _ = vocabulary_matrix(library)
    with library.transaction():
        stored = library.semantic_vectors()
        levels = library_levels(stored.semantic, vectors, library.tag_rule)
        library.set_word_means(dict(zip(word_ids.tolist(), levels.tolist())))
        library.set_meta(means_photos=len(stored))
        retag(library)
    return True


def ensure_vocabulary(library: Library, source: WordSource, words: Sequence[str]) -> tuple[int, list[str]]:
    """Give a new library its first words (once): returns (added, words without a vector).
    A vocabulary people emptied stays empty: photos then carry no tags until words are added."""
    if library.get_meta("vocabulary_ready") or library.words() or library.count_scored():
        library.set_meta(vocabulary_ready=True)
        return 0, []
    with library.transaction():
        added, unknown = fill_vocabulary(library, source, words)
        library.set_meta(vocabulary_ready=True)
    return added, unknown


def fill_vocabulary(library: Library, source: WordSource, words: Sequence[str]) -> tuple[int, list[str]]:
    """Add ``words`` with their vectors; returns (added, words the vectors do not know).
    A source that cannot be read at all is an error (VocabularyError), not unknown words."""
    entries, unknown = [], []
    for word in words:
        try:
            entries.append((word, source.kind(word), source.vector(word)))
        except UnknownWordError:  # no vector for this word: the rest still make a vocabulary
            unknown.append(word)
    library.add_words(entries)
    return len(entries), unknown


def word_table(library: Library, *, kind: str | None = None, sort: str = "count") -> list[dict]:
    """Every word with its kind and photo count, by count (most first) or by name."""
    if kind not in (None, SEEN, ZERO_SHOT):
        raise VocabularyError(f"kind is {SEEN!r} or {ZERO_SHOT!r}, not {kind!r}")
    if sort not in ("count", "name"):
        raise VocabularyError(f"sort is 'count' or 'name', not {sort!r}")
    counts = library.word_counts()
    rows = [
        {"id": w.id, "word": w.word, "kind": w.kind, "count": counts.get(w.id, 0)}
        for w in library.words()
        if kind is None or w.kind == kind
    ]
    return sort_words(rows, sort)


def sort_words(rows: list[dict], sort: str) -> list[dict]:
    """Word rows by count (most first, then by name) or by name: the CLI's and the TUI's order."""
    return sorted(rows, key=(lambda r: (-r["count"], r["word"])) if sort == "count" else (lambda r: r["word"]))
