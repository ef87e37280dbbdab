"""A photo file's metadata (EXIF, without decoding pixels) and its upright pixels.

Decoding itself is ``trainer.images.load_rgb`` (JPEG draft mode, EXIF orientation,
HEIF/AVIF); this module adds what the tagger needs around it: EXIF fields for the
library, and RAW files read through their largest embedded JPEG preview.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import exifread
import numpy as np
from PIL import Image, ImageOps

from trainer.images import load_rgb

from .walk import NOT_SUPPORTED, RAW_SUFFIXES

# exifread logs "File format not recognized" and the like for every odd file; a scan
# records its own reasons instead.
logging.getLogger("exifread").setLevel(logging.CRITICAL)

# How many JPEG start markers to try inside a RAW file before giving up.
_MAX_PREVIEW_CANDIDATES = 64


class UnreadablePhoto(RuntimeError):
    """A file that is not a photo we can decode; the message is the reason to record."""


@dataclass(frozen=True)
class PhotoMeta:
    taken_at: str | None = None  # ISO 8601, camera local time ("2008-10-22T16:28:39")
    camera: str | None = None  # "NIKON COOLPIX P6000"
    lens: str | None = None
    latitude: float | None = None  # decimal degrees, south negative
    longitude: float | None = None  # decimal degrees, west negative
    orientation: int = 1  # EXIF orientation 1..8
    problems: tuple[str, ...] = ()  # fields found but left out as impossible, and why


def read_meta(path: str | Path) -> PhotoMeta:
    """EXIF fields via exifread (headers only); Pillow's reader where exifread finds nothing.

    Never raises: a file that vanished or cannot be read has no metadata."""
    try:
        with open(path, "rb") as handle:
            return _meta_from(handle, path)
    except OSError:
        return PhotoMeta()


def _meta_from(handle: BinaryIO, source: str | Path | BinaryIO) -> PhotoMeta:
    try:
        tags = exifread.process_file(handle, details=False)
    except Exception:  # exifread fails on some malformed headers: fall back, never crash a scan
        tags = {}
    if not tags:
        tags = _pillow_tags(source)
    make = _text(tags.get("Image Make"))
    model = _text(tags.get("Image Model"))
    camera = (
        model
        if make and model and model.lower().startswith(make.lower().split()[0])
        else " ".join(part for part in (make, model) if part)
    )
    problems: list[str] = []
    latitude = _degrees(tags.get("GPS GPSLatitude"), _text(tags.get("GPS GPSLatitudeRef")), "S")
    longitude = _degrees(tags.get("GPS GPSLongitude"), _text(tags.get("GPS GPSLongitudeRef")), "W")
    if (latitude is None) != (longitude is None) or (
        latitude is not None and longitude is not None and (abs(latitude) > 90 or abs(longitude) > 180)
    ):
        shown = ", ".join(f"{name} {value}" for name, value in (("latitude", latitude), ("longitude", longitude)))
        problems.append(f"GPS position in the EXIF is impossible ({shown}): not stored")
        latitude = longitude = None
    elif tags.get("GPS GPSLatitude") is not None and latitude is None:
        problems.append("GPS position in the EXIF is unreadable (a zero denominator or a missing part): not stored")
    return PhotoMeta(
        taken_at=_date(_text(tags.get("EXIF DateTimeOriginal")) or _text(tags.get("Image DateTime"))),
        camera=camera or None,
        lens=_text(tags.get("EXIF LensModel")) or None,
        latitude=latitude,
        longitude=longitude,
        orientation=_orientation(tags.get("Image Orientation")),
        problems=tuple(problems),
    )


def open_photo(path: str | Path, min_side: int) -> Image.Image:
    """Upright RGB pixels for the model; RAW files through their embedded preview."""
    path = Path(path)
    if path.suffix.lower() in NOT_SUPPORTED:
        raise UnreadablePhoto(f"format not supported: {NOT_SUPPORTED[path.suffix.lower()]} ({path.suffix})")
    try:
        if path.suffix.lower() in RAW_SUFFIXES:
            return _raw_preview(path, min_side)
        if path.suffix.lower() in JPEG_XL_SUFFIXES:
            return _jpeg_xl(path)
        return load_rgb(path, min_side)
    except UnreadablePhoto:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadablePhoto(f"refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for bad files
        raise UnreadablePhoto(f"cannot decode: {_plainly(path, exc)}") from exc


def _plainly(path: Path, exc: Exception) -> str:
    """Pillow's reason in a photographer's words where it has a common cause."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes): an interrupted copy or download?"
    if "truncated" in str(exc):
        return f"the file is cut off before the end of the image ({exc}): an interrupted copy or download?"
    return str(exc)


def _raw_preview(path: Path, min_side: int) -> Image.Image:
    data = path.read_bytes()
    best, start, tried = None, 0, 0
    while tried < _MAX_PREVIEW_CANDIDATES:
        start = data.find(b"\xff\xd8\xff", start)
        if start < 0:
            break
        tried += 1
        try:
            candidate = Image.open(io.BytesIO(data[start:]))
            if candidate.format == "JPEG" and (best is None or _area(candidate) > _area(best[1])):
                best = (start, candidate)
        except Exception:  # a marker inside other data: not a JPEG
            pass
        start += 3
    if best is None:
        raise UnreadablePhoto("RAW file without an embedded JPEG preview")
    preview = Image.open(io.BytesIO(data[best[0] :]))
    preview.draft("RGB", (min_side, min_side))
    # The preview's own EXIF rarely carries the orientation; the RAW's header does.
    upright = ImageOps.exif_transpose(preview.convert("RGB"))
    orientation = _meta_from(io.BytesIO(data), io.BytesIO(data)).orientation  # bytes already read
    return _orient(upright, orientation) if orientation != 1 else upright


def _jpeg_xl(path: Path) -> Image.Image:
    """A JPEG XL file, which Pillow cannot open, through imagecodecs' libjxl (BSD-licensed;
    Pillow's JPEG XL plugin is GPL-3.0). Deep images come back 8-bit, grey ones as RGB."""
    import imagecodecs  # 50 ms of imports, for the rare JPEG XL file only

    if not imagecodecs.JPEGXL.available:
        raise UnreadablePhoto("JPEG XL is not supported by this install (its imagecodecs has no libjxl)")
    try:
        pixels = imagecodecs.jpegxl_decode(path.read_bytes())
    except imagecodecs.JpegxlError as exc:
        raise UnreadablePhoto(f"cannot decode JPEG XL: {exc}") from exc
    if pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.float32) * (255 / np.iinfo(pixels.dtype).max)).round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return Image.fromarray(pixels[:, :, :3] if pixels.ndim == 3 else pixels).convert("RGB")


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image.transpose(method) if method else image


def _area(image: Image.Image) -> int:
    return image.size[0] * image.size[1]


def _pillow_tags(path: str | Path | BinaryIO) -> dict:
    """The few tags we use, from Pillow, named as exifread names them."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            ifd = exif.get_ifd(0x8769)
            gps = exif.get_ifd(0x8825)
    except Exception:
        return {}
    tags = {
        "Image Make": exif.get(0x010F),
        "Image Model": exif.get(0x0110),
        "Image Orientation": exif.get(0x0112),
        "Image DateTime": exif.get(0x0132),
        "EXIF DateTimeOriginal": ifd.get(0x9003),
        "EXIF LensModel": ifd.get(0xA434),
        "GPS GPSLatitudeRef": gps.get(1),
        "GPS GPSLatitude": gps.get(2),
        "GPS GPSLongitudeRef": gps.get(3),
        "GPS GPSLongitude": gps.get(4),
    }
    return {k: v for k, v in tags.items() if v is not None}


def _text(tag: Any) -> str:  # exifread's IfdTag, or a value Pillow read
    if tag is None:
        return ""
    return str(tag).replace("\x00", "").strip()


def _date(text: str) -> str | None:
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _number(value: Any) -> float:
    if hasattr(value, "num") and hasattr(value, "den"):  # exifread's Ratio
        return value.num / value.den  # a zero denominator is no number: ZeroDivisionError
    return float(value)


def _degrees(tag: Any, ref: str, negative: str) -> float | None:
    values = getattr(tag, "values", tag)
    try:
        d, m, s = (_number(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (0 <= m < 60 and 0 <= s < 60) or d < 0:
        return float("inf")  # impossible: reported by the caller
    degrees = d + m / 60 + s / 3600
    return -degrees if ref.upper().startswith(negative) else degrees


def _orientation(tag: Any) -> int:
    values = getattr(tag, "values", tag)
    try:
        value = int(values[0] if isinstance(values, (list, tuple)) else values)
    except (TypeError, ValueError, IndexError):
        return 1
    return value if 1 <= value <= 8 else 1


def photo_size(path: str | Path, orientation: int = 1) -> tuple[int | None, int | None]:
    """Width and height as shown (after EXIF orientation), from the header alone."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # RAW files Pillow cannot parse: the size is unknown, not an error
        return None, None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe"})
JPEG_XL_SUFFIXES = frozenset({".jxl"})


def jpeg_damage(path: str | Path, image: Image.Image) -> str | None:
    """Why a decoded JPEG is incomplete, or None. Pillow passes over libjpeg's "corrupt
    data" warnings; libjpeg then fills what it could not decode with flat mid-gray, from
    the damage to the bottom. Rows of exactly (128, 128, 128) at the bottom are that fill
    (a real photo almost never has one), so the picture is tagged from the rest and the
    damage is reported."""
    if Path(path).suffix.lower() not in JPEG_SUFFIXES:
        return None

    pixels = np.asarray(image)
    flat = np.all(pixels == 128, axis=(1, 2))[::-1]
    missing = int(np.argmin(flat)) if not flat.all() else len(flat)
    if missing == 0:
        return None
    return (
        f"damaged JPEG: the bottom {missing} of {len(flat)} decoded rows are missing "
        f"(corrupt or cut-off data); tagged from the rest"
    )
