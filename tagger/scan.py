"""Incremental scan: bring a library up to date with the photos under its folders.

A scan is a plan (``tagger.scanplan``: walk, compare with the library, recognise moves and
absent folders; nothing written) and its application here: mark, move and prune, then read
and tag the new and changed files (``tagger.reading``), then renormalise. Ctrl-C or a kill
loses at most the batch in flight; the same command continues from there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .adopt import complete_switch, follow_tag_rule, prepare_library, say_left_out
from .engine import Engine, model_config, records_classes
from .engine import model_id as model_id_of
from .keywords import read_keywords
from .library import MISSING, OK, Library
from .library.records import now
from .reading import read_and_tag
from .roots import forget_gone_roots, keep_roots
from .scanoptions import ScanOptions, ScanReport
from .scanplan import ScanPlan, Target, plan_scan, sidecar_signature
from .vocabulary import LEVEL_SAMPLE, check_embeddings, renormalise


def scan(
    library: Library,
    roots: Sequence[str | Path] = (),
    options: ScanOptions = ScanOptions(),
    *,
    on_progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
) -> ScanReport:
    """Bring the library up to date with the photos under ``roots`` (remembered, so that a
    later scan without folders, or the TUI's rescan, covers them again; none: every folder
    the library remembers, those not there now skipped and listed in the report). A root
    given that is not there is an error. ``on_progress`` is called with (photos done,
    photos to read) after every batch; ``engine``, a model already loaded, replaces
    ``options.model``.

    A root that holds no photo now although the library has photos there is taken for an
    unplugged drive or an empty mount point: nothing under it is marked missing or pruned,
    unless ``options.allow_empty``.

    A model other than the library's (its S may have another shape) is a switch: every
    photo is read into a staging table while the library stays whole on its old model, and
    the library moves to the new one in one transaction once every present photo is read
    (a scan cut short continues where it stopped; photos in folders not scanned this time
    are listed in the report, still to read)."""
    if engine is None:
        options.check()
    elif options.embeddings:
        check_embeddings(options.embeddings)
    model, target, tagging = _target(library, options, engine)
    plan = plan_scan(
        library,
        roots,
        target,
        exclude=options.exclude,
        force=options.force,
        prune=options.prune,
        allow_empty=options.allow_empty,
        forced_since=_forced_scan(library, roots) if options.force else None,
    )
    report = ScanReport(
        unchanged=plan.unchanged,
        failed_before=plan.failed_before,
        skipped_roots=plan.skipped_roots,
        empty_roots=plan.empty_roots,
    )
    if library.model_id == target.model_id:  # the same weights, perhaps with a rule chosen again
        follow_tag_rule(library, tagging)
    _apply_plan(library, plan, target, options.prune, report)
    if plan.to_read or target.switching:
        engine = engine or Engine.load(model, device=options.device, backbone_weights=options.backbone_weights)
        _read(library, engine, plan, target, options, report, on_progress)
    if options.force and not report.interrupted and not report.stopped:
        library.set_meta(forced_scan=None)  # done: the next --force reads every photo again
    _settle(library, report)
    return report


def _forced_scan(library: Library, roots: Sequence[str | Path]) -> str | None:
    """When the forced scan of these roots that was cut short began (it continues from
    there, as any scan does after Ctrl-C), or None: a forced scan begins now, recorded."""
    key = sorted(os.path.realpath(Path(r).expanduser()) for r in roots)
    held = library.get_meta("forced_scan")
    if isinstance(held, dict) and held.get("roots") == key:
        return str(held["since"])
    library.set_meta(forced_scan={"roots": key, "since": now()})
    return None


def _read(
    library: Library,
    engine: Engine,
    plan: ScanPlan,
    target: Target,
    options: ScanOptions,
    report: ScanReport,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Read and tag the plan's files; for a switch, stage them and move the library to the
    new model once every present photo is read."""
    if not target.switching:
        say_left_out(prepare_library(library, engine, options.embeddings))
    counts = read_and_tag(
        library,
        engine,
        plan.to_read,
        plan.folders,
        stage=target.switching,
        batch_size=options.batch_size,
        workers=options.workers,
        progress=options.progress,
        on_progress=on_progress,
    )
    report.add(counts)
    if target.switching and not report.interrupted and not report.stopped:
        pending = library.unstaged_present(target.model_id)
        report.switch_pending, report.switch_pending_count = pending[:5], len(pending)
        if not pending:
            say_left_out(complete_switch(library, engine, options.embeddings))


def _target(
    library: Library, options: ScanOptions, engine: Engine | None
) -> tuple[str | Path | None, Target, dict | None]:
    """The model to tag with (a library keeps its own unless told), what deciding needs of
    it, and its tag rule."""
    model = options.model or library.get_meta("model_path")
    if engine is not None:
        model_id, config, tagging = engine.model_id, engine.bundle.config.to_dict(), engine.bundle.tagging
    else:
        model_id = model_id_of(model)  # first: a broken bundle's told error comes from here
        bundle = model_config(model)
        config, tagging = bundle["model"], bundle.get("tagging")
    switching = library.model_id is not None and library.model_id != model_id
    return model, Target(model_id, switching, records_classes(config)), tagging


def _apply_plan(library: Library, plan: ScanPlan, target: Target, prune: bool, report: ScanReport) -> None:
    """Every change the plan decided that needs no model: folders remembered, photos back,
    failures recorded or forgotten, moves, and vanished photos marked missing or pruned."""
    keep_roots(library, sorted(set(library.get_meta("roots", [])) | set(plan.folders)), plan.excludes)
    if target.switching:
        library.clear_staged(keep=target.model_id)  # a switch to another model, abandoned
    library.set_status(plan.back, OK)  # one transaction, however many came back
    library.save_batch([], plan.walk_failures, target.model_id)
    report.failed += len(plan.walk_failures)
    report.failures.extend((f.path, f.reason) for f in plan.walk_failures)
    library.forget_failures(plan.stale_failures)
    library.set_meta(linked_folders={**library.get_meta("linked_folders", {}), **plan.linked})
    for photo_id, job in plan.moves:
        library.move(photo_id, job.path, job.size, job.mtime_ns)
    report.moved = len(plan.moves)
    # A moved photo's keywords are read at its new place too, as part of the move, not news.
    report.keywords_read = _read_keywords_again(library, plan.rekey) - len(plan.moves)
    if prune:
        library.delete_photos(plan.gone + plan.stale)
        report.pruned = len(plan.gone) + len(plan.stale)
    else:
        library.set_status(plan.gone, MISSING)
        report.missing = len(plan.gone)


def _read_keywords_again(library: Library, photos: list[tuple[int, str]], chunk: int = 500) -> int:
    """Own keywords of photos whose sidecar changed (or that moved, or were read before
    keywords were) read again without their pixels, a transaction per ``chunk``."""
    for start in range(0, len(photos), chunk):
        with library.transaction():
            for photo_id, path in photos[start : start + chunk]:
                library.set_file_keywords(photo_id, read_keywords(path), sidecar_signature(path))
    return len(photos)


def _settle(library: Library, report: ScanReport) -> None:
    """After the photos changed: word levels, folders gone for good, the side files."""
    # The word means follow once the library moved enough, and at the end of every scan
    # while the library is small enough for that to cost little.
    photos, last = library.count_scored(), library.get_meta("means_photos")
    renormalise(library, force=bool(photos) and photos != last and photos <= LEVEL_SAMPLE)
    report.forgotten_roots = forget_gone_roots(library)
    library.refresh_side_files()  # the scan pays for the snapshot of S and the counts, not the next reader
