"""epsilon-tag: the photo tagger's command line."""

from __future__ import annotations

import typer

from . import __version__

app = typer.Typer(
    help="Tag a local photo library with Epsilon, offline, and search it with any word.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"epsilon-tag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Tag a local photo library with Epsilon, offline, and search it with any word."""


def main() -> None:
    app()
