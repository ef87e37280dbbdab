"""A switch to another model, staged: every photo the new model reads is kept in the staged
table until all are read, then the library moves to it in one transaction."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from .records import CLASSES_SHAPE, Failure, PhotoRecord
from .sidecache import SideFiles


class Staging(SideFiles):
    """The part of ``Library`` that reads and writes the staged table."""

    # From the other parts of Library (photos.Photos).
    _record_failures: Callable[[Sequence[PhotoRecord], Sequence[Failure]], None]

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
