"""bench/gpu_check.sh runs on the CPU with --dry-run, so that it works the day a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import child
from tests.test_train_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_every_check(tmp_path):
    # The script's dry run hands gpu_check.py its arguments; a stand-in interpreter records
    # them, and they run in a forked child (a fresh interpreter would import torch again).
    stand_in = tmp_path / "python"
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "args"}\n')
    stand_in.chmod(0o755)
    subprocess.run(["bash", ROOT / "bench" / "gpu_check.sh", "--dry-run"], env={**os.environ, "PYTHON": stand_in})
    script, *args = (tmp_path / "args").read_text().splitlines()
    assert script == "bench/gpu_check.py" and "--dry-run" not in args
    rates = tmp_path / "gpu-rates.json"
    args += ["--rates-out", str(rates)]  # this test's own file, not the dry run's shared one
    done = child.run(str(ROOT / script), args, timeout=600)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert [line.split(":")[0] for line in lines] == [
        "PASS extraction and cached training",
        "PASS streaming training",
        "PASS torchrun",
        "PASS scan",
        "PASS forward speed",
        "PASS rates",
    ]
    # Two ranks streaming their shares take the one-process cached run's steps (fp32 here).
    ranks = next(line for line in lines if line.startswith("PASS torchrun"))
    assert "2 processes over gloo" in ranks and float(ranks.rsplit(" ", 1)[1]) < 1e-3, ranks
    # The rates it wrote are what `epsilon-train estimate --rates` reads; CPU rates never scale.
    shown = run_cli("estimate", "nus-wide", "--rates", rates, "--backbone", "vit_tiny_patch16_224", "--json")
    assert json.loads(shown.stdout)["rates_from"]["origin"] == str(rates)
    assert run_cli("estimate", "nus-wide", "--rates", rates, "--gpus", "8", check=False).returncode == 2


def test_gpu_check_refuses_a_machine_without_a_gpu(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no nvidia-smi on it
    done = subprocess.run(["/bin/bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "FAIL setup: no NVIDIA GPU visible" in done.stderr
