"""What a scan will do, worked out before it changes anything.

Deciding is cheap and reads only: walk the folders, stat every file, compare with the
library, and hash only files whose size matches a photo that is gone, to recognise moves.
The result is a ``ScanPlan``, a value that can be printed and tested; ``tagger.scan``
applies it (marks, moves, prunes, then reads and tags the files in ``to_read``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.errors import InputError

from .library import MISSING, OK, READ_VERSION, Failure, Known, Library
from .roots import excludes_of
from .walk import SIDECAR_SUFFIX, Skipped, as_text, walk_photos

# A quick content hash: the size and the first and last 256 KiB. Enough to tell photos
# apart (headers carry timestamps, the tail is entropy-coded pixels) at one short read.
_HASH_SPAN = 256 * 1024


def quick_hash(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(size.to_bytes(8, "little"))
        digest.update(handle.read(_HASH_SPAN))
        if size > 2 * _HASH_SPAN:
            handle.seek(size - _HASH_SPAN)
            digest.update(handle.read(_HASH_SPAN))
        elif size > _HASH_SPAN:
            digest.update(handle.read())
    return digest.hexdigest()


def sidecar_signature(photo: str, seen: Mapping[str, tuple[int, int]] | None = None) -> str:
    """Name, size and time of each sidecar the photo has ('' for none): its keywords are
    read again when this changes. ``seen``: the sidecars a walk met (else each name is
    looked up on disk)."""
    if seen is not None and not seen:  # most folders hold no sidecar: 100,000 photos in no time
        return ""
    parts = []
    for name in _sidecar_names(photo):
        info = seen.get(name) if seen is not None else _size_and_time(name)
        if info is not None:
            parts.append(f"{os.path.basename(name)}:{info[0]}:{info[1]}")
    return ";".join(parts)


def _sidecar_names(photo: str) -> list[str]:
    """tagger.xmp.sidecar_names as text, without a Path per photo (a rescan asks for every one)."""
    full, stem = photo + SIDECAR_SUFFIX, os.path.splitext(photo)[0] + SIDECAR_SUFFIX
    return [full] if full == stem else [full, stem]


def _size_and_time(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def under(path: str, folders: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or inside one of them."""
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


@dataclass(frozen=True)
class Job:
    """A file to read, as it was when the scan looked."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Target:
    """The model a scan tags with, as far as deciding needs it."""

    model_id: str
    switching: bool  # another model than the library's: photos are read into staging
    read_again: bool  # photos read before the library recorded what this model records are read again


@dataclass
class ScanPlan:
    folders: list[str]  # absolute, each there now
    to_read: list[tuple[Job, bool]] = field(default_factory=list)  # (file, already in the library)
    unchanged: int = 0
    failed_before: int = 0  # failed before and unchanged since: not retried
    back: list[int] = field(default_factory=list)  # missing before, found where they were
    walk_failures: list[Failure] = field(default_factory=list)
    stale_failures: list[str] = field(default_factory=list)  # failures of files gone (or readable again)
    moves: list[tuple[int, Job]] = field(default_factory=list)  # (photo id, the file it is now)
    rekey: list[tuple[int, str]] = field(default_factory=list)  # (photo id, path): keywords to read again
    gone: list[int] = field(default_factory=list)  # vanished, not moved: marked missing, or pruned
    stale: list[int] = field(default_factory=list)  # missing before: pruned too when pruning
    unreadable: list[str] = field(default_factory=list)  # folders not read: their photos are not gone
    skipped_roots: list[str] = field(default_factory=list)  # the library's own folders not there now
    empty_roots: list[tuple[str, int]] = field(default_factory=list)  # (root, photos the library has there)
    linked: dict[str, list[str]] = field(default_factory=dict)  # per root, the real folders its links led to now
    excludes: dict[str, list[str]] = field(default_factory=dict)  # per root, the patterns skipped

    def to_dict(self) -> dict:
        return asdict(self)


def choose_folders(library: Library, roots: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """The folders to scan, as absolute paths, and the library's folders skipped: those given
    (each must be there: a typo or an unmounted drive is an error, before anything changes),
    else every folder the library remembers that is there now (the others, an unplugged
    drive, are skipped)."""
    if roots:
        absent = [str(r) for r in roots if not Path(r).expanduser().exists()]
        if absent:
            raise InputError(f"No such file or folder: {', '.join(absent)}. Nothing was scanned.")
        return [str(Path(r).expanduser().resolve()) for r in roots], []
    remembered = library.get_meta("roots", [])
    if not remembered:
        raise InputError("Say which folder to scan: epsilon-tag scan ~/Pictures")
    folders = [r for r in remembered if Path(r).exists()]
    if not folders:
        raise InputError("None of this library's folders is there now: nothing was scanned.")
    return folders, [r for r in remembered if not Path(r).exists()]


def plan_scan(
    library: Library,
    roots: Sequence[str | Path],
    target: Target,
    *,
    exclude: Sequence[str] = (),
    force: bool = False,
    prune: bool = False,
    allow_empty: bool = False,
    forced_since: str | None = None,
) -> ScanPlan:
    """Everything a scan of ``roots`` (none: the library's own folders) would change, read
    from the disk and the library without writing either. ``forced_since``: a forced scan
    cut short that began then is continued (photos read since are not read again)."""
    folders, skipped = choose_folders(library, roots)
    plan = ScanPlan(folders, skipped_roots=skipped)
    known = library.known_photos()
    # Patterns given apply to every folder scanned (and are remembered for it); without any,
    # each folder skips what its own last scan with -x skipped.
    remembered = excludes_of(library)
    plan.excludes = {root: list(exclude) if exclude else remembered.get(root, []) for root in folders}
    found = _walk(library, plan, known, target, force, forced_since)
    # An empty root where the library has photos is an unplugged drive until told otherwise.
    for root in folders:
        held = sum(row.status == OK and under(path, [root]) for path, row in known.items())
        if held and not allow_empty and not any(under(path, [root]) for path in found):
            plan.unreadable.append(root)
            plan.empty_roots.append((root, held))
    # Photos the library holds under these roots (or where links in them lead, now or at the
    # last scan) that the walk did not find. A folder that could not be read hides its
    # photos: not counted as gone.
    before = library.get_meta("linked_folders", {})
    covered = folders + [f for root in folders for f in {*plan.linked[root], *before.get(root, [])}]
    unreadable = plan.unreadable
    present = [row for path, row in known.items() if row.status == OK and path not in found]
    vanished = [row for row in present if under(row.path, covered) and not under(row.path, unreadable)]
    # A new file may take over any photo whose file is gone, wherever it was: a renamed or
    # moved root is a move (files elsewhere are checked only when sizes match).
    elsewhere = [row for row in present if not under(row.path, covered)]
    missing = [row for row in known.values() if row.status == MISSING]
    plan.to_read, plan.moves = _recognise_moves(plan.to_read, vanished + missing, elsewhere)
    plan.rekey += [(photo_id, job.path) for photo_id, job in plan.moves]  # its sidecar may not have moved with it
    moved = {photo_id for photo_id, _ in plan.moves}
    plan.gone = [row.id for row in vanished if row.id not in moved]
    if prune:
        plan.stale = [
            row.id
            for row in missing
            if row.id not in moved and under(row.path, folders) and not under(row.path, unreadable)
        ]
    return plan


def _walk(
    library: Library,
    plan: ScanPlan,
    known: dict[str, Known],
    target: Target,
    force: bool,
    forced_since: str | None,
) -> set[str]:
    """Walk the plan's folders: each file is unchanged, failed before, or to read. Returns
    the paths found."""
    staged = library.staged_files(target.model_id) if target.switching else {}
    failed_before = library.known_failures()
    found: set[str] = set()
    sidecars: dict[str, tuple[int, int]] = {}
    kept: list[Known] = []  # unchanged photos: their sidecars are compared once the walk has met them all
    for root in plan.folders:
        followed: list[Path] = []
        for item in walk_photos([root], plan.excludes[root], followed=followed, sidecars=sidecars):
            job = _job(item, plan, found)
            if job is None:
                continue
            row = known.get(job.path)
            current = row is not None and (row.read_version >= READ_VERSION or not target.read_again)
            same = row is not None and (row.size, row.mtime_ns) == (job.size, job.mtime_ns)
            # Read by the forced scan this one continues (ISO times compare as text).
            read_since = forced_since is not None and row is not None and (row.scanned_at or "") >= forced_since
            if target.switching and staged.get(job.path) == (job.size, job.mtime_ns) and not force:
                plan.unchanged += 1  # read for the switch by a scan cut short
            elif row is not None and same and row.model_id == target.model_id and current and (not force or read_since):
                if row.status != OK:
                    plan.back.append(row.id)
                kept.append(row)
                plan.unchanged += 1
            elif not force and failed_before.get(job.path) == (job.size, job.mtime_ns):
                plan.failed_before += 1
            else:
                plan.to_read.append((job, row is not None))
        # Real folders that links inside the root lead to: photos there belong to the root,
        # and go missing with the link (remembered, since the link may be gone next time).
        plan.linked[root] = sorted(set(map(str, followed)))
    # A sidecar edited since its keywords were read, or keywords never read (an older library).
    plan.rekey = [(row.id, row.path) for row in kept if row.sidecars != sidecar_signature(row.path, sidecars)]
    # Failures of files that are gone (or folders readable again) are history, not news.
    failed_now = {f.path for f in plan.walk_failures}
    plan.stale_failures = [
        p for p in failed_before if under(p, plan.folders) and p not in found and p not in failed_now
    ]
    return found


def _job(item: Path | Skipped, plan: ScanPlan, found: set[str]) -> Job | None:
    """A walked entry as a file to consider, or None (a failure recorded in the plan, or a
    file already reached by another path)."""
    if isinstance(item, Skipped):
        plan.unreadable.append(str(item.path))
        plan.walk_failures.append(Failure(as_text(item.path), item.reason))
        return None
    path = as_text(item)
    if path != str(item):
        plan.walk_failures.append(Failure(path, "file name is not valid UTF-8: rename the file"))
        return None
    if path in found:  # one file, one photo, by however many paths it was reached
        return None
    try:
        info = os.stat(path)
    except OSError as exc:
        plan.walk_failures.append(Failure(path, f"cannot read: {exc.strerror or exc}"))
        return None
    found.add(path)
    return Job(path, info.st_size, info.st_mtime_ns)


def _recognise_moves(
    jobs: list[tuple[Job, bool]], candidates: list[Known], elsewhere: Sequence[Known] = ()
) -> tuple[list[tuple[Job, bool]], list[tuple[int, Job]]]:
    """New files with the content of a vanished or missing photo take over its row (and tags);
    so may photos ``elsewhere`` (outside the folders walked) whose file no longer exists.
    Returns the jobs left to read and the moves (photo id, new file)."""
    by_size: dict[int, list[Known]] = {}
    for row in [*candidates, *elsewhere]:
        if row.hash:
            by_size.setdefault(row.size, []).append(row)
    outside = {row.id for row in elsewhere}
    remaining, moves = [], []
    for job, in_library in jobs:
        matches = by_size.get(job.size) if not in_library else None
        match = _same_content(job, matches, outside) if matches else None
        if match is None:
            remaining.append((job, in_library))
        else:
            matches.remove(match)  # type: ignore[union-attr]  # found among them
            moves.append((match.id, job))
    return remaining, moves


def _same_content(job: Job, matches: list[Known], outside: set[int]) -> Known | None:
    try:
        digest = quick_hash(job.path)
    except OSError:
        return None
    return next(
        (row for row in matches if row.hash == digest and (row.id not in outside or not os.path.exists(row.path))),
        None,
    )
