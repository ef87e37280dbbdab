"""The screens over the main one: help, add a word, confirm a removal, first run."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Markdown, OptionList, Static
from textual.worker import get_current_worker

from .. import api
from ..api import UnknownWordError, VocabularyError, WordSource, normalise_word

HELP = """\
# epsilon-tag

**Tags** (left): every word photos are tagged with and how many photos carry it.
`\u2022` marks words the model trained on, `\u25e6` *zero-shot* words it never saw, scored
through their word vectors. Type in the filter box to narrow the list.

**Photos** (middle): the photos of the selected tag or of a search, best first.
**Preview** (right): the photo, its EXIF and its tags with scores.

| key | does |
| --- | --- |
| `/` | search: any words, in the vocabulary or not (the CLI's `search`) |
| `a` | add a word to the vocabulary (the library is re-scored at once) |
| `d` | remove the selected tag's word |
| `s` | sort tags by count or by name |
| `o` | open the photo in the system viewer |
| `+` / `-` | the selected photo shows the list's word (a tag or a one-word search), or not |
| `m` | photos most like the selected one |
| `r` | rescan the library's folders |
| `tab` | next panel |
| `?` | this help |
| `q` | quit |

`+` and `-` are your own tags: shown and found whatever the model says, and the word
learns from them (`epsilon-tag vocab unlearn WORD` undoes it).

A scan running in another terminal shows up here as it commits.
"""


class HelpScreen(ModalScreen[None]):
    """The keys. Taller than a small terminal: it scrolls (arrows, page keys, home and end,
    the mouse wheel), and the way out stays on its border, in sight at any scroll."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        box = VerticalScroll(Markdown(HELP), id="help-box", classes="dialog")
        box.border_subtitle = "\u2191\u2193 scroll \u00b7 escape closes"
        yield box

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()  # the scroll keys go to the box, not to the table inside


class AddWordScreen(ModalScreen[str | None]):
    """Ask for a word; show its nearest neighbours as suggestions; check it before adding."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, source: WordSource, vocabulary: set[str]) -> None:
        super().__init__()
        self.source, self.vocabulary = source, vocabulary

    def compose(self) -> ComposeResult:
        with Vertical(id="add-box", classes="dialog"):
            yield Label("Add a word to the vocabulary", classes="title")
            yield Input(placeholder="a word or a phrase, e.g. zeppelin or polar bear", id="add-input")
            yield Label("", id="add-error")
            yield Label("Similar words, or spellings it may be (enter on one to take it):", classes="hint")
            yield OptionList(id="add-suggestions")
            yield Label("enter adds  \u00b7  escape cancels", classes="hint")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#add-error", Label).update("")
        self.suggest(event.value)

    @work(thread=True, exclusive=True, group="suggest")
    def suggest(self, text: str) -> None:
        """Words near it in meaning; for a word the vectors lack, the spellings they have."""
        word = normalise_word(text)
        try:
            found = [w for w, _ in api.similar_words(self.source, word, 8)] if word else []
        except UnknownWordError as exc:
            found = exc.suggestions
        except VocabularyError:
            found = []
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_suggestions, found)

    def _show_suggestions(self, words: list[str]) -> None:
        options = self.query_one("#add-suggestions", OptionList)
        options.clear_options()
        options.add_options(words)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        field = self.query_one("#add-input", Input)
        field.value = str(event.option.prompt)
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.check(event.value)

    @work(thread=True, exclusive=True, group="check")
    def check(self, text: str) -> None:
        word = normalise_word(text)
        error = None
        if not word:
            error = "Type a word first."
        elif word in self.vocabulary:
            error = f"{word!r} is already in the vocabulary."
        else:
            try:
                self.source.vector(word)
            except (UnknownWordError, VocabularyError) as exc:
                error = str(exc)
        self.app.call_from_thread(self._checked, word, error)

    def _checked(self, word: str, error: str | None) -> None:
        if error:
            self.query_one("#add-error", Label).update(error)
        else:
            self.dismiss(word)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Label(self.question)
            yield Label("y: yes   n: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


FIRST_RUN = """\
# Welcome to epsilon-tag

This library has no photos yet. Type a folder of photos below and press enter: every
photo is tagged on this machine with the shipped model (nothing leaves it), and you can
search the library with any word afterwards.

The same from a shell: `epsilon-tag scan ~/Pictures`. Escape (or ctrl+q) quits.
"""


class FirstRunScreen(Screen[str]):
    """An empty or missing library: ask for a folder to scan."""

    BINDINGS: ClassVar = [Binding("escape", "app.quit", "Quit"), Binding("ctrl+q", "app.quit", "Quit", show=False)]

    def __init__(self, library_path: str) -> None:
        super().__init__()
        self.library_path = library_path

    def compose(self) -> ComposeResult:
        with Vertical(id="first-run"):
            yield Markdown(FIRST_RUN)
            yield Input(placeholder="~/Pictures", id="first-folder")
            yield Label("", id="first-error")
            yield Static(f"library: {self.library_path}", classes="hint")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        folder = Path(event.value.strip() or "~/Pictures").expanduser()
        if not folder.exists():
            self.query_one("#first-error", Label).update(f"No such folder: {folder}")
            return
        self.query_one("#first-error", Label).update("")
        self.dismiss(str(folder))
