"""The paper's own figures for Epsilon, stored once, and how a run's figures read against them.

Liu, Guo, Guo, Lu: *Epsilon: Exploring Comprehensive Visual-Semantic Projection for
Multi-Label Zero-Shot Learning* (../shared/paper/epsilon-paper.md). Its tables give
percentages; the row is "Ours". The copy here is markdown without page numbers, so each
figure names its table and the section that prints it, not a page. The method notes
(../shared/docs/epsilon-method.md, "Published numbers to compare with") quote the same
NUS-WIDE F1 and mAP and the Open Images mAP. Importing this costs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "Liu et al., Epsilon (../shared/paper/epsilon-paper.md)"
TASKS = ("zsl", "gzsl")
CELLS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class Reported:
    """One dataset's row "Ours" of the paper: per task, mAP and (P, R, F1) at each K, in %."""

    dataset: str
    table: str
    section: str
    ks: tuple[int, int]
    maps: dict[str, float]
    topk: dict[str, dict[int, tuple[float, float, float]]]

    @property
    def source(self) -> str:
        return f"{self.table}, row 'Ours' (section '{self.section}'; the markdown copy has no page numbers)"


REPORTED = {
    "nus-wide": Reported(
        dataset="NUS-WIDE",
        table="Table 1",
        section="Experiments / MLZSL Performance for Epsilon",
        ks=(3, 5),
        maps={"zsl": 33.2, "gzsl": 14.7},
        topk={
            "zsl": {3: (31.1, 41.7, 35.6), 5: (24.9, 52.7, 33.8)},
            "gzsl": {3: (32.8, 13.1, 18.7), 5: (28.1, 18.8, 22.5)},
        },
    ),
    "open-images": Reported(
        dataset="Open Images V4",
        table="Table 2",
        section="Experiments / MLZSL Performance for Epsilon",
        ks=(10, 20),
        maps={"zsl": 68.5, "gzsl": 81.0},
        topk={
            "zsl": {10: (7.7, 53.2, 13.5), 20: (4.7, 64.3, 8.8)},
            "gzsl": {10: (37.2, 41.8, 39.4), 20: (24.9, 57.2, 34.7)},
        },
    ),
}


def reported(dataset: str) -> Reported | None:
    """The paper's figures for a dataset (``nus-wide``, ``open-images``), or None."""
    return REPORTED.get(dataset)


def _ours(figures: dict, task: str, k: int) -> tuple[float, ...] | None:
    """Our (P, R, F1) at K in %, from figures as evaluation gives them (fractions; K an int,
    or a string once read back from JSON)."""
    cells = figures.get(task, {}).get("k", {})
    at = cells.get(k, cells.get(str(k)))
    return tuple(100 * at[c] for c in CELLS) if at else None


def comparison(dataset: str, figures: dict, title: str = "") -> str | None:
    """The paper's figures, ours and the difference (ours - paper), one block per task in
    the layout of the paper's tables; None when the paper has no figures for ``dataset``."""
    paper = reported(dataset)
    if paper is None:
        return None
    head = title or f"against the paper ({PAPER}):"
    lines = [f"{head} {paper.dataset}, {paper.source}; percentages, diff = ours - paper"]
    names = ["mAP"] + [f"{c}@{k}" for k in paper.ks for c in ("P", "R", "F1")]
    for task in TASKS:
        theirs = [paper.maps[task]] + [v for k in paper.ks for v in paper.topk[task][k]]
        ours: list[float | None] = [100 * figures[task]["map"] if task in figures else None]
        for k in paper.ks:
            ours += list(_ours(figures, task, k) or (None, None, None))
        lines.append(f"{task.upper():6}" + "".join(f"{n:>7}" for n in names))
        lines.append("paper " + "".join(f"{v:7.1f}" for v in theirs))
        lines.append("ours  " + "".join(f"{v:7.1f}" if v is not None else f"{'-':>7}" for v in ours))
        lines.append(
            "diff  " + "".join(f"{v - t:+7.1f}" if v is not None else f"{'-':>7}" for v, t in zip(ours, theirs))
        )
    return "\n".join(lines)
