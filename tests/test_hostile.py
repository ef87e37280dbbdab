"""What an unlucky or hostile user does, and what they get: a clear error and nothing lost
(mistyped options, odd files, emptied vocabularies, read-only and foreign files, bad values)."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tagger.library import Library
from tests.photo_factory import make_library, make_photo
from tests.tagging import copy_library, tag, tag_json


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    make_library(root / "photos", 3)
    tag(root / "lib.db", "scan", root / "photos", "-q")
    return root


def test_mistyped_options_fail_before_a_library_is_made(tmp_path):
    make_library(tmp_path / "photos", 1)
    db = tmp_path / "new.db"
    typo = run("scan", tmp_path / "photos", "--db", db, "--embeddings", "/nonexistent.txt")
    assert typo.exit_code == 2 and "'/nonexistent.txt' not found" in typo.output
    device = run("scan", tmp_path / "photos", "--db", db, "--device", "garbage")
    assert device.exit_code == 2 and "the device is auto, cpu, cuda or cuda:N, not 'garbage'" in device.output
    assert not db.exists() and "Traceback" not in typo.output + device.output
    folder = run("stats", "--db", tmp_path)
    assert folder.exit_code == 2 and "is a folder: --db takes the library file" in folder.output


def test_an_emptied_vocabulary_stays_empty(scanned, tmp_path):
    from tagger.vocabulary import remove_words

    db = copy_library(scanned / "lib.db", tmp_path)
    with Library(db) as library:
        remove_words(library, [w.word for w in library.words()])
    make_photo(tmp_path / "more" / "new.jpg", seed=9)
    tag(db, "scan", tmp_path / "more", "-q")
    with Library(db) as library:
        assert library.words() == [] and library.counts()["photos"] == 4
        assert library.db.execute("SELECT count(*) FROM tags").fetchone()[0] == 0  # every photo alike
    tag(db, "vocab", "add", "boat")
    with Library(db) as library:  # words come back to every photo when people add them
        assert library.db.execute("SELECT count(DISTINCT photo_id) FROM tags").fetchone()[0] == 4


def test_a_read_only_library_is_read_and_never_half_written(scanned, tmp_path, monkeypatch):
    import tagger.library

    db = copy_library(scanned / "lib.db", tmp_path)
    monkeypatch.setattr(tagger.library, "_writable", lambda path: path != db)  # as for a user without root
    added = run("vocab", "add", "zeppelin", "--db", db)
    assert added.exit_code == 2 and f"{db} is read-only: make it writable (chmod u+w" in added.output
    stats = run("stats", "--db", db, "--json")
    assert stats.exit_code == 0 and json.loads(stats.output)["photos"] == 3
    assert len(run("search", "boat", "--min-score", "0", "--db", db).output.splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.db"]  # read as immutable: no side files


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_file_leaves_no_read_only_side_files(scanned, tmp_path):
    db = copy_library(scanned / "lib.db", tmp_path)
    db.chmod(0o444)
    assert run("stats", "--db", db).exit_code == 0
    assert run("vocab", "add", "zeppelin", "--db", db).exit_code == 2
    db.chmod(0o644)
    assert run("vocab", "add", "zeppelin", "--db", db).exit_code == 0


@pytest.mark.parametrize("content", [b"not a database at all", b"SQLite format 3\x00" + b"\x00" * 50])
async def test_the_tui_reports_a_broken_library_instead_of_starting_afresh(tmp_path, content):
    from tagger.tui.app import EpsilonTagApp

    db = tmp_path / "broken.db"
    db.write_bytes(content)
    cli = run("tui", "--db", db)
    assert cli.exit_code == 2 and "Error:" in cli.output
    app_ = EpsilonTagApp(db)
    async with app_.run_test() as pilot:
        await pilot.pause()
    assert app_.return_code == 2
    assert db.read_bytes() == content


def test_a_newer_library_is_refused_by_the_tui_too(scanned, tmp_path):
    db = copy_library(scanned / "lib.db", tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    result = run("tui", "--db", db)
    assert result.exit_code == 2 and "newer epsilon-tag" in result.output


def test_a_name_that_is_not_utf8_is_counted_and_shown(tmp_path):
    folder = tmp_path / "photos"
    make_photo(folder / "fine.jpg", seed=1)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
    with open(odd, "wb") as handle:
        handle.write((folder / "fine.jpg").read_bytes())
    db = tmp_path / "lib.db"
    report = tag_json(db, "scan", folder, "-q")
    assert report["new"] == 1 and report["failed"] == 1
    shown = run("show", os.fsdecode(odd), "--db", db)
    assert shown.exit_code == 2 and "file name is not valid UTF-8" in shown.output


def test_a_huge_query_is_not_echoed_whole(scanned):
    result = run("search", "x" * 10_000, "--db", scanned / "lib.db")
    assert result.exit_code == 2 and "is not in the word vectors" in result.output
    assert len(result.output) < 300


def test_impossible_gps_is_not_stored_and_says_why(tmp_path):
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational as R

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, lat, lon in (
        ("zero.jpg", (R(10, 0), R(0, 1), R(0, 1)), (R(20, 1), R(0, 1), R(0, 1))),
        ("far.jpg", (R(10, 1), R(0, 1), R(0, 1)), (R(401, 1), R(39, 1), R(0, 1))),
    ):
        exif = Image.Exif()
        exif.get_ifd(0x8825).update({1: "N", 2: lat, 3: "E", 4: lon})
        Image.new("RGB", (64, 48), (200, 100, 50)).save(folder / name, exif=exif.tobytes())
    db = tmp_path / "lib.db"
    report = tag_json(db, "scan", folder, "-q")
    assert report["new"] == 2 and report["damaged"] == 2
    for name in ("zero.jpg", "far.jpg"):
        shown = tag_json(db, "show", folder / name)["photo"]
        assert shown["latitude"] is None and shown["longitude"] is None
    failures = {f["path"]: f["reason"] for f in tag_json(db, "stats", "--failures")["failure_list"]}
    assert "longitude 401.65" in failures[str(folder / "far.jpg")]
    assert "GPS position in the EXIF is impossible" in failures[str(folder / "zero.jpg")]


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--after", "2021-13-45", "--after takes a date like"),
        ("--before", "2021-02-30", "--before takes a date like"),
        ("--min-score", "nan", "--min-score takes a confidence between 0 and 1"),
    ],
)
def test_bad_values_are_refused(scanned, option, value, message):
    result = run("search", "boat", option, value, "--db", scanned / "lib.db")
    assert result.exit_code == 2 and message in result.output


def test_print0_separates_paths_that_hold_newlines(tmp_path):
    folder = tmp_path / "photos"
    make_photo(folder / "two\nlines.jpg", seed=1)
    make_photo(folder / "plain.jpg", seed=2)
    db = tmp_path / "lib.db"
    tag(db, "scan", folder, "-q")
    out = tag(db, "search", "boat", "-0", "--min-score", "0")
    assert sorted(out.split("\0")[:-1]) == sorted([str(folder / "plain.jpg"), str(folder / "two\nlines.jpg")])
    assert out.endswith("\0") and out.count("\0") == 2


def test_dates_that_leave_no_photo_between_them_are_refused(scanned):
    result = run("search", "boat", "--after", "2022", "--before", "2021", "--db", scanned / "lib.db")
    assert result.exit_code == 2 and "--after 2022 is not before --before 2021" in result.output


@pytest.mark.parametrize("term", ["0:water", "2:", "1.0:"])
def test_a_weight_without_a_word_or_of_zero_says_what_a_weight_is(scanned, term):
    result = run("search", term, "--db", scanned / "lib.db")
    assert result.exit_code == 2 and f"{term!r}: a weight goes before a word and is above 0" in result.output


def test_a_rare_misspelling_is_answered_with_the_common_word(scanned, tmp_path):
    db = copy_library(scanned / "lib.db", tmp_path)
    found = tag_json(db, "search", "elefant")
    assert found["hits"] == [] and found["did_you_mean"] == {"elefant": "elephant"}
    assert "Did you mean 'elephant' for 'elefant'?" in run("search", "elefant", "--db", db).output
    assert tag_json(db, "search", "water", "--min-score", "0")["did_you_mean"] == {}
    assert tag(db, "vocab", "add", "elefant") == "elefant: 0 photos (a rare word: did you mean 'elephant'?)\n"


def test_show_says_why_a_path_is_not_a_photo_of_the_library(scanned, tmp_path):
    db = scanned / "lib.db"
    folder = run("show", scanned / "photos", "--db", db)
    assert folder.exit_code == 2 and "is a folder: give one of its photos" in folder.output
    notes = scanned / "photos" / "notes.txt"
    notes.write_text("not a photo")
    try:
        beside = run("show", notes, "--db", db)
    finally:
        notes.unlink()
    assert beside.exit_code == 2 and "its folder was scanned, but not since this file came" in beside.output
    (tmp_path / "other.jpg").write_bytes(b"")
    elsewhere = run("show", tmp_path / "other.jpg", "--db", db)
    assert elsewhere.exit_code == 2 and "(scan its folder first)" in elsewhere.output
