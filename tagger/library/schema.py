"""The library's schema: one migration per version, each bringing a library from version i
to i + 1 in raw SQL. Append, never edit, once released: a library people have was made by
the migrations as they were, and the queries rely on what each one made (the partial
indexes of schema 4 and 5 above all)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from trainer.tagrule import TagRule

if TYPE_CHECKING:
    from .connection import Database

SCHEMA_VERSION = 6


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


def _v6(db: Database) -> None:
    # The photographer's own keywords, kept apart from the model's tags so that no rescan or
    # model change replaces them: read from the photo (its sidecar, embedded XMP or IPTC;
    # source 'file', re-read when those change) or given by a person (source 'user'). state
    # 1: the photo has it; -1: a person said it has not. One row per word a search finds the
    # keyword by ("Holiday|Rome": rome and holiday), so that a search reads an index.
    db.execute(
        """CREATE TABLE own_tags (photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
            keyword TEXT NOT NULL, word TEXT NOT NULL, source TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (photo_id, source, keyword, word)) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX own_tags_word ON own_tags(word, photo_id)")
    # The few tags people rejected, hidden after every write of tags without reading the rest.
    db.execute("CREATE INDEX own_tags_rejected ON own_tags(keyword, photo_id) WHERE state < 0")
    # A word's own vector, kept while people's examples move the vector it is scored with
    # (NULL: it never learned from any), so that forgetting them restores it.
    db.execute("ALTER TABLE words ADD COLUMN base BLOB")
    # The photo's sidecars as last read (name, size and time of each; '' none; NULL: keywords
    # never read, as for every photo before this schema): a rescan reads the keywords again
    # when it differs, without reading the photo.
    db.execute("ALTER TABLE photos ADD COLUMN sidecars TEXT")


# Migration i brings a library from version i to i + 1; append, never edit, once released.
MIGRATIONS = [_v1, _v2, _v3, _v4, _v5, _v6]
assert len(MIGRATIONS) == SCHEMA_VERSION, "a migration was added without bumping SCHEMA_VERSION"


# The few photos not present, through their partial index (schema 4): left to itself the
# planner prefers the covering index photos_model and reads a million entries (0.12 s).
_NOT_OK = "SELECT id FROM photos INDEXED BY photos_not_ok WHERE status != 'ok'"

TABLES = frozenset({"meta", "photos", "vectors", "words", "tags", "failures", "floors", "staged", "own_tags"})
