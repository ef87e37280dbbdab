"""The library's connection: SQLite behind a thin ``Database``, the life cycle, all-or-nothing
transactions (each commit names a new state of the library, its generation), read
snapshots, the migrations run on open, and the ``meta`` table."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np

from trainer.tagrule import TagRule

from .records import DEFAULT_TAGS_PER_PHOTO, LibraryError
from .schema import MIGRATIONS, SCHEMA_VERSION, TABLES


class Database:
    """The library's SQLite connection, with the two helpers the library uses."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence | dict = ()) -> Iterator[dict]:
        """Rows as dicts."""
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(names, row))


class Connection:
    """The part of ``Library`` that holds the connection: opening it is ``Library.__init__``'s."""

    path: Path
    db: Database
    _depth: int  # transactions open, nested ones included
    # The floors a write transaction leaves (sidecache.SideFiles), kept once it commits.
    _new_floors: tuple[np.ndarray, np.ndarray] | object | None
    _keep_floors: Callable[[str, np.ndarray, np.ndarray], None]

    # ---- life cycle ------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
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

    @property
    def _in_transaction(self) -> bool:
        return bool(self._depth or self.db.conn.in_transaction)

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

    # ---- schema, checked and brought up to date on open ---------------------------

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

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, **values: Any) -> None:
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
