"""The S side file: searches read it, SQLite stays the truth, and a kill at any moment (of a
scan, its snapshot, a `vocab add`, a migration) leaves the two consistent."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import numpy as np
import pytest

from tagger import sidefile
from tagger.library import Library
from tests import child
from tests.photo_factory import make_library
from tests.tagging import assert_tags_consistent, synthetic_library, tag, tag_json

WORDS = [
    (w, v / np.linalg.norm(v))
    for w, v in zip("sky water tree dog cat boat car".split(), np.random.default_rng(1).standard_normal((7, 50)))
]


def in_sqlite(db) -> tuple[np.ndarray, np.ndarray]:
    """Every photo's S as the vectors table holds it, by photo id."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT photo_id, s FROM vectors ORDER BY photo_id").fetchall()
    return np.array([r[0] for r in rows], np.int64), np.array([np.frombuffer(r[1], np.float16) for r in rows])


def assert_served_as_stored(db) -> None:
    """What a search scores (through a fresh open, side file and all) is the vectors table."""
    with Library(db) as library:
        stored = library.semantic_vectors()
        ids, semantic = in_sqlite(db)
        order = np.argsort(stored.ids)
        assert stored.ids[order].tolist() == ids.tolist()
        if len(ids):
            flat = np.asarray(stored.semantic[np.arange(len(stored.ids))]).reshape(len(ids), -1)
            np.testing.assert_array_equal(flat[order], semantic)


def floors_in_sqlite(db) -> dict[int, float]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT photo_id, floor FROM floors").fetchall())


def assert_floors_served_as_stored(db) -> None:
    """The floors a `vocab add` compares with (fresh open, floors file and all) are SQLite's."""
    stored = floors_in_sqlite(db)
    with Library(db) as library:
        served = library.semantic_vectors(floors=True)
        expected = [stored.get(int(i), -np.inf) for i in served.ids]
        np.testing.assert_array_equal(served.floor, np.array(expected, np.float32))


def test_vocab_commands_keep_the_floors_file_and_nothing_else_trusts_a_stale_one(tmp_path):
    from tagger.vocabulary import WordSource, add_words, remove_words

    db, floors = tmp_path / "lib.db", tmp_path / "lib.db-floors"
    synthetic_library(db, 60, WORDS, k=3).close()
    source = WordSource("glove-6b-50d", seen=[], dim=50)
    assert not floors.exists()  # made by a vocab command, never by a scan
    for step in range(3):
        with Library(db) as library:
            add_words(library, ["bird", "sun"], source)
            generation = library.get_meta("generation")
        kept = sidefile.read_floors(floors, generation)
        assert kept is not None, "the floors of the state a vocab add committed are kept"
        assert dict(zip(kept[0].tolist(), kept[1].tolist())) == pytest.approx(floors_in_sqlite(db))
        assert_floors_served_as_stored(db)
        with Library(db) as library:
            remove_words(library, ["bird"] if step % 2 else ["bird", "sun"])
            assert sidefile.read_floors(floors, library.get_meta("generation")) is not None
        assert_floors_served_as_stored(db)
        with Library(db) as library:
            assert_tags_consistent(library)
    # Any other write (a scan's batch, here a re-tag without the file) leaves it stale: read from SQLite.
    with Library(db) as library:
        library.replace_tags({1: []})
        assert sidefile.read_floors(floors, library.get_meta("generation")) is None
    assert_floors_served_as_stored(db)
    # A damaged file of the right generation is not read either.
    with Library(db) as library:
        add_words(library, ["moon"], source)
        generation = library.get_meta("generation")
    floors.write_bytes(floors.read_bytes()[:-4])
    assert sidefile.read_floors(floors, generation) is None
    assert_floors_served_as_stored(db)


def test_searches_read_the_side_file_and_it_follows_every_change(tmp_path):
    db = tmp_path / "lib.db"
    synthetic_library(db, 40, WORDS).close()
    assert_served_as_stored(db)
    side = tmp_path / "lib.db-vectors"
    assert side.stat().st_size > 40 * 8 * 50 * 2
    # Served from the file: what it holds is what a search scores, so changing it shows.
    with Library(db) as library:
        generation = library.get_meta("vectors_generation")
        ids, semantic = sidefile.read(side, generation, (8, 50))
        assert len(ids) == 40 and np.asarray(semantic).dtype == np.float16
    with Library(db) as library:
        library.delete_photos([3, 7])
        assert library.get_meta("vectors_generation") != generation
    assert_served_as_stored(db)
    with Library(db) as library:
        stored = library.semantic_vectors()
        assert 3 not in stored.ids.tolist() and len(stored.ids) == 38


def test_a_library_made_again_at_the_same_path_ignores_the_old_side_file(tmp_path):
    db = tmp_path / "lib.db"
    synthetic_library(db, 30, WORDS, seed=0).close()
    assert_served_as_stored(db)
    for stale in tmp_path.glob("lib.db*"):
        if stale.name != "lib.db-vectors":
            stale.unlink()
    synthetic_library(db, 30, WORDS, seed=5).close()  # same size, other vectors
    assert_served_as_stored(db)


def test_a_side_file_that_is_not_the_snapshot_is_never_read(tmp_path):
    db = tmp_path / "lib.db"
    synthetic_library(db, 20, WORDS).close()
    assert_served_as_stored(db)
    side = tmp_path / "lib.db-vectors"
    for damage in (lambda b: b[:-100], lambda b: b"garbage" + b[7:], lambda b: b""):
        side.write_bytes(damage(side.read_bytes()) if side.exists() and side.stat().st_size else b"")
        assert_served_as_stored(db)  # rebuilt from SQLite


@pytest.mark.slow
def test_a_kill_while_the_side_file_is_written_leaves_both_consistent(tmp_path, kill_at=2):
    lib, db = tmp_path / "lib", tmp_path / "lib.db"
    make_library(lib, 6)
    program = "tests.programs.cli_dies_writing_a_side_file"
    killed = child.run(program, ["scan", lib, "--db", db, "-q"], env={"KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Cut short: a half-written snapshot, maybe of a transaction that never committed (the
    # scan snapshots S when it first computes the word means). Neither is ever read.
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert_served_as_stored(db)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]  # the dead writer's leftovers go
    report = tag_json(db, "scan", lib, "-q")
    assert report["new"] + report["unchanged"] == 6
    assert_served_as_stored(db)
    assert len(tag(db, "search", "dog", "--limit", "6", "--min-score", "0").split("\n")) >= 6


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_in, args",
    [
        ("offer_tags", ["vocab", "add", "zeppelin"]),
        ("_vectors_changed", ["scan"]),
    ],
)
def test_a_kill_inside_a_write_leaves_the_library_as_it_was(tmp_path, kill_in, args):
    lib, db = tmp_path / "lib", tmp_path / "lib.db"
    make_library(lib, 8)
    tag(db, "scan", lib, "-q")
    make_library(lib, 12)  # four more photos for the killed scan
    before = in_sqlite(db)
    with Library(db) as library:
        words = len(library.words())
    extra = [str(lib)] if args == ["scan"] else []
    killed = child.run("tests.programs.cli_dies_inside_a_write", [*args, *extra, "--db", db], env={"KILL_IN": kill_in})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = in_sqlite(db)
    assert after[0].tolist() == before[0].tolist()
    assert_served_as_stored(db)
    with Library(db) as library:
        assert len(library.words()) == words
        assert_tags_consistent(library)
    assert_floors_served_as_stored(db)


def test_counts_are_remembered_for_one_state_of_the_library_only(tmp_path):
    db = tmp_path / "lib.db"
    synthetic_library(db, 30, WORDS).close()
    with Library(db, readonly=True) as library:
        before, words = library.counts(), library.word_counts()
    assert before["photos"] == 30 and sum(words.values()) == before["tags"]
    summary = tmp_path / "lib.db-summary.json"
    assert summary.exists()
    with Library(db) as library:  # every kind of change makes them stale
        library.delete_photos([1, 2])
        assert library.counts()["photos"] == 28
        library.remove_words([library.words()[0].id])
        assert library.counts()["words"] == 6
        assert library.word_counts() == library._word_counts(None)
    # A summary of another state (a library made again at this path) is never read.
    stale = summary.read_text()
    synthetic_library(tmp_path / "other.db", 5, WORDS).close()
    for name in ("lib.db", "lib.db-wal", "lib.db-shm", "lib.db-vectors"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "other.db").rename(db)
    summary.write_text(stale)
    with Library(db) as library:
        assert library.counts()["photos"] == 5
        assert library.word_counts() == library._word_counts(None)  # remembered with string keys
    # Edited by hand (its generation kept): odd types or wrong figures are never handed on.
    edited = json.loads(summary.read_text())
    assert set(edited["values"]) == {"counts", "word_counts"}
    for values in ({"counts": "many", "word_counts": [1]}, {"counts": {**edited["values"]["counts"], "photos": 9}}):
        summary.write_text(json.dumps({**edited, "values": values}))
        with Library(db, readonly=True) as library:
            assert library.counts()["photos"] == 5
            assert library.word_counts() == library._word_counts(None)


@pytest.mark.parametrize("damage", ["s-bytes", "ids-permuted", "floors-raised"])
def test_a_side_file_whose_body_is_not_the_librarys_is_never_trusted(tmp_path, damage):
    """Each side file's header names the state it is a snapshot of; a body changed behind an
    intact header (a disk error, a hand, another program) is caught by checking a sample of
    its rows against SQLite, and read from SQLite instead: searches and `vocab add` give
    what the same library without side files gives."""
    import json

    from tagger.vocabulary import WordSource, add_words
    from tests.tagging import copy_library

    rng = np.random.default_rng(4)
    words = [(w, v / np.linalg.norm(v)) for w, v in zip("sky sea dog cat tree".split(), rng.standard_normal((5, 50)))]
    db = tmp_path / "lib.db"
    with synthetic_library(db, 300, words, k=3) as library:
        library.refresh_side_files()
        add_words(library, ["bird"], WordSource("glove-6b-50d", seen=[], dim=50))  # writes the floors file
        vectors, floors = library.vectors_path, library.floors_path
    (tmp_path / "honest").mkdir()
    honest = copy_library(db, tmp_path / "honest")  # the same state, no side files: SQLite alone
    if damage == "floors-raised":
        count = len(floors_in_sqlite(db))
        body = np.memmap(floors, np.float32, "r+", sidefile.HEADER + 8 * count, (count,))
        body[:] = 5.0  # every photo "full": a word added now would enter none
        body.flush()
    else:
        with open(vectors, "r+b") as handle:
            head = handle.read(sidefile.HEADER)
            count = int(json.loads(head[len(sidefile.MAGIC) :].split(b"\n")[0])["count"])
            ids_at, s_at, _ = sidefile._layout(count, (8, 50))
            if damage == "s-bytes":
                handle.seek(s_at)
                handle.write(np.ones(count * 8 * 50, np.float16).tobytes())
            else:
                handle.seek(ids_at)
                ids = np.frombuffer(handle.read(count * 8), np.int64)
                handle.seek(ids_at)
                handle.write(ids[::-1].copy().tobytes())
    assert_served_as_stored(db)
    assert_floors_served_as_stored(db)
    counts = []
    for path in (db, honest):
        with Library(path) as library:
            add_words(library, ["road", "boat"], WordSource("glove-6b-50d", seen=[], dim=50))
            assert_tags_consistent(library)
            found = library.word_counts()
            counts.append({w.word: found.get(w.id, 0) for w in library.words()})
    assert counts[0] == counts[1] and counts[0]["road"] > 0
