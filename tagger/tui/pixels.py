"""Photos drawn with real pixels, through textual-image, where the terminal can show them:
Kitty's graphics protocol (Kitty, Ghostty) or Sixel (xterm, foot, WezTerm, iTerm2, Windows
Terminal, ...). Everywhere else, and under tests, the preview keeps its half blocks.

Which protocol a terminal speaks can only be asked before Textual starts: from then on
Textual's input thread reads stdin and would swallow the terminal's answer. So the app asks
once, in ``EpsilonTagApp.run``; ``run_test`` and the snapshot tests never ask, and draw half
blocks, the same on every machine.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from types import ModuleType

from PIL import Image
from textual.widget import Widget

KITTY, SIXEL = "kitty", "sixel"
PROTOCOLS = (KITTY, SIXEL)
# Asking is flaky by textual-image's own account (a key pressed while it waits, a terminal that
# claims a protocol it draws badly): this names the protocol, or "halfblock" for none.
OVERRIDE = "EPSILON_TAG_GRAPHICS"


@dataclass
class Pixels:
    """A photo scaled to the cells it takes: ``columns`` x ``rows`` cells of real pixels."""

    image: Image.Image
    columns: int
    rows: int


def detect() -> str | None:
    """The pixel protocol of the terminal on stdout ("kitty" or "sixel"), or None for half
    blocks. Call before Textual takes the terminal."""
    chosen = os.environ.get(OVERRIDE, "").strip().lower()
    if chosen == "halfblock":
        return None
    on_terminal = bool(sys.__stdout__ and sys.__stdout__.isatty() and sys.__stdin__ and sys.__stdin__.isatty())
    if chosen not in PROTOCOLS and not on_terminal:
        return None  # piped or redirected: nobody to ask, and nobody to see pixels
    renderable = load()
    if renderable is None:
        return None
    if chosen in PROTOCOLS:
        return chosen
    return {renderable.TGPImage: KITTY, renderable.SixelImage: SIXEL}.get(renderable.Image)


def load() -> ModuleType | None:
    """textual-image's renderables, imported now, or None where it is not installed (half
    blocks still work everywhere). Importing it asks the terminal, if there is one, for its
    protocol and for the size of a cell in pixels: the app imports it before Textual starts,
    even when the protocol is already chosen, or the questions would race Textual for stdin."""
    # Its failed questions are logged with tracebacks, which would land on the screen before
    # the app starts; half blocks are the answer to any of them.
    logging.getLogger("textual_image").addHandler(logging.NullHandler())
    try:
        from textual_image import renderable

        cell_pixels()
    except ImportError:
        return None
    except Exception:  # a terminal of 0 x 0 cells divides by zero in there, and others may fail otherwise
        return None
    return renderable


def cell_pixels() -> tuple[int, int]:
    """The width and height of a terminal cell in pixels (measured once, when the terminal
    was asked; 10 x 20, a VT340's, where it could not be)."""
    from textual_image.widget import get_cell_size

    size = get_cell_size()
    return size.width, size.height


def min_side(columns: int, rows: int) -> int:
    """The short side, in pixels, a photo needs to fill ``columns`` x ``rows`` cells: whichever
    way it is turned, its short side never spans more than the box's short side."""
    width, height = cell_pixels()
    return max(1, min(columns * width, rows * height))


def fit(image: Image.Image, columns: int, rows: int) -> Pixels:
    """The image scaled, aspect kept, to the most whole cells that fit ``columns`` x ``rows``.

    Scaled here, in the worker thread that read it, so that the screen's thread only encodes
    an image of the size it draws (a PNG for Kitty, a Sixel palette), never a full photo."""
    width, height = cell_pixels()
    scale = min(columns * width / image.width, rows * height / image.height)
    used_columns = max(1, min(columns, round(image.width * scale / width)))
    used_rows = max(1, min(rows, round(image.height * scale / height)))
    picture = image.convert("RGB").resize((used_columns * width, used_rows * height), Image.Resampling.BILINEAR)
    return Pixels(picture, used_columns, used_rows)


def image_widget(protocol: str, *, id: str) -> Widget:
    """textual-image's own widget for the protocol: it encodes and sends the pixels."""
    from textual_image.widget import SixelImage, TGPImage

    kind = SixelImage if protocol == SIXEL else TGPImage
    return kind(id=id)
