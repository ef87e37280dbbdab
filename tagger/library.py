"""The photo library in SQLite: the schema, its migrations and every query (the one place with SQL).

Tables: ``photos`` (one row per file, with EXIF and the model that tagged it),
``vectors`` (each photo's Epsilon semantic vectors S, M x d_w fp16), ``words`` (the
vocabulary with its word vectors), ``tags`` (each photo's top words and their scores),
``failures`` (files that could not be read, with the reason) and ``meta`` (schema version,
model id, shapes). WAL mode lets a search or the TUI read while a scan writes; every write
happens in a transaction, so a kill leaves the last committed batch and nothing half-done.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from trainer.errors import UserError
from trainer.tagrule import CLASSES_KEPT, NO_CLASSES, TagRule

from . import sidefile

SCHEMA_VERSION = 5
OK, MISSING = "ok", "missing"
SEEN, ZERO_SHOT = "seen", "zero-shot"
DEFAULT, USER = "default", "user"  # where a vocabulary word came from
CLASSES_SHAPE = (2, CLASSES_KEPT)  # a photo's ImageNet classes record (trainer.tagrule.top_classes)
READ_VERSION = 1  # what reading a photo records now: S, and its ImageNet classes where the model has a head
DEFAULT_TAGS_PER_PHOTO = 10
# How long a command waits for another writer (a scan commits a batch in well under a second).
BUSY_TIMEOUT_S = 30.0


class LibraryError(UserError, RuntimeError):
    """The library file cannot be used as asked; the message says what to do."""


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """The library's SQLite connection, with the two helpers the library uses. sqlite-utils'
    table API (``db["photos"]``) is there for whoever wants it, imported on first use: a
    search or `stats` should not pay its 70 ms of imports."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence | dict = ()) -> Iterator[dict]:
        """Rows as dicts."""
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(names, row))

    def __getitem__(self, table: str):
        import sqlite_utils

        return sqlite_utils.Database(self.conn)[table]


def _v1(db: Database) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute(
        """CREATE TABLE photos (
            id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER,
            hash TEXT, width INTEGER, height INTEGER, taken_at TEXT, camera TEXT, lens TEXT,
            latitude REAL, longitude REAL, orientation INTEGER, status TEXT NOT NULL DEFAULT 'ok',
            model_id TEXT, scanned_at TEXT)"""
    )
    db.execute("CREATE INDEX photos_hash ON photos(hash)")
    db.execute("CREATE INDEX photos_taken_at ON photos(taken_at)")
    # floor: the score of the photo's lowest kept tag (NULL while it has fewer than
    # tags_per_photo), read with S so that a new word is compared without reading tags.
    db.execute(
        """CREATE TABLE vectors (photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
            s BLOB NOT NULL, floor REAL)"""
    )
    # Floors are read for the whole library when a word is added: from this index, not
    # by scanning every row's S.
    db.execute("CREATE INDEX vectors_floor ON vectors(floor)")
    db.execute(
        """CREATE TABLE words (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            vector BLOB NOT NULL, added_at TEXT)"""
    )
    db.execute(
        """CREATE TABLE tags (
            photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
            word_id INTEGER NOT NULL REFERENCES words(id) ON DELETE CASCADE,
            score REAL NOT NULL, rank INTEGER NOT NULL, PRIMARY KEY (photo_id, word_id)) WITHOUT ROWID"""
    )
    # Photos of a word, best first (browsing a tag, counts per word).
    db.execute("CREATE INDEX tags_word ON tags(word_id, score DESC)")
    db.execute(
        "CREATE TABLE failures (path TEXT PRIMARY KEY, reason TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, at TEXT)"
    )


def _v2(db: Database) -> None:
    # Each word's mean score over the library, for the hubness correction (trainer.tagrule);
    # NULL until the library's means are first computed.
    db.execute("ALTER TABLE words ADD COLUMN mean REAL")


def _v3(db: Database) -> None:
    # Floors in a narrow table of their own: a `vocab add` rewrites the floors of the photos
    # it reaches, and in the vectors table each of those updates rewrote a page of S (a
    # commit of 0.33 s for 1,700 photos, against 0.004 s here). vectors.floor stays, unused:
    # dropping a column rewrites the whole table, 900 MB at a million photos.
    db.execute("""CREATE TABLE floors (photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
                  floor REAL NOT NULL)""")
    db.execute("INSERT INTO floors SELECT photo_id, floor FROM vectors WHERE floor IS NOT NULL")
    db.execute("DROP INDEX IF EXISTS vectors_floor")


def _v4(db: Database) -> None:
    # A tag's rank is read from the scores (ORDER BY score) and no longer kept up to date:
    # keeping it made a `vocab add` rewrite every tag below the new word in each photo it
    # reached (170,000 row updates, 5 s of the 8.4 s an add took at a million photos).
    # tags.rank stays, never read, written as 0: dropping it rewrites the whole table (4.5
    # minutes at a million photos). The version still moves, so that an older epsilon-tag,
    # which would trust the column, refuses this library instead.
    #
    # Every search and `vocab add` asks which photos are not present or were tagged by
    # another model: a few, found by a scan of the whole photos table (0.25 s each at a
    # million photos). These indexes find them directly.
    db.execute("CREATE INDEX IF NOT EXISTS photos_not_ok ON photos(id) WHERE status != 'ok'")
    db.execute("CREATE INDEX IF NOT EXISTS photos_model ON photos(model_id, status)")


def _v5(db: Database) -> None:
    # Which stored tags a photo shows is decided per photo (trainer.tagrule: a photo with no
    # word at the threshold shows its best one), so it is kept with each tag, not read off
    # a score threshold. Existing tags show as the rule they were stored under decided.
    db.execute("ALTER TABLE tags ADD COLUMN shown INTEGER NOT NULL DEFAULT 0")
    row = db.execute("SELECT value FROM meta WHERE key = 'tag_rule'").fetchone()
    rule = TagRule.from_dict(json.loads(row[0]) if row else None)
    db.execute("UPDATE tags SET shown = 1 WHERE score >= ?", [-1e9 if rule.threshold is None else rule.threshold])
    # Counts per word and a word's photos read the shown tags through this index alone.
    db.execute("CREATE INDEX tags_shown ON tags(word_id, photo_id) WHERE shown")
    # What the backbone recognised in each photo, its best ImageNet classes and their
    # probabilities (ImageNetClasses); NULL for a photo read before: read again at the next scan.
    db.execute("ALTER TABLE vectors ADD COLUMN classes BLOB")
    # Each word's model label (NULL: zero-shot), the ImageNet classes below it in WordNet
    # (NULL: not worked out yet) and whether the default vocabulary or a person added it.
    db.execute("ALTER TABLE words ADD COLUMN label TEXT")
    db.execute("ALTER TABLE words ADD COLUMN classes BLOB")
    db.execute("ALTER TABLE words ADD COLUMN origin TEXT")
    # What a photo's read recorded (READ_VERSION): 0, S alone (before this schema); a scan
    # reads such photos again where the model records more, as it does after a model change.
    db.execute("ALTER TABLE photos ADD COLUMN read_version INTEGER NOT NULL DEFAULT 0")
    # A switch to another model (its S may have another shape) reads every photo into here
    # first; the library moves to the new model in one transaction once all are read, so a
    # switch cut short leaves it whole on its old model, and the same command continues.
    db.execute(
        """CREATE TABLE staged (path TEXT PRIMARY KEY, model_id TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
            hash TEXT, width INTEGER, height INTEGER, meta TEXT, s BLOB NOT NULL, classes BLOB, damage TEXT)"""
    )


# Migration i brings a library from version i to i + 1; append, never edit, once released.
MIGRATIONS = [_v1, _v2, _v3, _v4, _v5]
assert len(MIGRATIONS) == SCHEMA_VERSION, "a migration was added without bumping SCHEMA_VERSION"


def _positions(ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key sits in the sorted ``ids``, and whether it is there at all."""
    if not len(ids):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    at = np.clip(np.searchsorted(ids, keys), 0, len(ids) - 1)
    return at, ids[at] == keys


_MISSING_ROW = object()
# A write transaction changed floors without saying which: none are kept beside the library.
_FLOORS_UNKNOWN = object()
# A photo's tags in rank order: best score first, ties by word id.
_BEST_FIRST = "t.photo_id, t.score DESC, t.word_id"
# The few photos not present, through their partial index (schema 4): left to itself the
# planner prefers the covering index photos_model and reads a million entries (0.12 s).
_NOT_OK = "SELECT id FROM photos INDEXED BY photos_not_ok WHERE status != 'ok'"

TABLES = frozenset({"meta", "photos", "vectors", "words", "tags", "failures", "floors", "staged"})


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


class Rows:
    """Some rows of a big array (the memory-mapped S of every photo), read a slice at a time:
    ``rows[a:b]`` and ``rows[indices]`` give plain arrays, and nothing copies the whole."""

    def __init__(self, base: np.ndarray, rows: np.ndarray | None = None):
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.base) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.base[key] if self.rows is None else self.base[self.rows[key]])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
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


class Library:
    """An open library file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path).expanduser()
        self._depth = 0
        # The whole library's S and classes, by column, until the vectors table changes.
        self._cache: dict[str, tuple] = {}
        # Every photo's floor for one generation (in memory, and the floors file), and the
        # floors a write transaction leaves, kept once it commits.
        self._floor_table: tuple[str, np.ndarray, np.ndarray] | None = None
        self._new_floors: tuple[np.ndarray, np.ndarray] | object | None = None
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

    def _refuse_foreign(self) -> None:
        """A SQLite file with tables but no epsilon-tag schema is someone else's: say what it
        holds and never write to it."""
        if self.schema_version:
            return
        tables = {
            r[0]
            for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        }
        # Only empty tables of epsilon-tag's names can be ours: an older version killed
        # while creating its schema (see _migrate). Anything holding rows is not.
        holding = [t for t in tables if self.db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()]
        if tables and (not tables <= TABLES or holding):
            shown = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
            raise LibraryError(
                f"{self.path} is a SQLite database but not an epsilon-tag library (its tables: {shown}); "
                f"it was left unchanged. Pass another --db (or set EPSILON_TAG_DB) for the library."
            )

    # ---- life cycle ------------------------------------------------------------

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: a kill or an error inside leaves the library as it was before.
        Nested calls join the outermost transaction, which alone commits."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        conn = self.db.conn
        # IMMEDIATE: the write lock is taken before anything is read, so what a transaction
        # reads (words, floors) cannot change under it before it writes; and DDL (schema
        # creation) is inside it too, which Python's implicit transactions leave out.
        conn.execute("BEGIN IMMEDIATE")
        changes = conn.total_changes
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        else:
            generation = None
            if conn.total_changes != changes and "meta" in self._tables():
                # Any committed change names a new state of the library: summaries kept
                # beside it (``_summary``) are of one state and are read only for it.
                generation = self._set_generation("generation")
            conn.commit()
            if generation is not None and isinstance(self._new_floors, tuple):
                self._keep_floors(generation, *self._new_floors)
        finally:
            self._depth = 0
            self._new_floors = None

    def _set_generation(self, key: str) -> str:
        # A random name, not a counter: a library deleted and made again at the same path,
        # or a transaction that never committed, must not take another state's files for its own.
        value = os.urandom(8).hex()
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, json.dumps(value)],
        )
        return value

    def _migrate(self, readonly: bool) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"{self.path} was written by a newer epsilon-tag (schema {version}, this one reads up to "
                f"{SCHEMA_VERSION}): upgrade epsilon-tag."
            )
        if version == SCHEMA_VERSION:
            return
        if readonly:
            raise LibraryError(
                f"{self.path} needs an upgrade (schema {version} -> {SCHEMA_VERSION}), and the file "
                f"cannot be written here: open it once where it can (any epsilon-tag command)."
            )
        with self.transaction():  # all or nothing: a kill leaves the file as it was
            version = self.schema_version  # another process may have done it while we waited
            if version == 0:
                # Tables without a version: an older epsilon-tag killed while creating them
                # (it did not use one transaction); they hold nothing yet, so start afresh.
                for table in TABLES & self._tables():
                    self.db.execute(f"DROP TABLE {table}")
            if version:  # a library people have: a large one takes a moment
                print(f"Upgrading {self.path} (schema {version} -> {SCHEMA_VERSION}), once ...", file=sys.stderr)
            for migrate in MIGRATIONS[version:]:
                migrate(self.db)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def _tables(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def data_version(self) -> int:
        """Changes whenever another connection (a scan in another process) commits."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    # ---- meta ------------------------------------------------------------------

    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, **values) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    @property
    def model_id(self) -> str | None:
        return self.get_meta("model_id")

    @property
    def tags_per_photo(self) -> int:
        return int(self.get_meta("tags_per_photo", DEFAULT_TAGS_PER_PHOTO))

    @property
    def tag_rule(self) -> TagRule:
        """The model's hubness correction and which stored tags are shown (kept)."""
        return TagRule.from_dict(self.get_meta("tag_rule"))

    # ---- what a scan needs to decide -------------------------------------------

    def known_photos(self) -> dict[str, Known]:
        rows = self.db.execute("SELECT id, path, size, mtime_ns, hash, status, model_id, read_version FROM photos")
        return {row[1]: Known(*row) for row in rows}

    def known_failures(self) -> dict[str, tuple[int | None, int | None]]:
        return {row[0]: (row[1], row[2]) for row in self.db.execute("SELECT path, size, mtime_ns FROM failures")}

    # ---- writes ----------------------------------------------------------------

    def save_batch(self, records: Sequence[PhotoRecord], failures: Sequence[Failure], model_id: str) -> None:
        """Store a batch of tagged photos and failures in one transaction."""
        at, tags = now(), {}
        with self.transaction():
            conn = self.db.conn
            for r in records:
                m = r.meta
                photo_id = conn.execute(
                    f"""INSERT INTO photos (path, size, mtime_ns, hash, width, height, taken_at, camera, lens,
                        latitude, longitude, orientation, status, model_id, scanned_at, read_version)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?, {READ_VERSION:d})
                       ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                        hash = excluded.hash, width = excluded.width, height = excluded.height,
                        taken_at = excluded.taken_at, camera = excluded.camera, lens = excluded.lens,
                        latitude = excluded.latitude, longitude = excluded.longitude,
                        orientation = excluded.orientation, status = 'ok', model_id = excluded.model_id,
                        scanned_at = excluded.scanned_at, read_version = excluded.read_version
                       RETURNING id""",
                    [
                        r.path,
                        r.size,
                        r.mtime_ns,
                        r.hash,
                        r.width,
                        r.height,
                        m.get("taken_at"),
                        m.get("camera"),
                        m.get("lens"),
                        m.get("latitude"),
                        m.get("longitude"),
                        m.get("orientation"),
                        model_id,
                        at,
                    ],
                ).fetchone()[0]
                conn.execute(
                    "INSERT OR REPLACE INTO vectors (photo_id, s, classes) VALUES (?, ?, ?)",
                    [
                        photo_id,
                        np.ascontiguousarray(r.semantic, dtype=np.float16).tobytes(),
                        None if r.classes is None else np.ascontiguousarray(r.classes, dtype=np.float16).tobytes(),
                    ],
                )
                tags[photo_id] = r.tags
            if records:
                self._vectors_changed()
            self.replace_tags(tags)
            self._record_failures(records, failures)

    def _record_failures(self, records: Sequence[PhotoRecord], failures: Sequence[Failure]) -> None:
        """A batch's files that could not be read, and the damaged ones it read all the same;
        the others' old failures are history."""
        conn = self.db.conn
        conn.executemany("DELETE FROM failures WHERE path = ?", [(r.path,) for r in records])
        failures = [*failures, *(Failure(r.path, r.damage, r.size, r.mtime_ns) for r in records if r.damage)]
        conn.executemany(
            """INSERT INTO failures (path, reason, size, mtime_ns, at) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET reason = excluded.reason, size = excluded.size,
                mtime_ns = excluded.mtime_ns, at = excluded.at""",
            [(f.path, f.reason, f.size, f.mtime_ns, now()) for f in failures],
        )

    # ---- a switch to another model, staged -----------------------------------------

    def stage_batch(self, records: Sequence[PhotoRecord], failures: Sequence[Failure], model_id: str) -> None:
        """Keep a batch read by the model the library is switching to, beside the library."""
        with self.transaction():
            self.db.conn.executemany(
                """INSERT OR REPLACE INTO staged (path, model_id, size, mtime_ns, hash, width, height, meta, s,
                    classes, damage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        r.path,
                        model_id,
                        r.size,
                        r.mtime_ns,
                        r.hash,
                        r.width,
                        r.height,
                        json.dumps(r.meta),
                        np.ascontiguousarray(r.semantic, dtype=np.float16).tobytes(),
                        None if r.classes is None else np.ascontiguousarray(r.classes, dtype=np.float16).tobytes(),
                        r.damage,
                    )
                    for r in records
                ],
            )
            self._record_failures(records, failures)

    def staged_files(self, model_id: str) -> dict[str, tuple[int, int]]:
        """The files already read for a switch to ``model_id``: path -> (size, mtime)."""
        rows = self.db.execute("SELECT path, size, mtime_ns FROM staged WHERE model_id = ?", [model_id])
        return {path: (size, mtime) for path, size, mtime in rows}

    def staged_records(self, model_id: str, shape: Sequence[int], batch: int = 5000) -> Iterator[list[PhotoRecord]]:
        """What a switch to ``model_id`` read, a batch of records at a time (no tags yet)."""
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, hash, width, height, meta, s, classes, damage FROM staged "
            "WHERE model_id = ? ORDER BY path",
            [model_id],
        )
        while chunk := rows.fetchmany(batch):
            yield [
                PhotoRecord(
                    path,
                    size,
                    mtime,
                    digest,
                    width,
                    height,
                    json.loads(meta),
                    np.frombuffer(s, np.float16).reshape(shape),
                    [],
                    damage,
                    None if classes is None else np.frombuffer(classes, np.float16).reshape(CLASSES_SHAPE),
                )
                for path, size, mtime, digest, width, height, meta, s, classes, damage in chunk
            ]

    def unstaged_present(self, model_id: str) -> list[str]:
        """Present photos that a switch to ``model_id`` has not read yet, by path."""
        rows = self.db.execute(
            "SELECT p.path FROM photos p WHERE p.status = 'ok' AND NOT EXISTS "
            "(SELECT 1 FROM staged s WHERE s.path = p.path AND s.model_id = ?) ORDER BY p.path",
            [model_id],
        )
        return [r[0] for r in rows]

    def photos_of_another_model(self, model_id: str) -> list[int]:
        """Photos whose stored S is not of ``model_id`` (missing ones after a switch)."""
        rows = self.db.execute(
            "SELECT p.id FROM photos p JOIN vectors v ON v.photo_id = p.id WHERE p.model_id IS NOT ?", [model_id]
        )
        return [r[0] for r in rows]

    def clear_staged(self, *, keep: str | None = None, under: str | None = None) -> None:
        """Drop staged reads: all, those of another model than ``keep``, or those under a folder."""
        with self.transaction():
            if under is not None:
                self.db.execute(
                    "DELETE FROM staged WHERE path = ?1 OR substr(path, 1, length(?2)) = ?2",
                    [under, under.rstrip(os.sep) + os.sep],
                )
            else:
                self.db.execute("DELETE FROM staged WHERE model_id IS NOT ?", [keep])

    def forget_vectors(self, ids: Iterable[int]) -> None:
        """Photos whose S belongs to a model the library no longer has: they keep their rows
        and are read again when they are next found."""
        ids = [(int(i),) for i in ids]
        if not ids:
            return
        with self.transaction():
            self.db.conn.executemany("DELETE FROM vectors WHERE photo_id = ?", ids)
            self.db.conn.executemany("DELETE FROM tags WHERE photo_id = ?", ids)
            self.db.conn.executemany("DELETE FROM floors WHERE photo_id = ?", ids)
            self.db.conn.executemany("UPDATE photos SET model_id = NULL WHERE id = ?", ids)
            self._vectors_changed()

    def replace_tags(
        self,
        tags_by_photo: Mapping[int, Sequence[tuple[int, float, bool]]],
        current: Mapping[int, Sequence[tuple[int, float, int]]] | None = None,
        *,
        keep_floors: bool = False,
    ) -> None:
        """New top tags (word id, confidence, shown; best first) for many photos. With
        ``current`` (their tags now, as ``tags_of`` gives them) only the rows that differ are
        written: adding a word to a large library touches a few rows per photo instead of all."""
        with self.transaction():
            conn = self.db.conn
            if current is None:
                conn.execute(
                    "DELETE FROM tags WHERE photo_id IN (SELECT value FROM json_each(?))",
                    [json.dumps([int(i) for i in tags_by_photo])],
                )
                current = {}
            gone, added, moved = [], [], []
            for photo_id, tags in tags_by_photo.items():
                # A tag's confidence changes too when the library's word levels do (trainer.tagrule).
                before = {w: (score, shown) for w, score, shown in current.get(photo_id, ())}
                after = {int(w): (float(s), int(bool(on))) for w, s, on in tags}
                gone += [(photo_id, w) for w in before if w not in after]
                for w, (score, shown) in after.items():
                    if w not in before:
                        added.append((photo_id, w, score, shown))
                    elif abs(before[w][0] - score) > 1e-7 or before[w][1] != shown:
                        moved.append((score, shown, photo_id, w))
            conn.executemany("DELETE FROM tags WHERE photo_id = ? AND word_id = ?", gone)
            conn.executemany("UPDATE tags SET score = ?, shown = ? WHERE photo_id = ? AND word_id = ?", moved)
            conn.executemany("INSERT INTO tags (photo_id, word_id, score, rank, shown) VALUES (?, ?, ?, 0, ?)", added)
            k = self.tags_per_photo
            # A photo's floor is its k-th score; None while it has room for more tags.
            floors = {p: (float(tags[k - 1][1]) if len(tags) >= k else None) for p, tags in tags_by_photo.items()}
            conn.executemany(
                "INSERT INTO floors (photo_id, floor) VALUES (?, ?) ON CONFLICT(photo_id) "
                "DO UPDATE SET floor = excluded.floor",
                [(p, f) for p, f in floors.items() if f is not None],
            )
            conn.executemany("DELETE FROM floors WHERE photo_id = ?", [(p,) for p, f in floors.items() if f is None])
            if keep_floors:
                self._floors_changed(floors)
            else:
                self._new_floors = _FLOORS_UNKNOWN  # this transaction's floors are SQLite's alone

    def offer_tags(self, offers: Sequence[tuple[int, int, float]]) -> None:
        """New candidate tags (photo id, word id, confidence) for photos that may take them: a
        new word, or a word that a new word below it now makes more confident (duck ->
        bird). Each photo keeps its best ``tags_per_photo``, its floor (the k-th best
        confidence) follows, and which of them it shows is decided again by the library's
        rule. All in SQL, a few statements per photo: a word that enters 17,000 photos of a
        million-photo library no longer reads their tags into Python (0.7 s) to write them back.

        A tag pushed out below the rule's threshold stays, a row past the k-th, not shown;
        the photo's next re-tag deletes it, and deleting it here would rewrite a random page
        of the tags_word index per photo (58 of the 128 MB of WAL a million-photo add wrote)."""
        with self.transaction():
            conn, k, rule = self.db.conn, self.tags_per_photo, self.tag_rule
            conn.executemany(
                "INSERT INTO tags (photo_id, word_id, score, rank, shown) VALUES (?, ?, ?, 0, 0) "
                "ON CONFLICT(photo_id, word_id) DO UPDATE SET score = max(score, excluded.score)",
                [(int(p), int(w), float(s)) for p, w, s in offers],
            )
            photos = [(p, k) for p in sorted({int(p) for p, _, _ in offers})]
            threshold = -np.inf if rule.threshold is None else rule.threshold
            conn.executemany(
                "DELETE FROM tags WHERE photo_id = ?1 AND score >= ?3 AND word_id NOT IN (SELECT t.word_id "
                f"FROM tags t WHERE t.photo_id = ?1 ORDER BY {_BEST_FIRST} LIMIT ?2)",
                [(p, k, threshold) for p, k in photos],
            )
            self._decide_shown([p for p, _ in photos], rule)
            conn.executemany(
                "INSERT INTO floors (photo_id, floor) SELECT t.photo_id, t.score FROM tags t WHERE t.photo_id = ?1 "
                f"ORDER BY {_BEST_FIRST} LIMIT 1 OFFSET ?2 - 1 "
                "ON CONFLICT(photo_id) DO UPDATE SET floor = excluded.floor",
                photos,
            )
            floors = dict.fromkeys((p for p, _ in photos), None)  # none yet: room for more tags
            floors.update(
                self.db.execute(
                    "SELECT photo_id, floor FROM floors WHERE photo_id IN (SELECT value FROM json_each(?))",
                    [json.dumps([p for p, _ in photos])],
                ).fetchall()
            )
            self._floors_changed(floors)

    def _decide_shown(self, photo_ids: Sequence[int], rule: TagRule) -> None:
        """Which stored tags these photos show, as ``TagRule.kept`` decides it: their best
        ``max_tags`` at the threshold, else their best one from the fallback on."""
        threshold = -1e9 if rule.threshold is None else rule.threshold
        fallback = 2.0 if rule.fallback is None or rule.threshold is None else rule.fallback
        self.db.conn.executemany(
            f"""WITH top AS (SELECT t.word_id, t.score FROM tags t WHERE t.photo_id = ?1
                             ORDER BY {_BEST_FIRST} LIMIT ?2)
                UPDATE tags SET shown = (
                    (score >= ?3 AND word_id IN (SELECT word_id FROM top))
                    OR (score >= ?4 AND word_id = (SELECT word_id FROM top ORDER BY score DESC, word_id LIMIT 1)
                        AND (SELECT max(score) FROM top) < ?3))
                WHERE photo_id = ?1""",
            [(int(p), rule.max_tags, threshold, fallback) for p in photo_ids],
        )

    def move(self, photo_id: int, path: str, size: int, mtime_ns: int) -> None:
        """A file found under a new path with the content of a known photo keeps its tags."""
        with self.transaction():
            if self.db.execute("DELETE FROM photos WHERE path = ? AND id != ?", [path, photo_id]).rowcount:
                self._vectors_changed()
            self.db.execute(
                "UPDATE photos SET path = ?, size = ?, mtime_ns = ?, status = 'ok' WHERE id = ?",
                [path, size, mtime_ns, photo_id],
            )
            self.db.execute("DELETE FROM failures WHERE path = ?", [path])

    def set_status(self, ids: Iterable[int], status: str) -> None:
        with self.transaction():
            self.db.conn.executemany("UPDATE photos SET status = ? WHERE id = ?", [(status, i) for i in ids])

    def delete_photos(self, ids: Iterable[int]) -> None:
        ids = [(int(i),) for i in ids]
        if not ids:
            return
        with self.transaction():
            self.db.conn.executemany("DELETE FROM photos WHERE id = ?", ids)
            self._vectors_changed()  # their vectors go with them

    def forget_failures(self, paths: Iterable[str]) -> None:
        with self.transaction():
            self.db.conn.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p in paths])

    # ---- vocabulary --------------------------------------------------------------

    def words(self) -> list[Word]:
        rows = self.db.execute("SELECT id, word, kind, vector, mean, label, classes, origin FROM words ORDER BY id")
        return [
            Word(
                i,
                w,
                k,
                np.frombuffer(v, dtype=np.float32),
                m,
                lab,
                None if c is None else np.frombuffer(c, np.int16),
                o,
            )
            for i, w, k, v, m, lab, c, o in rows
        ]

    def describe_words(self, descriptions: Mapping[int, tuple[str | None, np.ndarray]]) -> None:
        """Record each word's model label and the ImageNet classes below it (word id -> both)."""
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE words SET label = ?, classes = ? WHERE id = ?",
                [(label, np.asarray(c, np.int16).tobytes(), int(i)) for i, (label, c) in descriptions.items()],
            )

    def set_word_means(self, means: dict[int, float]) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE words SET mean = ? WHERE id = ?", [(float(m), int(i)) for i, m in means.items()]
            )

    def add_words(self, entries: Sequence[NewWord], means: Sequence[float | None] | None = None) -> list[int]:
        """Insert words, with their library levels when known; returns their ids. Words
        already present are updated (a person adding a default word makes it theirs)."""
        at = now()
        means = [None] * len(entries) if means is None else means
        with self.transaction():
            return [
                self.db.execute(
                    """INSERT INTO words (word, kind, vector, added_at, mean, label, classes, origin)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(word) DO UPDATE SET kind = excluded.kind, vector = excluded.vector,
                        mean = excluded.mean, label = excluded.label, classes = excluded.classes,
                        origin = excluded.origin
                       RETURNING id""",
                    [
                        e.word,
                        e.kind,
                        np.asarray(e.vector, dtype=np.float32).tobytes(),
                        at,
                        None if mean is None else float(mean),
                        e.label,
                        None if e.classes is None else np.asarray(e.classes, np.int16).tobytes(),
                        e.origin,
                    ],
                ).fetchone()[0]
                for e, mean in zip(entries, means)
            ]

    def remove_words(self, ids: Sequence[int]) -> None:
        with self.transaction():
            self.db.conn.executemany("DELETE FROM words WHERE id = ?", [(i,) for i in ids])

    def photos_tagged(self, word_ids: Sequence[int]) -> np.ndarray:
        marks = ",".join("?" * len(word_ids))
        rows = self.db.execute(f"SELECT DISTINCT photo_id FROM tags WHERE word_id IN ({marks})", list(word_ids))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def word_counts(self, word_ids: Sequence[int] | None = None) -> dict[int, int]:
        """Photos (present ones) showing each word among their kept tags, or only the words asked for."""
        if word_ids is None:  # every word: a pass over every tag, remembered for this state of the library
            counts = self._summary("word_counts", lambda: self._word_counts(None))
            return {int(k): v for k, v in counts.items()}
        return self._word_counts(word_ids)

    def _word_counts(self, word_ids: Sequence[int] | None) -> dict[int, int]:
        only = "" if word_ids is None else "AND word_id IN (SELECT value FROM json_each(?))"
        # Missing photos are few: leaving them out by a small list keeps this a scan of the
        # covering index tags_shown instead of a join per row.
        rows = self.db.execute(
            f"SELECT word_id, count(*) FROM tags WHERE shown AND photo_id NOT IN ({_NOT_OK}) {only} GROUP BY word_id",
            [] if word_ids is None else [json.dumps([int(i) for i in word_ids])],
        )
        return dict(rows.fetchall())

    # ---- vectors and tags ----------------------------------------------------------

    def count_scored(self) -> int:
        """Present photos tagged by the library's model: the photos word means are taken over."""
        return int(
            self.db.execute(
                "SELECT count(*) FROM photos WHERE status = 'ok' AND model_id = ?", [self.model_id]
            ).fetchone()[0]
        )

    def semantic_vectors(
        self,
        *,
        ids: Sequence[int] | np.ndarray | None = None,
        after: str | None = None,
        before: str | None = None,
        floors: bool = False,
    ) -> Stored:
        """S of present photos tagged by the library's model, optionally only some photos
        or a date range, with their tag floors when asked (else -inf). The whole library's
        S is kept in memory until it changes, so a long-lived caller (the TUI) reads it once."""
        shape = self.get_meta("semantic_shape")
        if shape is None:
            return Stored(np.zeros(0, np.int64), np.zeros((0, 1, 1), np.float16), np.zeros(0, np.float32))
        where, params = ["status = 'ok'", "model_id = ?"], [self.model_id]
        if after:
            where.append("taken_at >= ?")
            params.append(after)
        if before:
            where.append("taken_at < ?")
            params.append(before)
        if ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([int(i) for i in ids]))
        if ids is not None and len(ids) < 1000:  # a few photos: straight from SQLite
            wanted = np.array(
                self.db.execute(f"SELECT id FROM photos WHERE {' AND '.join(where)}", params).fetchall(), dtype=np.int64
            ).reshape(-1)
            rows = self.db.execute(
                "SELECT v.photo_id, v.s, f.floor, v.classes FROM vectors v "
                "LEFT JOIN floors f ON f.photo_id = v.photo_id "
                "WHERE v.photo_id IN (SELECT value FROM json_each(?)) ORDER BY v.photo_id",
                [json.dumps(wanted.tolist())],
            ).fetchall()
            stored = self._stored(rows, shape)
            keep = np.isin(stored.ids, wanted)
            if keep.all():
                return stored
            classes = None if stored.classes is None else stored.classes[keep]
            return Stored(stored.ids[keep], stored.semantic[keep], stored.floor[keep], classes)
        all_ids, semantic = self._all_rows("s", shape)
        _, classes = self._all_rows("classes", CLASSES_SHAPE)
        if after or before or ids is not None:
            keep = np.isin(
                all_ids,
                np.array(
                    self.db.execute(f"SELECT id FROM photos WHERE {' AND '.join(where)}", params).fetchall(),
                    dtype=np.int64,
                ).reshape(-1),
            )
        else:
            # Present photos of this model: all but a few, so the few are what is read.
            keep = ~np.isin(
                all_ids,
                np.array(
                    self.db.execute(
                        # Two index lookups (schema 4), not one scan: `IS NOT` cannot use an index.
                        f"{_NOT_OK} UNION "
                        "SELECT id FROM photos WHERE model_id < ?1 OR model_id > ?1 OR model_id IS NULL",
                        [self.model_id],
                    ).fetchall(),
                    dtype=np.int64,
                ).reshape(-1),
            )
        rows = None if keep.all() else np.flatnonzero(keep)
        chosen = all_ids if rows is None else all_ids[rows]
        floor = self._floors(chosen) if floors else np.full(len(chosen), -np.inf, dtype=np.float32)
        return Stored(chosen, Rows(semantic, rows), floor, Rows(classes, rows))

    def _side_path(self, column: str) -> Path:
        return self.path.with_name(self.path.name + ("-vectors" if column == "s" else f"-{column}"))

    @property
    def vectors_path(self) -> Path:
        """The side file with every photo's S (a snapshot of the vectors table)."""
        return self._side_path("s")

    def _all_rows(self, column: str, shape) -> tuple[np.ndarray, np.ndarray]:
        """Every stored S (``column`` "s") or classes record, sorted by photo id: from its side
        file, memory-mapped, when that is a snapshot of this very state of the vectors table
        (its generation), else read from SQLite and written as the new snapshot. Kept in
        memory until the vectors table changes."""
        with self._reading():  # the generation and the rows it names, from one state of the library
            generation = str(self.get_meta("vectors_generation", ""))
            key = (generation, tuple(shape))
            cached = self._cache.get(column)
            if cached is not None and cached[0] == key:
                return cached[1]
            found = sidefile.read(self._side_path(column), generation, tuple(shape))
            if found is not None and not self._agrees(f"SELECT photo_id, {column} FROM vectors", *found):
                found = None  # its header names this state, its body does not hold it: rebuilt
            if found is None:
                found = self._snapshot(column, generation, tuple(shape))
        self._cache[column] = (key, found)
        return found

    @property
    def _in_transaction(self) -> bool:
        return bool(self._depth or self.db.conn.in_transaction)

    def _may_write_beside(self) -> bool:
        """Files beside the library (side file, summary) only for a library this user may
        change: a read-only one gets no new files."""
        return _writable(self.path) and _writable(self.path.parent)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A read transaction (one snapshot of the library), unless a write one is open."""
        if self._in_transaction:
            yield
            return
        self.db.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.db.conn.rollback()

    def _snapshot(self, column: str, generation: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Read every S (or classes record) out of SQLite in one ordered pass, straight into a
        new side file (bounded memory), then map it; in memory where the folder cannot be written."""
        # A photo read before classes were recorded has none: the record that says so.
        value = "s" if column == "s" else f"coalesce({column}, ?)"
        params = [] if column == "s" else [NO_CLASSES.tobytes()]
        select = f"SELECT photo_id, {value} FROM vectors ORDER BY photo_id"
        count = int(self.db.execute("SELECT count(*) FROM vectors").fetchone()[0])
        if self._may_write_beside():
            try:
                path = self._side_path(column)
                sidefile.write(path, generation, shape, count, self.db.execute(select, params))
                found = sidefile.read(path, generation, shape)
                if found is not None:
                    return found
            except OSError:
                pass  # a full disk: serve from memory this time
        rows = self.db.execute(select, params).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, *shape), np.float16)
        ids, blobs = zip(*rows)
        return np.array(ids, np.int64), np.frombuffer(b"".join(blobs), np.float16).reshape(len(rows), *shape)

    def _agrees(self, select: str, ids: np.ndarray, values: np.ndarray, skip: Iterable[int] = ()) -> bool:
        """Whether a side file's body holds what SQLite holds: its ids in order, and the rows
        of a sample of photos (some spread evenly, some at random each time) equal to
        SQLite's. A few milliseconds at any size; a body changed or permuted behind an
        intact header fails it. ``skip``: photos the open transaction has changed since."""
        if len(ids) and not bool((np.diff(ids) > 0).all()):
            return False
        picks = np.unique(
            # The stdlib's random: numpy's is a lazily imported 6 MiB that no other command needs.
            np.concatenate([np.linspace(0, len(ids) - 1, min(len(ids), 32)), random.choices(range(len(ids)), k=32)])
            if len(ids)
            else np.zeros(0)
        ).astype(np.int64)
        if skip:
            picks = picks[~np.isin(ids[picks], np.fromiter(skip, dtype=np.int64))]
        if not len(picks):
            return True
        rows = dict(
            self.db.execute(
                f"{select} WHERE photo_id IN (SELECT value FROM json_each(?))", [json.dumps(ids[picks].tolist())]
            ).fetchall()
        )
        for at in picks.tolist():
            stored = rows.get(int(ids[at]), _MISSING_ROW)
            held = np.asarray(values[at])
            if isinstance(stored, bytes) or stored is None:
                if stored is None and held.dtype == np.float16:
                    stored = NO_CLASSES.tobytes()  # a photo read before classes were recorded
                if stored is _MISSING_ROW or held.tobytes() != stored:
                    return False
            elif stored is _MISSING_ROW or not np.isclose(float(held), float(stored), atol=1e-6):
                return False
        return True

    def refresh_side_files(self) -> None:
        """Bring the S side file and the summary up to date now (a scan does, so that the
        searches, `stats` and the TUI after it do not)."""
        shape = self.get_meta("semantic_shape")
        if shape is not None:
            self._all_rows("s", shape)
            self._all_rows("classes", CLASSES_SHAPE)
        self.counts()
        self.word_counts()

    def _vectors_changed(self) -> None:
        # Inside the writing transaction: the side file's snapshot is stale from its commit on.
        self._set_generation("vectors_generation")

    @property
    def floors_path(self) -> Path:
        return self.path.with_name(self.path.name + "-floors")

    def _all_floors(
        self, *, from_sqlite: bool = True, skip: Iterable[int] = ()
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(photo ids, floors) of every photo with a full set of tags, for the state the
        library is in: kept in memory, else from the floors file when it is of this very
        state, else (``from_sqlite``) read from SQLite."""
        generation = str(self.get_meta("generation", ""))
        if self._floor_table is not None and self._floor_table[0] == generation:
            return self._floor_table[1:]
        found = sidefile.read_floors(self.floors_path, generation)
        if found is not None and not self._agrees("SELECT photo_id, floor FROM floors", *found, skip=skip):
            found = None  # a body that is not this state's floors: read from SQLite
        if found is None and from_sqlite:
            # Straight from the cursor into one array of (photo id, floor) pairs: no list of
            # a million tuples in between (1.4 s -> 0.8 s at a million photos).
            pairs = self.db.execute("SELECT photo_id, floor FROM floors ORDER BY photo_id")
            table = np.fromiter(itertools.chain.from_iterable(pairs), dtype=np.float64).reshape(-1, 2)
            found = table[:, 0].astype(np.int64), table[:, 1].astype(np.float32)
        if found is not None:
            self._floor_table = (generation, *found)
        return found

    def _floors(self, ids: np.ndarray) -> np.ndarray:
        """The floors of photos (sorted ids); -inf for a photo with room for more tags."""
        found, values = self._all_floors()  # type: ignore[misc]
        floor = np.full(len(ids), -np.inf, dtype=np.float32)
        at, match = _positions(ids, found)
        floor[at[match]] = values[match]
        return floor

    def _floors_changed(self, changed: dict[int, float | None]) -> None:
        """Inside a write transaction of `vocab` commands: the floors it writes, applied to
        the floors of the state it started from when those are at hand (memory or file), to
        be kept for the state it commits. A scan does not call this: it would rewrite the
        file for every batch; the first `vocab add` after it reads SQLite instead."""
        if self._new_floors is _FLOORS_UNKNOWN:
            return
        if isinstance(self._new_floors, tuple):  # this transaction's own copy: changed in place
            ids, values = self._new_floors
        else:
            base = self._all_floors(from_sqlite=False, skip=changed)
            if base is None:
                self._new_floors = _FLOORS_UNKNOWN
                return
            ids, values = np.array(base[0], dtype=np.int64), np.array(base[1], dtype=np.float32)
        keys = np.fromiter(changed, dtype=np.int64, count=len(changed))
        new = np.array([np.nan if f is None else f for f in changed.values()], dtype=np.float32)
        at, known = _positions(ids, keys)
        values[at[known]] = new[known]  # NaN: the photo has room again, dropped when kept
        if not known.all():
            ids, values = np.concatenate([ids, keys[~known]]), np.concatenate([values, new[~known]])
            order = np.argsort(ids, kind="stable")
            ids, values = ids[order], values[order]
        self._new_floors = (ids, values)

    def _keep_floors(self, generation: str, ids: np.ndarray, floors: np.ndarray) -> None:
        kept = ~np.isnan(floors)
        ids, floors = ids[kept], floors[kept]
        self._floor_table = (generation, ids, floors)
        if self._may_write_beside():
            sidefile.write_floors(self.floors_path, generation, ids, floors)

    @staticmethod
    def _stored(rows, shape) -> Stored:
        """(photo id, S, floor, classes) rows as one Stored."""
        if not rows:
            return Stored(
                np.zeros(0, np.int64),
                np.zeros((0, *shape), np.float16),
                np.zeros(0, np.float32),
                np.zeros((0, *CLASSES_SHAPE), np.float16),
            )
        ids, blobs, floors, classes = zip(*rows)
        floor = np.array(floors, dtype=np.float32)  # NULL -> nan: a photo with room takes any word
        return Stored(
            np.array(ids, dtype=np.int64),
            np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(rows), *shape),
            np.where(np.isnan(floor), -np.inf, floor),
            np.frombuffer(b"".join(NO_CLASSES.tobytes() if c is None else c for c in classes), np.float16).reshape(
                len(rows), *CLASSES_SHAPE
            ),
        )

    def word_photos(self, word_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, scores) of the present photos showing a word among their kept tags, best first."""
        rows = self.db.execute(
            "SELECT t.photo_id, t.score FROM tags t JOIN photos p ON p.id = t.photo_id "
            "WHERE t.word_id = ? AND t.shown AND p.status = 'ok' ORDER BY t.score DESC",
            [word_id],
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32)

    def top_words(self, photo_ids: Sequence[int], n: int = 3) -> dict[int, list[str]]:
        """Each photo's n best kept words."""
        rows = self.db.execute(
            "SELECT t.photo_id, w.word FROM tags t JOIN words w ON w.id = t.word_id "
            f"WHERE t.photo_id IN (SELECT value FROM json_each(?)) AND t.shown ORDER BY {_BEST_FIRST}",
            [json.dumps([int(i) for i in photo_ids])],
        )
        out: dict[int, list[str]] = {int(i): [] for i in photo_ids}
        for photo_id, word in rows:
            if len(out[photo_id]) < n:
                out[photo_id].append(word)
        return out

    def tags_of(self, photo_ids: Sequence[int]) -> dict[int, list[tuple[int, float, int]]]:
        """Each photo's stored tags as (word id, confidence, shown), best first: its
        ``tags_per_photo`` candidates, then any row ``offer_tags`` left below the
        threshold (``replace_tags`` given these deletes it)."""
        rows = self.db.execute(
            "SELECT t.photo_id, t.word_id, t.score, t.shown FROM tags t "
            f"WHERE t.photo_id IN (SELECT value FROM json_each(?)) ORDER BY {_BEST_FIRST}",
            [json.dumps([int(i) for i in photo_ids])],
        )
        out: dict[int, list[tuple[int, float, int]]] = {int(i): [] for i in photo_ids}
        for photo_id, word_id, score, shown in rows:
            out[photo_id].append((word_id, score, shown))
        return out

    # ---- reading for people -----------------------------------------------------------

    def photos(self, ids: Iterable[int]) -> dict[int, dict]:
        rows = self.db.query(
            "SELECT * FROM photos WHERE id IN (SELECT value FROM json_each(?))", [json.dumps([int(i) for i in ids])]
        )
        return {row["id"]: row for row in rows}

    def photo_by_path(self, path: str) -> dict | None:
        return next(self.db.query("SELECT * FROM photos WHERE path = ?", [path]), None)

    def photo_tags(self, photo_id: int, *, every: bool = False) -> list[dict]:
        """A photo's kept tags (every stored candidate with ``every``), best first."""
        return list(
            self.db.query(
                "SELECT w.word, w.kind, t.score, row_number() OVER (ORDER BY t.score DESC, t.word_id) AS rank "
                "FROM tags t JOIN words w ON w.id = t.word_id WHERE t.photo_id = ? AND (t.shown OR ?) "
                "ORDER BY rank LIMIT ?",  # the stored candidates; rows past them are pushed-out leftovers
                [photo_id, bool(every), self.tags_per_photo],
            )
        )

    def failure(self, path: str) -> dict | None:
        return next(self.db.query("SELECT * FROM failures WHERE path = ?", [path]), None)

    def failures(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM failures ORDER BY path"))

    def present_photos(self, under: Sequence[str] = ()) -> Iterator[dict]:
        """Present photos (optionally under some folders), in path order, streamed."""
        rows = self.db.query("SELECT id, path FROM photos WHERE status = 'ok' ORDER BY path")
        prefixes = tuple(p.rstrip("/") + "/" for p in under)
        for row in rows:
            if not prefixes or row["path"].startswith(prefixes) or row["path"] in under:
                yield row

    @property
    def summary_path(self) -> Path:
        """Where counts over the whole library are remembered between commands."""
        return self.path.with_name(self.path.name + "-summary.json")

    def _summary(self, name: str, compute: Callable[[], dict]) -> dict:
        """``compute()`` (a count over the whole library, seconds at a million photos) for this
        state of the library: read from the summary file when it was computed for the same
        state (its generation), else computed and remembered there."""
        with self._reading():
            generation = str(self.get_meta("generation", ""))
            found = sidefile.read_summary(self.summary_path, generation, name)
            if found is not None:
                return found
            value = compute()
        if not self._in_transaction and self._may_write_beside():
            sidefile.write_summary(self.summary_path, generation, name, value)
        return value

    def counts(self) -> dict:
        return self._summary("counts", self._counts)

    def _counts(self) -> dict:
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "photos": one("SELECT count(*) FROM photos WHERE status = 'ok'"),
            "missing": one("SELECT count(*) FROM photos WHERE status = 'missing'"),
            "failures": one("SELECT count(*) FROM failures"),
            "words": one("SELECT count(*) FROM words"),
            "seen_words": one("SELECT count(*) FROM words WHERE kind = 'seen'"),
            "zero_shot_words": one("SELECT count(*) FROM words WHERE kind = 'zero-shot'"),
            "tags": one("SELECT count(*) FROM tags WHERE shown"),
            "taken_first": one("SELECT min(taken_at) FROM photos WHERE status = 'ok'"),
            "taken_last": one("SELECT max(taken_at) FROM photos WHERE status = 'ok'"),
            "cameras": one("SELECT count(DISTINCT camera) FROM photos WHERE status = 'ok'"),
        }
