"""The photos: what a scan needs to decide, its writes, and reading them for people."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from .records import READ_VERSION, Failure, Known, PhotoRecord, now
from .sidecache import SideFiles

# A path under a folder: the folder itself, or one of the paths that start with the folder
# and os.sep, found as a range of photos' index of paths (not LIKE, which would take a `_`
# or `%` in a folder's name for a wildcard).
_UNDER = "(path = ?1 OR (path >= ?2 AND path < ?3))"


def _under(folder: str) -> tuple[str, str, str]:
    """The parameters of ``_UNDER``: the folder, and the range of paths inside it."""
    inside = folder.rstrip(os.sep) + os.sep
    return folder, inside, inside[:-1] + chr(ord(os.sep) + 1)


class Photos(SideFiles):
    """The part of ``Library`` that reads and writes the photos and failures tables."""

    # From the other parts of Library (tags.Tags, own.OwnTags).
    replace_tags: Callable[..., None]
    set_file_keywords: Callable[..., None]

    def known_photos(self) -> dict[str, Known]:
        rows = self.db.execute(
            "SELECT id, path, size, mtime_ns, hash, status, model_id, read_version, sidecars, scanned_at FROM photos"
        )
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
                if r.keywords is not None:
                    self.set_file_keywords(photo_id, r.keywords, r.sidecars)
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

    # ---- reading for people -----------------------------------------------------------

    def photos(self, ids: Iterable[int]) -> dict[int, dict]:
        rows = self.db.query(
            "SELECT * FROM photos WHERE id IN (SELECT value FROM json_each(?))", [json.dumps([int(i) for i in ids])]
        )
        return {row["id"]: row for row in rows}

    def photo_by_path(self, path: str) -> dict | None:
        return next(self.db.query("SELECT * FROM photos WHERE path = ?", [path]), None)

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

    def present_count_under(self, folder: str) -> int:
        """How many present photos lie under ``folder`` (are it, or are inside it)."""
        sql = f"SELECT count(*) FROM photos WHERE status = 'ok' AND {_UNDER}"
        return int(self.db.execute(sql, _under(folder)).fetchone()[0])

    def photo_ids_under(self, folder: str) -> list[int]:
        """The photos under ``folder`` (are it, or are inside it), present or missing, by id."""
        return [r[0] for r in self.db.execute(f"SELECT id FROM photos WHERE {_UNDER} ORDER BY id", _under(folder))]

    def photo_ids(self) -> list[int]:
        """Every photo's id, present or missing."""
        return [r[0] for r in self.db.execute("SELECT id FROM photos ORDER BY id")]

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
