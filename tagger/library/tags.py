"""The tags: each photo's stored candidates, which of them it shows, and the photos of a word."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from trainer.tagrule import TagRule, sibling_losers

from .sidecache import _FLOORS_UNKNOWN, SideFiles

# A photo's tags in rank order: best score first, ties by word id.
_BEST_FIRST = "t.photo_id, t.score DESC, t.word_id"


class Tags(SideFiles):
    """The part of ``Library`` that reads and writes the tags table."""

    # From the other parts of Library (own.OwnTags).
    _hide_rejected: Callable[[], None]

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
            self._hide_rejected()

    def offer_tags(
        self,
        offers: Sequence[tuple[int, int, float]],
        word_ids: np.ndarray | None = None,
        implies: np.ndarray | None = None,
    ) -> None:
        """New candidate tags (photo id, word id, confidence) for photos that may take them: a
        new word, or a word that a new word below it now makes more confident (duck ->
        bird). Each photo keeps its best ``tags_per_photo``, its floor (the k-th best
        confidence) follows, and which of them it shows is decided again by the library's
        rule. All in SQL, a few statements per photo: a word that enters 17,000 photos of a
        million-photo library no longer reads their tags into Python (0.7 s) to write them back.

        A tag pushed out below the rule's threshold stays, a row past the k-th, not shown;
        the photo's next re-tag deletes it, and deleting it here would rewrite a random page
        of the tags_word index per photo (58 of the 128 MB of WAL a million-photo add wrote).

        ``word_ids`` and ``implies`` (the vocabulary's word ids and which implies which, as
        ``trainer.tagrule.implies_matrix`` gives it) let a rule that shows one of sibling
        words fold them on these photos as a re-tag would."""
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
            if rule.siblings == "one" and word_ids is not None and implies is not None:
                self._fold_siblings([p for p, _ in photos], word_ids, implies)
            self._hide_rejected()
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

    def _fold_siblings(self, photo_ids: Sequence[int], word_ids: np.ndarray, implies: np.ndarray) -> None:
        """Hide, on these photos, each shown word that gives way to a more confident sibling
        (``trainer.tagrule.sibling_losers``, the rule's own code); only photos showing two
        or more words are read."""
        at = {int(w): i for i, w in enumerate(word_ids)}
        rows = self.db.execute(
            "SELECT t.photo_id, t.word_id FROM tags t WHERE t.shown AND t.photo_id IN "
            "(SELECT photo_id FROM tags WHERE shown AND photo_id IN (SELECT value FROM json_each(?)) "
            f"GROUP BY photo_id HAVING count(*) > 1) ORDER BY {_BEST_FIRST}",
            [json.dumps([int(p) for p in photo_ids])],
        ).fetchall()
        by_photo: dict[int, list[int]] = {}
        for photo_id, word_id in rows:
            if word_id in at:
                by_photo.setdefault(photo_id, []).append(word_id)
        hidden = []
        for photo_id, words in by_photo.items():
            positions = [at[w] for w in words]
            lost = sibling_losers(implies[np.ix_(positions, positions)])
            hidden += [(photo_id, w) for w, gone in zip(words, lost) if gone]
        self.db.conn.executemany("UPDATE tags SET shown = 0 WHERE photo_id = ? AND word_id = ?", hidden)

    def word_photos(self, word_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, scores) of the present photos showing a word, best first: the photos
        where it is one of their own keywords (score 1, as a search scores them), then those
        showing it among their kept tags."""
        rows = self.db.execute(
            """SELECT photo_id, max(score) AS best FROM (
                   SELECT t.photo_id, t.score FROM tags t WHERE t.word_id = ?1 AND t.shown
                   UNION ALL
                   SELECT o.photo_id, 1.0 FROM own_tags o JOIN words w ON w.word = o.word
                   WHERE w.id = ?1 AND o.state > 0)
               JOIN photos p ON p.id = photo_id WHERE p.status = 'ok'
               GROUP BY photo_id ORDER BY best DESC, photo_id""",
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

    def photo_tags(self, photo_id: int, *, every: bool = False) -> list[dict]:
        """A photo's kept tags (every stored candidate with ``every``), best first; ``shown``
        says which the photo shows."""
        return [
            {**row, "shown": bool(row["shown"])}
            for row in self.db.query(
                "SELECT w.word, w.kind, t.score, t.shown, row_number() OVER (ORDER BY t.score DESC, t.word_id) AS rank "
                "FROM tags t JOIN words w ON w.id = t.word_id WHERE t.photo_id = ? AND (t.shown OR ?) "
                "ORDER BY rank LIMIT ?",  # the stored candidates; rows past them are pushed-out leftovers
                [photo_id, bool(every), self.tags_per_photo],
            )
        ]

    def photos_tagged(self, word_ids: Sequence[int]) -> np.ndarray:
        marks = ",".join("?" * len(word_ids))
        rows = self.db.execute(f"SELECT DISTINCT photo_id FROM tags WHERE word_id IN ({marks})", list(word_ids))
        return np.array([r[0] for r in rows], dtype=np.int64)
