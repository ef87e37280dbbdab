"""A photo drawn in the terminal with half blocks: each cell shows two pixels, the upper
one as the glyph's colour and the lower one as its background, which keeps pixels square
on terminals whose cells are twice as tall as wide. Works in every colour terminal."""

from __future__ import annotations

import numpy as np
from PIL import Image
from rich.color import Color
from rich.style import Style
from rich.text import Text

UPPER_HALF = "\u2580"


def halfblock(image: Image.Image, columns: int, rows: int) -> Text:
    """The image scaled to fit ``columns`` x ``rows`` cells, aspect kept."""
    picture = image.convert("RGB")
    picture.thumbnail((max(1, columns), max(2, rows * 2)), Image.Resampling.BILINEAR)
    pixels = np.asarray(picture)
    if len(pixels) % 2:  # an odd last line pairs with black
        pixels = np.concatenate([pixels, np.zeros_like(pixels[:1])])
    text = Text(no_wrap=True, overflow="crop")
    for y in range(0, len(pixels), 2):
        for top, bottom in zip(pixels[y], pixels[y + 1]):
            text.append(UPPER_HALF, Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        if y + 2 < len(pixels):
            text.append("\n")
    return text
