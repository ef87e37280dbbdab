"""Word vectors that open in milliseconds: a memory-mapped matrix and a SQLite word index.

Loading GloVe's 400,000 words into a Python dict costs half a second in every process
that looks up one word (a search, `vocab add`). Instead each source is built once into
the user cache folder as ``<name>.npy`` (unit rows, float32, memory-mapped: only the pages
a lookup touches are read) and ``<name>.sqlite`` (word <-> row, opened read-only). Each
store records the identity of its source (sizes, modification times, versions) and is
rebuilt when that changes; a build is written to temporary files and renamed into place,
so a kill mid-build leaves the previous store or none, never half of one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import platformdirs


def cache_folder() -> Path:
    """Where stores live: $EPSILON_TAG_CACHE, else the user cache folder."""
    override = os.environ.get("EPSILON_TAG_CACHE")
    if override:
        return Path(override) / "word-vectors"
    return platformdirs.user_cache_path("epsilon-tag") / "word-vectors"


def file_identity(*paths: Path, extra: str = "") -> str:
    """What a store was built from: each file's size and modification time."""
    parts = [extra]
    for path in paths:
        info = path.stat()
        parts.append(f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}")
    return "|".join(parts)


class ListIndex:
    """Words in memory: for small tables (a model's labels, a dataset's label vectors)."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.rows = {w: i for i, w in enumerate(self.words)}
        self._by_initial: dict[str, list[str]] | None = None

    def __len__(self) -> int:
        return len(self.words)

    def row(self, word: str) -> int | None:
        return self.rows.get(word)

    def word(self, row: int) -> str:
        return self.words[row]

    def spellings(self, initial: str, shortest: int, longest: int) -> list[tuple[str, int]]:
        """(word, row) of the words with this first letter and a length in the range."""
        if self._by_initial is None:
            buckets: dict[str, list[str]] = {}
            for w in self.words:
                buckets.setdefault(w[:1], []).append(w)
            self._by_initial = buckets
        return [(w, self.rows[w]) for w in self._by_initial.get(initial, []) if shortest <= len(w) <= longest]


class SqliteIndex:
    """Words on disk: a row lookup is one indexed query, whatever the vocabulary's size."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self.lock = threading.Lock()  # one connection shared by an app's threads
        self.size = int(self.conn.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone()[0])

    def __len__(self) -> int:
        return self.size

    def _one(self, sql: str, value: str | int) -> tuple | None:
        with self.lock:
            return self.conn.execute(sql, [value]).fetchone()

    def row(self, word: str) -> int | None:
        found = self._one("SELECT min(row) FROM words WHERE word = ?", word)
        return None if found is None or found[0] is None else int(found[0])

    def word(self, row: int) -> str:
        found = self._one("SELECT word FROM words WHERE row = ?", int(row))
        if found is None:
            raise IndexError(f"no word at row {row} in the word index")
        return found[0]

    def spellings(self, initial: str, shortest: int, longest: int) -> list[tuple[str, int]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT word, row FROM words WHERE word >= ? AND word < ? AND length(word) BETWEEN ? AND ?",
                [initial, initial[:-1] + chr(ord(initial[-1]) + 1), shortest, longest],
            ).fetchall()
        return [(r[0], int(r[1])) for r in rows]


def open_store(
    name: str, identity: str, build: Callable[[], tuple[Iterable[str], np.ndarray]], folder: Path | None = None
) -> tuple[SqliteIndex | ListIndex, np.ndarray]:
    """The (index, unit vectors) of a source, from its store, built first when missing or
    stale. ``build`` returns the words and raw vectors (the slow way, once). Where the
    cache folder cannot be written, the source is served from memory as it was built."""
    folder = folder or cache_folder()
    index_path, vectors_path = folder / f"{name}.sqlite", folder / f"{name}.npy"
    opened = _open(index_path, vectors_path, identity)
    if opened is not None:
        return opened
    words, vectors = build()
    words = list(words)
    unit = _unit_rows(vectors)
    try:
        _write(index_path, vectors_path, identity, words, unit)
    except OSError:
        return ListIndex(words), unit
    return _open(index_path, vectors_path, identity) or (ListIndex(words), unit)


def _open(index_path: Path, vectors_path: Path, identity: str) -> tuple[SqliteIndex, np.ndarray] | None:
    if not (index_path.is_file() and vectors_path.is_file()):
        return None
    try:
        index = SqliteIndex(index_path)
        stored = index.conn.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        vectors = np.load(vectors_path, mmap_mode="r")
    except (sqlite3.DatabaseError, OSError, ValueError, TypeError):
        return None  # damaged: rebuilt
    if stored is None or stored[0] != identity or len(vectors) != len(index):
        index.conn.close()
        return None
    return index, vectors


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _write(index_path: Path, vectors_path: Path, identity: str, words: list[str], unit: np.ndarray) -> None:
    index_path.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    index_tmp, vectors_tmp = (
        index_path.with_name(f".{index_path.name}.{pid}"),
        vectors_path.with_name(f".{pid}.{vectors_path.name}"),
    )
    try:
        np.save(vectors_tmp, unit)
        index_tmp.unlink(missing_ok=True)
        with sqlite3.connect(index_tmp) as conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE words (row INTEGER PRIMARY KEY, word TEXT NOT NULL)")
            conn.executemany("INSERT INTO words VALUES (?, ?)", enumerate(words))
            # First occurrence wins where a file repeats a word.
            conn.execute("CREATE INDEX words_word ON words(word, row)")
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [("identity", identity), ("rows", str(len(words)))])
        conn.close()
        # Vectors first: an index only ever sits beside the vectors it describes (a kill
        # between the two renames leaves a stale index, which its identity check rejects).
        os.replace(vectors_tmp, vectors_path)
        os.replace(index_tmp, index_path)
    finally:
        index_tmp.unlink(missing_ok=True)
        vectors_tmp.unlink(missing_ok=True)
