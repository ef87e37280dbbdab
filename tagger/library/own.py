"""The photographer's own keywords: read from a photo's sidecar or embedded metadata, or
given by a person; searchable, shown and exported apart from the model's tags."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from trainer.assets import normalise_word

from .records import FROM_FILE, FROM_USER
from .sidecache import SideFiles

LEVELS = "|"  # how a hierarchical keyword joins its levels (Lightroom's hierarchicalSubject)


def keyword_words(keyword: str) -> list[str]:
    """The words a search finds a keyword by: its leaf, then each level above it
    ("Holiday|Rome": rome, holiday), written as vocabulary words are."""
    levels = [normalise_word(level) for level in reversed(keyword.split(LEVELS))]
    return list(dict.fromkeys(level for level in levels if level))


class OwnTags(SideFiles):
    """The part of ``Library`` that reads and writes the own_tags table."""

    def set_file_keywords(self, photo_id: int, keywords: Sequence[str], sidecars: str | None) -> None:
        """What the photo's file and sidecars say now replaces what they said before;
        keywords a person gave stay."""
        with self.transaction():
            self.db.execute("DELETE FROM own_tags WHERE photo_id = ? AND source = ?", [photo_id, FROM_FILE])
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO own_tags (photo_id, keyword, word, source) VALUES (?, ?, ?, ?)",
                [(photo_id, k, w, FROM_FILE) for k in keywords for w in keyword_words(k)],
            )
            self.db.execute("UPDATE photos SET sidecars = ? WHERE id = ?", [sidecars, photo_id])

    def own_keywords(self, photo_id: int) -> list[str]:
        """The photo's own keywords as they came, those from its file first."""
        return self.own_keywords_of([photo_id]).get(photo_id, [])

    def own_keywords_of(self, photo_ids: Iterable[int]) -> dict[int, list[str]]:
        """Own keywords of each photo that has some (photo id -> keywords)."""
        ids = [int(i) for i in photo_ids]
        found: dict[int, list[str]] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on parameters
            chunk = ids[start : start + 500]
            rows = self.db.execute(
                f"""SELECT DISTINCT photo_id, keyword, source FROM own_tags
                    WHERE state = 1 AND photo_id IN ({",".join("?" * len(chunk))})
                    ORDER BY photo_id, source, keyword""",
                chunk,
            )
            for photo_id, keyword, _ in rows:
                kept = found.setdefault(photo_id, [])
                if keyword not in kept:
                    kept.append(keyword)
        return found

    def confirmed_keywords(self, photo_id: int) -> list[str]:
        """The keywords a person confirmed on the photo, as they wrote them."""
        rows = self.db.execute(
            "SELECT DISTINCT keyword FROM own_tags WHERE photo_id = ? AND source = ? AND state > 0 ORDER BY keyword",
            [photo_id, FROM_USER],
        )
        return [r[0] for r in rows]

    def restore_confirmed(self, photos: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Keywords a person confirmed on photos in some library, as the photos' sidecars
        recorded them, taken back as this library's person's (for photos it reads the first time)."""
        with self.transaction():
            for path, keywords in photos:
                row = self.db.execute("SELECT id FROM photos WHERE path = ?", [path]).fetchone()
                for keyword in keywords if row else ():
                    self.set_user_tag(row[0], keyword, 1)

    def photos_with_own(self, word: str) -> np.ndarray:
        """Sorted ids of the photos one of whose own keywords is ``word`` at some level, or
        holds it as a whole word ("kowalski" of "Grandma Kowalski", as a keyword search in a
        photo manager finds it)."""
        rows = self.db.execute(
            """SELECT DISTINCT photo_id FROM own_tags
               WHERE state = 1 AND (word = ?1 OR instr(' ' || word || ' ', ' ' || ?1 || ' ') > 0)
               ORDER BY photo_id""",
            [word],
        )
        return np.array([r[0] for r in rows], dtype=np.int64)

    def own_words(self) -> list[str]:
        """Every word an own keyword is found by."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT word FROM own_tags WHERE state = 1")]

    def set_user_tag(self, photo_id: int, keyword: str, state: int) -> None:
        """A person says the photo shows ``keyword`` (state 1) or does not (-1); what they
        said of it before is replaced."""
        with self.transaction():
            self.forget_user_tag(photo_id, keyword)
            self.db.conn.executemany(
                "INSERT INTO own_tags (photo_id, keyword, word, source, state) VALUES (?, ?, ?, ?, ?)",
                [(photo_id, keyword, w, FROM_USER, state) for w in keyword_words(keyword)],
            )
            self._hide_rejected()

    def forget_user_tag(self, photo_id: int, keyword: str) -> int:
        """Forget what a person said of ``keyword`` (in any case) on the photo; returns the rows it took."""
        with self.transaction():
            return self.db.execute(
                "DELETE FROM own_tags WHERE photo_id = ? AND norm(keyword) = ? AND source = ?",
                [photo_id, normalise_word(keyword), FROM_USER],
            ).rowcount

    def feedback(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ids of the photos a person confirmed ``word`` on, and of those they rejected it on."""
        rows = self.db.execute(
            """SELECT photo_id, state FROM own_tags WHERE word = ? AND norm(keyword) = ? AND source = ?
               ORDER BY photo_id""",
            [word, word, FROM_USER],
        ).fetchall()
        confirmed = np.array([p for p, s in rows if s > 0], dtype=np.int64)
        return confirmed, np.array([p for p, s in rows if s < 0], dtype=np.int64)

    def words_with_feedback(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT norm(keyword) FROM own_tags WHERE source = ?", [FROM_USER])
        return [r[0] for r in rows]

    def photos_rejecting(self, word: str) -> np.ndarray:
        """Sorted ids of the photos a person said do not show ``word``."""
        rows = self.db.execute(
            "SELECT DISTINCT photo_id FROM own_tags WHERE word = ? AND state < 0 ORDER BY photo_id", [word]
        )
        return np.array([r[0] for r in rows], dtype=np.int64)

    def _hide_rejected(self) -> None:
        """A tag a person rejected is not shown, whatever the model's rule decided: run
        after every write of tags (the rejections are few; each finds its row by key)."""
        self.db.execute(
            """UPDATE tags SET shown = 0 FROM (
                   SELECT o.photo_id AS photo, w.id AS word FROM own_tags o INDEXED BY own_tags_rejected
                   JOIN words w ON w.word = o.keyword WHERE o.state < 0 AND o.source = ?) AS rejected
               WHERE tags.photo_id = rejected.photo AND tags.word_id = rejected.word AND tags.shown""",
            [FROM_USER],
        )
