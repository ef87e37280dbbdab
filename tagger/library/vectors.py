"""Each photo's semantic vectors S and classes record, as searches and `vocab add` read them:
the whole library's from the side files, a few photos' straight from SQLite."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from trainer.tagrule import NO_CLASSES

from .records import CLASSES_SHAPE, Rows, Stored
from .schema import _NOT_OK
from .sidecache import SideFiles


class Vectors(SideFiles):
    """The part of ``Library`` that reads the vectors table."""

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
            return self._few_vectors(self._photo_ids_where(where, params), shape)
        all_ids, semantic = self._all_rows("s", shape)
        _, classes = self._all_rows("classes", CLASSES_SHAPE)
        if after or before or ids is not None:
            keep = np.isin(all_ids, self._photo_ids_where(where, params))
        else:
            # Present photos of this model: all but a few, so the few are what is read.
            keep = ~np.isin(all_ids, self._not_scored())
        rows = None if keep.all() else np.flatnonzero(keep)
        chosen = all_ids if rows is None else all_ids[rows]
        floor = self._floors(chosen) if floors else np.full(len(chosen), -np.inf, dtype=np.float32)
        return Stored(chosen, Rows(semantic, rows), floor, Rows(classes, rows))

    def _photo_ids_where(self, where: list[str], params: list[str | None]) -> np.ndarray:
        """The ids of the photos that meet every condition of ``where``."""
        return np.array(
            self.db.execute(f"SELECT id FROM photos WHERE {' AND '.join(where)}", params).fetchall(), dtype=np.int64
        ).reshape(-1)

    def _not_scored(self) -> np.ndarray:
        """The few photos not present or not tagged by the library's model."""
        return np.array(
            self.db.execute(
                # Two index lookups (schema 4), not one scan: `IS NOT` cannot use an index.
                f"{_NOT_OK} UNION SELECT id FROM photos WHERE model_id < ?1 OR model_id > ?1 OR model_id IS NULL",
                [self.model_id],
            ).fetchall(),
            dtype=np.int64,
        ).reshape(-1)

    def _few_vectors(self, wanted: np.ndarray, shape: Sequence[int]) -> Stored:
        """S, floors and classes of a few photos (``wanted``), straight from SQLite."""
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

    @staticmethod
    def _stored(rows: Sequence[tuple[int, bytes, float | None, bytes | None]], shape: Sequence[int]) -> Stored:
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
