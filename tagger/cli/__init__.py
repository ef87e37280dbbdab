"""epsilon-tag: the photo tagger's command line. Thin: each command parses its options, calls
one operation of ``tagger.api`` with them (every option is an argument of the same name
there) and prints what comes back. The commands live by what they do: ``scanning``
(scan, roots), ``finding`` (search, show, stats, export, tui), ``words`` (vocab, tag)."""

from __future__ import annotations

from . import finding, scanning, words  # noqa: F401  # their commands register on the app
from .base import app, bug

__all__ = ["app", "bug", "main"]


def main() -> None:
    app()  # typer exits with the command's status
