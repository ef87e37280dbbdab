"""The checks bench/gpu_check.sh runs (see there); each prints PASS or FAIL with what it saw."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
SMALL = ["--d-model", "32", "--depth", "1", "--heads", "4", "--batch-size", "8", "--lr", "1e-3", "--quiet"]


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=ROOT, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command[:3]))} ... exit {done.returncode}: {done.stderr[-1500:]}")
    return done


def cli(module: str, args: list) -> str:
    """``epsilon-train`` (trainer.cli) or ``epsilon-tag`` (tagger.cli) in this process, its
    stdout returned: what is checked is the device path, not the console script, and each
    child process would import torch and timm again (seconds each; the suite runs the dry run)."""
    import contextlib
    import importlib
    import io

    import typer

    command = typer.main.get_command(importlib.import_module(module).app)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = command.main([str(a) for a in args], standalone_mode=False)
    if code:  # a clean exit with a status (typer.Exit), its message on stderr
        raise RuntimeError(f"{module} {' '.join(map(str, args[:2]))} ... exit {code}: {err.getvalue()[-1500:]}")
    return out.getvalue()


def training(work: Path, device: str, cache: str, epochs: int) -> str:
    """A few epochs of the CLI on a tiny Corel tree, tokens from the cache or streamed."""
    from tests.tiny_datasets import make_corel

    data = work / "corel"
    if not data.exists():
        make_corel(data)
    out = work / f"train-{cache}"
    start = time.perf_counter()
    where = work / "cache" if cache == "cached" else "none"
    cli(
        "trainer.cli",
        ["corel5k", "--data", data, "--out", out, "--cache", where, "--epochs", epochs, "--device", device, *SMALL],
    )
    losses = step_losses(out)
    if not losses or not all(map(lambda v: v == v and abs(v) < 1e6, losses)):
        raise RuntimeError(f"step losses are not finite: {losses}")
    seen = f"{len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    if cache == "cached":
        amp = "fp16 autocast extraction, bf16 autocast training" if device == "cuda" else "CPU, fp32"
    else:
        # The same run as the cached one but for the backbone's batches: the same losses.
        amp = "backbone in the loop" + (", fp16 / bf16 autocast" if device == "cuda" else ", CPU")
        seen = same_losses(out, work / "train-cached")
    return f"{seen} ({amp}), {time.perf_counter() - start:.1f} s"


def step_losses(run_folder: Path) -> list[float]:
    history = json.loads((run_folder / "history.json").read_text())
    return [loss for h in history for loss in h["step_losses"]]


def torchrun(work: Path, device: str, nproc: int, epochs: int) -> str:
    """The streaming run under torchrun, one process per device, each streaming its share of
    every batch: the same steps as the one-process cached run. (Sharded extraction is checked
    in process by tests/test_resume_distributed.py.)"""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run(
        [
            BIN / "torchrun",
            "--standalone",
            "--nproc-per-node",
            nproc,
            "-m",
            "trainer.cli",
            "corel5k",
            "--data",
            work / "corel",
            "--out",
            work / "ddp",
            "--cache",
            "none",
            "--epochs",
            epochs,
            "--device",
            device,
            *SMALL,
        ],
        env=env,
    )
    backend = "nccl" if device == "cuda" else "gloo"
    return f"{nproc} processes over {backend}, " + same_losses(work / "ddp", work / "train-cached")


def same_losses(run: Path, reference: Path) -> str:
    """Says how far a run's step losses are from a reference run's; raises past 2%."""
    losses, expected = step_losses(run), step_losses(reference)
    worst = max((abs(a - b) / abs(b) for a, b in zip(losses, expected)), default=float("inf"))
    if len(losses) != len(expected) or worst > 0.02:
        raise RuntimeError(f"step losses {losses} differ from the cached run's {expected}")
    return f"{len(losses)} steps, largest relative difference from the cached run {worst:.1e}"


def scan_matches_cpu(work: Path, device: str, sample: bool) -> str:
    """The same photos scanned on the CPU and on ``device``: the same photos, and scores
    within fp16's reach. With ``sample`` the project's camera files, else 4 made here."""
    photos = ROOT.parent / "shared" / "data" / "photos"
    if not (sample and photos.is_dir()):
        from tests.photo_factory import make_library

        photos = work / "photos"
        make_library(photos, 4)
    found = []
    # A dry run on the CPU scans once: a second CPU scan would compare the CPU with itself.
    places = (("reference", "cpu"), ("device", device)) if device != "cpu" else (("reference", "cpu"),)
    for name, where in places:
        db = work / f"scan-{name}.db"
        cli("tagger.cli", ["scan", photos, "--db", db, "--device", where, "-q"])
        found_json = cli("tagger.cli", ["search", "tree", "--db", db, "--json", "-n", "100000", "--min-score", "0"])
        hits = json.loads(found_json)["hits"]
        found.append({hit["path"]: hit["score"] for hit in hits})
    cpu, other = found if len(found) == 2 else found * 2
    worst = max((abs(cpu[p] - other.get(p, float("inf"))) for p in cpu), default=0.0)
    if set(cpu) != set(other) or worst > 0.02:
        raise RuntimeError(f"{device} scores differ from the CPU's: largest difference {worst:.4f}, {len(cpu)} photos")
    precision = "fp16 autocast" if device == "cuda" else "CPU only: nothing to compare on a dry run"
    return f"{len(cpu)} photos, largest score difference from the CPU {worst:.4f} ({precision})"


def forward_speed(device: str, batch: int, vit: str) -> str:
    import torch

    from trainer.backbones import build_backbone

    figures = []
    for name in (vit, "efficientnet_lite0"):
        model = build_backbone(name, random_init=name != "efficientnet_lite0", device=device)
        size = model.preprocessing.input_size
        images = torch.randn(batch, 3, size, size, device=device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=device == "cuda"):
            model(images)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(3):
                model(images)
            if device == "cuda":
                torch.cuda.synchronize()
        figures.append(f"{name} {3 * batch / (time.perf_counter() - start):,.0f} photos/s")
    return f"batch {batch}: " + ", ".join(figures)


def rates(device: str, batch: int, vit: str, out: Path) -> str:
    """The four throughputs of `epsilon-train estimate` for the ViT and Lite0 (both head
    sizes), median of repeats, written to ``out`` for `epsilon-train estimate --rates`."""
    from trainer.rates import write_rates

    # On a GPU one batch is milliseconds: several per sample keep the timer's noise out.
    record = write_rates(out, device, [vit, "efficientnet_lite0"], batch, steps=5 if device == "cuda" else 1)
    figures = [
        f"{name} backbone {min(r['backbone']):,.0f}-{max(r['backbone']):,.0f} photos/s"
        for name, r in record["backbones"].items()
    ]
    return f"{record['device']}, batch {batch}: {', '.join(figures)}; written to {out}"


def rates_file(given: str | None, device: str) -> Path:
    if given:
        return Path(given)
    return ROOT / "gpu-rates.json" if device == "cuda" else Path(tempfile.gettempdir()) / "epsilon-dry-run-rates.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2, help="Of each tiny training run.")
    parser.add_argument("--vit", default="vit_base_patch16_224", help="The ViT whose speed is measured.")
    parser.add_argument(
        "--rates-out",
        default=None,
        help="Where the measured rates go, for `epsilon-train estimate --rates` (default: gpu-rates.json in the "
        "checkout; a CPU dry run's, whose rates are no GPU's, in the temporary folder).",
    )
    args = parser.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("FAIL setup: torch sees no CUDA device", flush=True)
            raise SystemExit(1)
        print(f"PASS setup: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checks = [
            ("extraction and cached training", lambda: training(work, args.device, "cached", args.epochs)),
            ("streaming training", lambda: training(work, args.device, "none", args.epochs)),
            ("torchrun", lambda: torchrun(work, args.device, args.nproc, args.epochs)),
            ("scan", lambda: scan_matches_cpu(work, args.device, sample=args.device == "cuda")),
            ("forward speed", lambda: forward_speed(args.device, args.batch, args.vit)),
            ("rates", lambda: rates(args.device, args.batch, args.vit, rates_file(args.rates_out, args.device))),
        ]
        for name, check in checks:
            try:
                print(f"PASS {name}: {check()}", flush=True)
            except Exception as exc:  # every failure is reported, then the next check runs
                failed += 1
                print(f"FAIL {name}: {exc}", flush=True)
                traceback.print_exc(file=sys.stderr)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
