"""The three panels of the main screen: tags, photos, preview.

The widgets only show what they are given; reading the library happens in the app's
worker threads, so a slow disk or a 100,000-photo library never freezes the screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey

from ..api import MISSING, SEEN, Hit, PhotoView, Ranking, counted, sort_words
from .pixels import Pixels, image_widget

SEEN_MARK, ZERO_SHOT_MARK = "\u2022", "\u25e6"  # filled: trained on; hollow: zero-shot


class TagPanel(Vertical):
    """Every vocabulary word with its photo count; filter as you type, sort by count or name."""

    class Chosen(Message):
        def __init__(self, word: dict) -> None:
            super().__init__()
            self.word = word

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.words: list[dict] = []
        self.sort = "count"
        self.announced: str | None = None  # the word last said to be chosen

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter tags", id="tag-filter")
        # No cell padding: at 80 columns the panel is 20 wide, and every cell counts.
        table: DataTable[str] = DataTable(id="tag-table", cursor_type="row", show_header=False, cell_padding=0)
        table.add_column("kind", key="kind", width=2)
        table.add_column("count", key="count", width=6)
        table.add_column("word", key="word")
        yield table

    @property
    def table(self) -> DataTable:
        return self.query_one("#tag-table", DataTable)

    def show(self, words: list[dict], select: str | None = None) -> None:
        self.words = words
        self._refill(select)

    def toggle_sort(self) -> str:
        self.sort = "name" if self.sort == "count" else "count"
        self._refill(self.selected_word)
        return self.sort

    @property
    def selected_word(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)

    def selected(self) -> dict | None:
        word = self.selected_word
        return next((w for w in self.words if w["word"] == word), None)

    def _refill(self, select: str | None = None) -> None:
        needle = self.query_one("#tag-filter", Input).value.strip().lower()
        shown = [w for w in self.words if needle in w["word"]]
        shown = sort_words(shown, self.sort)
        table = self.table
        table.clear()
        for w in shown:
            seen = w["kind"] == SEEN
            table.add_row(
                Text(SEEN_MARK if seen else ZERO_SHOT_MARK, style="bold" if seen else "italic"),
                Text(f"{w['count']:>5} "),
                Text(w["word"], style="" if seen else "italic"),
                key=w["word"],
            )
        self.border_title = f"Tags {len(shown)}" + (f"/{len(self.words)}" if needle else "")
        if select is not None and select in {w["word"] for w in shown}:
            table.move_cursor(row=table.get_row_index(select))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "tag-filter":
            self._refill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "tag-filter":
            self.table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only a move to another word: the table refilled with new counts (a word taught or
        # added, a scan elsewhere) must not replace the photo list someone is working down.
        chosen = self.selected() if event.data_table.id == "tag-table" else None
        if chosen is not None and chosen["word"] != self.announced:
            self.announced = chosen["word"]
            self.post_message(self.Chosen(chosen))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        chosen = self.selected() if event.data_table.id == "tag-table" else None
        if chosen is not None:  # enter: this word's photos again (after a search, say)
            self.announced = chosen["word"]
            self.post_message(self.Chosen(chosen))


@dataclass
class Page:
    """Rows fetched for the photo list: hits and their top words."""

    hits: list[Hit]
    top_words: dict[int, list[str]]


class PhotoPanel(Vertical):
    """Photos of a tag or a search, best first, loaded a page at a time as the cursor nears the end."""

    PAGE = 100

    class NeedMore(Message):
        """The cursor is near the last loaded row: the app fetches the next page."""

    class Highlighted(Message):
        def __init__(self, hit: Hit) -> None:
            super().__init__()
            self.hit = hit

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ranking: Ranking | None = None
        self.hits: list[Hit] = []
        self.title = ""

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="photo-table", cursor_type="row", zebra_stripes=True)
        table.add_column("score", key="score", width=5)
        table.add_column("photo", key="photo")
        table.add_column("taken", key="taken", width=10)
        table.add_column("tags", key="tags")
        yield table

    @property
    def table(self) -> DataTable:
        return self.query_one("#photo-table", DataTable)

    def start(self, title: str, ranking: Ranking, first: Page) -> None:
        """A new list from its top; the same list read again keeps its place: on the same
        photo, or where it was when that photo left the list (one rejected: the next)."""
        here = self.current() if title == self.title else None
        row = self.table.cursor_row if here is not None else 0
        self.ranking, self.hits, self.title = ranking, [], title
        self.table.clear()
        self.append(first)
        if here is not None:
            row = next((n for n, hit in enumerate(self.hits) if hit.photo_id == here.photo_id), row)
        self.table.move_cursor(row=max(0, min(row, len(self.hits) - 1)))

    @property
    def more(self) -> bool:
        return self.ranking is not None and len(self.hits) < len(self.ranking)

    def append(self, page: Page) -> None:
        table = self.table
        names = [hit.path.rsplit("/", 1)[-1] for hit in page.hits]
        words = [", ".join(page.top_words.get(hit.photo_id, [])) for hit in page.hits]
        # The text columns take their widths before their rows come: DataTable measures new
        # rows only once idle, and a frame drawn before that (a busy machine) stayed cached at
        # the old width, names cut to the header's five characters until the cursor moved.
        for key, texts in (("photo", names), ("tags", words)):
            column = table.columns[ColumnKey(key)]
            column.content_width = max([column.content_width, *map(cell_len, texts)])
        for hit, name, tags in zip(page.hits, names, words):
            score = Text(f"{hit.score:.2f}", justify="right")
            table.add_row(score, name, (hit.taken_at or "")[:10], tags, key=str(len(self.hits)))
            self.hits.append(hit)
        total = len(self.ranking) if self.ranking is not None else 0
        # A search lists the photos from its relevance floor up: its matches, not the library.
        matches = self.ranking is not None and self.ranking.floor is not None
        listed = counted(total, "match", "matches") if matches else counted(total, "photo")
        self.border_title = f"{self.title}  {listed}"

    def current(self) -> Hit | None:
        row = self.table.cursor_row
        return self.hits[row] if 0 <= row < len(self.hits) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "photo-table":
            return
        hit = self.current()
        if hit is not None:
            self.post_message(self.Highlighted(hit))
        if self.more and event.cursor_row >= len(self.hits) - 20:
            self.post_message(self.NeedMore())


class Preview(VerticalScroll):
    """The selected photo, upright, with real pixels where the terminal shows them (Kitty's
    protocol or Sixel, through textual-image) and half blocks elsewhere; its tags and EXIF below."""

    def __init__(self, *, protocol: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol

    def compose(self) -> ComposeResult:
        yield Static("", id="preview-image")
        if self.protocol is not None:
            pixels = image_widget(self.protocol, id="preview-pixels")
            pixels.display = False
            yield pixels
        yield Static("", id="preview-info")

    @property
    def image_cells(self) -> tuple[int, int]:
        """Room for the picture: the panel's width (less a scrollbar), 60% of its height."""
        width, height = self.content_size
        return max(8, width - 2), max(4, int(height * 0.6))

    def show(self, picture: Text | str | Pixels, info: Text) -> None:
        text = self.query_one("#preview-image", Static)
        found = self.query("#preview-pixels")
        drawn = found.first() if found else None
        if isinstance(picture, Pixels) and drawn is not None:
            self._show_pixels(drawn, picture)
            text.display = False
        else:
            if drawn is not None:  # a photo that cannot be read: say why, in words
                self._show_pixels(drawn, None)
            text.update("" if isinstance(picture, Pixels) else picture)
            text.display = True
        self.query_one("#preview-info", Static).update(info)

    @staticmethod
    def _show_pixels(widget: Widget, picture: Pixels | None) -> None:
        if picture is not None:
            # Sized in cells here, so textual-image draws the picture as fitted, no scaling of its own.
            widget.styles.width, widget.styles.height = picture.columns, picture.rows
        # textual-image's Image widget; None frees the last photo's pixels in the terminal.
        widget.image = None if picture is None else picture.image  # type: ignore[attr-defined]
        widget.display = picture is not None


def describe(view: PhotoView) -> Text:
    """A photo's path, EXIF, own keywords and tags as the preview shows them."""
    text = Text()
    text.append(view.row["path"] + "\n", style="bold")
    if view.row.get("status") == MISSING:
        text.append("missing since the last scan\n", style="red")
    own = [("own", ", ".join(view.own))] if view.own else []  # the photographer's, apart from the model's
    for label, value in [*view.facts, *own]:
        text.append(f"{label:<7}", style="dim")
        text.append(f"{value}\n")
    for tag in view.tags:
        seen = tag["kind"] == SEEN
        text.append(f"{tag['score']:.2f} ", style="dim")
        text.append(f"{SEEN_MARK if seen else ZERO_SHOT_MARK} {tag['word']}\n", style="" if seen else "italic")
    return text
