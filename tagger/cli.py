"""epsilon-tag: the photo tagger's command line. Thin: every option is an argument of the
library function it calls (``scan.scan``, ``search.search``, ``vocabulary.add_words``...)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer

from trainer.errors import InputError, UserError


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


def default_db() -> Path:
    import platformdirs

    return platformdirs.user_data_path("epsilon-tag") / "library.db"


@contextmanager
def _clearly() -> Iterator[None]:
    """Errors people can fix end with one line saying what to do (exit 2), never a
    traceback; anything else is a bug, and says so above its traceback."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None  # the message is the whole story: no traceback
    except sqlite3.OperationalError as exc:  # locked past the timeout, disk full, a file gone read-only
        if "locked" in str(exc) or "busy" in str(exc):
            typer.echo(
                f"Error: the library is busy ({exc}): another scan or `vocab` command is writing to it. "
                f"Try again when it has finished.",
                err=True,
            )
        else:
            typer.echo(
                f"Error: the library cannot be written ({exc}): check the disk has room and the library "
                f"file and its folder are writable.",
                err=True,
            )
        raise typer.Exit(2) from None
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own ways out (an exit code, a usage error)
        raise
    except Exception:
        typer.echo(BUG.format(where="below"), err=True)
        raise


BUG = (
    "epsilon-tag hit a bug (not something you did). Please report it with the traceback {where} at "
    "the project's issue tracker; the library is left as its last completed step wrote it."
)


def _open(db: Path | None, *, create: bool = False, readonly: bool = False):
    from .library import Library

    return Library(db or default_db(), create=create, readonly=readonly)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"epsilon-tag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Tag a local photo library with Epsilon, offline, and search it with any word."""


@app.command()
def scan(
    roots: list[Path] = typer.Argument(
        None,
        help="Folders (or single photos) to scan (default: every folder this library has scanned).",
        show_default=False,
        metavar="FOLDER",
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Glob on names or paths to skip; repeatable.", metavar="GLOB"
    ),
    force: bool = typer.Option(False, "--force", help="Read and tag every photo again, changed or not."),
    prune: bool = typer.Option(
        False, "--prune", help="Delete vanished photos from the library instead of marking them missing."
    ),
    allow_empty: bool = typer.Option(
        False,
        "--allow-empty",
        help=(
            "A folder that is empty now although the library has photos there is taken as emptied (its photos "
            "missing, or pruned). Without it, such a folder is treated like an unplugged drive: nothing under it "
            "changes."
        ),
    ),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="A bundle from epsilon-train (default: the library's model, else the shipped one).",
        metavar="DIR",
    ),
    backbone_weights: Path | None = typer.Option(
        None,
        "--backbone-weights",
        help="Backbone weights file, for a model trained on a backbone that is not shipped (ViT).",
        metavar="FILE",
    ),
    embeddings: str | None = typer.Option(
        None,
        "--embeddings",
        help="Word vectors for the vocabulary: glove-6b-50d, minilm-l6-v2 or a file (default: the model's).",
        metavar="SOURCE",
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (the GPU if there is one), cpu, cuda or cuda:N.", metavar="DEVICE"
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Photos per model batch (and per commit)."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        help="Decode worker processes (default: one per core, at most 8; 0 decodes in this process).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """Tag every photo under the folders; a rescan reads only new and changed files.

    Moved or renamed photos are recognised by their content and keep their tags; vanished
    ones are marked missing (or deleted with --prune). Ctrl-C is safe: what was tagged is
    kept, and the same command continues from there.
    """
    from .engine import check_device
    from .scan import scan as run_scan
    from .vocabulary import check_embeddings

    with _clearly():
        # Mistyped options fail before a library file is made or changed.
        check_device(device)
        if embeddings:
            check_embeddings(embeddings)
    with _clearly(), _open(db, create=True) as library:
        report = run_scan(
            library,
            roots or [],
            model=model,
            exclude=exclude,
            force=force,
            prune=prune,
            batch_size=batch_size,
            workers=workers,
            device=device,
            backbone_weights=backbone_weights,
            embeddings=embeddings,
            progress=not quiet,
            allow_empty=allow_empty,
        )
    for root in report.skipped_roots:  # the library's own folders: an unplugged drive is not a reason to stop
        typer.echo(
            f"Skipped {root}: not there now (unplugged?); nothing under it changes. If it is gone "
            f"for good: epsilon-tag roots forget {root}",
            err=True,
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        state = "interrupted" if report.interrupted else "stopped" if report.stopped else "done"
        typer.echo(f"Scan {state}: {report.summary(prune)}.")
        if report.stopped:
            typer.echo(f"Stopped: {report.stopped}; nothing of it was kept.", err=True)
        if report.switch_pending_count:
            typer.echo(
                f"The library keeps its model until every photo is read by the new one: "
                f"{report.switch_pending_count} not read yet, such as {report.switch_pending[0]}. Scan every "
                f"folder with the new --model (a folder that is gone: `epsilon-tag roots forget FOLDER`).",
                err=True,
            )
        for root, held in report.empty_roots:
            typer.echo(
                f"{root} holds no photos now, but the library has {held} there: taken for an unplugged "
                f"drive, nothing under it was marked missing or pruned. If they are really gone: "
                f"epsilon-tag scan {root} --allow-empty",
                err=True,
            )
        for root in report.forgotten_roots:
            typer.echo(f"Forgot the folder {root}: it is gone and its photos were found elsewhere.", err=True)
        for path, reason in report.failures[:10]:
            typer.echo(f"  failed: {path}: {reason}", err=True)
        if len(report.failures) > 10:
            typer.echo(
                f"  ... and {len(report.failures) - 10} more: `epsilon-tag stats --failures` lists them.", err=True
            )
    if report.interrupted:
        typer.echo("Interrupted: every batch tagged so far is saved; run the same command to continue.", err=True)
        raise typer.Exit(130)


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
    from .search import rank

    with _clearly(), _open(db, readonly=True) as library:
        ranking = rank(library, words, min_score=min_score, after=after, before=before)
        hits = ranking.page(library, 0, limit)
    if as_json:
        found = {
            "query": words,
            "floor": ranking.floor,
            "matches": len(ranking),
            "best": ranking.best,
            "hits": [h.to_dict() for h in hits],
        }
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    if not hits:
        if ranking.best is None:
            typer.echo("The library holds no photo to search (in these dates).", err=True)
        else:
            typer.echo(
                f"No photo matches {' '.join(words)!r} well (the best confidence is {ranking.best:.2f}, the floor "
                f"{ranking.floor or 0:.2f}): `--min-score 0` lists every photo by confidence.",
                err=True,
            )
    for hit in hits:
        typer.echo(f"{hit.score:.3f}\t{hit.path}" if scores else hit.path, nl=not print0)
        if print0:
            typer.echo("\0", nl=False)


@roots_app.command("list")
def roots_list(as_json: bool = Json, db: Path | None = Db) -> None:
    """The folders this library scans (a bare `epsilon-tag scan` covers them), with their photos."""
    from .scan import roots_of

    with _clearly(), _open(db, readonly=True) as library:
        rows = roots_of(library)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
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
    from .scan import forget_root

    with _clearly(), _open(db) as library:
        count = forget_root(library, folder)
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
    from .vocabulary import WordSource, add_words, known_forms, normalise_word

    with _clearly(), _open(db) as library:
        source = WordSource.of_library(library)
        if embeddings:
            source.embeddings_id = embeddings
        present = known_forms(library, [normalise_word(w) for w in words])
        counts = add_words(library, words, source)
    for word, count in counts.items():
        held = present.get(word)
        if held is None:
            typer.echo(f"{word}: {count} photos")
        else:
            typer.echo(f"{word}: already in the vocabulary{'' if held == word else f' as {held!r}'} ({count} photos)")


@vocab_app.command("remove")
def vocab_remove(
    words: list[str] = typer.Argument(..., show_default=False, metavar="WORD"),
    db: Path | None = Db,
) -> None:
    """Remove words; photos that carried them get their next best words instead."""
    from .vocabulary import remove_words

    with _clearly(), _open(db) as library:
        taken = remove_words(library, words)
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
    from .vocabulary import word_table

    with _clearly(), _open(db, readonly=True) as library:
        rows = word_table(library, kind=kind and kind.value, sort=sort.value)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
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
    from .vocabulary import WordSource

    with _clearly(), _open(db, readonly=True) as library:
        neighbours = WordSource.of_library(library).neighbours(word, n)
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
    from .images import photo_facts
    from .walk import as_text

    with _clearly(), _open(db, readonly=True) as library:
        path = as_text(photo.expanduser().resolve())
        row = library.photo_by_path(path)
        if row is None:
            failure = library.failure(path)
            why = f"it failed: {failure['reason']}" if failure else "scan its folder first"
            raise InputError(f"{path} is not in the library ({why}).")
        tags = library.photo_tags(row["id"], every=every)
    if as_json:
        typer.echo(json.dumps({"photo": row, "tags": tags}, indent=2, ensure_ascii=False))
        return
    from .library import OK, SEEN

    typer.echo(row["path"] + ("" if row["status"] == OK else f"  [{row['status']}]"))
    for label, value in photo_facts(row):
        typer.echo(f"  {label:<7} {value}")
    for tag in tags:
        typer.echo(f"  {tag['score']:.3f}  {tag['word']}" + ("  (zero-shot)" if tag["kind"] != SEEN else ""))


@app.command()
def stats(
    failures: bool = typer.Option(False, "--failures", help="List every file that could not be read, with the reason."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """What the library holds: photos, missing, failures, words, the model."""
    from .vocabulary import word_table

    with _clearly(), _open(db, readonly=True) as library:
        counts = library.counts()
        info = {
            "library": str(library.path),
            "bytes": library.path.stat().st_size,
            "model": library.model_id,
            **counts,
            "top_words": [w for w in word_table(library)[:10] if w["count"]],
        }
        failed = library.failures() if failures else []
    if as_json:
        typer.echo(json.dumps({**info, "failure_list": failed} if failures else info, indent=2, ensure_ascii=False))
        return
    typer.echo(f"library   {info['library']} ({info['bytes'] / 2**20:.1f} MiB)")
    typer.echo(f"model     {info['model'] or 'none yet: run `epsilon-tag scan FOLDER`'}")
    typer.echo(
        f"photos    {counts['photos']} ({counts['missing']} missing; {counts['failures']} files failed or damaged)"
    )
    if counts["taken_first"]:
        typer.echo(
            f"taken     {counts['taken_first'][:10]} .. {counts['taken_last'][:10]}, {counts['cameras']} cameras"
        )
    typer.echo(
        f"words     {counts['words']} ({counts['seen_words']} seen in training, {counts['zero_shot_words']} zero-shot)"
    )
    if info["top_words"]:
        typer.echo("top tags  " + ", ".join(f"{w['word']} ({w['count']})" for w in info["top_words"]))
    for row in failed:
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
    db: Path | None = Db,
) -> None:
    """Export the tags each photo keeps. Originals are never touched; existing sidecar keywords are kept."""
    from .search import check_score
    from .xmp import export_sidecars

    with _clearly():
        check_score(min_score, "--min-score")
        if not xmp:
            raise InputError("Say what to export: --xmp (XMP sidecars) is the format there is.")
        if naming not in ("full", "stem"):
            raise InputError(f"--naming is full or stem, not {naming!r}")
        under = [str(p.expanduser().resolve()) for p in paths or []]
        for folder in under:
            if not Path(folder).is_dir():
                raise InputError(
                    f"{folder} is not a folder of this library's photos: `epsilon-tag roots list` shows them"
                )
        with _open(db, readonly=True) as library:
            written, merged, failed = export_sidecars(library, under, naming=naming.value, min_score=min_score, top=top)
    typer.echo(f"XMP sidecars: {written} written, {merged} merged into existing ones, {len(failed)} failed.")
    for path, reason in failed:
        typer.echo(f"  failed: {path}: {reason}", err=True)


@app.command()
def tui(db: Path | None = Db) -> None:
    """Browse the library in the terminal: tags, photos, previews; search; add words."""
    from .tui.app import EpsilonTagApp

    path = db or default_db()
    if path.exists():  # a broken, foreign or newer file: the error, not a first-run screen
        with _clearly(), _open(path, readonly=True):
            pass
    tui_app = EpsilonTagApp(path)
    tui_app.run()
    code = tui_app.return_code or 0
    if code not in (0, 2):  # 2: an error the app told; else a bug, whose traceback Textual printed
        typer.echo(BUG.format(where="above"), err=True)
    if code:
        raise typer.Exit(code)


def main() -> None:
    app()  # typer exits with the command's status


if __name__ == "__main__":  # pragma: no cover
    main()
