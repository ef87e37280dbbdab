"""The vocabulary: each word's vector, kind, model label, ImageNet classes, origin and level."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from .records import NewWord, Word, now
from .schema import _NOT_OK
from .sidecache import SideFiles


class Words(SideFiles):
    """The part of ``Library`` that reads and writes the words table."""

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

    def word_counts(self, word_ids: Sequence[int] | None = None) -> dict[int, int]:
        """Photos (present ones) showing each word: among their kept tags, or as one of their
        own keywords (a person's, a sidecar's); every word's, or only the words asked for."""
        if word_ids is None:  # every word: a pass over every tag, remembered for this state of the library
            counts = self._summary("word_counts", lambda: self._word_counts(None))
            return {int(k): v for k, v in counts.items()}
        return self._word_counts(word_ids)

    def _word_counts(self, word_ids: Sequence[int] | None) -> dict[int, int]:
        asked = [] if word_ids is None else [json.dumps([int(i) for i in word_ids])]

        def only(column: str) -> str:  # the words asked for, if any
            return "" if word_ids is None else f"AND {column} IN (SELECT value FROM json_each(?))"

        # Missing photos are few: leaving them out by a small list keeps this a scan of the
        # covering index tags_shown instead of a join per row.
        rows = self.db.execute(
            f"SELECT word_id, count(*) FROM tags WHERE shown AND photo_id NOT IN ({_NOT_OK}) {only('word_id')} "
            "GROUP BY word_id",
            asked,
        )
        counts = dict(rows.fetchall())
        # Own keywords are few: the photos where one is a word the model does not show there.
        own = self.db.execute(
            f"""SELECT w.id, count(DISTINCT o.photo_id) FROM own_tags o JOIN words w ON w.word = o.word
                WHERE o.state > 0 AND o.photo_id NOT IN ({_NOT_OK}) {only("w.id")}
                  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.word_id = w.id AND t.photo_id = o.photo_id AND t.shown)
                GROUP BY w.id""",
            asked,
        )
        for word_id, n in own:
            counts[word_id] = counts.get(word_id, 0) + n
        return counts

    def word_base(self, word: str) -> np.ndarray | None:
        """The word's own vector while examples have moved it (None: they have not)."""
        row = self.db.execute("SELECT base FROM words WHERE word = ?", [word]).fetchone()
        return None if row is None or row[0] is None else np.frombuffer(row[0], dtype=np.float32)

    def set_word_base(self, word: str, base: np.ndarray | None) -> None:
        with self.transaction():
            value = None if base is None else np.asarray(base, np.float32).tobytes()
            self.db.execute("UPDATE words SET base = ? WHERE word = ?", [value, word])
