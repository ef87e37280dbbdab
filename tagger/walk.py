"""Which files a scan reads: photo formats only, no hidden or system clutter, no loops.

Walking never raises for a bad folder or link: what cannot be read is reported as a
``Skipped`` entry with its reason, so a scan can record it and go on.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

PHOTO_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .png .webp .tif .tiff .bmp .gif .heic .heif .avif".split()
)
# Camera RAW files: read through their embedded preview where they have one.
RAW_SUFFIXES = frozenset(".dng .arw .cr2 .cr3 .nef .nrw .orf .raf .rw2 .pef .srw".split())
# NAS indexes, OS metadata and thumbnail caches, never photos of the library.
CLUTTER_NAMES = frozenset(
    {"@eaDir", "__MACOSX", "#recycle", "$RECYCLE.BIN", "System Volume Information", "Thumbs.db", "lost+found"}
)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


def is_clutter(name: str) -> bool:
    """Hidden files and folders (``.*``, which covers ``._*`` AppleDouble files) and system clutter."""
    return name.startswith(".") or name in CLUTTER_NAMES


def walk_photos(
    roots: Sequence[str | Path], exclude: Iterable[str] = ()
) -> Iterator[Path | Skipped]:
    """Yield every photo file under the roots (sorted per folder), or a ``Skipped`` entry.

    ``exclude`` holds glob patterns matched against the full path and the file or folder
    name (``"*/exports/*"``, ``"*.png"``). Symlinked folders are followed once: a link
    back into a folder already walked is skipped as a loop.
    """
    patterns = tuple(exclude)
    seen_dirs: set[tuple[int, int]] = set()

    def excluded(path: Path) -> bool:
        return any(fnmatch.fnmatch(str(path), p) or fnmatch.fnmatch(path.name, p) for p in patterns)

    def visit(folder: Path) -> Iterator[Path | Skipped]:
        try:
            info = folder.stat()
        except OSError as exc:
            yield Skipped(folder, f"cannot open folder: {exc.strerror or exc}")
            return
        key = (info.st_dev, info.st_ino)
        if key in seen_dirs:
            yield Skipped(folder, "symlink loop (folder already walked)")
            return
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(folder, f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            path = Path(entry.path)
            if is_clutter(entry.name) or excluded(path):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = entry.is_file()
            except OSError as exc:
                yield Skipped(path, f"cannot read: {exc.strerror or exc}")
                continue
            if is_dir:
                yield from visit(path)
            elif is_file:
                suffix = path.suffix.lower()
                if suffix in PHOTO_SUFFIXES or suffix in RAW_SUFFIXES:
                    yield path
            elif entry.is_symlink():
                yield Skipped(path, "broken symlink")

    for root in roots:
        root = Path(root).expanduser()
        if root.is_file():
            yield root
        elif root.exists():
            yield from visit(root)
        else:
            yield Skipped(root, "no such file or folder")
