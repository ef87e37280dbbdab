"""The app's operations, what `epsilon-tag` and its TUI both call with the same arguments.

Every policy of the app lives here or below: where the library file is, that mistyped
options fail before a library file is made, which folders a bare scan means and what an
absent one means, which model a library keeps (``tagger.scan``), what a word already in
the vocabulary means to `vocab add`, when a photo is "not in the library". The CLI and
the TUI parse, call one of these, and print or draw what comes back; they import nothing
else of the app (tests/test_layers.py checks), so the names they need are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer import candidates
from trainer.assets import normalise_word
from trainer.embeddings import UnknownWordError
from trainer.errors import InputError, UserError

from . import learning as _learning
from . import roots as _roots
from . import search as _search
from . import vocabulary as _vocabulary
from .library import MISSING, OK, SEEN, Library, LibraryError, keyword_words
from .scanoptions import ScanOptions, ScanReport
from .scanplan import under
from .search import Hit, Ranking, check_dates, check_score
from .vocabulary import VocabularyError, WordSource, sort_words
from .walk import as_text

# The scan's machinery (torch's DataLoader, Pillow, the model), Pillow for a preview, the
# XMP writer and platformdirs are imported by the operations that use them: `search` and
# `stats` start without them (80 ms and 15 MiB less on every call).
if TYPE_CHECKING:
    from PIL import Image

    from .xmp import Naming

__all__ = [
    "MISSING",
    "OK",
    "SEEN",
    "Hit",
    "InputError",
    "Library",
    "LibraryError",
    "PhotoView",
    "Ranking",
    "ScanOptions",
    "ScanReport",
    "UnknownWordError",
    "UserError",
    "VocabularyError",
    "WordSource",
    "check_dates",
    "check_score",
    "normalise_word",
    "sort_words",
]


# ---- the library file -------------------------------------------------------------


def default_db() -> Path:
    """The library of a user who names none: their data folder's library.db."""
    import platformdirs

    return platformdirs.user_data_path("epsilon-tag") / "library.db"


def open_library(db: str | Path | None = None, *, create: bool = False, readonly: bool = False) -> Library:
    """The library at ``db`` (None: ``default_db()``); ``create`` makes it if it is not there."""
    return Library(Path(db).expanduser() if db else default_db(), create=create, readonly=readonly)


def is_tagged(library: Library) -> bool:
    """Whether any scan has tagged photos into the library (else the TUI's first run)."""
    return library.model_id is not None


def version(library: Library) -> int:
    """A number that changes whenever another connection commits (the TUI's refresh)."""
    return library.data_version()


# ---- scanning ----------------------------------------------------------------------


def scan(
    db: str | Path | None,
    roots: Sequence[str | Path] = (),
    options: ScanOptions = ScanOptions(),
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScanReport:
    """Scan ``roots`` (none: the library's own folders, those not there now skipped) into the
    library at ``db``, on its own connection. The options are checked before the library
    file is made or changed; the library keeps its model unless ``options.model`` says."""
    from .scan import scan as run_scan

    options.check()
    with open_library(db, create=True) as library:
        return run_scan(library, roots, options, on_progress=on_progress)


def folders(library: Library) -> list[str]:
    """The folders a bare scan covers (cheap: no counting)."""
    return list(library.get_meta("roots", []))


def roots(library: Library) -> list[dict]:
    """The library's folders: root, present photos under it, whether it is there now."""
    return _roots.roots_of(library)


def forget_root(library: Library, folder: str | Path) -> int:
    """Stop scanning ``folder`` and forget its photos; returns how many."""
    return _roots.forget_root(library, folder)


# ---- searching ---------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A search's answer: the ranking (every match, best first) and its first page."""

    query: Sequence[str]
    ranking: Ranking
    hits: list[Hit]

    def to_dict(self) -> dict:
        return {
            "query": list(self.query),
            "floor": self.ranking.floor,
            "matches": len(self.ranking),
            "best": self.ranking.best,
            "did_you_mean": self.ranking.typos,
            "hits": [h.to_dict() for h in self.hits],
        }


def search(
    library: Library,
    words: str | Sequence[str],
    *,
    limit: int = 20,
    min_score: float | None = None,
    after: str | None = None,
    before: str | None = None,
    source: WordSource | None = None,
) -> Found:
    """Photos the words are likely true of, from the relevance floor up (``min_score``:
    from that confidence up instead), taken between the dates; the first ``limit``."""
    ranking = _search.rank(library, words, min_score=min_score, after=after, before=before, source=source)
    return Found([words] if isinstance(words, str) else words, ranking, ranking.page(library, 0, limit))


def like(
    library: Library,
    photo: str | Path | int,
    *,
    limit: int = 20,
    after: str | None = None,
    before: str | None = None,
) -> Found:
    """Photos nearest a photo (a path, or a photo id from a listing), most alike first."""
    photo_id = photo if isinstance(photo, int) else show(library, photo).row["id"]
    ranking = _search.like(library, photo_id, after=after, before=before)
    return Found([f"like:{photo}"], ranking, ranking.page(library, 0, limit))


def photos_of_word(library: Library, word_id: int) -> Ranking:
    """The photos that show a vocabulary word, best first."""
    return _search.photos_of_word(library, word_id)


def page(library: Library, ranking: Ranking, start: int, count: int) -> tuple[list[Hit], dict[int, list[str]]]:
    """A page of a ranking's photos, with each photo's top words."""
    hits = ranking.page(library, start, count)
    return hits, library.top_words([h.photo_id for h in hits])


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 photo', '3 photos', '2 matches': a count as people write it."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


# ---- the vocabulary ----------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    word: str
    count: int  # photos that show it
    held: str | None  # the form it was already in the vocabulary as (None: new)
    typo: str | None = None  # a common word this rare one is likely a misspelling of


def word_source(library: Library, embeddings: str | None = None) -> WordSource:
    """Where the library's new words get their vectors (``embeddings``: another source)."""
    source = WordSource.of_library(library)
    if embeddings:
        source.embeddings_id = embeddings
    return source


def add_words(
    library: Library, words: Sequence[str], *, embeddings: str | None = None, source: WordSource | None = None
) -> list[Added]:
    """Add words (a word already there, in any of its forms, is counted, not added again);
    every photo is re-scored from its stored vectors at once."""
    source = source or word_source(library, embeddings)
    present = _vocabulary.known_forms(library, [normalise_word(w) for w in words])
    counts = _vocabulary.add_words(library, words, source)
    return [
        Added(word, count, present.get(word), None if word in present else source.likely_typo(word))
        for word, count in counts.items()
    ]


def remove_words(library: Library, words: Sequence[str]) -> dict[str, int]:
    """Remove words; returns the photos each was taken from."""
    return _vocabulary.remove_words(library, words)


def word_table(library: Library, *, kind: str | None = None, sort: str = "count") -> list[dict]:
    """Every word with its kind and how many photos show it."""
    return _vocabulary.word_table(library, kind=kind, sort=sort)


def similar(library: Library, word: str, n: int = 10) -> list[tuple[str, float]]:
    """Words to add near ``word`` in meaning, for the library (``similar_words``)."""
    return similar_words(word_source(library), word, n)


def similar_words(source: WordSource, word: str, n: int = 10) -> list[tuple[str, float]]:
    """Words to add near ``word`` in meaning (trainer.candidates): photo words by their
    shipped sentence vectors where ``word`` is one, else the source's own word space."""
    return candidates.similar(source, word, n)


@dataclass(frozen=True)
class Taught:
    """What a person's tags did to one word."""

    word: str
    confirmed: int  # photos a person says show it
    rejected: int  # photos a person says do not
    count: int  # photos that show it now, across the library
    learned: bool  # the library was scored again for it (a word the word vectors know)


def tag(
    library: Library,
    photos: Sequence[str | Path | int],
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    source: WordSource | None = None,
) -> list[Taught]:
    """A person's own tags: each photo shows the ``add`` words, whatever the model says, and
    not the ``remove`` words (a word they added is taken back; a model's tag is rejected).
    Kept apart from the model's tags, through rescans, moves and model changes. A word the
    word vectors know learns from them: the library is scored again for it, moved towards
    the confirmed photos and away from the rejected (``vocab unlearn`` undoes it)."""
    source = source or word_source(library)
    ids = [p if isinstance(p, int) else show(library, p).row["id"] for p in photos]
    # Each word as written ("Grandma Kowalski": sidecars get it so), and whether it is added.
    wanted = {normalise_word(w): (" ".join(w.split()), 1) for w in add}
    wanted |= {normalise_word(w): (" ".join(w.split()), -1) for w in remove}
    if not wanted or not all(wanted):
        raise InputError("Say what to tag: --add WORD or --remove WORD.")
    both = sorted({normalise_word(w) for w in add} & {normalise_word(w) for w in remove})
    if both:
        raise InputError(f"{', '.join(map(repr, both))}: both added and removed; say one of them.")
    forms = _vocabulary.known_forms(library, list(wanted))
    with library.transaction():
        for word, (written, state) in wanted.items():
            keyword = forms.get(word, written)  # a vocabulary word as the vocabulary has it: "Dogs" is "dog"
            for photo_id in ids:
                said = library.forget_user_tag(photo_id, keyword)
                if state > 0 or not said:  # removing a word a person added only takes it back
                    library.set_user_tag(photo_id, keyword, state)
    return [_learn(library, forms.get(w, w), source) for w in wanted]


def unlearn(library: Library, word: str, *, source: WordSource | None = None) -> Taught:
    """``word`` is scored from its own vector again, as before any example moved it; the
    tags people gave stay (a later tag of the word learns from all of them again)."""
    word = normalise_word(word)
    word = _vocabulary.known_forms(library, [word]).get(word, word)
    if library.word_base(word) is None:
        raise InputError(f"{word!r} has not learned from any example: there is nothing to undo.")
    _learning.relearn(library, word, source or word_source(library), examples=False)
    return _taught(library, word, learned=False)


def _learn(library: Library, word: str, source: WordSource) -> Taught:
    try:
        learned = word in _vocabulary.known_forms(library, [word]) or bool(len(library.feedback(word)[0]))
        if learned:
            _learning.relearn(library, word, source)
    except UnknownWordError:  # no vector: an own keyword, found by itself, that teaches nothing
        learned = False
    return _taught(library, word, learned)


def _taught(library: Library, word: str, learned: bool) -> Taught:
    """What people said of ``word`` and how many photos show it now: that word's count alone
    (after a write, every word's would be a pass over every tag)."""
    confirmed, rejected = library.feedback(word)
    word_id = next((w.id for w in library.words() if w.word == word), None)
    count = 0 if word_id is None else library.word_counts([word_id]).get(word_id, 0)
    return Taught(word, len(confirmed), len(rejected), count, learned)


def warm_up(library: Library, source: WordSource) -> None:
    """Load the word vectors and every photo's S now, so that the first search or added
    word does not wait for them."""
    with suppress(VocabularyError):  # no word vectors for this model: its own words still work
        _ = source.vectors
    library.semantic_vectors()


# ---- one photo ---------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoView:
    row: dict  # the library's record: path, status, EXIF facts
    tags: list[dict]  # word, score, kind: the model's shown tags (every stored one when asked)
    own: list[str]  # the photographer's own keywords, as they came ('Holiday|Rome')
    warning: str | None = None  # what was wrong with the file, though it was read (a damaged JPEG)

    @property
    def facts(self) -> list[tuple[str, str]]:
        """Its date, camera, lens, GPS, size and any warning as people read them, the empty ones left out."""
        row = self.row
        gps = f"{row['latitude']:.5f}, {row['longitude']:.5f}" if row.get("latitude") is not None else None
        size = f"{row['width']} x {row['height']}" if row.get("width") else None
        facts = (("taken", row.get("taken_at")), ("camera", row.get("camera")), ("lens", row.get("lens")))
        extra = (("gps", gps), ("size", size), ("warning", self.warning))
        return [(label, value) for label, value in (*facts, *extra) if value]

    def to_dict(self) -> dict:
        return {"photo": self.row, "tags": self.tags, "own": self.own, "warning": self.warning}


def show(library: Library, photo: str | Path, *, every: bool = False) -> PhotoView:
    """A photo by its path, with its tags (``every``: every stored candidate)."""
    path = as_text(Path(photo).expanduser().resolve())
    row = library.photo_by_path(path)
    if row is None:
        failure = library.failure(path)
        if failure is None and not Path(photo).expanduser().exists():
            raise InputError(f"No such file: {path}")
        if Path(path).is_dir():
            raise InputError(f"{path} is a folder: give one of its photos (`epsilon-tag search --like` takes one too).")
        if failure:
            why = f"it failed: {failure['reason']}"
        elif any(under(path, [root]) for root in library.get_meta("roots", [])):
            why = "its folder was scanned, but not since this file came, or it is no photo the scan reads"
        else:
            why = "scan its folder first"
        raise InputError(f"{path} is not in the library ({why}).")
    return _view(library, row, every)


def _view(library: Library, row: dict, every: bool = False) -> PhotoView:
    """A photo's record, the model's tags less the words its own keywords already say, and those."""
    own = library.own_keywords(row["id"])
    said = {words[0] for k in own if (words := keyword_words(k))}  # each keyword's leaf
    tags = [tag for tag in library.photo_tags(row["id"], every=every) if tag["word"] not in said]
    damaged = library.failure(row["path"])  # a damaged file read all the same is listed with the failures
    return PhotoView(row, tags, own, damaged["reason"] if damaged else None)


def photo(library: Library, photo_id: int) -> PhotoView | None:
    """A photo by its id (None: gone since it was listed)."""
    row = library.photos([photo_id]).get(photo_id)
    return None if row is None else _view(library, row)


def picture(path: str | Path, min_side: int) -> Image.Image | str:
    """The photo's pixels upright, at least ``min_side`` on its short side (a PIL image), or
    why it cannot be shown (a string)."""
    from .images import UnreadablePhoto, open_photo

    if not Path(path).exists():
        return "not on disk now"
    try:
        return open_photo(path, min_side)
    except (UnreadablePhoto, OSError) as exc:
        return str(exc)


# ---- the library as a whole --------------------------------------------------------


def stats(library: Library, *, failures: bool = False) -> dict:
    """What the library holds: its file and size, model, counts, top words (and every
    failure, when asked)."""
    info = {
        "library": str(library.path),
        "bytes": library.path.stat().st_size,
        "model": library.model_id,
        **library.counts(),
        "top_words": [w for w in _vocabulary.word_table(library)[:10] if w["count"]],
    }
    if failures:  # a damaged file read all the same is listed too, marked as tagged
        info["failure_list"] = [
            {**f, "tagged": library.photo_by_path(f["path"]) is not None} for f in library.failures()
        ]
    return info


def export_xmp(
    library: Library,
    folders: Sequence[str | Path] = (),
    *,
    naming: Naming = "full",
    min_score: float | None = None,
    top: int | None = None,
    parent: str | None = "epsilon-tag",
) -> tuple[int, int, list[tuple[str, str]]]:
    """Write the shown tags (or every tag from ``min_score``, at most ``top``) of the photos
    under ``folders`` (none: all) to XMP sidecars, with each photo's own keywords as they
    came; in the hierarchical views the model's tags go under ``parent`` (None: at the top).
    Returns (written, merged, failed)."""
    check_score(min_score, "the minimum score")
    if naming not in ("full", "stem"):
        raise InputError(f"sidecar naming is full or stem, not {naming!r}")
    under = [str(Path(p).expanduser().resolve()) for p in folders]
    for folder in under:
        if not Path(folder).is_dir():
            raise InputError(f"{folder} is not a folder of this library's photos: `epsilon-tag roots list` shows them")
    from .xmp import export_sidecars

    return export_sidecars(
        library,
        under,
        naming=naming,
        min_score=min_score,
        top=top,
        own=library.own_keywords,
        confirmed=library.confirmed_keywords,
        parent=parent,
    )
