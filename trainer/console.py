"""What the two command lines (epsilon-tag, epsilon-train) share: how an error reaches the
person at the terminal. A ``UserError`` is one line saying what to do and exit status 2,
never a traceback; anything else is a bug, and says so above its traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

from .errors import UserError

BUG = (
    "{program} hit a bug (not something you did). Please report it with the traceback {where} at "
    "the project's issue tracker; {state}."
)


def bug_message(program: str, where: str = "below", state: str = "nothing it finished is lost") -> str:
    return BUG.format(program=program, where=where, state=state)


def fail(message: str) -> typer.Exit:
    """Print a told error; the caller raises what this returns (``raise fail(...)``)."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(2)


@contextmanager
def clearly(
    program: str,
    explain: Callable[[Exception], str | None] | None = None,
    state: str = "nothing it finished is lost",
) -> Iterator[None]:
    """Run a command's work: told errors end it with their message (exit 2). ``explain``
    turns other exceptions a person can act on (a busy database, a full disk) into a
    message, or returns None for a bug."""
    try:
        yield
    except UserError as exc:
        raise fail(str(exc)) from None  # the message is the whole story: no traceback
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own ways out
        raise
    except Exception as exc:
        told = explain(exc) if explain else None
        if told:
            raise fail(told) from None
        typer.echo(bug_message(program, "below", state), err=True)
        raise
