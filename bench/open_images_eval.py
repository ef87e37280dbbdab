"""Peak memory of Open Images-sized evaluation, by hand:  python bench/open_images_eval.py

A synthetic test split of Open Images V4's size (125,436 images; 7,186 seen + 400 unseen
classes; S of 8 x 300 per image; sparse labels, 6 positive and 6 negative classes per
image) evaluated ZSL + GZSL two ways, each in its own process: the whole N x C score
matrices through ``evaluate_scores`` (how evaluation worked before), and
``trainer.evaluate.semantic_tasks`` (a block of classes at a time, S held as evaluation
holds it: fp16 beyond 256 MB). Prints each one's
peak resident memory and wall time, and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys, time
import numpy as np, scipy.sparse, torch
sys.path.insert(0, {root!r})
from trainer.datasets import Split, label_rows
from trainer.evaluate import semantic_tasks
from trainer.metrics import OPEN_IMAGES, evaluate_scores
from trainer.model import score

n, seen_c, unseen_c, way = {n}, 7186, 400, sys.argv[1]
rng = np.random.default_rng(0)
def labels(c, per_image):
    cols = rng.integers(0, c, size=(n, 2 * per_image))
    values = np.concatenate([np.ones((n, per_image)), -np.ones((n, per_image))], axis=1)
    rows = np.repeat(np.arange(n), 2 * per_image)
    m = scipy.sparse.csr_matrix((values.ravel(), (rows, cols.ravel())), shape=(n, c), dtype=np.int8)
    m.data = np.clip(m.data, -1, 1)
    return m
split = Split([str(i) for i in range(n)], labels(seen_c, 6), labels(unseen_c, 1))
class Data:
    seen_vectors = rng.standard_normal((seen_c, 300)).astype(np.float32)
    unseen_vectors = rng.standard_normal((unseen_c, 300)).astype(np.float32)
    has_unseen, protocol = True, OPEN_IMAGES
# S made 4,096 images at a time: in fp32 for the whole-matrix way, and in fp16 for the
# blocks, as semantic_vectors holds an S this large.
dtype = torch.float16 if way == "blocks" else torch.float32
semantic = torch.empty(n, 8, 300, dtype=dtype)  # filled in place, as semantic_vectors does
for i in range(0, n, 4096):
    semantic[i : i + 4096] = torch.from_numpy(rng.standard_normal((min(4096, n - i), 8, 300), dtype=np.float32))
rows, start = np.arange(n), time.perf_counter()
if way == "blocks":
    figures = semantic_tasks(semantic, split, rows, Data)
else:
    seen = score(semantic, torch.from_numpy(Data.seen_vectors)).numpy()
    unseen = score(semantic, torch.from_numpy(Data.unseen_vectors)).numpy()
    seen_l, unseen_l = label_rows(split.seen, rows), label_rows(split.unseen, rows)
    figures = {{"zsl": evaluate_scores(unseen, unseen_l, OPEN_IMAGES),
               "gzsl": evaluate_scores(np.concatenate([seen, unseen], axis=1),
                                       np.concatenate([seen_l, unseen_l], axis=1), OPEN_IMAGES)}}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - start,
      figures["gzsl"]["map"], figures["zsl"]["k"][10]["f1"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=125_436)
    args = parser.parse_args()
    results = {}
    for way in ("whole", "blocks"):
        code = CHILD.format(root=str(ROOT), n=args.images)
        done = subprocess.run([sys.executable, "-c", code, way], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["killed"])[-1]
            print(f"{way:6}: failed (exit {done.returncode}): {last[:200]}")
            continue
        peak, wall, gzsl_map, zsl_f1 = map(float, done.stdout.split())
        results[way] = peak
        print(f"{way:6}: peak {peak:7.0f} MiB, {wall:6.1f} s (GZSL mAP {gzsl_map:.6f}, ZSL F1@10 {zsl_f1:.6f})")
    if len(results) == 2:
        print(f"blocks / whole peak memory: {results['blocks'] / results['whole']:.2f}")


if __name__ == "__main__":
    main()
