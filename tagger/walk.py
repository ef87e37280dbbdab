"""Which files a scan reads: photo formats only, no hidden or system clutter, no loops.

Walking never raises for a bad folder or link: what cannot be read is reported as a
``Skipped`` entry with its reason, so a scan can record it and go on.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PHOTO_SUFFIXES = frozenset(
    [".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif", ".avif", ".jxl"]
)
# Camera RAW files: read through their embedded preview where they have one.
RAW_SUFFIXES = frozenset([".dng", ".arw", ".cr2", ".cr3", ".nef", ".nrw", ".orf", ".raf", ".rw2", ".pef", ".srw"])
# Pictures a scan meets but cannot read: walked as photos, so that reading them fails with
# this reason and they are listed (once, until they change), rather than passed over
# without a word; other files (documents, videos) are not photos and are passed over.
NOT_SUPPORTED = {
    ".svg": "a vector drawing",
    ".svgz": "a vector drawing",
    ".psd": "a Photoshop document",
    ".psb": "a Photoshop document",
    ".xcf": "a GIMP document",
    ".kra": "a Krita document",
    ".exr": "an OpenEXR image",
    ".jp2": "a JPEG 2000 image",
    ".j2k": "a JPEG 2000 image",
}
SIDECAR_SUFFIX = ".xmp"
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
    roots: Sequence[str | Path],
    exclude: Iterable[str] = (),
    *,
    followed: list[Path] | None = None,
    sidecars: dict[str, tuple[int, int]] | None = None,
) -> Iterator[Path | Skipped]:
    """Yield every photo file under the roots (sorted per folder) by its real path, or a
    ``Skipped`` entry.

    ``exclude`` holds glob patterns matched against the full path and the file or folder
    name (``"*/exports/*"``, ``"*.png"``). Symlinked folders are followed, and their
    photos are yielded by their real paths, so a file reached by two paths is one photo
    (the caller drops repeats). A folder is walked once: another path to a folder already
    walked is passed over, and a link to one of its own ancestors is reported as a loop.
    The real folders links led to are appended to ``followed``, and the XMP sidecars met
    to ``sidecars`` (path -> size, mtime), so that a rescan sees an edited sidecar without
    looking for one beside every photo.
    """
    walker = _Walker(tuple(exclude), followed, sidecars)
    for root in roots:
        root = Path(os.path.realpath(Path(root).expanduser()))
        if root.is_file():
            walker.note_sidecars_beside(root)  # a folder's walk meets them; a file root is no folder
            yield root
        elif root.exists():
            yield from walker.visit(root)
        else:
            yield Skipped(root, "no such file or folder")


_LOOP = "symlink loop (a link to a folder that contains it)"


class _Walker:
    def __init__(
        self, patterns: tuple[str, ...], followed: list[Path] | None, sidecars: dict[str, tuple[int, int]] | None
    ) -> None:
        self.patterns, self.followed, self.sidecars = patterns, followed, sidecars
        self.seen_dirs: set[tuple[int, int]] = set()

    def note_sidecars_beside(self, photo: Path) -> None:
        if self.sidecars is None:
            return
        for name in dict.fromkeys((f"{photo}{SIDECAR_SUFFIX}", f"{photo.with_suffix('')}{SIDECAR_SUFFIX}")):
            with suppress(OSError):  # none of that name
                info = os.stat(name)
                self.sidecars[name] = (info.st_size, info.st_mtime_ns)

    def excluded(self, path: Path) -> bool:
        return any(fnmatch.fnmatch(str(path), p) or fnmatch.fnmatch(path.name, p) for p in self.patterns)

    def visit(self, folder: Path, ancestors: frozenset = frozenset()) -> Iterator[Path | Skipped]:
        try:
            info = folder.stat()
        except OSError as exc:
            yield Skipped(folder, f"cannot open folder: {exc.strerror or exc}")
            return
        key = (info.st_dev, info.st_ino)
        if key in ancestors:
            yield Skipped(folder, _LOOP)
            return
        if key in self.seen_dirs:
            return  # another path to a folder already walked: its photos are in already
        self.seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(folder, f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if not (is_clutter(entry.name) or self.excluded(Path(entry.path))):
                yield from self.entry(entry, ancestors | {key})

    def entry(self, entry: os.DirEntry, ancestors: frozenset) -> Iterator[Path | Skipped]:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks
            is_file = entry.is_file()
        except OSError as exc:
            yield Skipped(path, f"cannot read: {exc.strerror or exc}")
            return
        if is_dir:
            target = self.link_target(path, ancestors) if entry.is_symlink() else path
            if isinstance(target, Skipped):
                yield target
            else:
                yield from self.visit(target, ancestors)
        elif is_file:
            suffix = path.suffix.lower()
            if suffix in PHOTO_SUFFIXES or suffix in RAW_SUFFIXES or suffix in NOT_SUPPORTED:
                yield Path(os.path.realpath(path)) if entry.is_symlink() else path
            elif suffix == SIDECAR_SUFFIX and self.sidecars is not None:
                with suppress(OSError):  # gone since the listing: as if it never was
                    info = entry.stat()
                    self.sidecars[entry.path] = (info.st_size, info.st_mtime_ns)
        elif entry.is_symlink():
            yield Skipped(path, "broken symlink")

    def link_target(self, path: Path, ancestors: frozenset) -> Path | Skipped:
        """Where a linked folder leads (walked from there: every path below is real)."""
        target = Path(os.path.realpath(path))
        try:
            info = target.stat()
        except OSError as exc:  # gone since is_dir() looked
            return Skipped(path, f"cannot read: {exc.strerror or exc}")
        if (info.st_dev, info.st_ino) in ancestors:
            return Skipped(path, _LOOP)
        if self.followed is not None:
            self.followed.append(target)
        return target


def as_text(path: Path | str) -> str:
    """A path as the library stores and prints it: text. Names that are not valid UTF-8
    come back with backslash escapes, the same whoever asks (scan, show, export)."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")
