"""What a scan is asked (``ScanOptions``, one field per option of `epsilon-tag scan`) and what
it answers (``ScanReport``). Apart from the scan itself, so that the faces can name them
without importing the scan's machinery (a `search` starts without it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.devices import check_device

from .vocabulary import check_embeddings

if TYPE_CHECKING:
    from .reading import ReadCounts


@dataclass(frozen=True)
class ScanOptions:
    """How to scan; each field is an option of `epsilon-tag scan` of the same name."""

    model: str | Path | None = None  # a bundle; None: the library's own model, else the shipped one
    exclude: Sequence[str] = ()
    force: bool = False  # read every photo again, changed or not
    prune: bool = False  # delete vanished photos instead of marking them missing
    allow_empty: bool = False  # an empty folder where the library has photos is emptied, not unplugged
    batch_size: int = 32
    workers: int | None = None  # decode processes; None: one per core, at most 8
    device: str = "auto"
    backbone_weights: str | Path | None = None
    embeddings: str | None = None  # word source for the vocabulary; None: the model's
    progress: bool = True  # a progress bar on stderr

    def check(self) -> None:
        """Mistyped options fail before anything is loaded, made or changed."""
        check_device(self.device)
        if self.embeddings:
            check_embeddings(self.embeddings)


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
    damaged: int = 0  # tagged, but the file is damaged or its EXIF impossible (listed in warnings)
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong): tagged all the same
    keywords_read: int = 0  # photos whose own keywords were read again (an edited sidecar), not their pixels
    empty_roots: list[tuple[str, int]] = field(default_factory=list)  # (root, photos the library has there)
    forgotten_roots: list[str] = field(default_factory=list)  # gone, and none of their photos left there
    skipped_roots: list[str] = field(default_factory=list)  # the library's own folders not there now
    # A switch to another model not finished: photos of the library it has yet to read (a few paths, and how many).
    switch_pending: list[str] = field(default_factory=list)
    switch_pending_count: int = 0
    stopped: str | None = None  # why the scan stopped before its end, when something else stopped it

    def to_dict(self) -> dict:
        return asdict(self)

    def add(self, counts: ReadCounts) -> None:
        """What reading the new and changed files did."""
        self.new, self.updated, self.failed = (
            self.new + counts.new,
            self.updated + counts.updated,
            self.failed + counts.failed,
        )
        self.damaged += counts.damaged
        self.failures.extend(counts.failures)
        self.warnings.extend(counts.warnings)
        self.interrupted, self.stopped = counts.interrupted, counts.stopped

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
            parts.append(f"{self.damaged} tagged with a warning")
        if self.keywords_read:
            whose = "1 photo's" if self.keywords_read == 1 else f"{self.keywords_read} photos'"
            parts.append(f"{whose} own keywords read again (their sidecars changed)")
        if self.failed_before:
            parts.append(f"{self.failed_before} failed before (unchanged, not retried; --force retries)")
        if self.skipped_roots:
            parts.append(f"{len(self.skipped_roots)} of its folders not there now (skipped)")
        if self.switch_pending_count:
            parts.append(f"{self.switch_pending_count} photos still to read before the library moves to the model")
        return ", ".join(parts)

    def notes(self, listed: int = 10) -> list[str]:
        """What a person should know beyond the counts, a line each: a stop, a switch not
        finished, folders taken for unplugged drives or forgotten, and the first ``listed``
        files tagged with a warning and failed."""
        lines = [f"Stopped: {self.stopped}; nothing of it was kept."] if self.stopped else []
        if self.switch_pending_count:
            lines.append(
                f"The library keeps its model until every photo is read by the new one: "
                f"{self.switch_pending_count} not read yet, such as {self.switch_pending[0]}. Scan every "
                f"folder with the new --model (a folder that is gone: `epsilon-tag roots forget FOLDER`)."
            )
        lines += [
            f"{root} holds no photos now, but the library has {held} there: taken for an unplugged drive, nothing "
            f"under it was marked missing or pruned. If they are really gone: epsilon-tag scan {root} --allow-empty"
            for root, held in self.empty_roots
        ]
        lines += [
            f"Forgot the folder {r}: it is gone and its photos were found elsewhere." for r in self.forgotten_roots
        ]
        for label, found in (("tagged with a warning", self.warnings), ("failed", self.failures)):
            lines += [f"  {label}: {path}: {reason}" for path, reason in found[:listed]]
            if len(found) > listed:
                lines.append(f"  ... and {len(found) - listed} more: `epsilon-tag stats --failures` lists them.")
        return lines
