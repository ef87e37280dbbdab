"""Search: the query semantics shared by the CLI and the TUI.

Every word of a query is scored against every photo's stored semantic vectors and
ImageNet classes, whether the word is in the vocabulary or not (zero-shot: no re-scan),
as a confidence that the word is true of the photo (``trainer.tagrule``), the words that
imply it included: a search score is a tag's confidence, and a photo tagged "duck" is
found by "bird". Several words rank photos by the geometric mean of their confidences
(a photo must match each). Photos below the relevance floor, the confidence from which a
photo shows a word as its best tag (the rule's fallback), are left out: a word no photo
matches well finds nothing, instead of the least bad photos.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from trainer.embeddings import UnknownWordError
from trainer.errors import InputError
from trainer.tagrule import TagRule

from .library import Library, LibraryError, Stored, Word
from .vocabulary import Vocabulary, WordSource, confidences, known_forms, normalise_word, scores, word_levels

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


@dataclass(frozen=True)
class Term:
    """A word of a query and how much it counts; a negative weight: photos showing it drop."""

    word: str
    weight: float = 1.0


# A query token: an optional "-" (leave out), an optional "N:" weight, the word.
_TOKEN = re.compile(r"^(-)?(?:(\d+(?:\.\d+)?):)?(.*)$")
# Tokens of a query argument: a "quoted phrase" (after its - and N:, if any) is one.
_PIECES = re.compile(r'(-?(?:\d+(?:\.\d+)?:)?)"([^"]*)"|([^\s,]+)')


def parse_query(query: str | Sequence[str], vocabulary: Sequence[str] = ()) -> list[Term]:
    """The terms of a query, as rclip reads them: `beach -people` leaves out photos showing
    people, `2:beach sunset` counts beach twice, `snow + dog` is snow and dog (a lone `+`
    joins, as a space does). An argument that is a vocabulary entry ("polar bear", or
    "-polar bear") stays whole, and so does a phrase in double quotes (`"teddy bear" -"hot
    dog"`, typed in the TUI or quoted twice in a shell); anything else is split on spaces
    and commas."""
    known = set(vocabulary)
    weights: dict[str, float] = {}
    for part in [query] if isinstance(query, str) else list(query):
        key = normalise_word(part)
        tokens = [key] if _body(key) in known else [t for t in _pieces(key) if t and t != "+"]
        for token in tokens:
            sign, weight, word = _TOKEN.match(token).groups()  # type: ignore[union-attr]  # matches any text
            if weight is not None and (not word or float(weight) == 0):
                raise InputError(
                    f"{token!r}: a weight goes before a word and is above 0 (2:beach counts beach twice; "
                    f"-beach leaves photos of it out)."
                )
            if word and word != "+":
                weights[word] = weights.get(word, 0.0) + (-1 if sign else 1) * float(weight or 1)
    return [Term(word, weight) for word, weight in weights.items() if weight]


def _pieces(text: str) -> list[str]:
    # A quote left open is no phrase: its word without it.
    return [m[1] + " ".join(m[2].split()) if m[3] is None else m[3].replace('"', "") for m in _PIECES.finditer(text)]


def _body(token: str) -> str:
    return _TOKEN.match(token).group(3)  # type: ignore[union-attr]  # matches any text


def combine(confidence: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """One score per photo from its confidences for each term (photos x terms): the weighted
    geometric mean of the wanted terms (a photo must match each), times (1 - confidence)
    to the weight of each term to leave out."""
    weights = np.asarray(weights, np.float64)
    wanted = weights > 0
    log = np.log(np.maximum(confidence, 1e-12))
    combined = np.ones(len(confidence))
    if wanted.any():
        combined = np.exp(log[:, wanted] @ weights[wanted] / weights[wanted].sum())
    for column in np.flatnonzero(~wanted):
        combined *= (1.0 - confidence[:, column]) ** -weights[column]
    return combined.astype(np.float32)


_DATE_FORMATS = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d", 13: "%Y-%m-%dT%H", 16: "%Y-%m-%dT%H:%M", 19: "%Y-%m-%dT%H:%M:%S"}


def check_date(value: str | None, name: str) -> str | None:
    """Dates compare as text against ISO timestamps, so a prefix (2021, 2021-06) works; it
    must be a real date (no month 13, no 30 February). ``name`` is what the message calls
    it (a CLI flag, where the CLI checks)."""
    if value is None:
        return None
    value = value.strip().replace(" ", "T")
    if _DATE.match(value):
        try:
            datetime.strptime(value, _DATE_FORMATS[len(value)])
            return value
        except (KeyError, ValueError):
            pass
    raise InputError(f"{name} takes a date like 2021, 2021-06 or 2021-06-30, not {value[:40]!r}")


def check_dates(after: str | None, before: str | None, names: tuple[str, str] = ("after", "before")) -> tuple:
    """Both dates checked, and a span a photo could be taken in."""
    after, before = check_date(after, names[0]), check_date(before, names[1])
    if after and before and after >= before:
        raise InputError(f"{names[0]} {after} is not before {names[1]} {before}: no photo could be taken in between")
    return after, before


def check_score(value: float | None, name: str) -> float | None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InputError(f"{name} takes a confidence between 0 and 1, not {value}")
    return value


@dataclass(frozen=True)
class Ranking:
    """Photo ids ranked best first, with their scores; rows are fetched a page at a time,
    so a list of 100,000 results costs two arrays until someone looks at it. ``floor``: the
    score a photo needed (None: every photo is there); ``best``: the best score of all,
    listed or not. ``typos``: a query word that is a rare spelling of a common word, and
    that word ("elefant" -> "elephant"), where nothing matched."""

    ids: np.ndarray
    scores: np.ndarray
    floor: float | None = None
    best: float | None = None
    typos: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def did_you_mean(self) -> str:
        """The typos as a sentence for people (empty where there are none)."""
        return "".join(f" Did you mean {fix!r} for {word!r}?" for word, fix in self.typos.items())

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
    """Present photos ranked by their (geometric mean) confidence for the query's words,
    from the relevance floor up (``min_score``: from that confidence up instead; 0: every
    photo)."""
    if library.model_id is None:
        raise LibraryError("The library has no tagged photos yet: run `epsilon-tag scan FOLDER` first.")
    source = source or WordSource.of_library(library)
    held = library.words()
    query_terms = parse_query(query, [*(w.word for w in held), *_own_phrases(library, query)])
    if not any(term.weight > 0 for term in query_terms):
        raise InputError(
            "Give at least one word to search for; a -word only leaves photos out of what the other words find."
        )
    terms = [term.word for term in query_terms]
    floor = check_score(min_score, "the minimum score")
    after, before = check_dates(after, before)
    rule = library.tag_rule
    if floor is None:
        floor = rule.fallback if rule.fallback is not None else rule.threshold
    # The photographer's own keywords: a photo that has one is found by it, whatever the model says.
    own = {t: ids for t in terms if len(ids := library.photos_with_own(t))}
    stored = library.semantic_vectors(after=after, before=before)
    confidence = _model_confidence(library, terms, own, source, held, stored, rule, after or before)
    for j, term in enumerate(terms):  # a person's word over the model's: confirmed 1, rejected 0
        if term in own:
            confidence[np.isin(stored.ids, own[term]), j] = 1.0
        confidence[np.isin(stored.ids, library.photos_rejecting(term)), j] = 0.0
    combined = combine(confidence, [term.weight for term in query_terms])
    order = np.argsort(-combined, kind="stable")
    best = float(combined[order[0]]) if len(order) else None
    if floor is not None:
        order = order[combined[order] >= floor]
    typos = {} if len(order) else {t: fix for t in terms if t not in own and (fix := source.likely_typo(t))}
    return Ranking(stored.ids[order], combined[order], floor, best, typos)


def _own_phrases(library: Library, query: str | Sequence[str]) -> list[str]:
    """Arguments of a query that are, whole, a phrase of the photographer's keywords
    ("golden gate"): kept whole, as a vocabulary phrase is."""
    parts = [_body(normalise_word(p)) for p in ([query] if isinstance(query, str) else query)]
    return [p for p in parts if " " in p and len(library.photos_with_own(p))]


def _model_confidence(
    library: Library,
    terms: list[str],
    own: dict[str, np.ndarray],
    source: WordSource,
    held: list[Word],
    stored: Stored,
    rule: TagRule,
    dated: str | None,
) -> np.ndarray:
    """Each stored photo's confidence for each term (photos x terms), as the model scores
    it; 0 for a term only the photographer's keywords know (no word vector has it)."""
    # A term is the vocabulary's word where it is one of its forms ("cars": "car"); else it
    # is described as a word to add would be (unknown words raise before any scoring).
    forms = known_forms(library, terms)
    extra = {}
    for term in terms:
        if term not in forms:
            try:
                extra[term] = source.describe(term)
            except UnknownWordError:
                if term not in own:
                    raise
    scored = [t for t in terms if t in forms or t in extra]
    confidence = np.zeros((len(stored), len(terms)), np.float32)
    if not scored:
        return confidence
    by_word = {w.word: w for w in held}
    # Each query word scored once: its level (a word not in the vocabulary) and its confidence read the same scores.
    raw = scores(stored.semantic, np.stack([(extra[t] if t in extra else by_word[forms[t]]).vector for t in scored]))
    fresh = [i for i, t in enumerate(scored) if t in extra]
    levels = _levels(library, raw[:, fresh], [extra[scored[i]].vector for i in fresh], rule, dated)
    added = [
        Word(-1 - n, e.word, e.kind, e.vector, float(levels[n]), e.label, e.classes)
        for n, e in enumerate(extra[scored[i]] for i in fresh)
    ]
    vocabulary = Vocabulary.of([*held, *added])
    position = {w: i for i, w in enumerate(vocabulary.words)}
    columns = [position[forms.get(t, t)] for t in scored]
    found = confidences(stored.semantic, stored.classes, vocabulary, rule, columns, raw=raw)
    confidence[:, [terms.index(t) for t in scored]] = found
    return confidence


def _levels(
    library: Library, raw: np.ndarray, vectors: list[np.ndarray], rule: TagRule, dated: str | None
) -> np.ndarray:
    """Levels of words not in the vocabulary (``raw``: their scores on the photos searched),
    over the whole library whatever the dates asked for."""
    if not vectors:
        return np.zeros(0, np.float32)
    if dated:
        raw = scores(library.semantic_vectors().semantic, np.stack(vectors))
    return word_levels(raw, rule)


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


def like(
    library: Library, photo_id: int, *, after: str | None = None, before: str | None = None, chunk: int = 20_000
) -> Ranking:
    """Photos nearest a photo in S, best first, the photo itself left out: the mean over S's
    rows (each the same group prompt's view of a photo) of their cosines, once the library's
    mean row is taken away (what every photo shares says nothing of this one)."""
    after, before = check_dates(after, before)
    query = library.semantic_vectors(ids=[photo_id])
    if not len(query):
        raise InputError("That photo has no semantic vectors in this library (missing, or read by another model).")
    stored = library.semantic_vectors(after=after, before=before)
    everyone = library.semantic_vectors() if after or before else stored  # the centre is the library's
    centre = sum(
        np.asarray(everyone.semantic[s : s + chunk], np.float32).sum(axis=0) for s in range(0, len(everyone), chunk)
    ) / max(1, len(everyone))
    target = _unit_rows(np.asarray(query.semantic[0], np.float32) - centre)
    similarity = np.zeros(len(stored), np.float32)
    for start in range(0, len(stored), chunk):  # fp16 rows made float32 a chunk at a time
        rows = _unit_rows(np.asarray(stored.semantic[start : start + chunk], np.float32) - centre)
        similarity[start : start + chunk] = np.einsum("nmd,md->n", rows, target) / len(target)
    order = np.argsort(-similarity, kind="stable")
    order = order[stored.ids[order] != photo_id]
    best = float(similarity[order[0]]) if len(order) else None
    return Ranking(stored.ids[order], similarity[order], None, best)


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def photos_of_word(library: Library, word_id: int) -> Ranking:
    """The photos that carry a vocabulary word among their top tags, best score first."""
    ids, found = library.word_photos(word_id)
    return Ranking(ids, found)
