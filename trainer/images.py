"""Decode a photo file into an upright RGB image sized for a backbone, as cheaply as possible."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

# HEIC/HEIF and AVIF open through pillow-heif's plugin once it is registered.
try:
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a dependency; keep JPEG/PNG working without it
    pass


def load_rgb(path: str | Path, min_side: int) -> Image.Image:
    """Open ``path`` as RGB, rotated by its EXIF orientation, decoded at reduced scale.

    JPEG's draft mode decodes at 1/2, 1/4 or 1/8 scale directly from the DCT, which makes a
    12 MP photo several times cheaper; it never goes below ``min_side`` on the short side,
    so the backbone's resize still downsamples. Raises the decoder's error on a bad file.
    """
    with Image.open(path) as image:
        if image.format == "JPEG":
            width, height = image.size
            scale = min_side / max(1, min(width, height))
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")
