"""What every command of epsilon-tag shares: the app and its command groups, the options
every command takes (--db, --json), the choices, and how errors reach the terminal."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path

import typer

import tagger
from trainer.console import bug_message, clearly


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
GONE = "If it is gone for good: epsilon-tag roots forget "
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


def reported() -> AbstractContextManager[None]:
    return clearly("epsilon-tag", _explain, _STATE)


def bug(where: str) -> str:
    """What the CLI says of a bug, its traceback ``where`` (above, below)."""
    return bug_message("epsilon-tag", where, _STATE)


def echo_rows(rows: list[dict], as_json: bool, line: Callable[[dict], str]) -> None:
    """A listing: JSON, or a line per row."""
    if as_json:
        echo_json(rows)
    else:
        for row in rows:
            typer.echo(line(row))


def echo_json(value: object) -> None:
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
    db: Path | None = typer.Option(
        None, "--db", help="Library file for the command that follows (as its own --db).", metavar="FILE"
    ),
) -> None:
    """Tag a local photo library with Epsilon, offline, and search it with any word."""
    if db is not None:  # `epsilon-tag --db FILE scan` as `epsilon-tag scan --db FILE`: through the command's envvar
        os.environ["EPSILON_TAG_DB"] = str(db)
