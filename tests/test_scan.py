"""epsilon-tag scan end to end: real camera files, bad files, incremental rescans, moves,
kills and Ctrl-C, all through the command line on the shipped default model."""

from __future__ import annotations

import os
import sqlite3

import pytest
from typer.testing import CliRunner

from tagger.cli import app
from tests import child
from tests.helpers import DATA, require
from tests.photo_factory import make_library, make_photo
from tests.tagging import run_script, tag, tag_json


def rows(db, sql, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def photo(db, path, *extra):
    return tag_json(db, "show", path, *extra)


@pytest.mark.slow
def test_real_camera_files(tmp_path):
    photos = require(DATA / "photos").resolve()  # the library stores resolved paths
    db = tmp_path / "lib.db"
    report = tag_json(db, "scan", photos, "-q")
    assert report["new"] > 90 and not report["interrupted"]
    jpg = photos / "exif-samples" / "jpg"

    gps = photo(db, jpg / "gps" / "DSCN0010.jpg")["photo"]
    assert gps["camera"] == "NIKON COOLPIX P6000" and gps["taken_at"] == "2008-10-22T16:28:39"
    assert gps["latitude"] == pytest.approx(43.467448, abs=1e-5) and gps["longitude"] == pytest.approx(
        11.885127, abs=1e-5
    )
    # The eight files of each set show the same picture; 5-8 are stored a quarter turn
    # away, so width and height must be stored as shown, not as encoded.
    for kind, wide in (("landscape", True), ("portrait", False)):
        for k in range(1, 9):
            row = photo(db, jpg / "orientation" / f"{kind}_{k}.jpg")["photo"]
            assert row["orientation"] == k
            assert (row["width"] > row["height"]) == wide, (kind, k)
    heic = photo(db, photos / "exif-samples" / "heic" / "IMG_5195.HEIC", "--all")
    assert heic["photo"]["camera"] == "Apple iPhone 11 Pro Max" and len(heic["tags"]) == 10
    assert photo(db, photos / "raw-and-modern" / "mountains.avif")["tags"]
    assert photo(db, photos / "raw-and-modern" / "nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng")[
        "tags"
    ]

    failures = dict(rows(db, "SELECT path, reason FROM failures"))
    sony = str(photos / "raw-and-modern" / "sony_alpha_a7iii_raw_image.ARW")
    assert "without an embedded JPEG preview" in failures[sony]
    # corrupted.jpg decodes but its last rows are libjpeg's gray fill: listed as damaged, and tagged.
    corrupted = str(jpg / "corrupted.jpg")
    assert failures[corrupted].startswith("damaged JPEG") and report["damaged"] == 1
    assert len(photo(db, corrupted, "--all")["tags"]) == 10
    assert photo(db, corrupted)["warning"] == failures[corrupted]  # show says what was wrong with it
    assert f"warning damaged JPEG: {failures[corrupted][len('damaged JPEG: ') :]}" in tag(db, "show", corrupted)
    # Every file is accounted for: tagged or failed with a reason, nothing crashed.
    assert report["new"] + report["failed"] == len(rows(db, "SELECT id FROM photos")) + len(failures) - 1
    stats = tag_json(db, "stats", "--failures")
    assert stats["photos"] == report["new"] and len(stats["failure_list"]) == report["failed"] + report["damaged"]
    assert all(f["reason"] for f in stats["failure_list"])


def test_every_picture_is_tagged_or_listed_and_a_damaged_one_is_tagged_with_a_warning(tmp_path):
    import shutil

    import imagecodecs
    import numpy as np
    from PIL import Image

    folder = tmp_path / "photos"
    make_library(folder, 1)
    pixels = np.asarray(Image.open(folder / "photo_000.jpg").convert("RGB"))
    (folder / "modern.jxl").write_bytes(imagecodecs.jpegxl_encode(pixels))
    (folder / "drawing.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (folder / "notes.txt").write_text("not a picture: passed over")
    corrupted = DATA / "photos" / "exif-samples" / "jpg" / "corrupted.jpg"
    if corrupted.exists():
        shutil.copy(corrupted, folder / "corrupted.jpg")
    db = tmp_path / "lib.db"
    scanned = CliRunner().invoke(app, ["scan", str(folder), "--db", str(db), "-q"])
    assert scanned.exit_code == 0, scanned.output
    assert f"failed: {folder / 'drawing.svg'}: format not supported: a vector drawing (.svg)" in scanned.stderr
    assert "notes.txt" not in scanned.output
    jxl = photo(db, folder / "modern.jxl")["photo"]  # JPEG XL is read and tagged, its size known
    assert jxl["status"] == "ok" and (jxl["width"], jxl["height"]) == (pixels.shape[1], pixels.shape[0])
    if corrupted.exists():
        assert f"tagged with a warning: {folder / 'corrupted.jpg'}: damaged JPEG" in scanned.stderr
        assert f"failed: {folder / 'corrupted.jpg'}" not in scanned.stderr
    again = tag_json(db, "scan", folder, "-q")  # listed once: not read again until it changes
    assert (again["failed_before"], again["failed"], again["unchanged"]) == (1, 0, 2 + corrupted.exists())


def test_bad_files_are_recorded_and_the_scan_goes_on(tmp_path):
    from PIL import Image

    lib = tmp_path / "my photos"
    good = make_photo(lib / "ünïcode folder" / "good one.jpg", seed=1)
    whole = make_photo(tmp_path / "src.jpg", seed=2, size=(1200, 900)).read_bytes()
    (lib / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (lib / "zero.jpg").write_bytes(b"")
    (lib / "text.png").write_text("not an image")
    Image.new("1", (20_000, 20_000)).save(lib / "bomb.png")
    (lib / "broken").symlink_to(lib / "nowhere.jpg")
    (lib / "loop").symlink_to(lib)
    db = tmp_path / "lib.db"
    report = tag_json(db, "scan", lib, "-q", "--batch-size", "1")  # batches that hold no readable photo too
    # Every file recorded as failed counts, those the walk could not follow (the broken link, the loop) too.
    assert report["new"] == 1 and report["failed"] == 6
    reasons = dict(rows(db, "SELECT path, reason FROM failures"))
    assert "cut off before the end of the image (image file is truncated" in reasons[str(lib / "truncated.jpg")]
    assert (
        "the file is empty (0 bytes)" in reasons[str(lib / "zero.jpg")]
        and "cannot decode" in reasons[str(lib / "text.png")]
    )
    assert "decompression bomb" in reasons[str(lib / "bomb.png")]
    assert reasons[str(lib / "broken")] == "broken symlink"
    assert "loop" in reasons[str(lib / "loop")]
    assert len(photo(db, good, "--all")["tags"]) == 10
    # Failed files are not retried while unchanged; a fixed one is read again.
    again = tag_json(db, "scan", lib, "-q")
    assert again["failed_before"] == 4 and again["unchanged"] == 1 and again["new"] == 0
    make_photo(lib / "zero.jpg", seed=3)
    fixed = tag_json(db, "scan", lib, "-q")
    assert fixed["new"] == 1 and fixed["failed_before"] == 3
    assert str(lib / "zero.jpg") not in dict(rows(db, "SELECT path, reason FROM failures"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder_is_a_failure_not_a_loss(tmp_path):
    lib = tmp_path / "lib"
    make_photo(lib / "locked" / "a.jpg")
    make_photo(lib / "b.jpg", seed=1)
    db = tmp_path / "lib.db"
    assert tag_json(db, "scan", lib, "-q")["new"] == 2
    (lib / "locked").chmod(0)
    try:
        report = tag_json(db, "scan", lib, "-q")
    finally:
        (lib / "locked").chmod(0o755)
    assert report["missing"] == 0 and report["unchanged"] == 1
    assert "cannot" in dict(rows(db, "SELECT path, reason FROM failures"))[str(lib / "locked")]


@pytest.mark.slow
def test_incremental_rescan_moves_changes_and_deletions(tmp_path):
    lib = tmp_path / "lib"
    paths = make_library(lib, 8)
    make_photo(lib / "@eaDir" / "thumb.jpg", seed=99)  # NAS clutter: never scanned
    make_photo(lib / "exports" / "x.jpg", seed=98)
    db = tmp_path / "lib.db"
    first = tag_json(db, "scan", lib, "-q", "--exclude", "exports")
    assert first["new"] == 8 and first["failed"] == 0
    moved_tags = photo(db, paths[0])["tags"]
    (lib / "album").mkdir()
    paths[0].rename(lib / "album" / "renamed.jpg")  # moved: same content, new path
    paths[1].unlink()  # deleted
    make_photo(paths[2], seed=50)  # changed content
    make_photo(lib / "new.jpg", seed=51)
    assert tag_json(db, "roots", "list")[0]["exclude"] == ["exports"]
    assert tag(db, "roots", "list").rstrip().endswith(f"{lib}  (skips exports)")
    second = tag_json(db, "scan", lib, "-q")  # the folder's -x is remembered
    assert (second["new"], second["updated"], second["moved"], second["missing"], second["unchanged"]) == (
        1,
        1,
        1,
        1,
        5,
    )
    assert photo(db, lib / "album" / "renamed.jpg")["tags"] == moved_tags
    assert rows(db, "SELECT count(*) FROM photos") == [(9,)]  # the deleted one is kept, marked missing
    assert photo(db, paths[1])["photo"]["status"] == "missing"
    assert str(paths[1]) not in tag(db, "search", "water", "-n", "100")
    # A missing photo that comes back elsewhere is a move, even a scan later.
    make_photo(lib / "back" / "again.jpg", seed=1)
    third = tag_json(db, "scan", lib, "-q", "--exclude", "exports")
    assert (third["moved"], third["new"]) == (1, 0)
    paths[3].unlink()
    assert tag_json(db, "scan", lib, "-q", "--exclude", "exports")["missing"] == 1
    paths[4].unlink()
    make_photo(lib / "returned.jpg", seed=3)  # the missing photo comes back in the scan that prunes
    pruned = tag_json(db, "scan", lib, "-q", "--prune", "--exclude", "exports")
    assert (pruned["pruned"], pruned["moved"]) == (1, 1) and rows(db, "SELECT count(*) FROM photos") == [(8,)]
    forced = tag_json(db, "scan", lib, "-q", "--force", "--exclude", "exports")
    assert forced["updated"] == 8 and forced["new"] == 0
    make_photo(lib / "later.jpg", seed=60)
    assert tag_json(db, "scan", "-q")["new"] == 1  # no folder: the library's own, skipping what it skips
    (lib / "later.jpg").unlink()
    tag(db, "scan", "-q", "--prune")
    assert rows(db, "SELECT count(*), count(DISTINCT photo_id) FROM tags") == [(80, 8)]
    assert tag_json(db, "scan", lib, "-q", "-x", "@nothing")["new"] == 1  # new patterns replace them: exports in
    assert tag_json(db, "roots", "list")[0]["exclude"] == ["@nothing"]


def test_a_missing_root_marks_nothing_missing(tmp_path):
    lib = tmp_path / "lib"
    make_library(lib, 2)
    db = tmp_path / "lib.db"
    tag(db, "scan", lib, "-q")
    os.rename(lib, tmp_path / "unmounted")
    result = run_script("scan", lib, "-q", "--prune", "--db", db)
    assert result.returncode == 2 and f"No such file or folder: {lib}" in result.stderr
    assert rows(db, "SELECT count(*) FROM photos WHERE status = 'ok'") == [(2,)]


@pytest.mark.slow
def test_the_database_comes_from_the_environment(tmp_path):
    make_library(tmp_path / "lib", 2)
    db = tmp_path / "from env.db"
    # The scan in process (a child would import torch again), the search as the console script.
    done = CliRunner().invoke(app, ["scan", str(tmp_path / "lib"), "-q"], env={"EPSILON_TAG_DB": str(db)})
    assert done.exit_code == 0, done.output
    assert "2 new" in done.stdout and rows(db, "SELECT count(*) FROM photos") == [(2,)]
    missing = run_script("search", "boat", env={"EPSILON_TAG_DB": str(tmp_path / "none.db")})
    assert missing.returncode == 2 and "run `epsilon-tag scan FOLDER` first" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
@pytest.mark.parametrize("die_with, code", [("SIGKILL", -9), ("SIGINT", 130)])
def test_interrupted_scan_loses_nothing_and_redoes_nothing(tmp_path, die_with, code):
    lib = tmp_path / "lib"
    make_library(lib, 20)
    db = tmp_path / "lib.db"
    args = ["scan", lib, "--db", db, "--batch-size", "4", "-q"]
    killed = child.run("tests.programs.cli_dies_in_third_batch", args, env={"DIE_WITH": die_with})
    assert killed.returncode == code, killed.stderr
    if die_with == "SIGINT":
        assert "run the same command to continue" in killed.stderr and "Traceback" not in killed.stderr
    # Two batches were committed before the interruption, nothing of the third.
    assert rows(db, "SELECT count(*) FROM photos") == [(8,)]
    assert rows(db, "SELECT count(*) FROM vectors") == [(8,)]
    resumed = tag_json(db, "scan", lib, "-q", "--batch-size", "4")
    assert (resumed["new"], resumed["unchanged"]) == (12, 8)
    assert rows(db, "SELECT count(*), count(DISTINCT path) FROM photos") == [(20, 20)]
    assert rows(db, "SELECT count(*), count(DISTINCT photo_id) FROM tags") == [(200, 20)]
    if die_with == "SIGINT":  # a forced scan continues too: what it read again is not read a third time
        killed = child.run("tests.programs.cli_dies_in_third_batch", [*args, "--force"], env={"DIE_WITH": die_with})
        assert killed.returncode == code and "run the same command to continue" in killed.stderr
        forced = tag_json(db, "scan", lib, "-q", "--batch-size", "4", "--force")
        assert (forced["updated"], forced["unchanged"]) == (12, 8)
        assert tag_json(db, "scan", lib, "-q", "--batch-size", "4", "--force")["updated"] == 20  # done: all again


def test_a_file_that_vanishes_mid_scan_is_a_failure(tmp_path, monkeypatch):
    from tagger import reading

    paths = make_library(tmp_path / "lib", 3)
    original = reading._Reader.__getitem__

    def vanish_then_read(self, i):  # the file goes between the walk and its decode
        if self.jobs[i].path == str(paths[1]):
            paths[1].unlink()
        return original(self, i)

    monkeypatch.setattr(reading._Reader, "__getitem__", vanish_then_read)
    db = tmp_path / "lib.db"
    report = tag_json(db, "scan", tmp_path / "lib", "-q", "--workers", "0")
    assert (report["new"], report["failed"]) == (2, 1)
    assert rows(db, "SELECT reason FROM failures") == [("vanished during the scan",)]
    monkeypatch.undo()
    assert tag_json(db, "scan", tmp_path / "lib", "-q")["unchanged"] == 2
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]  # gone files leave no stale failure


def test_a_photo_the_model_overflows_on_is_a_failure_not_a_nan_in_the_library(tmp_path, monkeypatch):
    import numpy as np

    from tagger.engine import Engine

    make_library(tmp_path / "lib", 3)
    recognise = Engine.recognise

    def overflowing(self, pixels):  # as float16 S overflows on one photo
        semantic, classes = recognise(self, pixels)
        semantic[1, 0, 0] = np.inf
        return semantic, classes

    monkeypatch.setattr(Engine, "recognise", overflowing)
    db = tmp_path / "lib.db"
    report = tag_json(db, "scan", tmp_path / "lib", "-q", "--workers", "0")
    assert (report["new"], report["failed"]) == (2, 1)
    assert rows(db, "SELECT reason FROM failures")[0][0].startswith("the model gave non-finite numbers")
    assert rows(db, "SELECT count(*), count(DISTINCT photo_id) FROM tags") == [(20, 2)]
    assert tag_json(db, "search", "tree", "--json")["hits"]  # the library ranks as before
    top = tag_json(db, "stats")["top_words"]  # words no photo shows are not "top tags"
    shown = rows(db, "SELECT count(DISTINCT word_id) FROM tags WHERE shown")[0][0]
    assert all(w["count"] > 0 for w in top) and len(top) == min(10, shown) > 0


@pytest.mark.slow
def test_unusable_model_or_device_is_a_clear_error(tmp_path):
    make_library(tmp_path / "lib", 1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"")
    db = tmp_path / "lib.db"
    # In process: what the console script prints for a told error (no traceback) is checked
    # with one that needs no model, in test_the_database_comes_from_the_environment.
    for args, expected in (
        (["--model", broken], "not valid JSON"),
        (["--model", tmp_path / "nowhere"], "No model bundle"),
        (["--device", "cuda"], "no CUDA GPU"),
    ):
        told = CliRunner().invoke(app, ["scan", str(tmp_path / "lib"), "--db", str(db), "-q", *map(str, args)])
        if "CUDA" in expected and told.exit_code == 0:
            continue  # a machine with a GPU: --device cuda is right there
        assert told.exit_code == 2 and expected in told.stderr, told.stderr
        assert isinstance(told.exception, SystemExit)  # a told error, not a bug's exception


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["corel5k", "nus-wide"])
def test_an_epsilon_train_bundle_plugs_into_the_tagger(tmp_path, dataset):
    from tests.test_train_cli import SMALL, run_cli
    from tests.tiny_datasets import make_corel, make_nus_wide

    make = make_corel if dataset == "corel5k" else make_nus_wide
    data = make(tmp_path / "data")
    run_cli(dataset, "--data", data, "--out", tmp_path / "run", "--cache", tmp_path / "cache", "--epochs", "1", *SMALL)
    make_library(tmp_path / "lib", 3)
    db = tmp_path / "lib.db"
    assert tag_json(db, "scan", tmp_path / "lib", "-q", "--model", tmp_path / "run" / "best")["new"] == 3
    words = {r["word"]: r["kind"] for r in tag_json(db, "vocab", "list")}
    unseen = "albatross" if dataset == "corel5k" else "sunset"  # zero-shot words of each split
    assert words[unseen] == "zero-shot" and "seen" in words.values()
    assert len(tag_json(db, "search", unseen)["hits"]) == 3  # a model without a tag rule: no floor
    # The library remembers its model: a plain rescan reads nothing again...
    assert tag_json(db, "scan", tmp_path / "lib", "-q")["unchanged"] == 3
    # ...and another model re-reads every photo.
    assert tag_json(db, "scan", tmp_path / "lib", "-q", "--model", default_model())["updated"] == 3
    assert len(tag_json(db, "search", "zeppelin", "--min-score", "0")["hits"]) == 3


def default_model():
    from tagger.engine import default_model as shipped

    return shipped()


def test_a_missing_photo_back_at_its_path_is_present_again(tmp_path):
    lib = tmp_path / "lib"
    paths = make_library(lib, 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", lib, "-q")
    paths[0].rename(tmp_path / "away.jpg")  # out of the scanned folder: gone
    assert tag_json(db, "scan", lib, "-q")["missing"] == 1
    (tmp_path / "away.jpg").rename(paths[0])  # back, same size and modification time
    back = tag_json(db, "scan", lib, "-q")
    assert (back["unchanged"], back["new"], back["moved"]) == (3, 0, 0)
    assert photo(db, paths[0])["photo"]["status"] == "ok"
    assert str(paths[0]) in tag(db, "search", "water", "--min-score", "0").split("\n")


# The scan stops before its fourth batch, with 2 + 3 x 4 photos stored, until told to go on:
# the words change at a known point of the scan however loaded the machine is (waiting for a
# count and hoping the scan is still running failed under load).


@pytest.mark.slow
def test_words_added_and_removed_during_a_scan_reach_every_photo(tmp_path):
    """Real processes: a scan commits batch after batch while `vocab add` and `vocab remove`
    run beside it; afterwards every photo's tags are its top tags under the final vocabulary."""
    import time

    from tagger.library import Library
    from tests.tagging import assert_tags_consistent

    make_library(tmp_path / "first", 2)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "first", "-q")  # a library with a model and words already
    make_library(tmp_path / "photos", 48, start_seed=100)
    paused, go_on = tmp_path / "paused", tmp_path / "go-on"
    scanning = child.Child(
        "tests.programs.cli_pauses_in_fourth_batch",
        ["scan", tmp_path / "photos", "--db", db, "--workers", "0", "--batch-size", "4", "-q"],
        env={"PAUSED": paused, "GO_ON": go_on},
    )
    try:
        for _ in range(6000):
            if paused.exists():
                break
            time.sleep(0.05)
        in_between = rows(db, "SELECT count(*) FROM photos")[0][0]
        added = run_script("vocab", "add", "airliner", "--db", db)
        removed = run_script("vocab", "remove", "tree", "--db", db)
    finally:
        go_on.touch()
        scanned = scanning.wait()
    assert added.returncode == 0 and removed.returncode == 0, added.stderr + removed.stderr
    assert scanned.returncode == 0, scanned.stderr
    assert in_between == 14  # the words changed in the middle of the scan
    with Library(db) as library:
        assert library.counts()["photos"] == 50
        words = {w.word for w in library.words()}
        assert "airliner" in words and "tree" not in words
        assert_tags_consistent(library)


def test_a_renamed_root_is_a_move_and_the_old_root_is_forgotten(tmp_path):
    make_library(tmp_path / "lib", 4)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "lib", "-q")
    before = {p.name: photo(db, p, "--all")["tags"] for p in (tmp_path / "lib").rglob("*.jpg")}
    (tmp_path / "lib").rename(tmp_path / "lib2")
    report = tag_json(db, "scan", tmp_path / "lib2", "-q")
    assert (report["moved"], report["new"], report["missing"]) == (4, 0, 0)
    assert report["forgotten_roots"] == [str(tmp_path / "lib")]
    hits = tag_json(db, "search", "boat", "--min-score", "0")["hits"]
    assert len(hits) == 4 and all(h["path"].startswith(str(tmp_path / "lib2")) for h in hits)
    assert {p.name: photo(db, p, "--all")["tags"] for p in (tmp_path / "lib2").rglob("*.jpg")} == before
    assert tag_json(db, "roots", "list") == [
        {"root": str(tmp_path / "lib2"), "photos": 4, "present": True, "exclude": []}
    ]
    assert tag_json(db, "scan", "-q")["unchanged"] == 4  # a bare scan works again


def test_roots_are_listed_skipped_when_away_and_forgotten_on_request(tmp_path):
    for name in ("a", "b"):
        make_library(tmp_path / name, 2, start_seed=10 if name == "b" else 0)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "a", tmp_path / "b", "-q")
    (tmp_path / "b").rename(tmp_path / "elsewhere")  # unplugged
    result = CliRunner().invoke(app, ["scan", "--db", str(db), "-q", "--json"])
    assert result.exit_code == 0 and f"Skipped {tmp_path / 'b'}: not there now" in result.output
    assert tag_json(db, "stats")["missing"] == 0  # nothing under an absent root is marked
    listed = {r["root"]: r for r in tag_json(db, "roots", "list")}
    assert listed[str(tmp_path / "b")] == {"root": str(tmp_path / "b"), "photos": 2, "present": False, "exclude": []}
    assert "Forgot" in tag(db, "roots", "forget", tmp_path / "b") and tag_json(db, "stats")["photos"] == 2
    assert [r["root"] for r in tag_json(db, "roots", "list")] == [str(tmp_path / "a")]
    assert tag(db, "roots", "forget", tmp_path / "nowhere", code=2) == ""


def test_pruning_an_emptied_mount_point_needs_a_confirmation(tmp_path):
    make_library(tmp_path / "mnt", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "mnt", "-q")
    (tmp_path / "stash").mkdir()
    for p in (tmp_path / "mnt").iterdir():
        p.rename(tmp_path / "stash" / p.name)
    result = CliRunner().invoke(app, ["scan", "--db", str(db), "--prune", "-q"])
    assert result.exit_code == 0 and "holds no photos now, but the library has 3 there" in result.output
    stats = tag_json(db, "stats")
    assert (stats["photos"], stats["missing"]) == (3, 0)  # nothing pruned, nothing marked
    assert tag_json(db, "scan", tmp_path / "mnt", "--prune", "--allow-empty", "-q")["pruned"] == 3
    assert tag_json(db, "stats")["photos"] == 0


def test_a_folder_reached_by_a_link_is_one_set_of_photos(tmp_path):
    lib = tmp_path / "lib"
    make_library(lib / "b", 3)
    make_library(tmp_path / "outside", 2, start_seed=20)
    db = tmp_path / "lib.db"
    tag(db, "scan", lib, "-q")
    (lib / "Favorites").symlink_to(lib / "b")  # sorts before "b": reached first by the link
    (lib / "ext").symlink_to(tmp_path / "outside")
    report = tag_json(db, "scan", lib, "-q")
    assert (report["new"], report["unchanged"], report["failed"], report["missing"]) == (2, 3, 0, 0)
    assert tag_json(db, "stats")["photos"] == 5
    # Any path that reaches a photo finds it, and export takes the link's folder.
    linked = next((lib / "ext").rglob("*.jpg"))
    assert photo(db, linked)["photo"]["path"] == str(linked.resolve())
    assert "2 written" in tag(db, "export", "--xmp", lib / "ext")
    (lib / "ext").unlink()  # the link is gone: so are the photos it led to
    assert tag_json(db, "scan", lib, "-q")["missing"] == 2


def test_a_rescan_takes_the_rule_its_model_was_given_since(tmp_path, candidates_model):
    """`epsilon-train calibrate --write` (or an upgrade) gives a model a new tag rule
    without new weights: the next scan adopts it and re-tags every photo from its stored S
    and classes, re-reading none."""
    import shutil

    import numpy as np

    from tagger.library import Library
    from tagger.vocabulary import scores
    from tests.tagging import assert_tags_consistent
    from trainer.checkpoint import Bundle

    model = tmp_path / "model"
    shutil.copytree(candidates_model, model)
    make_library(tmp_path / "lib", 3)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "lib", "-q", "--model", model)
    stored = "SELECT photo_id, word_id, score, shown FROM tags ORDER BY photo_id, word_id"
    before = rows(db, stored)
    with Library(db) as library:
        first = library.tag_rule
    assert first.threshold is None and first.quantile == 0.9 and all(r[3] for r in before)

    # A threshold: fewer tags show.
    Bundle.update_config(model, tagging={**first.to_dict(), "threshold": 0.3})
    assert tag_json(db, "scan", "-q")["unchanged"] == 3
    with Library(db) as library:
        assert library.tag_rule.threshold == 0.3
        assert_tags_consistent(library)
    shown = rows(db, stored)  # a general word is lifted by shown words alone now: candidates may change too
    assert 0 < sum(r[3] for r in shown) < sum(r[3] for r in before)

    # New weights: every confidence moves.
    weights = {**first.to_dict()["weights"], "score": first.weights[0] + 1.0}
    Bundle.update_config(model, tagging={**first.to_dict(), "threshold": 0.3, "weights": weights})
    assert tag_json(db, "scan", "-q")["unchanged"] == 3
    with Library(db) as library:
        assert library.tag_rule.weights[0] == first.weights[0] + 1.0
        assert_tags_consistent(library)
    retagged = rows(db, stored)
    assert retagged != shown

    # A new level (the mean for the quantile): every word's level is computed again, then every photo re-tagged.
    Bundle.update_config(model, tagging={**first.to_dict(), "threshold": 0.3, "weights": weights, "quantile": None})
    assert tag_json(db, "scan", "-q")["unchanged"] == 3
    with Library(db) as library:
        assert library.tag_rule.quantile is None
        assert_tags_consistent(library)
        words = library.words()
        raw = scores(library.semantic_vectors().semantic, np.stack([w.vector for w in words]))
        np.testing.assert_allclose([w.mean for w in words], raw.mean(axis=0), atol=1e-6)
    assert rows(db, stored) != retagged
