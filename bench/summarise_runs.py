"""Mean and spread over seeds of finished epsilon-train runs, as a Markdown table.

By hand:  python bench/summarise_runs.py runs/corel5k
Each run folder <name>-seed<k>/ contributes its best epoch (held-out choice): that epoch's
held-out ZSL mAP and its test-split figures. ConSE (metrics.json) is training-free: its
seeds differ only in the held-out fold. Where a run folder holds ``oi5.json`` (its best
bundle through ``epsilon-train evaluate --dataset coco --data open_images_5 --json``), the
table gains that mAP and F1@3 (raw scores: no tag rule).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = [
    ("val", "zsl", "map"),
    ("test", "zsl", "map"),
    ("test", "zsl", "3"),
    ("test", "zsl", "5"),
    ("test", "gzsl", "map"),
    ("test", "gzsl", "3"),
    ("test", "gzsl", "5"),
]


def figures(record: dict) -> dict[tuple, tuple[float, ...]]:
    out = {}
    for part, task, key in COLUMNS:
        f = record.get(part, {}).get(task)
        if f is None:
            continue
        if key == "map":
            out[(part, task, key)] = (f["map"],)
        else:
            k = f["k"][key] if key in f["k"] else f["k"][int(key)]
            out[(part, task, key)] = (k["precision"], k["recall"], k["f1"])
    return out


def best_epoch(history: list[dict]) -> dict:
    return max(history, key=lambda h: h["select"])


def cell(values: list[tuple[float, ...]]) -> str:
    arr = 100 * np.array(values)
    mean, spread = arr.mean(axis=0), arr.std(axis=0)
    return " / ".join(f"{m:.1f}±{s:.1f}" for m, s in zip(mean, spread))


def main(root: Path) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    epochs: dict[str, list[int]] = defaultdict(list)
    for run in sorted(root.glob("*-seed*/")):
        name = re.sub(r"-seed\d+$", "", run.name)
        if (run / "history.json").exists():
            best = best_epoch(json.loads((run / "history.json").read_text()))
            groups[name].append(figures(best))
            epochs[name].append(best["epoch"] + 1)
        elif (run / "metrics.json").exists():  # training-free (ConSE): one result per held-out fold
            groups[name].append(figures(json.loads((run / "metrics.json").read_text())))
            epochs[name].append(0)
        else:
            continue
        if (run / "oi5.json").exists():
            everyday = json.loads((run / "oi5.json").read_text())["gzsl"]
            groups[name][-1][("oi5",)] = (everyday["map"], everyday["k"]["3"]["f1"])
    everyday = any(("oi5",) in r for runs in groups.values() for r in runs)
    columns = COLUMNS + ([("oi5",)] if everyday else [])
    header = [
        "method",
        "seeds",
        "best epoch",
        "held-out ZSL mAP",
        "ZSL mAP",
        "ZSL P/R/F1@3",
        "ZSL P/R/F1@5",
        "GZSL mAP",
        "GZSL P/R/F1@3",
        "GZSL P/R/F1@5",
    ] + (["open_images_5 mAP / F1@3"] if everyday else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, runs in groups.items():
        cells = [cell([r[c] for r in runs]) if all(c in r for r in runs) else "-" for c in columns]
        print(f"| {name} | {len(runs)} | {', '.join(map(str, epochs[name]))} | " + " | ".join(cells) + " |")
    print("\nPercentages, mean±std over seeds; P/R/F1 at K from the test split.")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/corel5k"))
