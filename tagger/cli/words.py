"""epsilon-tag vocab (the words photos are tagged with) and tag (a person's own tags)."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import api
from .base import Db, Json, WordKind, WordOrder, app, echo_rows, reported, vocab_app


@vocab_app.command("add")
def vocab_add(
    words: list[str] = typer.Argument(
        ..., help='Words or quoted phrases ("polar bear").', show_default=False, metavar="WORD..."
    ),
    embeddings: str | None = typer.Option(
        None, "--embeddings", help="Word vectors to look new words up in (default: the library's)."
    ),
    db: Path | None = Db,
) -> None:
    """Add words; the whole library is re-scored from stored vectors at once (no re-scan)."""
    with reported(), api.open_library(db) as library:
        added = api.add_words(library, words, embeddings=embeddings)
    for word in added:
        if word.held is None:
            typo = f" (a rare word: did you mean {word.typo!r}?)" if word.typo else ""
            typer.echo(f"{word.word}: {_photos(word.count)}{typo}")
        else:
            form = "" if word.held == word.word else f" as {word.held!r}"
            typer.echo(f"{word.word}: already in the vocabulary{form} ({_photos(word.count)})")


@vocab_app.command("remove")
def vocab_remove(
    words: list[str] = typer.Argument(..., show_default=False, metavar="WORD..."),
    db: Path | None = Db,
) -> None:
    """Remove words; photos that carried them get their next best words instead."""
    with reported(), api.open_library(db) as library:
        taken = api.remove_words(library, words)
    for word, count in taken.items():
        typer.echo(f"{word}: removed from the vocabulary and from {count} photos")


@vocab_app.command("unlearn")
def vocab_unlearn(
    word: str = typer.Argument(..., show_default=False, metavar="WORD"),
    db: Path | None = Db,
) -> None:
    """WORD is scored from its own word vector again, as before your tags moved it; your tags
    stay (tagging the word again learns from all of them)."""
    with reported(), api.open_library(db) as library:
        taught = api.unlearn(library, word)
    typer.echo(f"{taught.word}: scored from its own vector again; {_show_it(taught.count)}")


@vocab_app.command("list")
def vocab_list(
    kind: WordKind | None = typer.Option(None, "--kind", help="Only words seen in training, or zero-shot ones."),
    sort: WordOrder = typer.Option(WordOrder.by_count, "--sort", help="By photo count (most first) or by name."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """Every word with its kind and how many photos carry it."""
    with reported(), api.open_library(db, readonly=True) as library:
        rows = api.word_table(library, kind=kind and kind.value, sort=sort.value)
    echo_rows(rows, as_json, lambda r: f"{r['count']:>7}  {r['kind']:<9}  {r['word']}")


@vocab_app.command("similar")
def vocab_similar(
    word: str = typer.Argument(..., show_default=False, metavar="WORD"),
    n: int = typer.Option(10, "-n", min=1, help="How many neighbours."),
    db: Path | None = Db,
) -> None:
    """Words close in meaning to WORD, to pick words to add. For a common photo word
    (some 7,000: Open Images' classes, Corel-5K's and NUS-WIDE's tags) the neighbours
    are photo words by a sentence encoder's meaning (zeppelin: airship); for any other
    word, the library's own word vectors."""
    with reported(), api.open_library(db, readonly=True) as library:
        neighbours = api.similar(library, word, n)
    for other, similarity in neighbours:
        typer.echo(f"{similarity:.3f}  {other}")


@app.command("tag")
def tag_photos(
    photos: list[Path] = typer.Argument(..., help="Photos of the library.", show_default=False, metavar="PHOTO..."),
    add: list[str] = typer.Option([], "--add", "-a", help="A word the photos show; repeatable.", metavar="WORD"),
    remove: list[str] = typer.Option(
        [],
        "--remove",
        "-r",
        help="A word they do not show: a word you added to them is taken back; the model's tag is rejected (hidden "
        "on them, and the word learns from it). Repeatable.",
        metavar="WORD",
    ),
    db: Path | None = Db,
) -> None:
    """Tag photos yourself: your tags are shown and found whatever the model says, kept
    through rescans and model changes, and exported to sidecars. A word learns from them:
    the whole library is scored again for it (`epsilon-tag vocab unlearn WORD` undoes it)."""
    with reported(), api.open_library(db) as library:
        taught = api.tag(library, photos, add=add, remove=remove)
    for word in taught:
        learned = f"; {_show_it(word.count)}" if word.learned else " (found as your keyword)"
        typer.echo(f"{word.word}: {_photos(word.confirmed)} confirmed, {word.rejected} rejected{learned}")


def _photos(n: int) -> str:
    return api.counted(n, "photo")


def _show_it(n: int) -> str:
    return f"{_photos(n)} {'shows' if n == 1 else 'show'} it now"
