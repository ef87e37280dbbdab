"""epsilon-tag scan, and the folders a library scans (roots list / forget)."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import api
from .base import GONE, Db, Json, app, echo_json, echo_rows, reported, roots_app

# scan's options, each a field of api.ScanOptions of the same name.
Roots = typer.Argument(
    None,
    help="Folders (or single photos) to scan (default: every folder this library has scanned).",
    show_default=False,
    metavar="FOLDER...",
)
Exclude = typer.Option(
    [],
    "--exclude",
    "-x",
    help="Glob on names or paths to skip; repeatable. Remembered for the folders scanned: a later scan "
    "without -x skips the same (`roots list` shows them).",
    metavar="GLOB",
)
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
    options = api.ScanOptions(
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
    with reported():
        report = api.scan(db, roots or [], options)
    for root in report.skipped_roots:  # the library's own folders: an unplugged drive is not a reason to stop
        typer.echo(f"Skipped {root}: not there now (unplugged?); nothing under it changes. {GONE}{root}", err=True)
    if as_json:
        echo_json(report.to_dict())
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


@roots_app.command("list")
def roots_list(as_json: bool = Json, db: Path | None = Db) -> None:
    """The folders this library scans (a bare `epsilon-tag scan` covers them), with their photos."""
    with reported(), api.open_library(db, readonly=True) as library:
        rows = api.roots(library)
    echo_rows(rows, as_json, _root_line)


def _root_line(r: dict) -> str:
    skips = f"  (skips {', '.join(r['exclude'])})" if r["exclude"] else ""
    return f"{r['photos']:>7}  {'' if r['present'] else '(not there now)  '}{r['root']}{skips}"


@roots_app.command("forget")
def roots_forget(
    folder: Path = typer.Argument(
        ..., help="One of the library's folders (`epsilon-tag roots list`).", show_default=False, metavar="FOLDER"
    ),
    db: Path | None = Db,
) -> None:
    """Stop scanning a folder and forget its photos (their tags and vectors)."""
    with reported(), api.open_library(db) as library:
        count = api.forget_root(library, folder)
    typer.echo(f"Forgot {folder} and its {count} photos.")
