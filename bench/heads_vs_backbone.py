"""Forward cost per image of Epsilon's heads versus the frozen backbone, on this CPU.

Run by hand:  python bench/heads_vs_backbone.py [--batch 32] [--repeats 5]
Prints seconds per image for each and their ratio (measured in the same run, so the
ratio holds on a noisy shared machine where absolute times do not).
"""

from __future__ import annotations

import argparse
import time

import torch

from trainer.backbones import build_backbone
from trainer.model import Epsilon, EpsilonConfig


def per_image(fn, batch: torch.Tensor, repeats: int) -> float:
    fn(batch)  # warm-up: allocator, kernels, oneDNN primitives
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        best = min(best, time.perf_counter() - start)
    return best / batch.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, best of {args.repeats}")
    backbone = build_backbone("efficientnet_lite0")
    images = torch.randn(args.batch, 3, 224, 224)
    t_backbone = per_image(backbone, images, args.repeats)
    tokens = backbone(images)
    print(
        f"backbone efficientnet_lite0 (channels_last): {t_backbone * 1e3:.2f} ms/image ({1 / t_backbone:.1f} images/s)"
    )
    for d_model, depth in ((128, 2), (256, 2), (768, 3)):
        cfg = EpsilonConfig(
            token_dim=1280, d_model=d_model, d_w=50, num_groups=8, depth=depth, heads=4 if d_model == 128 else 8
        )
        heads = Epsilon(cfg).eval()
        with torch.inference_mode():
            t_heads = per_image(heads, tokens, args.repeats)
        params = sum(p.numel() for p in heads.parameters())
        print(
            f"Epsilon heads d_model={d_model} depth={depth} M=8 ({params / 1e6:.1f}M params): "
            f"{t_heads * 1e3:.2f} ms/image, heads/backbone = {t_heads / t_backbone:.3f}"
        )


if __name__ == "__main__":
    main()
