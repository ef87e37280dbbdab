"""The Textual app: wires the panels to the library, the search and the vocabulary.

Every read of the library runs in a worker thread (under one lock, on the app's own
connection) and every write (adding or removing a word, a rescan) on a connection of its
own, so the screen never waits on SQLite. The app holds no logic the CLI lacks: it calls the
operations of ``tagger.api``, as the CLI does, and draws what they return.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input, ProgressBar, Static
from textual.worker import get_current_worker

from .. import api
from ..api import Library, LibraryError, Ranking, ScanOptions, UserError, WordSource
from . import pixels
from .halfblock import halfblock
from .screens import AddWordScreen, ConfirmScreen, FirstRunScreen, HelpScreen
from .viewer import cannot_open, open_in_viewer, photo_gone
from .widgets import Page, PhotoPanel, Preview, TagPanel, describe

W = TypeVar("W")
AUTO = "auto"  # ask the terminal which pixel protocol it speaks
PIXELS_SETTLE_S = 0.06  # a key held repeats every ~30 ms: a photo shown this long is not passed over


class EpsilonTagApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "epsilon-tag"
    BINDINGS: ClassVar = [
        Binding("slash", "search", "Search"),
        Binding("a", "add_word", "Add word"),
        Binding("d", "remove_word", "Remove"),
        Binding("s", "sort", "Sort"),
        Binding("o", "open_photo", "Open"),
        # Listed in the help (?), not the footer: at 80 columns it has room for the rest only.
        Binding("plus", "teach(1)", "Shows it", show=False),
        Binding("minus", "teach(-1)", "Does not", show=False),
        Binding("m", "more_like", "Like this", show=False),
        Binding("r", "rescan", "Rescan"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        db: str | Path,
        *,
        opener: Callable[[str], None] = open_in_viewer,
        refresh_seconds: float = 3.0,
        graphics: str | None = AUTO,
    ) -> None:
        """``graphics``: "kitty" or "sixel" draws the preview with real pixels, None with half
        blocks; AUTO asks the terminal when ``run`` starts the app in one (``run_test`` and the
        snapshot tests never ask: half blocks, the same on every machine)."""
        super().__init__()
        self.db_path = Path(db).expanduser()
        self.opener = opener
        self.graphics = graphics
        self.refresh_seconds = refresh_seconds
        self.library: Library | None = None
        self.source: WordSource | None = None
        self.lock = threading.Lock()  # one reader at a time on the app's connection
        self.seen_version: int | None = None
        self.scanning = False
        self.list_word: str | None = None  # the word of the photo list, which + and - teach
        self.listed: tuple[str, Callable[[], Ranking], str | None] | None = None  # how the list was read

    def run(self, *, headless: bool = False, **kwargs: Any) -> Any:
        if self.graphics == AUTO:  # now or never: once started, Textual reads the terminal's answers
            self.graphics = None if headless else pixels.detect()
        elif self.protocol is not None and pixels.load() is None:  # chosen, but textual-image is missing
            self.graphics = None
        return super().run(headless=headless, **kwargs)

    @property
    def protocol(self) -> str | None:
        """The pixel protocol the preview draws with, None for half blocks."""
        return self.graphics if self.graphics in pixels.PROTOCOLS else None

    # ---- layout ---------------------------------------------------------------

    @property
    def opened(self) -> Library:
        """The library; everything that reads it runs once on_mount has opened it."""
        if self.library is None:
            raise LibraryError(f"No library is open ({self.db_path})")
        return self.library

    @property
    def words(self) -> WordSource:
        """The library's word vectors, set when the library opens."""
        if self.source is None:
            raise LibraryError(f"No library is open ({self.db_path})")
        return self.source

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ search any words, e.g. boat or beach sunset", id="search")
        with Horizontal(id="panels"):
            yield TagPanel(id="tags")
            yield PhotoPanel(id="photos")
            yield Preview(id="preview", protocol=self.protocol)
        yield ProgressBar(id="progress", show_eta=False)
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#photos", PhotoPanel).border_title = "Photos"
        self.query_one("#preview", Preview).border_title = "Preview"
        try:
            self.library = api.open_library(self.db_path)
        except LibraryError as exc:
            if self.db_path.exists():  # broken, foreign or newer: say so, never offer to start afresh
                self.exit(return_code=2, message=f"Error: {exc}")
                return
            self.library = None
        if self.library is None or not api.is_tagged(self.library):  # nothing was ever tagged
            self.push_screen(FirstRunScreen(str(self.db_path)), self._first_folder)
            return
        self._start()

    def _start(self) -> None:
        self.source = api.word_source(self.opened)
        self.seen_version = api.version(self.opened)
        self.load_tags()
        self.query_one("#tag-table").focus()
        self.set_interval(self.refresh_seconds, self.watch_library)

    def status(self, message: str) -> None:
        self.query_one("#status", Static).update(message)

    # ---- reading ----------------------------------------------------------------

    @work(thread=True, exclusive=True, group="tags")
    def load_tags(self, select: str | None = None) -> None:
        with self.lock:
            words = api.word_table(self.opened)
            self.source = api.word_source(self.opened)
        self.call_from_thread(self._show_tags, words, select)

    def _show_tags(self, words: list[dict], select: str | None) -> None:
        panel = self._main("#tags", TagPanel)
        if panel is None:
            return
        panel.show(words, select or panel.selected_word)
        if not words:
            self.status("The vocabulary is empty: press a to add a word.")
        self.warm_up()

    @work(thread=True, exclusive=True, group="warm-up")
    def warm_up(self) -> None:
        """Once the screen is up: load the word vectors and read every photo's S into
        memory, so that the first search or added word does not wait for them."""
        with self.lock:
            api.warm_up(self.opened, self.words)

    # Workers get the widgets they fill from the app's thread, and hand results back
    # through _deliver: a worker thread never looks a widget up (the screen may be gone).

    def _deliver(self, method: Callable, *args: object) -> None:
        """On the app's thread: call a widget's method unless the widget has left the screen."""
        owner = getattr(method, "__self__", None)  # the widget the method is bound to
        if owner is not None and owner.is_attached:
            method(*args)

    def _main(self, selector: str, kind: type[W]) -> W | None:
        """A panel of the main screen, or None once the app is closing and it is gone
        (a message sent just before may still be handled)."""
        found = self.query(selector)
        return found.first(kind) if found else None

    def on_tag_panel_chosen(self, message: TagPanel.Chosen) -> None:
        word, panel = message.word, self._main("#photos", PhotoPanel)
        if panel is not None:
            self.load_photos(panel, word["word"], lambda: api.photos_of_word(self.opened, word["id"]), word["word"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "search":
            return
        query = event.value.strip()
        if query:
            self.load_photos(
                self.query_one("#photos", PhotoPanel),
                f"search: {query}",
                lambda: api.search(self.opened, query, limit=0, source=self.source).ranking,
                query if len(query.split()) == 1 and not query.startswith("-") else None,
            )
            self.query_one("#photo-table").focus()

    @work(thread=True, exclusive=True, group="photos")
    def load_photos(self, panel: PhotoPanel, title: str, ranked: Callable[[], Ranking], word: str | None) -> None:
        """The photo list read by ``ranked``; ``word``: what + and - on it teach (None: nothing).
        A list that cannot be read leaves the one on screen, and what its keys teach, as it was."""
        try:
            with self.lock:
                ranking = ranked()
                first = self._page(ranking, 0)
        except (UserError, sqlite3.DatabaseError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
            return
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._listed, panel, (title, ranked, word), ranking, first)
            if not len(ranking) and ranking.best is not None:
                self.call_from_thread(
                    self.notify,
                    f"No photo matches this well: the best confidence is {ranking.best:.2f}, and a photo is "
                    f"listed from {ranking.floor or 0:.2f}." + ranking.did_you_mean(),
                    timeout=8,
                )

    def _listed(
        self, panel: PhotoPanel, listed: tuple[str, Callable[[], Ranking], str | None], ranking: Ranking, first: Page
    ) -> None:
        if panel.is_attached:
            self.listed, self.list_word = listed, listed[2]
            panel.start(listed[0], ranking, first)

    def reload_photos(self) -> None:
        """The list on screen read again (its scores changed), keeping its place."""
        panel = self._main("#photos", PhotoPanel)
        if panel is not None and self.listed is not None:
            self.load_photos(panel, *self.listed)

    def _page(self, ranking: Ranking, start: int) -> Page:
        return Page(*api.page(self.opened, ranking, start, PhotoPanel.PAGE))

    def on_photo_panel_need_more(self, _: PhotoPanel.NeedMore) -> None:
        panel = self._main("#photos", PhotoPanel)
        if panel is not None:
            self.load_more(panel, panel.ranking, len(panel.hits))

    @work(thread=True, exclusive=True, group="more")
    def load_more(self, panel: PhotoPanel, ranking: Ranking, start: int) -> None:
        with self.lock:
            page = self._page(ranking, start)
        self.call_from_thread(self._append, panel, ranking, start, page)

    def _append(self, panel: PhotoPanel, ranking: Ranking, start: int, page: Page) -> None:
        # Only if the list is still the one the page was read for, and still as long.
        if panel.ranking is ranking and len(panel.hits) == start:
            self._deliver(panel.append, page)

    def on_photo_panel_highlighted(self, message: PhotoPanel.Highlighted) -> None:
        preview = self._main("#preview", Preview)
        if preview is not None:
            self.load_preview(preview, preview.image_cells, message.hit.photo_id)

    @work(thread=True, exclusive=True, group="preview")
    def load_preview(self, preview: Preview, cells: tuple[int, int], photo_id: int) -> None:
        if self.protocol is not None:
            # Real pixels are encoded on the screen's thread (a Sixel palette: ~0.1 s a photo):
            # with an arrow key held, only the photo the cursor rests on gets that far.
            time.sleep(PIXELS_SETTLE_S)
            if get_current_worker().is_cancelled:
                return
        with self.lock:
            view = api.photo(self.opened, photo_id)
        if view is None:
            return
        picture = self._picture(view.row["path"], *cells)
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._deliver, preview.show, picture, describe(view))

    def _picture(self, path: str, columns: int, rows: int) -> Text | pixels.Pixels:
        """In the worker: the photo read at the scale it is drawn, fitted to the cells."""
        pixel_protocol = self.protocol is not None
        image = api.picture(path, pixels.min_side(columns, rows) if pixel_protocol else rows * 2)
        if isinstance(image, str):
            return Text(f"({image})", style="italic")
        return pixels.fit(image, columns, rows) if pixel_protocol else halfblock(image, columns, rows)

    def watch_library(self) -> None:
        """A scan in another process commits: counts and tags change under us."""
        if self.library is None or self.scanning or not self.lock.acquire(blocking=False):
            return  # a worker holds the connection: look again next time
        try:
            version = api.version(self.library)
        finally:
            self.lock.release()
        if version != self.seen_version:
            self.seen_version = version
            self.load_tags()

    # ---- actions ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # The main screen's keys do nothing (and are not shown) while another screen is on top.
        if action in ("quit", "help"):
            return True
        return len(self.screen_stack) == 1

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_sort(self) -> None:
        self.status(f"tags sorted by {self.query_one('#tags', TagPanel).toggle_sort()}")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_open_photo(self) -> None:
        hit = self.query_one("#photos", PhotoPanel).current()
        if hit is None:
            return
        # Checked first: a viewer started in the background on a missing photo fails unseen.
        if not os.path.exists(hit.path):
            self.notify(photo_gone(hit.path), severity="error", timeout=8)
            return
        try:
            self.opener(hit.path)
        except OSError as exc:
            self.notify(cannot_open(hit.path, exc), severity="error", timeout=8)

    def action_teach(self, state: int) -> None:
        """+ / -: the selected photo shows the list's word (a tag, or a one-word search), or not."""
        hit = self.query_one("#photos", PhotoPanel).current()
        if self.list_word is None:
            self.notify("Choose a tag (or search one word), then + or - on a photo of its list.", timeout=6)
            return
        if hit is None:
            self.notify(f"No photo in the list of {self.list_word!r}: + and - tag the photo the cursor is on.")
            return
        self.status(f"{'confirming' if state > 0 else 'rejecting'} {self.list_word!r}: scoring every photo...")
        self.teach(hit.photo_id, self.list_word, state)

    @work(thread=True, exclusive=True, group="vocabulary")
    def teach(self, photo_id: int, word: str, state: int) -> None:
        try:
            with self.lock:
                change = {"add": [word]} if state > 0 else {"remove": [word]}
                taught = api.tag(self.opened, [photo_id], **change, source=self.words)[0]
        except (UserError, sqlite3.DatabaseError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
            return
        shown = api.counted(taught.count, "photo")
        message = f"{word}: {taught.confirmed} confirmed, {taught.rejected} rejected; shown on {shown}"
        self.call_from_thread(self.status, message)
        self.call_from_thread(self.load_tags)  # new counts; the tag chosen stays
        self.call_from_thread(self.reload_photos)

    def action_more_like(self) -> None:
        hit = self.query_one("#photos", PhotoPanel).current()
        if hit is not None:
            name = Path(hit.path).name
            self.load_photos(
                self.query_one("#photos", PhotoPanel),
                f"like {name}",
                lambda: api.like(self.opened, hit.photo_id, limit=0).ranking,
                None,
            )

    def action_add_word(self) -> None:
        if self.source is None:
            return
        vocabulary = {w["word"] for w in self.query_one("#tags", TagPanel).words}
        self.push_screen(AddWordScreen(self.source, vocabulary), self._add_chosen)

    def _add_chosen(self, word: str | None) -> None:
        if word:
            self.status(f"adding {word!r}: scoring every photo...")
            self.change_vocabulary(word, add=True)

    def action_remove_word(self) -> None:
        chosen = self.query_one("#tags", TagPanel).selected()
        if chosen is None:
            return
        question = f"Remove {chosen['word']!r} from the vocabulary and from its {chosen['count']} photos?"
        self.push_screen(ConfirmScreen(question), self._remove_if_confirmed(chosen["word"]))

    def _remove_if_confirmed(self, word: str) -> Callable[[bool | None], None]:
        def answered(yes: bool | None) -> None:
            if yes:
                self.change_vocabulary(word, add=False)

        return answered

    @work(thread=True, exclusive=True, group="vocabulary")
    def change_vocabulary(self, word: str, add: bool) -> None:
        # On the app's own connection: the stored vectors it already holds are re-scored
        # without being read again.
        try:
            with self.lock:
                library = self.opened
                if add:
                    count = api.add_words(library, [word], source=self.words)[0].count
                    message = f"{word}: {api.counted(count, 'photo')} show it"
                else:
                    count = api.remove_words(library, [word])[word]
                    message = f"{word} removed (from {api.counted(count, 'photo')})"
        except (UserError, sqlite3.DatabaseError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
            return
        self.call_from_thread(self.status, message)
        self.call_from_thread(self.notify, message)
        self.call_from_thread(self.load_tags, word if add else None)

    def action_rescan(self) -> None:
        if self.library is None or self.scanning:
            return
        if not api.folders(self.library):
            self.notify("This library has no folders yet: `epsilon-tag scan FOLDER`.", severity="warning")
            return
        # No folders given: the library's own, with its own model, as a bare `epsilon-tag scan`.
        self.rescan(self.query_one("#progress", ProgressBar), [])

    def _first_folder(self, folder: str | None) -> None:
        if folder:
            self.rescan(self.query_one("#progress", ProgressBar), [folder])

    @work(thread=True, exclusive=True, group="scan")
    def rescan(self, bar: ProgressBar, folders: list[str]) -> None:
        self.scanning = True
        self.call_from_thread(bar.add_class, "running")
        where = ", ".join(folders) or "this library's folders"
        self.call_from_thread(self.status, f"scanning {where}: loading the model...")

        def progress(done: int, total: int) -> None:
            self.call_from_thread(bar.update, total=total, progress=done)
            self.call_from_thread(self.status, f"scanning: {done} of {total} photos")

        try:
            # On a connection of its own. Decoding stays in this thread: worker processes
            # forked from a running Textual app (other threads, redirected output) fail to start.
            report = api.scan(self.db_path, folders, ScanOptions(progress=False, workers=0), on_progress=progress)
            message = f"scan done: {report.summary()}"
        except (UserError, OSError, sqlite3.DatabaseError) as exc:  # the scan stops, the app goes on
            message = f"scan failed: {exc}"
        finally:
            self.scanning = False
        self.call_from_thread(bar.remove_class, "running")
        self.call_from_thread(self.status, message)
        self.call_from_thread(self._after_scan)

    def _after_scan(self) -> None:
        if self.library is None:
            try:
                self.library = api.open_library(self.db_path)
            except LibraryError as exc:
                self.notify(str(exc), severity="error")
                return
            self._start()
        else:
            self.seen_version = api.version(self.library)
            self.load_tags()
