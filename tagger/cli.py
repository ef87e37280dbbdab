"""epsilon-tag: the photo tagger's command line. Thin: each command parses its options, calls
one operation of ``tagger.api`` with them (every option is an argument of the same name
there) and prints what comes back."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path

import typer

import tagger
from trainer.console import bug_message, clearly

from . import api
from .api import SEEN, ScanOptions


# Choices as enums: `--help` lists them and a typo fails before anything runs. The values
# are the library's own words (tagger.library.SEEN / ZERO_SHOT, xmp's namings).
class WordKind(StrEnum):
    seen = "seen"
    zero_shot = "zero-shot"


class WordOrder(StrEnum):
    # Members named after their values would shadow str.count and Enum.name.
    by_count = "count"
    by_name = "name"


class SidecarNaming(StrEnum):
    full = "full"
    stem = "stem"


app = typer.Typer(
    help="Tag a local photo library with Epsilon, offline, and search it with any word.\n\n"
    "Start with `epsilon-tag scan ~/Pictures`, then `epsilon-tag search boat`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
vocab_app = typer.Typer(help="List, add and remove the words photos are tagged with.", no_args_is_help=True)
app.add_typer(vocab_app, name="vocab")
roots_app = typer.Typer(help="List and forget the folders this library scans.", no_args_is_help=True)
app.add_typer(roots_app, name="roots")

DB_HELP = "Library file (default: your user data folder; or set EPSILON_TAG_DB)."
Db = typer.Option(None, "--db", envvar="EPSILON_TAG_DB", help=DB_HELP, show_default=False, metavar="FILE")
Json = typer.Option(False, "--json", help="Print JSON instead of text.")
_GONE = "If it is gone for good: epsilon-tag roots forget "
# What a bug leaves behind: every write is a transaction, so the last completed step.
_STATE = "the library is left as its last completed step wrote it"


def _explain(exc: Exception) -> str | None:
    """SQLite's errors a person can act on: another writer past the timeout, a full disk, a
    file gone read-only."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    if "locked" in str(exc) or "busy" in str(exc):
        return (
            f"the library is busy ({exc}): another scan or `vocab` command is writing to it. "
            f"Try again when it has finished."
        )
    return (
        f"the library cannot be written ({exc}): check the disk has room and the library file and its folder "
        f"are writable."
    )


def _clearly() -> AbstractContextManager[None]:
    return clearly("epsilon-tag", _explain, _STATE)


def bug(where: str) -> str:
    """What the CLI says of a bug, its traceback ``where`` (above, below)."""
    return bug_message("epsilon-tag", where, _STATE)


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _version(value: bool) -> None:
    if value:  # tagger.__version__ reads the installed metadata on first use (10 ms of imports)
        typer.echo(f"epsilon-tag {tagger.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Tag a local photo library with Epsilon, offline, and search it with any word."""


# scan's options, each a field of api.ScanOptions of the same name.
Roots = typer.Argument(
    None,
    help="Folders (or single photos) to scan (default: every folder this library has scanned).",
    show_default=False,
    metavar="FOLDER",
)
Exclude = typer.Option([], "--exclude", "-x", help="Glob on names or paths to skip; repeatable.", metavar="GLOB")
Force = typer.Option(False, "--force", help="Read and tag every photo again, changed or not.")
Prune = typer.Option(False, "--prune", help="Delete vanished photos from the library instead of marking them missing.")
AllowEmpty = typer.Option(
    False,
    "--allow-empty",
    help=(
        "A folder that is empty now although the library has photos there is taken as emptied (its photos "
        "missing, or pruned). Without it, such a folder is treated like an unplugged drive: nothing under it "
        "changes."
    ),
)
Model = typer.Option(
    None,
    "--model",
    help="A bundle from epsilon-train (default: the library's model, else the shipped one).",
    metavar="DIR",
)
BackboneWeights = typer.Option(
    None,
    "--backbone-weights",
    help="Backbone weights file, for a model trained on a backbone that is not shipped (ViT).",
    metavar="FILE",
)
Embeddings = typer.Option(
    None,
    "--embeddings",
    help="Word vectors for the vocabulary: glove-6b-50d, minilm-l6-v2 or a file (default: the model's).",
    metavar="SOURCE",
)
Device = typer.Option("auto", "--device", help="auto (the GPU if there is one), cpu, cuda or cuda:N.", metavar="DEVICE")
BatchSize = typer.Option(32, "--batch-size", min=1, help="Photos per model batch (and per commit).")
Workers = typer.Option(
    None,
    "--workers",
    min=0,
    help="Decode worker processes (default: one per core, at most 8; 0 decodes in this process).",
)
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar.")


@app.command()
def scan(
    roots: list[Path] = Roots,
    exclude: list[str] = Exclude,
    force: bool = Force,
    prune: bool = Prune,
    allow_empty: bool = AllowEmpty,
    model: Path | None = Model,
    backbone_weights: Path | None = BackboneWeights,
    embeddings: str | None = Embeddings,
    device: str = Device,
    batch_size: int = BatchSize,
    workers: int | None = Workers,
    quiet: bool = Quiet,
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """Tag every photo under the folders; a rescan reads only new and changed files.

    Moved or renamed photos are recognised by their content and keep their tags; vanished
    ones are marked missing (or deleted with --prune). Ctrl-C is safe: what was tagged is
    kept, and the same command continues from there.
    """
    options = ScanOptions(
        model=model,
        exclude=exclude,
        force=force,
        prune=prune,
        allow_empty=allow_empty,
        batch_size=batch_size,
        workers=workers,
        device=device,
        backbone_weights=backbone_weights,
        embeddings=embeddings,
        progress=not quiet,
    )
    with _clearly():
        report = api.scan(db, roots or [], options)
    for root in report.skipped_roots:  # the library's own folders: an unplugged drive is not a reason to stop
        typer.echo(f"Skipped {root}: not there now (unplugged?); nothing under it changes. {_GONE}{root}", err=True)
    if as_json:
        _echo_json(report.to_dict())
    else:
        _print_scan(report, prune)
    if report.interrupted:
        typer.echo("Interrupted: every batch tagged so far is saved; run the same command to continue.", err=True)
        raise typer.Exit(130)


def _print_scan(report: api.ScanReport, prune: bool) -> None:
    state = "interrupted" if report.interrupted else "stopped" if report.stopped else "done"
    typer.echo(f"Scan {state}: {report.summary(prune)}.")
    for line in report.notes():
        typer.echo(line, err=True)


@app.command()
def search(
    words: list[str] = typer.Argument(
        ...,
        help="Words to search for; any word the word vectors know works, in the vocabulary or not.",
        show_default=False,
        metavar="WORD",
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many photos to print."),
    min_score: float | None = typer.Option(
        None,
        "--min-score",
        help=(
            "List photos from this confidence up (0..1) instead of from the relevance floor; 0 lists every photo, "
            "best first."
        ),
    ),
    after: str | None = typer.Option(None, "--after", help="Taken on or after this date (2021, 2021-06, 2021-06-30)."),
    before: str | None = typer.Option(None, "--before", help="Taken before this date."),
    scores: bool = typer.Option(False, "--scores", help="Print the confidence before each path."),
    print0: bool = typer.Option(
        False,
        "--print0",
        "-0",
        help="End each path with a NUL byte instead of a newline (for xargs -0): safe for any file name.",
    ),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """Photos that match the words, most confident first; one path per line.

    A photo is listed when the words are likely true of it (from the relevance floor up,
    the confidence from which a photo shows a word as its best tag); a word no photo
    matches well finds nothing. Several words must each match: `epsilon-tag search beach
    sunset`. Pipe the paths on: `epsilon-tag search boat -0 | xargs -0 cp -t ~/boats`.
    """
    with _clearly():
        api.check_score(min_score, "--min-score")  # worded as the flags here; the same checks as the search's
        api.check_dates(after, before, ("--after", "--before"))
        with api.open_library(db, readonly=True) as library:
            found = api.search(library, words, limit=limit, min_score=min_score, after=after, before=before)
    if as_json:
        _echo_json(found.to_dict())
        return
    ranking = found.ranking
    if not found.hits:
        if ranking.best is None:
            typer.echo("The library holds no photo to search (in these dates).", err=True)
        else:
            typer.echo(
                f"No photo matches {' '.join(words)!r} well (the best confidence is {ranking.best:.2f}, the floor "
                f"{ranking.floor or 0:.2f}): `--min-score 0` lists every photo by confidence.",
                err=True,
            )
    for hit in found.hits:
        typer.echo(f"{hit.score:.3f}\t{hit.path}" if scores else hit.path, nl=not print0)
        if print0:
            typer.echo("\0", nl=False)


@roots_app.command("list")
def roots_list(as_json: bool = Json, db: Path | None = Db) -> None:
    """The folders this library scans (a bare `epsilon-tag scan` covers them), with their photos."""
    with _clearly(), api.open_library(db, readonly=True) as library:
        rows = api.roots(library)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['photos']:>7}  {'' if row['present'] else '(not there now)  '}{row['root']}")


@roots_app.command("forget")
def roots_forget(
    folder: Path = typer.Argument(
        ..., help="One of the library's folders (`epsilon-tag roots list`).", show_default=False, metavar="FOLDER"
    ),
    db: Path | None = Db,
) -> None:
    """Stop scanning a folder and forget its photos (their tags and vectors)."""
    with _clearly(), api.open_library(db) as library:
        count = api.forget_root(library, folder)
    typer.echo(f"Forgot {folder} and its {count} photos.")


@vocab_app.command("add")
def vocab_add(
    words: list[str] = typer.Argument(
        ..., help='Words or quoted phrases ("polar bear").', show_default=False, metavar="WORD"
    ),
    embeddings: str | None = typer.Option(
        None, "--embeddings", help="Word vectors to look new words up in (default: the library's)."
    ),
    db: Path | None = Db,
) -> None:
    """Add words; the whole library is re-scored from stored vectors at once (no re-scan)."""
    with _clearly(), api.open_library(db) as library:
        added = api.add_words(library, words, embeddings=embeddings)
    for word in added:
        if word.held is None:
            typer.echo(f"{word.word}: {word.count} photos")
        else:
            form = "" if word.held == word.word else f" as {word.held!r}"
            typer.echo(f"{word.word}: already in the vocabulary{form} ({word.count} photos)")


@vocab_app.command("remove")
def vocab_remove(
    words: list[str] = typer.Argument(..., show_default=False, metavar="WORD"),
    db: Path | None = Db,
) -> None:
    """Remove words; photos that carried them get their next best words instead."""
    with _clearly(), api.open_library(db) as library:
        taken = api.remove_words(library, words)
    for word, count in taken.items():
        typer.echo(f"{word}: removed from the vocabulary and from {count} photos")


@vocab_app.command("list")
def vocab_list(
    kind: WordKind | None = typer.Option(None, "--kind", help="Only words seen in training, or zero-shot ones."),
    sort: WordOrder = typer.Option(WordOrder.by_count, "--sort", help="By photo count (most first) or by name."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """Every word with its kind and how many photos carry it."""
    with _clearly(), api.open_library(db, readonly=True) as library:
        rows = api.word_table(library, kind=kind and kind.value, sort=sort.value)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['count']:>7}  {row['kind']:<9}  {row['word']}")


@vocab_app.command("similar")
def vocab_similar(
    word: str = typer.Argument(..., show_default=False, metavar="WORD"),
    n: int = typer.Option(10, "-n", min=1, help="How many neighbours."),
    db: Path | None = Db,
) -> None:
    """Words closest in meaning to WORD (to pick words to add)."""
    with _clearly(), api.open_library(db, readonly=True) as library:
        neighbours = api.similar(library, word, n)
    for other, similarity in neighbours:
        typer.echo(f"{similarity:.3f}  {other}")


@app.command()
def show(
    photo: Path = typer.Argument(..., help="A photo's path.", show_default=False, metavar="PHOTO"),
    every: bool = typer.Option(False, "--all", help="Every stored candidate tag, not only the ones kept."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """A photo's tags with scores (the ones the model's rule keeps), and its EXIF."""
    with _clearly(), api.open_library(db, readonly=True) as library:
        view = api.show(library, photo, every=every)
    if as_json:
        _echo_json(view.to_dict())
        return
    typer.echo(view.row["path"] + ("" if view.row["status"] == api.OK else f"  [{view.row['status']}]"))
    for label, value in view.facts:
        typer.echo(f"  {label:<7} {value}")
    if view.own:  # the photographer's, apart from the model's
        typer.echo(f"  {'own':<7} {', '.join(view.own)}")
    for tag in view.tags:
        typer.echo(f"  {tag['score']:.3f}  {tag['word']}" + ("  (zero-shot)" if tag["kind"] != SEEN else ""))


@app.command()
def stats(
    failures: bool = typer.Option(False, "--failures", help="List every file that could not be read, with the reason."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """What the library holds: photos, missing, failures, words, the model."""
    with _clearly(), api.open_library(db, readonly=True) as library:
        info = api.stats(library, failures=failures)
    if as_json:
        _echo_json(info)
        return
    typer.echo(f"library   {info['library']} ({info['bytes'] / 2**20:.1f} MiB)")
    typer.echo(f"model     {info['model'] or 'none yet: run `epsilon-tag scan FOLDER`'}")
    typer.echo(f"photos    {info['photos']} ({info['missing']} missing; {info['failures']} files failed or damaged)")
    if info["taken_first"]:
        typer.echo(f"taken     {info['taken_first'][:10]} .. {info['taken_last'][:10]}, {info['cameras']} cameras")
    typer.echo(
        f"words     {info['words']} ({info['seen_words']} seen in training, {info['zero_shot_words']} zero-shot)"
    )
    if info["top_words"]:
        typer.echo("top tags  " + ", ".join(f"{w['word']} ({w['count']})" for w in info["top_words"]))
    for row in info.get("failure_list", []):
        typer.echo(f"  failed: {row['path']}: {row['reason']}")


@app.command()
def export(
    paths: list[Path] = typer.Argument(
        None, help="Only photos under these folders (default: the whole library).", show_default=False, metavar="FOLDER"
    ),
    xmp: bool = typer.Option(
        False, "--xmp", help="Write XMP sidecars with the tags as keywords (digiKam, darktable, Lightroom)."
    ),
    naming: SidecarNaming = typer.Option(
        SidecarNaming.full,
        "--naming",
        help=(
            "New sidecars as photo.jpg.xmp (full: digiKam, darktable) or photo.xmp (stem: Lightroom). An existing "
            "sidecar of either name is updated."
        ),
    ),
    min_score: float | None = typer.Option(
        None,
        "--min-score",
        help=(
            "Every stored tag scoring at least this, instead of the ones the model's rule keeps (`epsilon-tag show "
            "--all` shows the scores)."
        ),
    ),
    top: int | None = typer.Option(None, "--top", min=1, help="At most this many tags per photo, best first."),
    parent: str = typer.Option(
        "epsilon-tag",
        "--parent",
        help=(
            "The keyword the model's tags go under in hierarchical keywords (Lightroom, digiKam), so that they "
            "can be filtered or removed together; '' puts them at the top."
        ),
        metavar="KEYWORD",
    ),
    db: Path | None = Db,
) -> None:
    """Export each photo's tags to XMP sidecars: the model's (the ones its rule keeps) and the
    photo's own keywords, as flat keywords (dc:subject) and hierarchical ones (Lightroom's
    lr:hierarchicalSubject, digiKam's TagsList). Originals are never touched; whatever else
    a sidecar holds is kept."""
    with _clearly():
        api.check_score(min_score, "--min-score")
        if not xmp:
            raise api.InputError("Say what to export: --xmp (XMP sidecars) is the format there is.")
        with api.open_library(db, readonly=True) as library:
            written, merged, failed = api.export_xmp(
                library, paths or [], naming=naming.value, min_score=min_score, top=top
            )
    typer.echo(f"XMP sidecars: {written} written, {merged} merged into existing ones, {len(failed)} failed.")
    for path, reason in failed:
        typer.echo(f"  failed: {path}: {reason}", err=True)


@app.command()
def tui(db: Path | None = Db) -> None:
    """Browse the library in the terminal: tags, photos, previews; search; add words."""
    from .tui.app import EpsilonTagApp  # Textual's imports: only for this command

    path = db or api.default_db()
    if path.exists():  # a broken, foreign or newer file: the error, not a first-run screen
        with _clearly(), api.open_library(path, readonly=True):
            pass
    tui_app = EpsilonTagApp(path)
    tui_app.run()
    code = tui_app.return_code or 0
    if code not in (0, 2):  # 2: an error the app told; else a bug, whose traceback Textual printed
        typer.echo(bug("above"), err=True)
    if code:
        raise typer.Exit(code)


def main() -> None:
    app()  # typer exits with the command's status


if __name__ == "__main__":  # pragma: no cover
    main()
