"""mAP and top-K at NUS-WIDE scale (107,859 images x 1,006 labels) versus sklearn per class.

Run by hand:  python bench/metrics_speed.py
sklearn is timed on a slice of classes and scaled to all of them; the ratio is what counts.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import average_precision_score

from trainer.metrics import NUS_WIDE, evaluate_scores, mean_average_precision

N_IMAGES, N_CLASSES, SKLEARN_CLASSES = 107_859, 1_006, 40


def main() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(N_IMAGES, N_CLASSES)).astype(np.float32)
    labels = np.where(rng.random((N_IMAGES, N_CLASSES)) < 0.02, 1, -1).astype(np.int8)
    labels[rng.random((N_IMAGES, N_CLASSES)) < 0.05] = 0

    start = time.perf_counter()
    ours = mean_average_precision(scores, labels)
    t_map = time.perf_counter() - start
    start = time.perf_counter()
    evaluate_scores(scores, labels, NUS_WIDE)
    t_all = time.perf_counter() - start

    start = time.perf_counter()
    aps = []
    for c in range(SKLEARN_CLASSES):
        valid = labels[:, c] != 0
        aps.append(average_precision_score(labels[valid, c] > 0, scores[valid, c]))
    t_sk = (time.perf_counter() - start) * N_CLASSES / SKLEARN_CLASSES
    check = mean_average_precision(scores[:, :SKLEARN_CLASSES], labels[:, :SKLEARN_CLASSES])
    print(f"{N_IMAGES} x {N_CLASSES}: mAP {t_map:.1f} s, mAP + top-3/5 P/R/F1 {t_all:.1f} s")
    print(
        f"sklearn per-class loop (scaled from {SKLEARN_CLASSES} classes): {t_sk:.1f} s; "
        f"ours/sklearn = {t_map / t_sk:.2f}"
    )
    print(f"agreement on the sliced classes: |ours - sklearn| = {abs(check - np.mean(aps)):.2e} (mAP {ours:.4f})")


if __name__ == "__main__":
    main()
