"""What the library stores and hands out: the values of its columns (a photo's status, a
word's kind and origin, the shapes of S and of the classes record) and the records that go
in and come out (Known, Word, NewWord, PhotoRecord, Failure, Stored and its Rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.errors import UserError
from trainer.tagrule import CLASSES_KEPT

if TYPE_CHECKING:  # numpy.typing is not loaded by numpy itself: a search need not pay for it
    from numpy.typing import DTypeLike

OK, MISSING = "ok", "missing"
SEEN, ZERO_SHOT = "seen", "zero-shot"
FROM_FILE, FROM_USER = "file", "user"  # where a photo's own keyword came from
DEFAULT, USER = "default", "user"  # where a vocabulary word came from
CLASSES_SHAPE = (2, CLASSES_KEPT)  # a photo's ImageNet classes record (trainer.tagrule.top_classes)
READ_VERSION = 1  # what reading a photo records now: S, and its ImageNet classes where the model has a head
DEFAULT_TAGS_PER_PHOTO = 10


class LibraryError(UserError, RuntimeError):
    """The library file cannot be used as asked; the message says what to do."""


def now() -> str:
    """UTC, to the millisecond: a forced scan cut short knows which photos it read (scan.py)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Known:
    """What the library knows about a file, enough to decide whether to read it again."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    model_id: str | None
    read_version: int = READ_VERSION
    sidecars: str | None = ""  # its sidecars when their keywords were last read (None: never read)
    scanned_at: str | None = None  # when it was last read (records.now())


@dataclass(frozen=True)
class Word:
    id: int
    word: str
    kind: str
    vector: np.ndarray  # d_w float32, unit length
    mean: float | None = None  # the word's level over the library's photos (trainer.tagrule), when computed
    label: str | None = None  # the model label it is (seen words), else None
    classes: np.ndarray | None = None  # ImageNet classes below it; None: not worked out yet
    origin: str | None = None  # DEFAULT or USER; None: a library older than the record


@dataclass(frozen=True)
class NewWord:
    """A word to add: its vector, kind, the model label it is, the ImageNet classes below it."""

    word: str
    kind: str
    vector: np.ndarray
    label: str | None = None
    classes: np.ndarray | None = None
    origin: str | None = None


@dataclass
class PhotoRecord:
    """One decoded, tagged photo, ready to store."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    meta: dict  # PhotoMeta fields
    semantic: np.ndarray  # M x d_w
    tags: list[tuple[int, float, bool]]  # (word id, confidence, shown), best first
    damage: str | None = None  # tagged, but the file is damaged: kept with the failures too
    classes: np.ndarray | None = None  # 2 x CLASSES_KEPT (trainer.tagrule.top_classes), None: the model has no head
    # The photographer's own keywords read from the file and its sidecars ('Holiday|Rome'),
    # and those sidecars' signature; None: not read this time (those stored stay).
    keywords: list[str] | None = None
    sidecars: str | None = None


class Rows:
    """Some rows of a big array (the memory-mapped S of every photo), read a slice at a time:
    ``rows[a:b]`` and ``rows[indices]`` give plain arrays, and nothing copies the whole."""

    def __init__(self, base: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.base) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.base[key] if self.rows is None else self.base[self.rows[key]])

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)


@dataclass(frozen=True)
class Stored:
    """Semantic vectors of present photos, as the library holds them."""

    ids: np.ndarray  # N photo ids
    semantic: np.ndarray | Rows  # N x rows x d_w float16 (a view of the side file for the whole library)
    floor: np.ndarray  # N float32: score of the lowest kept tag, -inf while a photo has room
    classes: np.ndarray | Rows | None = None  # N x 2 x CLASSES_KEPT float16 (trainer.tagrule.top_classes)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str
    size: int | None = None
    mtime_ns: int | None = None
