"""A library and its model: a switch to a model whose S has another shape never loses the
library (read into staging, moved over at once, resumed after a cut), a library keeps its
own model (stored absolute) wherever the scan comes from, and a folder forgotten during
a scan gets no more photos."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tagger.library import Library
from tests.photo_factory import make_library
from tests.tagging import tag, tag_json


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_switch_to_another_shape_keeps_the_library_until_done_and_resumes(tmp_path, other_shape):
    from tagger.scan import ScanOptions, scan

    make_library(tmp_path / "photos", 6)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "photos", "-q")
    before = count(db, "SELECT count(*) FROM tags")
    with Library(db) as library:
        model, shape = library.model_id, library.get_meta("semantic_shape")
    assert before > 0 and shape == [9, 50]

    def ctrl_c_after_the_first_batch(done: int, total: int) -> None:
        raise KeyboardInterrupt  # after the first batch of 2 was committed

    with Library(db) as library:
        cut = scan(
            library,
            [tmp_path / "photos"],
            ScanOptions(model=other_shape, batch_size=2, workers=0, progress=False),
            on_progress=ctrl_c_after_the_first_batch,
        )
    assert cut.interrupted
    # The library is whole on its old model: tags, shape, search, a bare rescan.
    assert count(db, "SELECT count(*) FROM tags") == before and count(db, "SELECT count(*) FROM staged") == 2
    with Library(db) as library:
        assert (library.model_id, library.get_meta("semantic_shape")) == (model, shape)
    assert len(tag_json(db, "search", "water", "--min-score", "0")["hits"]) == 6
    assert tag_json(db, "scan", "-q")["unchanged"] == 6  # the library's own model: nothing to read

    done = tag_json(db, "scan", tmp_path / "photos", "-q", "--model", other_shape, "--batch-size", "2")
    assert (done["unchanged"], done["updated"], done["switch_pending_count"]) == (2, 4, 0)  # the cut's 2 not read again
    with Library(db) as library:
        assert library.get_meta("semantic_shape") == [4, 50] and library.model_id != model
        assert library.get_meta("model_path") == str(other_shape.resolve())
    assert count(db, "SELECT count(*) FROM staged") == 0 and count(db, "SELECT count(*) FROM tags") > 0
    assert len(tag_json(db, "search", "water", "--min-score", "0")["hits"]) == 6
    assert tag_json(db, "scan", "-q")["unchanged"] == 6  # now this model is the library's own


def test_a_switch_over_some_folders_waits_for_the_others(tmp_path, other_shape):
    make_library(tmp_path / "a", 2)
    make_library(tmp_path / "b", 2, start_seed=10)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "a", tmp_path / "b", "-q")
    part = CliRun(db, "scan", tmp_path / "a", "--model", other_shape)
    assert "2 photos still to read before the library moves to the model" in part.stdout
    assert "Scan every folder with the new --model" in part.stderr and str(tmp_path / "b") in part.stderr
    with Library(db) as library:
        assert library.get_meta("semantic_shape") == [9, 50]  # still the old model's
    assert count(db, "SELECT count(*) FROM staged") == 2
    # Every folder (the library's own, no folder named) with the new model: the switch completes.
    rest = tag_json(db, "scan", "-q", "--model", other_shape)
    assert (rest["unchanged"], rest["updated"], rest["switch_pending_count"]) == (2, 2, 0)
    with Library(db) as library:
        assert library.get_meta("semantic_shape") == [4, 50]


def CliRun(db, *args):
    from typer.testing import CliRunner

    from tagger.cli import app

    result = CliRunner().invoke(app, [*map(str, args), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return result


def test_a_relative_model_is_kept_as_an_absolute_path(tmp_path, other_shape, monkeypatch):
    import shutil

    shutil.copytree(other_shape, tmp_path / "m")
    make_library(tmp_path / "photos", 2)
    monkeypatch.chdir(tmp_path)
    tag(tmp_path / "lib.db", "scan", "photos", "--model", "m", "-q")
    with Library(tmp_path / "lib.db") as library:
        assert library.get_meta("model_path") == str((tmp_path / "m").resolve())
    monkeypatch.chdir("/")
    os.utime(next((tmp_path / "photos").rglob("*.jpg")), (0, 0))  # a changed photo: the model is loaded
    assert tag_json(tmp_path / "lib.db", "scan", "-q")["updated"] == 1


def test_a_folder_forgotten_during_a_scan_gets_no_more_photos(tmp_path):
    """`roots forget` between two batches of a scan (it waits for the batch in flight): the
    next batch sees the folder gone, stores nothing of it and stops, and no photo is left
    under a folder the library no longer has."""
    from tagger.roots import forget_root
    from tagger.scan import ScanOptions, scan

    make_library(tmp_path / "R", 6)
    db = tmp_path / "lib.db"

    def forget_after_the_first_batch(done: int, total: int) -> None:
        if done == 2:  # another command, between two batches
            with Library(db) as other:
                forget_root(other, tmp_path / "R")

    with Library(db) as library:
        options = ScanOptions(batch_size=2, workers=0, progress=False)
        report = scan(library, [tmp_path / "R"], options, on_progress=forget_after_the_first_batch)
    assert not report.interrupted and "was forgotten (roots forget) during the scan" in report.stopped
    assert count(db, "SELECT count(*) FROM photos") == 0
    assert tag_json(db, "roots", "list") == []


def CliRunner_json(db, *args):
    import json

    from typer.testing import CliRunner

    from tagger.cli import app

    result = CliRunner().invoke(app, [*map(str, args), "--db", str(db), "--json", "-q"])
    return json.loads(result.stdout)


@pytest.mark.slow
async def test_the_tuis_rescan_keeps_the_librarys_model_and_skips_an_absent_folder(tmp_path, other_shape):
    import shutil

    from tagger.tui.app import EpsilonTagApp
    from tests.test_tui import settle

    make_library(tmp_path / "a", 2)
    make_library(tmp_path / "b", 2, start_seed=10)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "a", tmp_path / "b", "-q", "--model", other_shape)
    shutil.rmtree(tmp_path / "b")  # an unplugged drive
    os.utime(next((tmp_path / "a").rglob("*.jpg")), (0, 0))
    app = EpsilonTagApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot, 5)
        status = str(app.query_one("#status").render())
    assert "1 updated" in status and "1 of its folders not there now (skipped)" in status
    with Library(db) as library:
        assert library.get_meta("model_path") == str(other_shape.resolve())
        assert library.get_meta("semantic_shape") == [4, 50]
    assert count(db, "SELECT count(*) FROM photos WHERE status = 'ok'") == 4  # b's photos not marked missing
