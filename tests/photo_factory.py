"""Generated photos for tagger tests: distinct pixels, and EXIF written by Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_photo(
    path: Path,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
    *,
    orientation: int | None = None,
    taken_at: str | None = None,
    camera: tuple[str, str] | None = None,
    gps: tuple[float, float] | None = None,
) -> Path:
    """A JPEG (or whatever the suffix says) of smooth seeded colour blobs, with optional EXIF."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if camera:
        exif[0x010F], exif[0x0110] = camera
    if taken_at:
        exif.get_ifd(0x8769)[0x9003] = taken_at  # "2021:06:30 12:00:00"
    if gps:
        lat, lon = gps
        exif.get_ifd(0x8825).update(
            {1: "N" if lat >= 0 else "S", 2: _dms(abs(lat)), 3: "E" if lon >= 0 else "W", 4: _dms(abs(lon))}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif.tobytes())
    return path


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return (float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4))


def make_library(folder: Path, n: int, start_seed: int = 0) -> list[Path]:
    return [make_photo(folder / f"photo_{i:03d}.jpg", seed=start_seed + i) for i in range(n)]
