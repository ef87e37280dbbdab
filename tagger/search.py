"""Search: the query semantics shared by the CLI and the TUI.

Every word of a query is scored against every photo's stored semantic vectors, whether
the word is in the vocabulary or not (zero-shot: no re-scan), and corrected for hubness
as tags are (``trainer.tagrule``), so a search score is a tag score; several words rank
photos by the mean of their scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.errors import InputError

from .library import Library, LibraryError
from .vocabulary import WordSource, normalise_word, scores, word_levels

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2})?)?)?)?)?$")


@dataclass(frozen=True)
class Hit:
    photo_id: int
    path: str
    score: float
    taken_at: str | None
    camera: str | None

    def to_dict(self) -> dict:
        return {"path": self.path, "score": round(self.score, 4), "taken_at": self.taken_at, "camera": self.camera}


def parse_query(query: str | Sequence[str], vocabulary: Sequence[str] = ()) -> list[str]:
    """Terms of a query. An argument that is a vocabulary entry ("polar bear") stays whole;
    anything else is split on spaces and commas into words."""
    parts = [query] if isinstance(query, str) else list(query)
    known = set(vocabulary)
    terms: list[str] = []
    for part in parts:
        key = normalise_word(part)
        if key in known:
            terms.append(key)
        else:
            terms.extend(t for t in re.split(r"[\s,]+", key) if t)
    return list(dict.fromkeys(terms))


def check_date(value: str | None, option: str) -> str | None:
    """Dates compare as text against ISO timestamps, so a prefix (2021, 2021-06) works; it
    must be a real date (no month 13, no 30 February)."""
    if value is None:
        return None
    value = value.strip().replace(" ", "T")
    if _DATE.match(value):
        from datetime import datetime

        formats = {
            4: "%Y",
            7: "%Y-%m",
            10: "%Y-%m-%d",
            13: "%Y-%m-%dT%H",
            16: "%Y-%m-%dT%H:%M",
            19: "%Y-%m-%dT%H:%M:%S",
        }
        try:
            datetime.strptime(value, formats[len(value)])
            return value
        except (KeyError, ValueError):
            pass
    raise InputError(f"{option} takes a date like 2021, 2021-06 or 2021-06-30, not {value[:40]!r}")


def check_score(value: float | None, option: str) -> float | None:
    import math

    if value is not None and not math.isfinite(value):
        raise InputError(f"{option} takes a number (scores lie around -1..1), not {value}")
    return value


@dataclass(frozen=True)
class Ranking:
    """Photo ids ranked best first, with their scores; rows are fetched a page at a time,
    so a list of 100,000 results costs two arrays until someone looks at it."""

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def page(self, library: Library, start: int, count: int) -> list[Hit]:
        ids, scores = self.ids[start : start + count], self.scores[start : start + count]
        rows = library.photos(ids)
        return [
            Hit(int(i), rows[int(i)]["path"], float(s), rows[int(i)]["taken_at"], rows[int(i)]["camera"])
            for i, s in zip(ids, scores)
            if int(i) in rows
        ]


def rank(
    library: Library,
    query: str | Sequence[str],
    *,
    min_score: float | None = None,
    after: str | None = None,
    before: str | None = None,
    source: WordSource | None = None,
) -> Ranking:
    """Every present photo ranked by its (mean) score for the query's words."""
    if library.model_id is None:
        raise LibraryError("The library has no tagged photos yet: run `epsilon-tag scan FOLDER` first.")
    source = source or WordSource.of_library(library)
    terms = parse_query(query, list(source.table))
    if not terms:
        raise InputError("Give at least one word to search for.")
    vectors = np.stack([source.vector(t) for t in terms])  # unknown words raise before any scoring
    after, before = check_date(after, "--after"), check_date(before, "--before")
    stored = library.semantic_vectors(after=after, before=before)
    raw = scores(stored.semantic, vectors)
    # A word's level is over the whole library, whatever the dates asked for.
    rule = library.tag_rule
    means = np.array([source.means.get(t, np.nan) for t in terms], dtype=np.float32)
    unknown = np.isnan(means)
    if unknown.any():
        every = (
            raw[:, unknown] if not (after or before) else scores(library.semantic_vectors().semantic, vectors[unknown])
        )
        means[unknown] = word_levels(every, rule)
    corrected = rule.correct(raw, means)
    combined = corrected.mean(axis=1) if len(stored) else np.zeros(0, np.float32)
    order = np.argsort(-combined, kind="stable")
    threshold = check_score(min_score, "--min-score")
    if threshold is not None:
        order = order[combined[order] >= threshold]
    return Ranking(stored.ids[order], combined[order])


def search(
    library: Library,
    query: str | Sequence[str],
    *,
    limit: int | None = 20,
    min_score: float | None = None,
    after: str | None = None,
    before: str | None = None,
    source: WordSource | None = None,
) -> list[Hit]:
    """Present photos ranked by their (mean) score for the query's words, best first."""
    ranking = rank(library, query, min_score=min_score, after=after, before=before, source=source)
    return ranking.page(library, 0, len(ranking) if limit is None else limit)


def photos_of_word(library: Library, word_id: int) -> Ranking:
    """The photos that carry a vocabulary word among their top tags, best score first."""
    ids, found = library.word_photos(word_id)
    return Ranking(ids, found)
