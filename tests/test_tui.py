"""epsilon-tag tui through Textual's pilot: every flow, snapshots at 80x24, a 100,000-photo library."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from textual.widgets import DataTable, Input, Label, OptionList

from tagger.library import Library
from tagger.scan import ScanReport
from tagger.tui.app import EpsilonTagApp
from tagger.tui.screens import AddWordScreen, FirstRunScreen, HelpScreen
from tagger.tui.widgets import PhotoPanel
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
        with contextlib.suppress(WorkerCancelled):  # an exclusive worker superseded by a newer one: by design
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
        options = app.screen.query_one("#add-suggestions", OptionList)
        assert str(options.get_option_at_index(0).prompt) == "zeppelin"  # the spelling, to take with enter
        field = app.screen.query_one("#add-input", Input)
        field.value = "zeppelin"
        await settle(pilot)
        assert str(options.get_option_at_index(0).prompt) == "airship"  # photo words near it in meaning
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


# ---- the preview with real pixels, textual-image's own render path ---------------------


def two_halves(width: int = 300, height: int = 200):
    """A known picture: red on the left, blue on the right."""
    from PIL import Image

    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


@pytest.fixture
def known_picture(monkeypatch):
    """Every photo reads as two_halves(); the sizes the preview asks for are recorded."""
    import tagger.api

    asked: list[int] = []

    def picture(path, min_side):
        asked.append(min_side)
        return two_halves()

    monkeypatch.setattr(tagger.api, "picture", picture)
    return asked


async def _preview_pixels(app, pilot):
    """The preview's textual-image widget once the first photo is drawn, and the photo's fit."""
    from tagger.tui import pixels

    await settle(pilot)
    widget = app.query_one("#preview-pixels")
    assert widget.display and not app.query_one("#preview-image").display  # no half blocks beside it
    fitted = pixels.fit(two_halves(), *app.query_one("#preview").image_cells)
    return widget, fitted


async def test_kitty_terminals_get_the_photo_in_real_pixels(snapshot_library, known_picture, capfd):
    from textual.geometry import Region
    from textual_image.widget import TGPImage

    from tagger.tui import pixels

    app = EpsilonTagApp(snapshot_library, graphics="kitty")
    async with app.run_test(size=(100, 30)) as pilot:
        widget, fitted = await _preview_pixels(app, pilot)
        assert isinstance(widget, TGPImage)
        columns, rows = app.query_one("#preview").image_cells
        assert known_picture[-1] == pixels.min_side(columns, rows) > rows * 2  # read for pixels, not half blocks
        # The picture as fitted in the worker: whole cells, aspect kept, the known halves in place.
        cell_w, cell_h = pixels.cell_pixels()
        assert widget.image.size == (fitted.columns * cell_w, fitted.rows * cell_h)
        assert (widget.size.width, widget.size.height) == (fitted.columns, fitted.rows)
        assert (
            widget.image.getpixel((2, 2)) == (255, 0, 0) and widget.image.getpixel((widget.image.width - 3, 2))[2] > 250
        )
        strips = widget.render_lines(Region(0, 0, fitted.columns, fitted.rows))
        placeholders = "".join(segment.text for strip in strips for segment in strip)
        assert placeholders.count(chr(0x10EEEE)) == fitted.columns * fitted.rows  # Kitty's unicode placeholders
    sent = capfd.readouterr().out
    assert "\x1b_G" in sent and "f=100" in sent  # the PNG transmitted with Kitty's graphics protocol
    assert "a=p,i=" in sent and f"c={fitted.columns},r={fitted.rows}" in sent  # and placed on those cells


async def test_sixel_terminals_get_the_photo_as_sixels(snapshot_library, known_picture):
    from textual.geometry import Region
    from textual_image.widget import SixelImage

    app = EpsilonTagApp(snapshot_library, graphics="sixel")
    async with app.run_test(size=(100, 30)) as pilot:
        widget, fitted = await _preview_pixels(app, pilot)
        assert isinstance(widget, SixelImage)
        assert widget.image.size == two_halves().resize((fitted.columns * 10, fitted.rows * 20)).size
        drawn = widget.children[0]  # textual-image's own widget that writes the Sixel data
        strips = drawn.render_lines(Region(0, 0, drawn.size.width, drawn.size.height))
        data = "".join(segment.text for strip in strips for segment in strip)
        assert "\x1bP" in data and '"1;1;' in data and data.rstrip().count("\x1b\\") >= 1  # a Sixel image: DCS ... ST
        assert f";{fitted.columns * 10};{fitted.rows * 20}" in data  # at the fitted size in pixels


async def test_photos_passed_over_with_a_held_key_are_never_read_or_encoded(
    snapshot_library, known_picture, monkeypatch
):
    import tagger.tui.app

    monkeypatch.setattr(tagger.tui.app, "PIXELS_SETTLE_S", 0.5)  # far longer than a key press takes
    app = EpsilonTagApp(snapshot_library, graphics="kitty")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        first = len(known_picture)
        app.query_one("#photo-table").focus()
        await pilot.press("down", "down", "down")
        await settle(pilot)
        assert len(known_picture) == first + 1  # the photo the cursor rests on, not the two passed
        assert app.query_one("#preview-pixels").display


async def test_a_photo_that_cannot_be_read_is_said_in_words_even_with_pixels(snapshot_library, monkeypatch):
    import tagger.api

    shown = {"first": True}  # the first photo reads, the next is gone

    def picture(path, min_side):
        return two_halves() if shown.pop("first", False) else "not on disk now"

    monkeypatch.setattr(tagger.api, "picture", picture)
    app = EpsilonTagApp(snapshot_library, graphics="kitty")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        drawn = app.query_one("#preview-pixels")
        assert drawn.display and drawn.image is not None
        app.query_one("#photo-table").focus()
        await pilot.press("down")
        await settle(pilot)
        assert not drawn.display and drawn.image is None  # the last photo's pixels let go
        assert "not on disk now" in str(app.query_one("#preview-image").render())
        assert app.query_one("#preview-image").display


def test_pixels_only_where_the_terminal_was_asked(snapshot_library, monkeypatch):
    """run_test and snapshots never ask the terminal: half blocks. run() asks, unless headless."""
    from tagger.tui import pixels

    asked = []
    monkeypatch.setattr(pixels, "detect", lambda: asked.append(1) or "kitty")

    async def leave(pilot):
        await pilot.exit(None)

    app = EpsilonTagApp(snapshot_library)
    app.run(headless=True, auto_pilot=leave)
    assert not asked and app.protocol is None and not app.query("#preview-pixels")
    assert EpsilonTagApp(snapshot_library, graphics="sixel").protocol == "sixel"


def test_detecting_needs_a_terminal_and_can_be_overridden(monkeypatch):
    from tagger.tui import pixels

    monkeypatch.delenv(pixels.OVERRIDE, raising=False)
    assert pixels.detect() is None  # under pytest stdout is no terminal: nothing is asked
    for chosen, protocol in (("kitty", "kitty"), ("SIXEL", "sixel"), ("halfblock", None)):
        monkeypatch.setenv(pixels.OVERRIDE, chosen)
        assert pixels.detect() == protocol


@pytest.mark.parametrize(
    ("answers", "protocol"),
    [
        ("\x1b[?62;4;22c", "sixel"),  # its device attributes list 4: Sixel
        ("\x1b[?62;22c\x1b_Gi=1;OK\x1b\\", "kitty"),  # no Sixel, and an OK to Kitty's graphics query
        ("\x1b[?62;22c", None),  # neither (the graphics query goes unanswered): half blocks
    ],
    ids=["sixel", "kitty", "neither"],
)
def test_the_terminal_is_asked_which_protocol_it_speaks(answers, protocol, monkeypatch):
    """detect() in a process on a pseudo-terminal that answers as the terminal would."""
    from tagger.tui import pixels

    monkeypatch.delenv(pixels.OVERRIDE, raising=False)
    code = "from tagger.tui import pixels; import sys; sys.stderr.write(f'{pixels.detect()} {pixels.cell_pixels()}')"
    assert _on_a_terminal(code, answers, (24, 80, 80 * 9, 24 * 18)) == f"{protocol} (9, 18)"  # 9 x 18 px cells


def test_a_terminal_of_no_size_that_answers_nothing_gets_half_blocks_quietly(monkeypatch):
    """`script` and some CI shells give a terminal of 0 x 0 cells (textual-image divides by
    it) that answers no question (it logs each failure with a traceback)."""
    from tagger.tui import pixels

    monkeypatch.delenv(pixels.OVERRIDE, raising=False)
    code = "from tagger.tui import pixels; import sys; sys.stderr.write(f'[{pixels.detect()}]')"
    assert _on_a_terminal(code, "", (0, 0, 0, 0)) == "[None]"


def _on_a_terminal(code: str, answers: str, size: tuple[int, int, int, int]) -> str:
    """What ``code`` writes to stderr, run on a pseudo-terminal of ``size`` (rows, columns,
    width and height in pixels) that has ``answers`` typed ahead."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios
    import tty

    from tests.helpers import ROOT

    master, terminal = pty.openpty()
    try:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", *size))
        tty.setraw(terminal)
        os.write(master, answers.encode())  # typed ahead: the answers wait for the questions
        child = subprocess.run(
            [sys.executable, "-c", code], stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, cwd=ROOT, timeout=120
        )
    finally:
        os.close(terminal)
        os.close(master)
    return child.stderr.decode().strip()


def test_a_photo_fits_whole_cells_aspect_kept():
    from tagger.tui import pixels

    width, height = pixels.cell_pixels()
    wide = pixels.fit(two_halves(400, 100), 30, 20)  # limited by the width
    assert wide.columns == 30 and wide.image.size == (30 * width, wide.rows * height)
    assert abs(wide.columns * width / (wide.rows * height) - 4) < 4 * 0.25
    tall = pixels.fit(two_halves(100, 400), 30, 20)  # limited by the height
    assert tall.rows == 20 and tall.columns < 30
    assert pixels.min_side(30, 20) == min(30 * width, 20 * height)


def test_snapshot_preview_in_half_blocks(snap_compare, snapshot_library, known_picture):
    """Under tests the preview is half blocks (no terminal is asked): the known picture, red and blue."""
    assert snap_compare(EpsilonTagApp(snapshot_library), terminal_size=(80, 24), run_before=_quiet)


# ---- the help scrolls ------------------------------------------------------------------


async def test_the_help_scrolls_to_its_last_line_in_a_small_terminal(snapshot_library):
    from textual import events

    app = EpsilonTagApp(snapshot_library)
    async with app.run_test(size=(80, 20)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        box = app.screen.query_one("#help-box")
        last = box.query("MarkdownParagraph").last()
        assert "A scan running in another terminal" in str(last.source)
        assert box.max_scroll_y > 0 and not box.content_region.contains_region(last.region)  # taller than 20 rows
        assert app.focused is box and "escape" in str(box.border_subtitle)  # the way out stays in sight
        await pilot.press("end")
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y and box.content_region.contains_region(last.region)
        await pilot.press("home", "pagedown")
        await pilot.pause()
        assert box.scroll_y > 0
        await pilot.press("home")
        await pilot.pause()
        for _ in range(box.max_scroll_y):  # the mouse wheel, over the box
            await pilot._post_mouse_events([events.MouseScrollDown], box, offset=(3, 3))
        assert box.scroll_y == box.max_scroll_y and box.content_region.contains_region(last.region)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


# ---- o: the viewer's error names the viewer -------------------------------------------


async def _open_first(db, opener) -> tuple[list[str], str]:
    """Press o on the first photo: what the opener was given and the notification."""
    app = EpsilonTagApp(db, opener=opener)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("tab", "o")
        await pilot.pause()
        path = app.query_one("#photos").current().path
        return path, "\n".join(n.message for n in app._notifications)


async def test_a_missing_viewer_is_named_not_the_photo(scanned):
    def no_viewer(path):  # what Popen raises when xdg-open is not installed
        raise FileNotFoundError(2, "No such file or directory", "xdg-open")

    path, said = await _open_first(scanned / "lib.db", no_viewer)
    assert said.startswith("No program to open photos with: xdg-open is not installed (install xdg-utils")
    assert "Cannot open" not in said and "not there now" not in said and path in said

    def refused(path):
        raise PermissionError(13, "Permission denied")

    path, said = await _open_first(scanned / "lib.db", refused)
    assert said == f"Cannot open {path}: Permission denied"


async def test_the_system_viewer_missing_from_the_path_is_named(scanned, tmp_path, monkeypatch):
    from tagger.tui.viewer import open_in_viewer, viewer_command

    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the viewer program
    path, said = await _open_first(scanned / "lib.db", open_in_viewer)
    program = viewer_command(path)[0]
    assert said.startswith(f"No program to open photos with: {program} is not installed")


async def test_a_photo_that_is_gone_is_said_to_be_gone(snapshot_library):
    opened: list[str] = []
    path, said = await _open_first(snapshot_library, opened.append)  # fake paths: no photo on disk
    assert not opened  # a viewer started in the background would fail unseen
    assert said.startswith(f"{path} is not there now") and "No program" not in said


def test_the_preview_lists_the_photographers_own_keywords_apart():
    from tagger.api import PhotoView
    from tagger.tui.widgets import describe

    row = {"path": "/p/a.jpg", "status": "ok", "taken_at": "2021-06-30T10:00:00", "camera": "X100V"}
    tags = [{"word": "beach", "score": 0.71, "kind": "seen"}]
    shown = describe(PhotoView(row, tags, ["Holiday|Rome", "grandma"])).plain.splitlines()
    own = "own    Holiday|Rome, grandma"
    assert shown[1:] == ["taken  2021-06-30T10:00:00", "camera X100V", own, "0.71 \u2022 beach"]
    assert "own" not in describe(PhotoView(row, tags, [])).plain


@contextlib.asynccontextmanager
async def on_first_tags_photos(scanned, tmp_path):
    """A copy of the library open in the app, on the photo list of its first tag: (app,
    pilot, the copy's path, the tag)."""
    db = copy_library(scanned / "lib.db", tmp_path)
    app = EpsilonTagApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        word = cells(app.query_one("#tag-table", DataTable), 2)[0]
        await pilot.press("enter", "tab")  # the first tag's photos, then the photo list
        await settle(pilot)
        yield app, pilot, db, word


@pytest.mark.slow  # the word is scored again over the library
async def test_plus_and_minus_teach_the_lists_word_and_m_finds_photos_like_one(scanned, tmp_path):
    async with on_first_tags_photos(scanned, tmp_path) as (app, pilot, db, word):
        first = app.query_one("#photos", PhotoPanel).current()
        await pilot.press("m")
        await settle(pilot)
        assert app.query_one("#photos").border_title.startswith("like ")
        alike = [h.photo_id for h in app.query_one("#photos", PhotoPanel).hits]
        assert first.photo_id not in alike and len(alike) == 5
        await pilot.press("plus")  # a list of photos like one has no word to teach: told, nothing written
        await settle(pilot)
        with Library(db) as library:
            assert not library.words_with_feedback()
        app.query_one("#tag-table").focus()
        await pilot.press("down", "up")  # the first tag chosen again: its photos
        await settle(pilot)
        await pilot.press("tab")
        await settle(pilot)
        assert app.query_one("#photos").border_title.startswith(word)
        await pilot.press("minus")
        await settle(pilot)
        with Library(db) as library:
            assert list(library.feedback(word)[1]) == [first.photo_id]


@pytest.mark.slow  # the word is scored again over the library, three times
async def test_teaching_keeps_the_lists_place_and_a_failed_search_teaches_nothing(scanned, tmp_path):
    async with on_first_tags_photos(scanned, tmp_path) as (app, pilot, db, word):
        await pilot.press("down")  # the second of them
        await settle(pilot)
        panel = app.query_one("#photos", PhotoPanel)
        rejected, following = panel.hits[1], panel.hits[2]
        await pilot.press("minus")  # it leaves the list: the cursor is on the photo after it
        await settle(pilot)
        assert rejected.photo_id not in [h.photo_id for h in panel.hits]
        assert panel.current().photo_id == following.photo_id and panel.border_title.startswith(word)
        await pilot.press("plus")  # confirmed where the cursor is, and the cursor stays there
        await settle(pilot)
        assert panel.current().photo_id == following.photo_id
        await pilot.press("slash", *"zqxjwvk", "enter")  # no such word: the list and its word stay
        await settle(pilot)
        assert panel.border_title.startswith(word)
        app.query_one("#photo-table").focus()
        await pilot.press("plus")
        await settle(pilot)
        with Library(db) as library:
            assert "zqxjwvk" not in library.words_with_feedback()
            assert list(library.feedback(word)[0]) == [following.photo_id]
        await pilot.press("slash", *word, "enter")  # a one-word search: teaching it keeps the search's list
        await settle(pilot)
        await pilot.press("down", "plus")
        await settle(pilot)
        assert panel.border_title.startswith(f"search: {word}")
