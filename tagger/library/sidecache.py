"""The caches beside the library file (their formats are ``tagger.sidefile``'s): every
photo's S and classes record as snapshots of the vectors table, every photo's tag floor,
and the summary of counts over the library. Each is of one state of the library (its
generation, changed by every commit that touches what it holds), is checked against SQLite
before it is trusted (``_agrees``), and is rebuilt from SQLite when it is not of this
state: a kill at any moment leaves a valid cache or one that is never read."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from trainer.tagrule import NO_CLASSES

from .. import sidefile
from .connection import Connection
from .records import CLASSES_SHAPE


def _positions(ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key sits in the sorted ``ids``, and whether it is there at all."""
    if not len(ids):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    at = np.clip(np.searchsorted(ids, keys), 0, len(ids) - 1)
    return at, ids[at] == keys


_MISSING_ROW = object()
# A write transaction changed floors without saying which: none are kept beside the library.
_FLOORS_UNKNOWN = object()


class SideFiles(Connection):
    """The part of ``Library`` that keeps the caches beside it."""

    # The whole library's S and classes, by column, until the vectors table changes.
    _cache: dict[str, tuple]
    # Every photo's floor for one generation (in memory, and the floors file).
    _floor_table: tuple[str, np.ndarray, np.ndarray] | None
    # From the other parts of Library: whether files may be made beside it (__init__), and
    # the counts the summary remembers (photos.Photos, words.Words).
    _may_write_beside: Callable[[], bool]
    counts: Callable[[], dict]
    word_counts: Callable[..., dict[int, int]]

    def _side_path(self, column: str) -> Path:
        return self.path.with_name(self.path.name + ("-vectors" if column == "s" else f"-{column}"))

    @property
    def vectors_path(self) -> Path:
        """The side file with every photo's S (a snapshot of the vectors table)."""
        return self._side_path("s")

    @property
    def classes_path(self) -> Path:
        """The side file with every photo's classes record (a snapshot of the vectors table)."""
        return self._side_path("classes")

    def _all_rows(self, column: str, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
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
        table = self._all_floors()
        assert table is not None  # read from SQLite when no other copy is of this state
        found, values = table
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
