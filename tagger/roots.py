"""The folders a library scans: listed with their photos and the patterns each skips,
forgotten on request, dropped when they are gone and their photos were found elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.errors import InputError

from .library import Library


def roots_of(library: Library) -> list[dict]:
    """The folders the library scans, with how many present photos each holds, whether it
    is there, and the patterns its scans skip (``scan -x``, remembered)."""
    excludes = excludes_of(library)
    return [
        {
            "root": root,
            "photos": library.present_count_under(root),
            "present": os.path.exists(root),
            "exclude": excludes.get(root, []),
        }
        for root in library.get_meta("roots", [])
    ]


def excludes_of(library: Library) -> dict[str, list[str]]:
    """Each folder's patterns to skip, as its last scan with ``-x`` gave them."""
    return library.get_meta("excludes", {})


def keep_roots(library: Library, roots: list[str], excludes: dict[str, list[str]] | None = None) -> None:
    """The folders a bare scan covers, and the patterns each skips (``excludes``: new ones;
    a folder no longer listed takes its patterns with it)."""
    held = {**excludes_of(library), **(excludes or {})}
    library.set_meta(roots=roots, excludes={r: held[r] for r in roots if held.get(r)})


def forget_root(library: Library, root: str | Path) -> int:
    """Stop scanning a folder and forget its photos (their rows, vectors and tags); returns
    how many photos were forgotten."""
    remembered = library.get_meta("roots", [])
    wanted = str(root).rstrip(os.sep)
    if wanted not in remembered:
        wanted = str(Path(root).expanduser().resolve())
    if wanted not in remembered:
        raise InputError(f"{root} is not one of this library's folders: `epsilon-tag roots list` shows them")
    others = [r for r in remembered if r != wanted]
    with library.transaction():
        # A photo another of the library's folders covers stays (a folder and a photo in it, both scanned).
        kept = {i for other in others for i in library.photo_ids_under(other)}
        ids = [i for i in library.photo_ids_under(wanted) if i not in kept]
        library.delete_photos(ids)
        library.clear_staged(under=wanted)
        keep_roots(library, others)
    return len(ids)


def forget_gone_roots(library: Library) -> list[str]:
    """Roots that are not there and hold no present photo (renamed or moved away, their
    photos found elsewhere) are dropped from the folders a bare `scan` covers."""
    gone = [r["root"] for r in roots_of(library) if not r["present"] and r["photos"] == 0]
    if gone:
        keep_roots(library, [r for r in library.get_meta("roots", []) if r not in gone])
    return gone
