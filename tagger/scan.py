"""Incremental scan: find new, changed, moved and vanished photos; tag the ones to read.

Deciding is cheap and happens first (walk, stat, compare with the library; hash only files
whose size matches a vanished photo, to recognise moves). Reading is the expensive part:
DataLoader worker processes decode photos (JPEG draft mode, EXIF, orientation) while the
main process runs the model on the previous batch; each batch is committed on its own, so
Ctrl-C or a kill loses at most the batch in flight and the next scan continues from there.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.assets import default_words, retired_words
from trainer.embeddings import DEFAULT_EMBEDDINGS
from trainer.errors import InputError
from trainer.tagrule import TagRule

from .images import UnreadablePhoto, jpeg_damage, open_photo, photo_size, read_meta
from .library import DEFAULT, MISSING, OK, READ_VERSION, USER, Failure, Known, Library, PhotoRecord
from .vocabulary import (
    LEVEL_SAMPLE,
    Vocabulary,
    WordSource,
    describe_missing,
    ensure_vocabulary,
    fill_vocabulary,
    known_forms,
    renormalise,
    retag,
    top_tags,
)
from .walk import Skipped, as_text, walk_photos

if TYPE_CHECKING:
    from .engine import Engine

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


@dataclass
class ScanReport:
    new: int = 0
    updated: int = 0
    moved: int = 0
    missing: int = 0  # vanished since the last scan, marked missing
    pruned: int = 0  # deleted from the library (--prune)
    unchanged: int = 0
    failed: int = 0  # could not be read this time
    failed_before: int = 0  # failed before and unchanged since: not retried
    damaged: int = 0  # tagged, but the file is damaged or its EXIF impossible (listed with the failures)
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    empty_roots: list[tuple[str, int]] = field(default_factory=list)  # (root, photos the library has there)
    forgotten_roots: list[str] = field(default_factory=list)  # gone, and none of their photos left there
    skipped_roots: list[str] = field(default_factory=list)  # the library's own folders not there now
    # A switch to another model not finished: photos of the library it has yet to read (a few paths, and how many).
    switch_pending: list[str] = field(default_factory=list)
    switch_pending_count: int = 0
    stopped: str | None = None  # why the scan stopped before its end, when something else stopped it

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self, prune: bool = False) -> str:
        """The counts as a sentence (the CLI's last line, the TUI's status)."""
        parts = [
            f"{self.new} new",
            f"{self.updated} updated",
            f"{self.moved} moved",
            f"{self.pruned} pruned" if prune else f"{self.missing} missing",
            f"{self.unchanged} unchanged",
            f"{self.failed} failed",
        ]
        if self.damaged:
            parts.append(f"{self.damaged} tagged with a problem (see the failures)")
        if self.failed_before:
            parts.append(f"{self.failed_before} failed before (unchanged, not retried; --force retries)")
        if self.skipped_roots:
            parts.append(f"{len(self.skipped_roots)} of its folders not there now (skipped)")
        if self.switch_pending_count:
            parts.append(f"{self.switch_pending_count} photos still to read before the library moves to the model")
        return ", ".join(parts)


@dataclass(frozen=True)
class _Job:
    path: str
    size: int
    mtime_ns: int


class _Reader:
    """Runs in DataLoader workers: one file -> (pixels, metadata) or the reason it failed."""

    def __init__(self, jobs: Sequence[_Job], transform: Callable, decode_side: int, input_size: int):
        self.jobs, self.transform = jobs, transform
        self.decode_side, self.input_size = decode_side, input_size

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int):
        import torch

        job = self.jobs[i]
        try:
            digest = quick_hash(job.path)
            meta = read_meta(job.path)
            image = open_photo(job.path, self.decode_side)
            pixels = self.transform(image)
            # Tagged all the same, but listed with the failures: damage, impossible EXIF values.
            noted = "; ".join(p for p in (jpeg_damage(job.path, image), *meta.problems) if p) or None
            found = (digest, asdict(meta), photo_size(job.path, meta.orientation), noted)
            return i, pixels, found
        except FileNotFoundError:
            reason = "vanished during the scan"
        except UnreadablePhoto as exc:
            reason = str(exc)
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
        except Exception as exc:  # any decoder error: recorded, the scan goes on
            reason = f"cannot decode: {type(exc).__name__}: {exc}"
        return i, torch.zeros(3, self.input_size, self.input_size), reason


def _collate(items):
    import torch

    return [i for i, _, _ in items], torch.stack([p for _, p, _ in items]), [r for _, _, r in items]


def _under(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


# Version of the default vocabulary's policy (trainer.assets: excluded.txt) a library follows.
VOCABULARY_POLICY = 1


def prepare_library(library: Library, engine: Engine, embeddings: str | None = None) -> list[str]:
    """Record the model in the library and fill an empty vocabulary with the default words.
    Returns the default words that have no vector (left out)."""
    bundle = engine.bundle
    previous = library.model_id
    # Words follow the model's word space: a flag, else what this library used with this
    # model, else what the model was trained with.
    kept = library.get_meta("embeddings") if previous == engine.model_id else None
    source = WordSource(
        embeddings or kept or bundle.embeddings.get("source", DEFAULT_EMBEDDINGS),
        engine.label_table(),
        bundle.seen_labels,
        engine.semantic_shape[1],
        labels=[*bundle.seen_labels, *bundle.unseen_labels],
    )
    library.set_meta(
        model_id=engine.model_id,
        model_path=None if engine.model_path == _default_path() else str(engine.model_path),
        semantic_shape=list(engine.semantic_shape),
        seen_words=list(bundle.seen_labels),
        embeddings=source.embeddings_id,
        tags_per_photo=library.tags_per_photo,
        tag_rule=TagRule.from_dict(bundle.tagging).to_dict(),
    )
    defaults = default_words(bundle.seen_labels, bundle.unseen_labels)
    if previous is not None and previous != engine.model_id:
        # Another model may live in another word space: the vocabulary is rebuilt with the
        # same words (each still the default's or a person's), and every photo is read again
        # (its model id no longer matches), so the word levels are computed afresh too.
        words = library.words()
        with library.transaction():
            library.remove_words([w.id for w in words])
            library.set_meta(means_photos=None)
            left_out = []
            for origin in (DEFAULT, USER, None):
                left_out += fill_vocabulary(library, source, [w.word for w in words if w.origin == origin], origin)[1]
            _follow_vocabulary_policy(library, source, defaults)
            return left_out
    added, left_out = ensure_vocabulary(library, source, defaults)
    if added:
        library.set_meta(vocabulary_policy=VOCABULARY_POLICY)  # made under the policy
    else:
        _follow_vocabulary_policy(library, source, defaults)
    return left_out


def _follow_vocabulary_policy(library: Library, source: WordSource, defaults: list[str]) -> None:
    """A library made before the default vocabulary's policy: the default words it has retired
    (sensitive words, words a photo cannot show, second forms of one concept) go, the new
    default words come, and every word gets its model label and ImageNet classes. Words a
    person added stay; a library older than that record cannot tell them, so only words that
    were once default words go."""
    if library.get_meta("vocabulary_policy") == VOCABULARY_POLICY:
        describe_missing(library, source)
        return
    retired = retired_words()
    with library.transaction():
        gone = [w.id for w in library.words() if w.origin is None and w.word in retired]
        library.remove_words(gone)
        have = known_forms(library, defaults)
        fill_vocabulary(library, source, [w for w in defaults if w not in have], DEFAULT)
        describe_missing(library, source)
        library.set_meta(vocabulary_policy=VOCABULARY_POLICY, means_photos=None)


def follow_tag_rule(library: Library, tagging: dict | None) -> bool:
    """The library takes its model's tag rule when the model's rule was chosen again without
    new weights (`epsilon-train calibrate --write`, or an upgrade that ships one): every
    photo is re-tagged from its stored S and classes (a new threshold changes which words
    lift the words above them, so confidences move too), after a new level (mean or
    quantile) is computed for every word. Returns whether the rule changed."""
    rule = TagRule.from_dict(tagging)
    before = library.tag_rule
    if rule == before:
        return False
    with library.transaction():
        library.set_meta(tag_rule=rule.to_dict())
        if rule.quantile != before.quantile:
            renormalise(library, force=True)
        else:
            retag(library)
    return True


def _default_path() -> Path:
    from .engine import default_model

    return default_model()


def scan(
    library: Library,
    roots: Sequence[str | Path] = (),
    *,
    model: str | Path | None = None,
    exclude: Sequence[str] = (),
    force: bool = False,
    prune: bool = False,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    backbone_weights: str | Path | None = None,
    embeddings: str | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
    allow_empty: bool = False,
) -> ScanReport:
    """Bring the library up to date with the photos under ``roots`` (remembered, so that a
    later scan without folders, or the TUI's rescan, covers them again; none: every folder
    the library remembers, those not there now skipped and listed in the report). A root
    given that is not there is an error. ``model``: a bundle; none, the library's own
    model, else the shipped one. ``on_progress`` is called with (photos done, photos to
    read) after every batch.

    A root that holds no photo now although the library has photos there is taken for an
    unplugged drive or an empty mount point: nothing under it is marked missing or pruned,
    unless ``allow_empty``.

    A model other than the library's (its S may have another shape) is a switch: every
    photo is read into a staging table while the library stays whole on its old model, and
    the library moves to the new one in one transaction once every present photo is read
    (a scan cut short continues where it stopped; photos in folders not scanned this time
    are listed in the report, still to read)."""
    from .engine import check_device, model_config, records_classes
    from .engine import model_id as model_id_of
    from .vocabulary import check_embeddings

    if engine is None:
        check_device(device)
    if embeddings:
        check_embeddings(embeddings)  # a typo is an error before anything is written
    report = ScanReport()
    folders = _folders(library, roots, report)
    library.set_meta(roots=sorted(set(library.get_meta("roots", [])) | set(folders)))
    model = model or library.get_meta("model_path")  # a library keeps its model
    current_model = engine.model_id if engine else model_id_of(model)
    config = None if engine else model_config(model)
    switching = library.model_id is not None and library.model_id != current_model
    if library.model_id == current_model:
        follow_tag_rule(library, engine.bundle.tagging if engine else config.get("tagging"))  # type: ignore[union-attr]
    # Photos read before the library recorded what this model records (its ImageNet classes) are read again.
    read_again = records_classes(engine.bundle.config.to_dict() if engine else config["model"])  # type: ignore[index]
    known = library.known_photos()
    failed_before = library.known_failures()
    staged = {}
    if switching:
        library.clear_staged(keep=current_model)  # a switch to another model, abandoned
        staged = library.staged_files(current_model)

    found: set[str] = set()
    unreadable_folders: list[str] = []
    jobs: list[tuple[_Job, bool]] = []  # (job, already in the library)
    walk_failures: list[Failure] = []
    back: list[int] = []
    # Real folders that links inside each root lead to: photos there belong to the root, and
    # go missing with the link (remembered, since the link may be gone next time).
    linked = library.get_meta("linked_folders", {})
    followed: dict[str, list[Path]] = {root: [] for root in folders}
    walked = (item for root in folders for item in walk_photos([root], exclude, followed=followed[root]))
    for item in walked:
        if isinstance(item, Skipped):
            unreadable_folders.append(str(item.path))
            walk_failures.append(Failure(as_text(item.path), item.reason))
            continue
        path = as_text(item)
        if path != str(item):
            walk_failures.append(Failure(path, "file name is not valid UTF-8: rename the file"))
            continue
        if path in found:  # one file, one photo, by however many paths it was reached
            continue
        try:
            info = os.stat(path)
        except OSError as exc:
            walk_failures.append(Failure(path, f"cannot read: {exc.strerror or exc}"))
            continue
        found.add(path)
        job = _Job(path, info.st_size, info.st_mtime_ns)
        row = known.get(path)
        same_file = row is not None and (row.size, row.mtime_ns) == (job.size, job.mtime_ns)
        current = row is not None and (row.read_version >= READ_VERSION or not read_again)
        if switching and staged.get(path) == (job.size, job.mtime_ns) and not force:
            report.unchanged += 1  # read for the switch by a scan cut short
        elif row is not None and same_file and row.model_id == current_model and current and not force:
            if row.status != OK:
                back.append(row.id)  # missing before, back where it was
            report.unchanged += 1
        elif not force and failed_before.get(path) == (job.size, job.mtime_ns):
            report.failed_before += 1
        else:
            jobs.append((job, row is not None))
    library.set_status(back, OK)  # one transaction, however many came back
    library.save_batch([], walk_failures, current_model)
    report.failed += len(walk_failures)
    report.failures.extend((f.path, f.reason) for f in walk_failures)
    # Failures of files that are gone (or folders readable again) are history, not news.
    failed_now = {f.path for f in walk_failures}
    library.forget_failures(p for p in failed_before if _under(p, folders) and p not in found and p not in failed_now)

    # An empty root where the library has photos is an unplugged drive until told otherwise.
    for root in folders:
        held = sum(row.status == OK and _under(path, [root]) for path, row in known.items())
        if held and not allow_empty and not any(_under(path, [root]) for path in found):
            unreadable_folders.append(root)
            report.empty_roots.append((root, held))
    # Photos the library holds under these roots (or where links in them lead) that the walk
    # did not find. A folder that could not be read hides its photos: not counted as gone.
    covered = folders + [f for root in folders for f in {*map(str, followed[root]), *linked.get(root, [])}]
    library.set_meta(linked_folders={**linked, **{root: sorted(set(map(str, f))) for root, f in followed.items()}})
    vanished = [
        row
        for path, row in known.items()
        if row.status == OK and path not in found and _under(path, covered) and not _under(path, unreadable_folders)
    ]
    # A new file may take over any photo whose file is gone, wherever it was: a renamed or
    # moved root is a move (files elsewhere are checked only when sizes match).
    elsewhere = [
        row for path, row in known.items() if row.status == OK and path not in found and not _under(path, covered)
    ]
    jobs, moved_ids = _recognise_moves(
        library, jobs, vanished + [r for r in known.values() if r.status == MISSING], elsewhere
    )
    report.moved = len(moved_ids)
    gone = [row.id for row in vanished if row.id not in moved_ids]
    if prune:
        stale = [
            row.id
            for row in known.values()
            if row.status == MISSING
            and row.id not in moved_ids
            and _under(row.path, folders)
            and not _under(row.path, unreadable_folders)
        ]
        library.delete_photos(gone + stale)
        report.pruned = len(gone) + len(stale)
    else:
        library.set_status(gone, MISSING)
        report.missing = len(gone)

    if jobs or switching:
        if engine is None:
            from .engine import Engine

            engine = Engine.load(model, device=device, backbone_weights=backbone_weights)
        if not switching:
            _say_left_out(prepare_library(library, engine, embeddings))
        _read_and_tag(
            library,
            engine,
            jobs,
            report,
            folders,
            stage=switching,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            on_progress=on_progress,
        )
    if switching and not report.interrupted and not report.stopped:
        assert engine is not None
        pending = library.unstaged_present(current_model)
        report.switch_pending, report.switch_pending_count = pending[:5], len(pending)
        if not pending:
            _say_left_out(_complete_switch(library, engine, embeddings))
    # Photos came, went or changed: the word means follow once the library moved enough, and
    # at the end of every scan while the library is small enough for that to cost little.
    photos, last = library.count_scored(), library.get_meta("means_photos")
    renormalise(library, force=bool(photos) and photos != last and photos <= LEVEL_SAMPLE)
    report.forgotten_roots = forget_gone_roots(library)
    library.refresh_side_files()  # the scan pays for the snapshot of S and the counts, not the next reader
    return report


def _folders(library: Library, roots: Sequence[str | Path], report: ScanReport) -> list[str]:
    """The folders to scan, as absolute paths: those given (each must be there: a typo or an
    unmounted drive is an error, before anything changes), else every folder the library
    remembers that is there now (the others, an unplugged drive, are skipped and reported)."""
    if roots:
        absent = [str(r) for r in roots if not Path(r).expanduser().exists()]
        if absent:
            raise InputError(f"No such file or folder: {', '.join(absent)}. Nothing was scanned.")
        return [str(Path(r).expanduser().resolve()) for r in roots]
    remembered = library.get_meta("roots", [])
    if not remembered:
        raise InputError("Say which folder to scan: epsilon-tag scan ~/Pictures")
    report.skipped_roots = [r for r in remembered if not Path(r).exists()]
    folders = [r for r in remembered if Path(r).exists()]
    if not folders:
        raise InputError("None of this library's folders is there now: nothing was scanned.")
    return folders


def _complete_switch(library: Library, engine: Engine, embeddings: str | None) -> list[str]:
    """Every present photo was read by the new model: the library moves to it in one
    transaction (its meta, its vocabulary in the new word space, every photo's S, classes
    and tags; photos not read, missing ones, keep their rows and are read when found).
    Returns the words with no vector in the new space (left out)."""
    with library.transaction():
        left_out = prepare_library(library, engine, embeddings)
        for records in library.staged_records(engine.model_id, engine.semantic_shape):
            library.save_batch(records, [], engine.model_id)
        library.forget_vectors(library.photos_of_another_model(engine.model_id))
        library.clear_staged()
        renormalise(library, force=True)
    return left_out


def _say_left_out(left_out: list[str]) -> None:
    if left_out:
        print(
            f"{len(left_out)} default words have no word vector and were left out: {', '.join(left_out[:10])}",
            file=sys.stderr,
        )


def roots_of(library: Library) -> list[dict]:
    """The folders the library scans, with how many present photos each holds and whether it is there."""
    rows = library.db.execute("SELECT path FROM photos WHERE status = 'ok'").fetchall()
    return [
        {"root": root, "photos": sum(_under(p, [root]) for (p,) in rows), "present": os.path.exists(root)}
        for root in library.get_meta("roots", [])
    ]


def forget_root(library: Library, root: str | Path) -> int:
    """Stop scanning a folder and forget its photos (their rows, vectors and tags); returns
    how many photos were forgotten."""
    remembered = library.get_meta("roots", [])
    wanted = str(root).rstrip(os.sep)
    if wanted not in remembered:
        wanted = str(Path(root).expanduser().resolve())
    if wanted not in remembered:
        raise InputError(f"{root} is not one of this library's folders: `epsilon-tag roots list` shows them")
    with library.transaction():
        ids = [r[0] for r in library.db.execute("SELECT id, path FROM photos").fetchall() if _under(r[1], [wanted])]
        library.delete_photos(ids)
        library.clear_staged(under=wanted)
        library.set_meta(roots=[r for r in remembered if r != wanted])
    return len(ids)


def forget_gone_roots(library: Library) -> list[str]:
    """Roots that are not there and hold no present photo (renamed or moved away, their
    photos found elsewhere) are dropped from the folders a bare `scan` covers."""
    gone = [r["root"] for r in roots_of(library) if not r["present"] and r["photos"] == 0]
    if gone:
        library.set_meta(roots=[r for r in library.get_meta("roots", []) if r not in gone])
    return gone


def _recognise_moves(
    library: Library, jobs, candidates: list[Known], elsewhere: Sequence[Known] = ()
) -> tuple[list, set[int]]:
    """New files with the content of a vanished or missing photo take over its row (and tags);
    so may photos ``elsewhere`` (outside the folders walked) whose file no longer exists.
    Returns the jobs left to read and the ids of the photos that moved."""
    by_size: dict[int, list[Known]] = {}
    for row in [*candidates, *elsewhere]:
        if row.hash:
            by_size.setdefault(row.size, []).append(row)
    outside = {row.id for row in elsewhere}
    remaining, moved = [], set()
    for job, in_library in jobs:
        matches = by_size.get(job.size) if not in_library else None
        if matches:
            try:
                digest = quick_hash(job.path)
            except OSError:
                digest = None
            match = next(
                (
                    row
                    for row in matches
                    if row.hash == digest and (row.id not in outside or not os.path.exists(row.path))
                ),
                None,
            )
            if match is not None:
                matches.remove(match)
                library.move(match.id, job.path, job.size, job.mtime_ns)
                moved.add(match.id)
                continue
        remaining.append((job, in_library))
    return remaining, moved


def _read_and_tag(
    library: Library,
    engine: Engine,
    jobs,
    report: ScanReport,
    folders: Sequence[str],
    *,
    stage: bool = False,
    batch_size: int,
    workers: int | None,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    workers = default_workers() if workers is None else workers
    k, rule = library.tags_per_photo, library.tag_rule
    reader = _Reader(
        [job for job, _ in jobs], engine.transform(), engine.decode_side, engine.backbone.preprocessing.input_size
    )
    loader: Iterable = DataLoader(
        reader,  # type: ignore[arg-type]  # a map-style dataset by its __len__ / __getitem__
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=engine.device.type == "cuda",
    )
    bar = tqdm(
        total=len(jobs),
        unit="photo",
        desc="tagging",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    done = 0
    try:
        for indices, pixels, results in loader:
            ok = [n for n, r in enumerate(results) if not isinstance(r, str)]
            semantic, classes = (
                engine.recognise(pixels[ok]) if ok else (np.zeros((0, *engine.semantic_shape), np.float16), None)
            )
            semantic, classes = _finite_only(semantic, classes, results, ok)
            with library.transaction():
                # Under the write lock, so that `roots forget` cannot slip between the check
                # and the write: a folder forgotten during the scan gets no more photos.
                forgotten = [f for f in folders if f not in library.get_meta("roots", [])]
                if forgotten:  # not a cut to continue from: what was asked is no longer wanted
                    report.stopped = f"{', '.join(forgotten)} was forgotten (roots forget) during the scan"
                    break
                # The words as they are now, under the write lock: another process may have
                # added or removed some since the last batch (`vocab add` while scanning).
                tags = (
                    [[] for _ in semantic]
                    if stage
                    else top_tags(semantic, classes, Vocabulary.of_library(library), k, rule)
                )
                records, failures, updated = [], [], 0
                tagged = zip(semantic, [None] * len(semantic) if classes is None else classes, tags)
                for i, result in zip(indices, results):
                    job, in_library = jobs[i]
                    if isinstance(result, str):
                        failures.append(Failure(job.path, result, job.size, job.mtime_ns))
                        continue
                    digest, meta, (width, height), damage = result
                    s, c, t = next(tagged)
                    records.append(
                        PhotoRecord(job.path, job.size, job.mtime_ns, digest, width, height, meta, s, t, damage, c)
                    )
                    updated += in_library
                    if damage:
                        report.damaged += 1
                        report.failures.append((job.path, damage))
                if stage:
                    library.stage_batch(records, failures, engine.model_id)
                else:
                    library.save_batch(records, failures, engine.model_id)
                    renormalise(library)  # the first photos, then each time the library grew by a quarter
            report.updated += updated
            report.new += len(records) - updated
            report.failed += len(failures)
            report.failures.extend((f.path, f.reason) for f in failures)
            bar.update(len(indices))
            done += len(indices)
            if on_progress is not None:
                on_progress(done, len(jobs))
    except KeyboardInterrupt:
        # The batch in flight was rolled back by its transaction; everything before it is stored.
        report.interrupted = True
    finally:
        bar.close()


NON_FINITE = "the model gave non-finite numbers for this photo (an overflow); not tagged"


def _finite_only(
    semantic: np.ndarray, classes: np.ndarray | None, results: list, ok: list[int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Photos whose S is not finite become failures: one NaN row would otherwise reach the
    library's scores, its side file and every search that ranks it."""
    finite = np.isfinite(semantic.reshape(len(semantic), -1)).all(axis=1)
    if finite.all():
        return semantic, classes
    for n, good in zip(ok, finite):
        if not good:
            results[n] = NON_FINITE
    return semantic[finite], None if classes is None else classes[finite]


def default_workers() -> int:
    """Decode worker processes: one per core, at most 8 (the model needs cores too)."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
