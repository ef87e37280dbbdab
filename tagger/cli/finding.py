"""epsilon-tag search, show, stats, export and tui: reading the library."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import typer
from typer._click import Context  # typer's own click, whose commands these are
from typer.core import TyperCommand

from .. import api
from .base import Db, Json, SidecarNaming, app, bug, echo_json, reported


class _Terms(TyperCommand):
    """`search beach -person -n 5`: an argument that starts with one minus and is none of the
    command's options is a word to leave out, wherever it stands (click alone would read
    -person as -p -e -r -s -o -n and ask -n for a number)."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        takes = {
            name: not (getattr(p, "is_flag", False) or getattr(p, "count", False))
            for p in self.get_params(ctx)
            if p.param_type_name == "option"
            for name in (*p.opts, *p.secondary_opts)
        }
        options: list[str] = []
        words: list[str] = []
        rest = iter(args)
        for arg in rest:
            name = arg.split("=", 1)[0]
            if arg == "--":
                words.extend(rest)
            elif name in takes or arg.startswith("--"):  # an unknown --option is still an error
                options.append(arg)
                if takes.get(name) and "=" not in arg:
                    options.extend(list(itertools.islice(rest, 1)))  # its value, whatever it looks like
            elif re.fullmatch(r"-[A-Za-z]\d+", arg) and takes.get(arg[:2]):
                options.append(arg)  # -n5
            else:
                words.append(arg)
        return super().parse_args(ctx, [*options, "--", *words])


@app.command(cls=_Terms)
def search(
    words: list[str] = typer.Argument(
        None,
        help=(
            "Words to search for, in the vocabulary or not; -word leaves out photos showing it, 2:word counts it twice."
        ),
        show_default=False,
        metavar="WORD...",
    ),
    like: Path | None = typer.Option(
        None, "--like", help="Photos most like this one (a photo of the library), instead of words.", metavar="PHOTO"
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
    sunset`; `search beach -people` leaves people out. Pipe the paths on: `epsilon-tag
    search boat -0 | xargs -0 cp -t ~/boats`.
    """
    with reported():
        api.check_score(min_score, "--min-score")  # worded as the flags here; the same checks as the search's
        api.check_dates(after, before, ("--after", "--before"))
        if bool(words) == bool(like):
            raise api.InputError("Search by words or by --like PHOTO: give one of them.")
        with api.open_library(db, readonly=True) as library:
            if like:
                found = api.like(library, like, limit=limit, after=after, before=before)
            else:
                found = api.search(library, words, limit=limit, min_score=min_score, after=after, before=before)
    if as_json:
        echo_json(found.to_dict())
    else:
        _print_found(found, " ".join(words or []), scores, print0)


def _print_found(found: api.Found, query: str, scores: bool, print0: bool) -> None:
    ranking = found.ranking
    if not found.hits:
        if ranking.best is None:
            typer.echo("The library holds no photo to search (in these dates).", err=True)
        else:
            typer.echo(
                f"No photo matches {query!r} well (the best confidence is {ranking.best:.2f}, the floor "
                f"{ranking.floor or 0:.2f}): `--min-score 0` lists every photo by confidence.{ranking.did_you_mean()}",
                err=True,
            )
    for hit in found.hits:
        typer.echo(f"{hit.score:.3f}\t{hit.path}" if scores else hit.path, nl=not print0)
        if print0:
            typer.echo("\0", nl=False)
    if 0 < len(found.hits) < len(ranking):
        typer.echo(f"{len(found.hits)} of {len(ranking)} matches: -n {len(ranking)} lists them all.", err=True)


@app.command()
def show(
    photo: Path = typer.Argument(..., help="A photo's path.", show_default=False, metavar="PHOTO"),
    every: bool = typer.Option(
        False, "--all", help="Every stored candidate tag, not only the ones shown (those are marked 'not shown')."
    ),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """A photo's tags with scores (the ones the model's rule keeps), and its EXIF."""
    with reported(), api.open_library(db, readonly=True) as library:
        view = api.show(library, photo, every=every)
    if as_json:
        echo_json(view.to_dict())
        return
    typer.echo(view.row["path"] + ("" if view.row["status"] == api.OK else f"  [{view.row['status']}]"))
    for label, value in view.facts:
        typer.echo(f"  {label:<7} {value}")
    if view.own:  # the photographer's, apart from the model's
        typer.echo(f"  {'own':<7} {', '.join(view.own)}")
    for tag in view.tags:
        notes = [note for note, on in (("zero-shot", tag["kind"] != api.SEEN), ("not shown", not tag["shown"])) if on]
        typer.echo(f"  {tag['score']:.3f}  {tag['word']}" + (f"  ({', '.join(notes)})" if notes else ""))


@app.command()
def stats(
    failures: bool = typer.Option(False, "--failures", help="List every file that could not be read, with the reason."),
    as_json: bool = Json,
    db: Path | None = Db,
) -> None:
    """What the library holds: photos, missing, failures, words, the model."""
    with reported(), api.open_library(db, readonly=True) as library:
        info = api.stats(library, failures=failures)
    if as_json:
        echo_json(info)
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
        typer.echo(f"  {'tagged with a warning' if row['tagged'] else 'failed'}: {row['path']}: {row['reason']}")


@app.command()
def export(
    paths: list[Path] = typer.Argument(
        None,
        help="Only photos under these folders (default: the whole library).",
        show_default=False,
        metavar="FOLDER...",
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
    with reported():
        api.check_score(min_score, "--min-score")
        if not xmp:
            raise api.InputError("Say what to export: --xmp (XMP sidecars) is the format there is.")
        with api.open_library(db, readonly=True) as library:
            written, merged, failed = api.export_xmp(
                library, paths or [], naming=naming.value, min_score=min_score, top=top, parent=parent or None
            )
    typer.echo(f"XMP sidecars: {written} written, {merged} merged into existing ones, {len(failed)} failed.")
    for path, reason in failed:
        typer.echo(f"  failed: {path}: {reason}", err=True)
    if failed:
        raise typer.Exit(1)  # a script sees that some photos have no sidecar; every other one is written


@app.command()
def tui(db: Path | None = Db) -> None:
    """Browse the library in the terminal: tags, photos, previews; search; add words."""
    from ..tui.app import EpsilonTagApp  # Textual's imports: only for this command

    path = db or api.default_db()
    if path.exists():  # a broken, foreign or newer file: the error, not a first-run screen
        with reported(), api.open_library(path, readonly=True):
            pass
    tui_app = EpsilonTagApp(path)
    tui_app.run()
    code = tui_app.return_code or 0
    if code not in (0, 2):  # 2: an error the app told; else a bug, whose traceback Textual printed
        typer.echo(bug("above"), err=True)
    if code:
        raise typer.Exit(code)
