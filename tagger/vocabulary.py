"""The vocabulary: words, what is known of each, and the confidence of each word on each photo.

Every photo keeps its best ``tags_per_photo`` words by confidence (trainer.tagrule), and
shows the ones the model's rule decides. Because each photo's semantic vectors S and the
ImageNet classes its backbone recognised are stored, a word added later is scored against
the whole library from the database, without decoding a single photo: its raw score is
the model's own rule (max over the M rows of <S_m, w>), and its confidence adds what the
model knows of the word (a label it was trained on, ImageNet classes below it in WordNet)
and of the words it implies or that imply it (duck -> bird).
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from trainer.assets import normalise_word
from trainer.embeddings import DEFAULT_EMBEDDINGS, UnknownWordError, WordVectors, load_embeddings
from trainer.errors import UserError
from trainer.tagrule import TagRule, Words, implied, implies_matrix, record_mass
from trainer.wordnet import IMAGENET_CLASSES, implications, label_for, wordnet

from .library import DEFAULT, SEEN, USER, ZERO_SHOT, Library, NewWord, Rows

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
    then the word embeddings, loaded only when a word is not in the table. A word that is
    a form of one of the model's labels ("boat" of the label "boats", "bike" of "bicycle":
    one WordNet concept) takes that label's vector and is a seen word."""

    def __init__(
        self,
        embeddings: str = DEFAULT_EMBEDDINGS,
        table: dict[str, np.ndarray] | None = None,
        seen: Iterable[str] = (),
        dim: int | None = None,
        means: dict[str, float] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        self.embeddings_id = embeddings
        self.table = dict(table or {})
        self.seen = {normalise_word(w) for w in seen}
        self.labels = list(dict.fromkeys(normalise_word(w) for w in (self.seen if labels is None else labels)))
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

    def label_of(self, word: str) -> str | None:
        """The model label a word is (itself, or a form or synonym of it), or None."""
        return label_for(word, self.labels)

    def kind(self, word: str) -> str:
        return SEEN if self.label_of(word) in self.seen else ZERO_SHOT

    def vector(self, word: str) -> np.ndarray:
        """Unit vector of a word or phrase; raises ``UnknownWordError`` with suggestions."""
        key = normalise_word(word)
        if key in self.table:
            return np.asarray(self.table[key], dtype=np.float32)
        label = self.label_of(key)
        if label is not None and label in self.table:
            return np.asarray(self.table[label], dtype=np.float32)
        vector = self.vectors.vector(label or key)
        if self.dim is not None and len(vector) != self.dim:
            raise VocabularyError(
                f"The word vectors {self.embeddings_id!r} are {len(vector)}-d but the model needs {self.dim}-d "
                f"vectors: pass --embeddings with the kind it was trained with."
            )
        return vector

    def describe(self, word: str, origin: str | None = USER) -> NewWord:
        """Everything a library keeps of a new word; raises ``UnknownWordError``."""
        key = normalise_word(word)
        label = self.label_of(key)
        return NewWord(key, self.kind(key), self.vector(key), label, wordnet().classes(key), origin)

    def neighbours(self, word: str, n: int = 10) -> list[tuple[str, float]]:
        return self.vectors.neighbours(normalise_word(word), n)

    def likely_typo(self, word: str) -> str | None:
        """A common word that a word not in the vocabulary is likely a misspelling of
        ("elefant" -> "elephant"; ``WordVectors.likely_typo``), or None."""
        key = normalise_word(word)
        if key in self.table or self.label_of(key) is not None:
            return None
        check = getattr(self.vectors, "likely_typo", None)  # a sentence encoder has no word list
        return check(key) if check else None

    def __contains__(self, word: str) -> bool:
        """Whether a word has a vector here (``vector`` would not raise)."""
        key = normalise_word(word)
        return key in self.table or self.label_of(key) in self.table or (self.label_of(key) or key) in self.vectors


def check_embeddings(source: str) -> None:
    """Load a word-vector source now, so that a typo fails before anything is written."""
    _ = WordSource(source).vectors  # raises VocabularyError saying what is wrong


def scores(semantic: np.ndarray | Rows, vectors: np.ndarray) -> np.ndarray:
    """N x W raw scores of stored S (N x M x d_w, any float type) against W word vectors:
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
    from concurrent.futures import ThreadPoolExecutor  # 5 ms of imports that `stats` and `show` need not pay

    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        list(pool.map(score_chunk, starts))
    return out


def sample_rows(n: int) -> slice | np.ndarray:
    """The photos a word's level is estimated from: all of them, or LEVEL_SAMPLE spread evenly."""
    if n <= LEVEL_SAMPLE:
        return slice(None)
    return np.linspace(0, n - 1, LEVEL_SAMPLE).round().astype(np.int64)


def needs_refresh(photos: int, photos_at_last: int | None) -> bool:
    """Whether the library changed enough since its levels were computed to compute them again."""
    if not photos:
        return False
    if not photos_at_last:
        return True
    return photos >= photos_at_last * REFRESH_FACTOR or photos * REFRESH_FACTOR <= photos_at_last


def word_levels(raw: np.ndarray, rule: TagRule) -> np.ndarray:
    """Each word's level over the photos (N x W raw scores -> W), from an even sample of a
    large library: what the evidence ``over_level`` is measured from."""
    return rule.levels(raw[sample_rows(len(raw))])


def library_levels(semantic: np.ndarray | Rows, vectors: np.ndarray, rule: TagRule) -> np.ndarray:
    """``word_levels`` of stored S against word vectors, scoring only the sampled photos."""
    return word_levels(scores(semantic[sample_rows(len(semantic))], vectors), rule)


@dataclass(frozen=True)
class Vocabulary:
    """A library's words as one scoring needs them, in word-id order: ids, names, vectors,
    levels (0 where not computed yet), model labels, ImageNet classes, and for each word the
    positions of the words that imply it."""

    ids: np.ndarray
    words: list[str]
    vectors: np.ndarray  # W x d_w
    levels: np.ndarray  # W
    labels: list[str | None]
    classes: list[np.ndarray]
    implied_by: list[list[int]]

    @classmethod
    def of_library(cls, library: Library) -> Vocabulary:
        return cls.of(library.words())

    @classmethod
    def of(cls, words: Sequence) -> Vocabulary:
        """From ``Library.words()`` rows."""
        names = [w.word for w in words]
        return cls(
            np.array([w.id for w in words], dtype=np.int64),
            names,
            np.stack([w.vector for w in words]) if words else np.zeros((0, 1), np.float32),
            np.array([0.0 if w.mean is None else w.mean for w in words], dtype=np.float32),
            [w.label for w in words],
            [np.zeros(0, np.int16) if w.classes is None else w.classes for w in words],
            implications(tuple(names)) if words else [],
        )

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def implies(self) -> np.ndarray:
        """W x W: [a, g] when word a implies word g (``trainer.tagrule.implies_matrix``)."""
        return implies_matrix(self.implied_by, len(self))

    def implies_for(self, rule: TagRule) -> np.ndarray | None:
        """``implies`` where the rule folds sibling words, else None: a rule that shows
        every sibling needs no W x W matrix (a 10,000-word vocabulary's is 100 MB)."""
        return self.implies if rule.siblings == "one" else None

    def above(self, positions: Iterable[int]) -> list[int]:
        """The positions of the words these words imply (duck -> bird, animal)."""
        wanted = set(positions)
        return [j for j, below in enumerate(self.implied_by) if wanted & set(below)]


def _mass(
    classes: np.ndarray | Rows | None, word_classes: Sequence[np.ndarray]
) -> tuple[np.ndarray | None, np.ndarray]:
    """N x W ImageNet mass of each word, and which photos recorded their classes at all."""
    if classes is None:
        return None, np.zeros(0, bool)
    return record_mass(np.asarray(classes), word_classes, IMAGENET_CLASSES)


def confidences(
    semantic: np.ndarray | Rows,
    classes: np.ndarray | Rows | None,
    vocabulary: Vocabulary,
    rule: TagRule,
    columns: Sequence[int] | None = None,
    *,
    raw: np.ndarray | None = None,
) -> np.ndarray:
    """N x W: the confidence of each vocabulary word (or of the words at ``columns``) on
    each photo, the words that imply it included. ``raw``: the raw scores of ``columns``
    when the caller has them already."""
    wanted = list(range(len(vocabulary))) if columns is None else list(columns)
    needed = list(dict.fromkeys(wanted + [a for c in wanted for a in vocabulary.implied_by[c]]))
    at = {p: i for i, p in enumerate(needed)}
    words = Words(
        vocabulary.levels[needed], [vocabulary.labels[p] for p in needed], [vocabulary.classes[p] for p in needed]
    )
    below = [[at[a] for a in vocabulary.implied_by[p] if a in at] for p in needed]
    out = np.empty((len(semantic), len(wanted)), np.float32)
    for start in range(0, len(semantic), _CHUNK):
        part = scores(semantic[start : start + _CHUNK], vocabulary.vectors[needed])
        if raw is not None:
            part[:, : len(wanted)] = raw[start : start + _CHUNK]
        mass, recorded = _mass(None if classes is None else classes[start : start + _CHUNK], words.classes)
        confidence = rule.confidence(part, words, mass, recorded)
        out[start : start + _CHUNK] = implied(confidence, below, rule.threshold)[:, : len(wanted)]
    return out


def top_tags(
    semantic: np.ndarray | Rows,
    classes: np.ndarray | Rows | None,
    vocabulary: Vocabulary,
    k: int,
    rule: TagRule = TagRule(),
) -> list[list[tuple[int, float, bool]]]:
    """Each photo's k most confident words as (word id, confidence, shown), best first."""
    if not len(vocabulary):
        return [[] for _ in range(len(semantic))]
    out = []
    for start in range(0, len(semantic), _CHUNK):
        c = confidences(
            semantic[start : start + _CHUNK],
            None if classes is None else classes[start : start + _CHUNK],
            vocabulary,
            rule,
        )
        shown = rule.kept(c, vocabulary.implies_for(rule))
        kk = min(k, c.shape[1])
        best = np.argpartition(-c, kk - 1, axis=1)[:, :kk]
        for row, on, cols in zip(c, shown, best):
            cols = cols[np.lexsort((vocabulary.ids[cols], -row[cols]))]
            out.append([(int(vocabulary.ids[j]), float(row[j]), bool(on[j])) for j in cols])
    return out


def add_words(library: Library, words: Sequence[str], source: WordSource) -> dict[str, int]:
    """Add words (checked against the word vectors first: nothing is written if one is
    unknown), score the whole library against them from the stored vectors, and return
    how many present photos show each word. A word already there, or a form of one
    ("cars" beside "car"), is not added again (``known_forms`` says which)."""
    if library.model_id is None:  # its words would miss the model's own, and their kinds
        raise VocabularyError("The library has no photos tagged yet: run `epsilon-tag scan FOLDER` first.")
    wanted = list(dict.fromkeys(normalise_word(w) for w in words if normalise_word(w)))
    if not wanted:
        raise VocabularyError("Give at least one word to add.")
    present = known_forms(library, wanted)
    entries = [source.describe(w) for w in wanted if w not in present]
    if entries:
        score_words(library, entries)
    ids = {w.word: w.id for w in library.words()}
    held = {w: present.get(w, w) for w in wanted}  # "cars" counts the photos of "car", which it is
    counts = library.word_counts([ids[h] for h in held.values() if h in ids])
    return {w: counts.get(ids.get(h, -1), 0) for w, h in held.items()}


def score_words(library: Library, entries: Sequence[NewWord]) -> None:
    """Store words (new, or with a new vector) and score the whole library against them from
    the stored vectors: each word where it beats a photo's floor, and every word it implies
    there. Photos that showed one of them before are tagged again from scratch."""
    rule = library.tag_rule
    with library.transaction():
        held = {w.word: w.id for w in library.words()}
        before = library.photos_tagged([held[e.word] for e in entries if e.word in held])
        stored = library.semantic_vectors(floors=True)
        raw = scores(stored.semantic, np.stack([e.vector for e in entries]))
        new_ids = library.add_words(entries, list(word_levels(raw, rule)))
        if len(before):
            retag(library, before)
            stored = library.semantic_vectors(floors=True)  # their floors moved
        vocabulary = Vocabulary.of_library(library)
        columns = [int(np.flatnonzero(vocabulary.ids == i)[0]) for i in new_ids]
        confidence = confidences(stored.semantic, stored.classes, vocabulary, rule, columns, raw=raw)
        offers: list[tuple[int, int, float]] = []
        # A word lifts the words above it only where it could be shown itself (``implied``).
        lifts = -np.inf if rule.threshold is None else rule.threshold
        for c, column in enumerate(columns):
            rows = np.flatnonzero(confidence[:, c] > stored.floor)
            for target in [column, *vocabulary.above([column])]:
                word_id = int(vocabulary.ids[target])
                at = rows if target == column else rows[confidence[rows, c] >= lifts]
                offers += zip(stored.ids[at].tolist(), [word_id] * len(at), confidence[at, c].tolist())
        library.offer_tags(offers, vocabulary.ids, vocabulary.implies_for(rule))


def known_forms(library: Library, words: Sequence[str]) -> dict[str, str]:
    """Which of these words the vocabulary already holds, itself or as a form of one of its
    words (plural, synonym: one WordNet concept): word -> the vocabulary's word."""
    held = [w.word for w in library.words()]
    net = wordnet()
    concepts = {net.concept(w): w for w in held}
    out = {}
    for word in words:
        if word in held:
            out[word] = word
        elif net.concept(word) in concepts:
            out[word] = concepts[net.concept(word)]
    return out


def remove_words(library: Library, words: Sequence[str]) -> dict[str, int]:
    """Remove words and give the photos that carried them their next best words (and the
    words they implied their own confidence again). Returns how many photos each word was
    taken from."""
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
    vocabulary = Vocabulary.of_library(library)
    positions = [int(np.flatnonzero(vocabulary.ids == i)[0]) for i in ids]
    above = [int(vocabulary.ids[j]) for j in vocabulary.above(positions)]
    with library.transaction():
        affected = library.photos_tagged(ids + above)
        library.remove_words(ids)
        retag(library, affected)
    return taken


def retag(library: Library, photo_ids: Sequence[int] | np.ndarray | None = None) -> int:
    """Recompute the stored tags of some photos (all when None) from their stored vectors
    and classes; only the tag rows that change are written."""
    vocabulary = Vocabulary.of_library(library)
    stored = library.semantic_vectors(ids=photo_ids)
    ids = stored.ids
    k, rule = library.tags_per_photo, library.tag_rule
    with library.transaction():
        for start in range(0, len(ids), _CHUNK):
            chunk_ids = [int(i) for i in ids[start : start + _CHUNK]]
            part = slice(start, start + _CHUNK)
            classes = None if stored.classes is None else stored.classes[part]
            chunk = top_tags(stored.semantic[part], classes, vocabulary, k, rule)
            library.replace_tags(dict(zip(chunk_ids, chunk)), library.tags_of(chunk_ids), keep_floors=True)
    return len(ids)


def renormalise(library: Library, *, force: bool = False) -> bool:
    """Recompute every word's library level and re-tag every photo with them, when the
    library has changed enough since the last time (or ``force``). Returns whether it did."""
    count = library.count_scored()
    if not force and not needs_refresh(count, library.get_meta("means_photos")):
        return False
    words = library.words()
    with library.transaction():
        stored = library.semantic_vectors()
        vectors = np.stack([w.vector for w in words]) if words else np.zeros((0, 1), np.float32)
        levels = library_levels(stored.semantic, vectors, library.tag_rule)
        library.set_word_means(dict(zip([w.id for w in words], levels.tolist())))
        library.set_meta(means_photos=len(stored))
        retag(library)
    return True


def describe_missing(library: Library, source: WordSource) -> int:
    """Work out the model label and ImageNet classes of words stored without them (a library
    older than their record); returns how many."""
    missing = [w for w in library.words() if w.classes is None]
    if missing:
        net = wordnet()
        library.describe_words({w.id: (source.label_of(w.word), net.classes(w.word)) for w in missing})
    return len(missing)


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


def fill_vocabulary(
    library: Library, source: WordSource, words: Sequence[str], origin: str | None = DEFAULT
) -> tuple[int, list[str]]:
    """Add ``words`` with everything known of them; returns (added, words the vectors do not
    know). A source that cannot be read at all is an error (VocabularyError), not unknown words."""
    entries, unknown = [], []
    for word in words:
        try:
            entries.append(source.describe(word, origin))
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
