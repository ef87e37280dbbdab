"""The photo library in SQLite: the schema, its migrations and every query (the one place with SQL).

Tables: ``photos`` (one row per file, with EXIF and the model that tagged it),
``vectors`` (each photo's Epsilon semantic vectors S, M x d_w fp16), ``words`` (the
vocabulary with its word vectors), ``tags`` (each photo's top words and their scores),
``failures`` (files that could not be read, with the reason), ``own_tags`` (the
photographer's own keywords) and ``meta`` (schema version, model id, shapes). WAL mode lets
a search or the TUI read while a scan writes; every write happens in a transaction, so a
kill leaves the last committed batch and nothing half-done.

``Library`` is one class put together from a part per concern, each a module:

- ``records``: the values of the columns and the records that go in and come out;
- ``schema``: the migrations ``_v1``.. ``_v5`` (append, never edit) and SCHEMA_VERSION;
- ``connection``: the SQLite connection, transactions and generations, migrating on open, meta;
- ``sidecache``: the caches beside the file (S and classes snapshots, floors, the summary);
- ``photos``, ``tags``, ``words``, ``own``, ``staging``, ``vectors``: the queries on each table;
- here: opening the file, and where this user may write beside it.

The SQL is written out, with no table API (sqlite-utils' was dropped): the migrations are
raw SQL that must never change once released, and the queries are tuned with partial
indexes and INDEXED BY, so a table API would serve nothing here.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from trainer.assets import normalise_word

from .connection import Database
from .own import OwnTags, keyword_words
from .photos import Photos
from .records import (
    CLASSES_SHAPE,
    DEFAULT,
    DEFAULT_TAGS_PER_PHOTO,
    FROM_FILE,
    FROM_USER,
    MISSING,
    OK,
    READ_VERSION,
    SEEN,
    USER,
    ZERO_SHOT,
    Failure,
    Known,
    LibraryError,
    NewWord,
    PhotoRecord,
    Rows,
    Stored,
    Word,
    now,
)
from .schema import MIGRATIONS, SCHEMA_VERSION, TABLES
from .staging import Staging
from .tags import Tags
from .vectors import Vectors
from .words import Words

__all__ = [
    "BUSY_TIMEOUT_S",
    "CLASSES_SHAPE",
    "DEFAULT",
    "DEFAULT_TAGS_PER_PHOTO",
    "FROM_FILE",
    "FROM_USER",
    "MIGRATIONS",
    "MISSING",
    "OK",
    "READ_VERSION",
    "SCHEMA_VERSION",
    "SEEN",
    "TABLES",
    "USER",
    "ZERO_SHOT",
    "Database",
    "Failure",
    "Known",
    "Library",
    "LibraryError",
    "NewWord",
    "PhotoRecord",
    "Rows",
    "Stored",
    "Word",
    "keyword_words",
    "now",
]

# How long a command waits for another writer (a scan commits a batch in well under a second);
# read when a library is opened, so that a test may shorten it here.
BUSY_TIMEOUT_S = 30.0


# Whether this user may write a path: asked only in this module, so that replacing
# ``tagger.library._writable`` (as a test does, for a user without root) reaches every asker.
def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


# The parts that lend others a method (own.OwnTags, tags.Tags, photos.Photos) come before those that use it.
class Library(OwnTags, Tags, Words, Photos, Staging, Vectors):
    """An open library file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path).expanduser()
        self._depth = 0
        # The whole library's S and classes, by column, until the vectors table changes.
        self._cache = {}
        # Every photo's floor for one generation (in memory, and the floors file), and the
        # floors a write transaction leaves, kept once it commits.
        self._floor_table = None
        self._new_floors = None
        if self.path.is_dir():
            raise LibraryError(f"{self.path} is a folder: --db takes the library file, e.g. {self.path / 'library.db'}")
        if self.path.exists() and not readonly:
            self._check_writable()
        if not self.path.exists():
            if not create or readonly:
                raise LibraryError(
                    f"No library at {self.path}: run `epsilon-tag scan FOLDER` first, or pass --db "
                    f"(or set EPSILON_TAG_DB) to the library you scanned into."
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"Cannot create the folder for the library {self.path}: {exc.strerror}") from exc
        try:
            if readonly and self._needs_migration():
                Library(self.path).close()  # an older library is brought up to date once, where it can be
            uri = f"file:{self.path}" + ("?mode=ro" if readonly else "")
            if readonly and not all(_writable(p) for p in self._files() if p.exists()):
                # Nobody can write it, and SQLite could not make its side files for locking:
                # read it as an immutable file rather than leave a read-only -shm behind.
                uri += "&immutable=1"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            # A person's keyword keeps the case they typed ("Grandma Kowalski"); it is one
            # keyword with "grandma kowalski" wherever keywords are compared.
            conn.create_function("norm", 1, normalise_word, deterministic=True)
            self.db = Database(conn)
            self._refuse_foreign()  # before WAL, which already writes to the file
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                # WAL with synchronous=NORMAL never corrupts; a power cut may lose the last
                # commit, which the next scan redoes. FULL would fsync every batch.
                conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(readonly)
        except sqlite3.DatabaseError as exc:
            raise LibraryError(
                f"Cannot open the library {self.path}: {exc}. If it is not an epsilon-tag library, pass "
                f"another --db; if the folder is read-only, choose a writable place."
            ) from exc

    def _files(self) -> list[Path]:
        """The library file, its folder, and SQLite's WAL side files."""
        return [self.path, self.path.parent, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]

    def _check_writable(self) -> None:
        for path in self._files():
            if path.exists() and not _writable(path):
                what = "folder" if path.is_dir() else "file"
                raise LibraryError(
                    f"The library's {what} {path} is read-only: make it writable (chmod u+w {path}) to change "
                    f"the library; reading it (search, stats, show, export) works as it is."
                )

    def _needs_migration(self) -> bool:
        if not all(_writable(p) for p in self._files() if p.exists()):
            return False  # it could not be migrated here anyway (the open below says so if needed)
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)) as conn:
                return conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION
        except sqlite3.DatabaseError:
            return False  # the read-only open below says what is wrong

    def _may_write_beside(self) -> bool:
        """Files beside the library (side file, summary) only for a library this user may
        change: a read-only one gets no new files."""
        return _writable(self.path) and _writable(self.path.parent)
