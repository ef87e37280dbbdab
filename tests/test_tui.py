"""epsilon-tag tui through Textual's pilot: every flow, snapshots at 80x24, a 100,000-photo library."""

from __future__ import annotations

import sqlite3
from contextlib import suppress

import pytest
from textual.widgets import DataTable, Input, Label

from tagger.library import Library
from tagger.scan import ScanReport
from tagger.tui.app import EpsilonTagApp
from tagger.tui.screens import AddWordScreen, FirstRunScreen, HelpScreen
from tests.photo_factory import make_library, make_photo
from tests.tagging import copy_library, synthetic_library, tag, tag_json
from trainer.embeddings import load_embeddings


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, candidates_model):
    """Six generated photos scanned with the default model, every candidate tag shown
    (copied per test that writes; a rescan keeps the library's model)."""
    root = tmp_path_factory.mktemp("tui")
    make_library(root / "photos", 6)
    tag(root / "lib.db", "scan", root / "photos", "-q", "--model", candidates_model)
    return root


async def settle(pilot, rounds: int = 3):
    """Until the app is quiet ``rounds`` times in a row: no worker pending or running, every
    event handled. A worker's result starts the next one (tags -> photos -> preview), so a
    fixed number of waits caught that chain half way when the machine was busy (a snapshot
    with the photo list's columns not yet sized)."""
    from textual.worker import WorkerCancelled, WorkerState

    quiet = 0
    for _ in range(400):  # 20 s at most
        with suppress(WorkerCancelled):  # an exclusive worker superseded by a newer one: by design
            await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1
        if quiet >= rounds:
            return


def cells(table: DataTable, column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def db_count(db, word: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT count(*) FROM tags t JOIN words w ON w.id = t.word_id WHERE w.word = ?", [word]
        ).fetchone()[0]


async def test_select_a_tag_shows_its_photos_and_a_preview(scanned):
    app = EpsilonTagApp(scanned / "lib.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        tags = app.query_one("#tag-table", DataTable)
        counts = [int(c) for c in cells(tags, 1)]
        assert counts == sorted(counts, reverse=True) and counts[0] > 0  # by count, most first
        await pilot.press("down")
        await settle(pilot)
        word = cells(tags, 2)[1]
        photos = app.query_one("#photo-table", DataTable)
        assert photos.row_count == counts[1] == db_count(scanned / "lib.db", word)
        assert app.query_one("#photos").border_title.startswith(word)
        info = str(app.query_one("#preview-info").render())
        assert str(scanned / "photos") in info and word in info  # its path and its tags
        await pilot.press("s")  # sort by name
        assert cells(tags, 2) == sorted(cells(tags, 2))
        filter_box = app.query_one("#tag-filter", Input)
        filter_box.value = "sky"
        await pilot.pause()
        assert all("sky" in w for w in cells(tags, 2)) and tags.row_count >= 1


async def test_search_ranks_like_the_cli_and_zero_shot_words_work(scanned):
    app = EpsilonTagApp(scanned / "lib.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"zeppelin", "enter")  # not in the vocabulary
        await settle(pilot)
        photos = app.query_one("#photo-table", DataTable)
        assert photos.row_count == 6
        names = cells(photos, 1)
        cli = tag(scanned / "lib.db", "search", "zeppelin").split()
        assert names == [p.rsplit("/", 1)[-1] for p in cli]
        await pilot.press("slash")
        app.query_one("#search", Input).value = "zepelin"
        await pilot.press("enter")
        await settle(pilot)
        assert photos.row_count == 6  # the list stays; the error is a notification
        assert any("Did you mean" in n.message for n in app._notifications)


async def test_a_search_counts_its_matches_and_says_when_nothing_matches_well(scanned, tmp_path):
    from dataclasses import replace

    from tagger.library import Library
    from tagger.vocabulary import retag

    db = copy_library(scanned / "lib.db", tmp_path)
    with Library(db) as library:  # a floor no photo of this library reaches
        rule = library.tag_rule
        library.set_meta(tag_rule=replace(rule, threshold=0.99, fallback=0.98).to_dict())
        retag(library)
    app = EpsilonTagApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"zeppelin", "enter")
        await settle(pilot)
        panel = app.query_one("#photos")
        assert app.query_one("#photo-table", DataTable).row_count == 0
        assert panel.border_title.endswith("0 matches")
        assert any("No photo matches this well" in n.message for n in app._notifications)
        app.query_one("#tag-table", DataTable).focus()
        await pilot.press("down")  # a tag's photos are counted as photos, not matches
        await settle(pilot)
        assert panel.border_title.endswith(" photos")


async def test_add_and_remove_a_word(scanned, tmp_path):
    db = copy_library(scanned / "lib.db", tmp_path)
    app = EpsilonTagApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        assert isinstance(app.screen, AddWordScreen)
        await pilot.press(*"zepelin", "enter")
        await settle(pilot)
        assert "Did you mean" in str(app.screen.query_one("#add-error", Label).render())
        field = app.screen.query_one("#add-input", Input)
        field.value = "lighthouse keeper"
        await settle(pilot)
        assert app.screen.query_one("#add-suggestions").option_count > 0  # neighbours as suggestions
        await pilot.press("enter")
        await settle(pilot, 5)
        assert not isinstance(app.screen, AddWordScreen)
        tags = app.query_one("#tag-table", DataTable)
        row = cells(tags, 2).index("lighthouse keeper")
        shown = int(cells(tags, 1)[row])
        assert shown == db_count(db, "lighthouse keeper")
        assert f"lighthouse keeper: {shown} photos" in str(app.query_one("#status").render())

        tags.move_cursor(row=row)
        await pilot.press("d", "y")
        await settle(pilot, 5)
        assert "lighthouse keeper" not in cells(tags, 2)
        assert db_count(db, "lighthouse keeper") == 0
        with Library(db) as library:
            assert "lighthouse keeper" not in {w.word for w in library.words()}


@pytest.mark.slow  # a rescan loads the model
async def test_help_open_and_rescan(scanned, tmp_path):
    db = copy_library(scanned / "lib.db", tmp_path)
    opened = []
    app = EpsilonTagApp(db, opener=opened.append)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("tab", "o")  # the photo list, then open its first photo
        assert len(opened) == 1 and opened[0].startswith(str(scanned / "photos"))
        make_photo(scanned / "photos" / "new.jpg", seed=77)
        try:
            await pilot.press("r")
            await settle(pilot, 8)
            for _ in range(100):  # the model loads in the worker
                if "scan done" in str(app.query_one("#status").render()):
                    break
                await pilot.pause(0.1)
            assert "1 new" in str(app.query_one("#status").render())
        finally:
            (scanned / "photos" / "new.jpg").unlink()


async def rescan(pilot) -> str:
    """Press r and wait for the scan's status line."""
    await pilot.press("r")
    await settle(pilot, 8)
    for _ in range(200):  # the model loads in the worker
        status = str(pilot.app.query_one("#status").render())
        if "scan done" in status or "scan failed" in status:
            return status
        await pilot.pause(0.1)
    raise AssertionError(f"no scan ended: {status}")


@pytest.mark.slow  # two scans load the model
async def test_a_rescan_keeps_the_librarys_model_and_skips_an_unplugged_folder(tmp_path, candidates_model):
    """The TUI's `r` is a bare `epsilon-tag scan`: the library's own model (not the shipped
    one), and a folder that is not there now is skipped, its photos kept, as the CLI does."""
    make_library(tmp_path / "A", 2)
    make_library(tmp_path / "B", 2, start_seed=50)
    db = tmp_path / "lib.db"
    tag(db, "scan", tmp_path / "A", tmp_path / "B", "-q", "--model", candidates_model)
    with Library(db) as library:
        before = library.model_id, library.get_meta("model_path"), library.tag_rule
    (tmp_path / "B").rename(tmp_path / "B-unplugged")
    (tmp_path / "cli").mkdir()
    cli_db = copy_library(db, tmp_path / "cli")  # the same library, scanned by the CLI
    app = EpsilonTagApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        status = await rescan(pilot)
    cli = tag_json(cli_db, "scan", "-q")
    assert status == f"scan done: {ScanReport(**cli).summary()}"
    assert "1 of its folders not there now (skipped)" in status and cli["skipped_roots"] == [str(tmp_path / "B")]
    with Library(db) as library:
        assert (library.model_id, library.get_meta("model_path"), library.tag_rule) == before
        assert before[1] == str(candidates_model)
        assert library.counts()["missing"] == 0  # the unplugged folder's photos are kept as they were


async def test_reads_while_another_process_writes(scanned, tmp_path):
    db = copy_library(scanned / "lib.db", tmp_path)
    app = EpsilonTagApp(db, refresh_seconds=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        tags = app.query_one("#tag-table", DataTable)
        assert "zeppelin" not in cells(tags, 2)
        from tagger.vocabulary import WordSource, add_words

        with Library(db) as other:  # another connection, as a CLI in another terminal
            add_words(other, ["zeppelin"], WordSource.of_library(other))
        for _ in range(50):
            await pilot.pause(0.1)
            if "zeppelin" in cells(tags, 2):
                break
        assert "zeppelin" in cells(tags, 2)


@pytest.mark.slow  # the first scan loads the model
async def test_first_run_scans_a_folder(tmp_path, candidates_model, monkeypatch):
    import tagger.engine

    monkeypatch.setattr(tagger.engine, "default_model", lambda: candidates_model)  # blobs show candidates
    make_library(tmp_path / "photos", 2)
    app = EpsilonTagApp(tmp_path / "new.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, FirstRunScreen)
        await pilot.press(*"/no/such/folder", "enter")
        assert "No such folder" in str(app.screen.query_one("#first-error", Label).render())
        app.screen.query_one("#first-folder", Input).value = str(tmp_path / "photos")
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.1)
            if app.query_one("#tag-table", DataTable).row_count:
                break
        await settle(pilot)
        assert not isinstance(app.screen, FirstRunScreen)
        tags = app.query_one("#tag-table", DataTable)
        assert tags.row_count > 100
        # The first tag's photos: those that keep it (by the model's tag rule), 1 or both.
        word = cells(tags, 2)[0].lstrip("•◦ ").strip()
        with Library(tmp_path / "new.db") as library:
            keeping = len(library.word_photos({w.word: w.id for w in library.words()}[word])[0])
        assert app.query_one("#photo-table", DataTable).row_count == keeping >= 1


WORDS = "sky water tree dog cat boat car beach snow city mountain flower bird horse road bridge".split()


def words(names=WORDS):
    glove = load_embeddings()
    return [(w, glove.vector(w)) for w in names]


@pytest.fixture(scope="module")
def hundred_thousand(tmp_path_factory):
    db = tmp_path_factory.mktemp("big") / "big.db"
    synthetic_library(db, 100_000, words(), k=3, batch=20_000).close()
    return db


@pytest.mark.slow
async def test_a_100000_photo_library_loads_rows_a_page_at_a_time(hundred_thousand, monkeypatch):
    asked = []
    original = Library.photos

    def spy(self, ids):
        asked.append(len(ids))
        return original(self, ids)

    monkeypatch.setattr(Library, "photos", spy)
    app = EpsilonTagApp(hundred_thousand)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"beach", "enter")
        await settle(pilot)
        photos = app.query_one("#photo-table", DataTable)
        assert "100,000 photos" in app.query_one("#photos").border_title
        assert photos.row_count == 100 and max(asked) <= 100
        photos.move_cursor(row=95)  # near the end of what is loaded: the next page comes
        await settle(pilot)
        assert photos.row_count == 200 and max(asked) <= 100


async def test_names_are_whole_in_the_first_frame_drawn_after_a_page_comes(snapshot_library):
    """DataTable measures new rows only once idle: a frame drawn before then stayed cached with
    the names cut to the header's width (a snapshot under load caught it)."""
    from dataclasses import replace

    from tagger.tui.widgets import Page, PhotoPanel

    app = EpsilonTagApp(snapshot_library)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.query_one(PhotoPanel)
        name = "a-photo-with-a-rather-long-name.jpg"
        panel.append(Page([replace(panel.hits[0], path=f"/photos/{name}")], {}))  # no await: not idle yet
        width = panel.table.columns["photo"].get_render_width(panel.table)
        assert width >= len(name), width
        await settle(pilot)
        assert panel.table.columns["photo"].get_render_width(panel.table) == width


# Snapshots at 80x24: a library of fixed fake paths (the photos do not exist, so the
# preview says so), so the pictures are the same on every machine.
@pytest.fixture(scope="module")
def snapshot_library(tmp_path_factory):
    db = tmp_path_factory.mktemp("snap") / "snap.db"
    synthetic_library(db, 40, words(), k=5).close()
    return db


async def _quiet(pilot):
    for field in pilot.app.query(Input):
        field.cursor_blink = False
    await settle(pilot)


def test_snapshot_main_screen(snap_compare, snapshot_library):
    assert snap_compare(EpsilonTagApp(snapshot_library), terminal_size=(80, 24), run_before=_quiet)


def test_snapshot_add_word_dialog(snap_compare, snapshot_library):
    async def open_dialog(pilot):
        await settle(pilot)
        await pilot.press("a", *"zeppelin")
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await settle(pilot)

    assert snap_compare(EpsilonTagApp(snapshot_library), terminal_size=(80, 24), run_before=open_dialog)


def test_snapshot_empty_library(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the screen shows the library's path: keep it the same everywhere

    async def quiet(pilot):
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(EpsilonTagApp("no-library-yet.db"), terminal_size=(80, 24), run_before=quiet)


def test_half_blocks_carry_two_pixels_per_cell_upright(tmp_path):
    from PIL import Image

    from tagger.images import open_photo
    from tagger.tui.halfblock import UPPER_HALF, halfblock

    image = Image.new("RGB", (2, 4))
    image.putdata([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9), (1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12)])
    text = halfblock(image, 2, 2)
    assert text.plain == UPPER_HALF * 2 + "\n" + UPPER_HALF * 2
    styles = [span.style for span in text.spans]
    assert (styles[0].color.triplet, styles[0].bgcolor.triplet) == ((255, 0, 0), (0, 0, 255))  # x 0: rows 0 and 1
    assert (styles[3].color.triplet, styles[3].bgcolor.triplet) == ((4, 5, 6), (10, 11, 12))  # x 1: rows 2 and 3
    # A photo stored sideways (EXIF orientation 6) is drawn upright: taller than wide.
    sideways = make_photo(tmp_path / "side.jpg", size=(320, 240), orientation=6)
    drawn = halfblock(open_photo(sideways, 64), 40, 40).plain.split("\n")
    assert len(drawn) * 2 > len(drawn[0])


@pytest.mark.slow
async def test_a_bug_in_a_worker_ends_the_app_as_a_bug_and_a_failed_rescan_does_not(scanned, tmp_path, monkeypatch):
    from textual.worker import WorkerFailed

    import tagger.api
    from tagger.cli import app, bug
    from trainer.errors import InputError

    db = copy_library(scanned / "lib.db", tmp_path)

    def told(*args, **kwargs):
        raise InputError("None of this library's folders is there now")

    monkeypatch.setattr(tagger.api, "scan", told)
    tui = EpsilonTagApp(db)
    async with tui.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("r")  # rescan: the error is a status line, the app goes on
        await settle(pilot)
        assert "scan failed: None of this library's folders" in str(tui.query_one("#status").render())
        assert tui.is_running and not tui.scanning

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(tagger.api, "word_table", broken)
    crashed = EpsilonTagApp(db)
    with pytest.raises(WorkerFailed, match="broadcast"):  # the pilot re-raises what ended the app
        async with crashed.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.2)
    assert crashed.return_code == 1  # Textual's crash: the traceback, as the app ends

    # `epsilon-tag tui` says which of the two it was, and exits with the app's status.
    from typer.testing import CliRunner

    for code, says_bug in ((1, True), (2, False), (0, False)):

        def run(self, code=code):
            self._return_code = code

        monkeypatch.setattr(EpsilonTagApp, "run", run)
        result = CliRunner().invoke(app, ["tui", "--db", str(db)])
        assert result.exit_code == code and (bug("above") in result.stderr) == says_bug
