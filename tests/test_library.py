"""The library file: schema versions, WAL, all-or-nothing writes, clear errors."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tagger.library
from tagger.cli import app
from tagger.library import SCHEMA_VERSION, Library, LibraryError, NewWord, PhotoRecord
from tagger.vocabulary import WordSource, add_words
from tests.helpers import ROOT
from tests.tagging import assert_tags_consistent, synthetic_library, tag


def record(path: str) -> PhotoRecord:
    return PhotoRecord(path, 1, 2, "h" + path, 3, 4, {"taken_at": None}, np.zeros((2, 3), np.float16), [])


def test_new_library_is_current_wal_and_reopens(tmp_path: Path) -> None:
    with Library(tmp_path / "a" / "lib.db") as library:
        assert library.schema_version == SCHEMA_VERSION
        assert library.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        library.set_meta(model_id="m", semantic_shape=[2, 3])
        library.save_batch([record("/x.jpg")], [], "m")
    with Library(tmp_path / "a" / "lib.db") as library:  # no migration runs twice
        assert library.model_id == "m" and library.known_photos()["/x.jpg"].size == 1


def test_a_newer_or_foreign_file_is_refused_clearly(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    sqlite3.connect(newer).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LibraryError, match="newer epsilon-tag"):
        Library(newer)
    (tmp_path / "notes.db").write_text("these are my notes, not a database" * 100)
    with pytest.raises(LibraryError, match="Cannot open the library"):
        Library(tmp_path / "notes.db")
    with pytest.raises(LibraryError, match="run `epsilon-tag scan FOLDER` first"):
        Library(tmp_path / "absent.db", create=False)


def test_a_failed_batch_leaves_no_trace(tmp_path: Path) -> None:
    library = Library(tmp_path / "lib.db")
    library.set_meta(model_id="m", semantic_shape=[2, 3])
    library.save_batch([record("/a.jpg")], [], "m")
    bad = record("/b.jpg")
    bad.tags = [(999, 0.5, True)]  # a word that does not exist: the foreign key fails mid-batch
    with pytest.raises(sqlite3.IntegrityError):
        library.save_batch([record("/c.jpg"), bad], [], "m")
    assert sorted(library.known_photos()) == ["/a.jpg"]
    assert library.db.execute("SELECT count(*) FROM vectors").fetchone() == (1,)


def test_nested_transactions_commit_once(tmp_path: Path) -> None:
    library = Library(tmp_path / "lib.db")
    library.set_meta(model_id="m", semantic_shape=[2, 3])
    with pytest.raises(RuntimeError), library.transaction():
        library.save_batch([record("/a.jpg")], [], "m")  # its own transaction joins the outer one
        raise RuntimeError("crash after the inner write")
    assert library.known_photos() == {}


def test_photos_under_a_folder_are_the_folder_and_what_is_inside_it(tmp_path: Path) -> None:
    paths = ["/a", "/a/x.jpg", "/a/b/y.jpg", "/ab/z.jpg", "/a_c/w.jpg", "/a%/v.jpg", "/a0.jpg", "/b/a/u.jpg"]
    library = Library(tmp_path / "lib.db")
    library.set_meta(model_id="m", semantic_shape=[2, 3])
    library.save_batch([record(p) for p in paths], [], "m")
    ids = {p: known.id for p, known in library.known_photos().items()}
    library.set_status([ids["/a/b/y.jpg"]], "missing")

    def under(folder: str) -> list[str]:  # what the paths say, as `roots` means it
        return [p for p in paths if p == folder or p.startswith(folder.rstrip("/") + "/")]

    for folder in ("/a", "/a/", "/a/b", "/a_", "/a%", "/a_c", "/b", "/", "/nowhere"):
        assert library.photo_ids_under(folder) == sorted(ids[p] for p in under(folder)), folder
        present = [p for p in under(folder) if p != "/a/b/y.jpg"]
        assert library.present_count_under(folder) == len(present), folder
    assert library.photo_ids() == sorted(ids.values())


def test_a_library_locked_by_a_writer_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagger.library, "BUSY_TIMEOUT_S", 0.2)
    db = tmp_path / "lib.db"
    synthetic_library(db, 3, []).close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # another process holds the write lock and keeps it
    try:
        locked = CliRunner().invoke(app, ["vocab", "add", "zeppelin", "--db", str(db)])
    finally:
        writer.execute("ROLLBACK")
    assert locked.exit_code == 2 and "another scan or `vocab` command is writing to it" in locked.output
    assert tag(db, "vocab", "add", "zeppelin") == "zeppelin: 3 photos\n"  # free again: works


def test_a_kill_while_the_schema_is_created_leaves_a_file_that_opens(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    program = [sys.executable, "-m", "tests.programs.library_dies_creating_schema", str(db)]
    result = subprocess.run(program, capture_output=True, cwd=ROOT)
    assert result.returncode == -signal.SIGKILL
    with Library(db) as library:  # the half-done transaction was never committed
        assert library.schema_version == SCHEMA_VERSION
        library.set_meta(model_id="m")
        assert library.get_meta("model_id") == "m"


def test_an_older_half_made_library_is_rebuilt(tmp_path: Path) -> None:
    # What a kill in an older epsilon-tag left: some empty tables, no schema version.
    with sqlite3.connect(tmp_path / "lib.db") as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    with Library(tmp_path / "lib.db") as library:
        assert library.schema_version == SCHEMA_VERSION
        assert "hash" in {row[1] for row in library.db.execute("PRAGMA table_info(photos)")}


@pytest.mark.parametrize("table", ["contacts (name TEXT)", "photos (path TEXT)"])
def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path: Path, table: str) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE {table}")
        conn.execute(f"INSERT INTO {table.split()[0]} VALUES ('x')")
    before = db.read_bytes()
    with pytest.raises(LibraryError, match=f"not an epsilon-tag library \\(its tables: {table.split()[0]}\\)"):
        Library(db)
    with pytest.raises(LibraryError, match="not an epsilon-tag library"):
        Library(db, readonly=True)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no -shm


def as_version_5(library: Library) -> None:
    """Set a library made by this version back to what version 5 wrote (before own keywords)."""
    library.db.execute("DROP TABLE own_tags")
    library.db.execute("ALTER TABLE photos DROP COLUMN sidecars")
    library.db.execute("ALTER TABLE words DROP COLUMN base")


def as_version_4(library: Library) -> None:
    """Set a library made by this version back to what version 4 wrote (before schema 5)."""
    as_version_5(library)
    library.db.execute("DROP INDEX tags_shown")
    library.db.execute("DROP TABLE staged")
    for table, column in (("tags", "shown"), ("vectors", "classes"), ("photos", "read_version")):
        library.db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    for column in ("label", "classes", "origin"):
        library.db.execute(f"ALTER TABLE words DROP COLUMN {column}")


def test_an_older_library_migrates_on_first_open_even_to_read(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    with Library(db) as library:  # made by this version, then set back to what version 1 wrote
        library.add_words([NewWord("sky", "seen", np.ones(4, np.float32))])
        as_version_4(library)
        library.db.execute("ALTER TABLE words DROP COLUMN mean")
        library.db.execute("DROP TABLE floors")
        library.db.execute("CREATE INDEX vectors_floor ON vectors(floor)")
        library.db.execute("PRAGMA user_version = 1")
    with Library(db, readonly=True) as library:
        assert library.schema_version == SCHEMA_VERSION
        assert [(w.word, w.mean) for w in library.words()] == [("sky", None)]


def test_a_version_2_library_moves_its_floors_and_stays_consistent(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    words = [(w, v / np.linalg.norm(v)) for w, v in zip(["sky", "sea", "dog", "cat"], rng.standard_normal((4, 50)))]
    db = tmp_path / "lib.db"
    with synthetic_library(db, 12, words, k=3) as library:  # then set back to what version 2 wrote
        floors = dict(library.db.execute("SELECT photo_id, floor FROM floors").fetchall())
        as_version_4(library)
        library.db.execute("CREATE INDEX vectors_floor ON vectors(floor)")
        library.db.conn.executemany(
            "UPDATE vectors SET floor = ? WHERE photo_id = ?", [(f, i) for i, f in floors.items()]
        )
        library.db.execute("DROP TABLE floors")
        library.db.execute("PRAGMA user_version = 2")
        library.db.conn.commit()  # the UPDATE opened a transaction: without this, closing rolls it back
    with Library(db) as library:
        assert library.schema_version == SCHEMA_VERSION
        assert dict(library.db.execute("SELECT photo_id, floor FROM floors").fetchall()) == floors
        assert library.semantic_vectors(floors=True).floor.tolist() == [floors[i] for i in range(1, 13)]
        add_words(library, ["bird"], WordSource("glove-6b-50d", seen=[], dim=50))
        assert_tags_consistent(library)


def test_a_version_3_library_keeps_its_tags_and_their_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    names = ["sky", "sea", "dog", "cat", "tree"]
    words = [(w, v / np.linalg.norm(v)) for w, v in zip(names, rng.standard_normal((5, 50)))]
    db = tmp_path / "lib.db"
    with synthetic_library(db, 15, words, k=3) as library:  # then set back to what version 3 wrote
        before = library.tags_of(list(range(1, 16)))
        shown = library.photo_tags(4)
        # Version 3 kept each tag's rank; what it left there is never read again.
        as_version_4(library)
        library.db.execute("UPDATE tags SET rank = 99 - word_id")
        library.db.execute("PRAGMA user_version = 3")
        library.db.conn.commit()  # the UPDATE opened a transaction: without this, closing rolls it back
    with Library(db) as library:
        assert library.schema_version == SCHEMA_VERSION
        assert library.tags_of(list(range(1, 16))) == before  # ranks read from the scores
        assert library.photo_tags(4) == shown and [t["rank"] for t in shown] == [1, 2, 3]
        add_words(library, ["bird"], WordSource("glove-6b-50d", seen=[], dim=50))
        assert_tags_consistent(library)
