"""bench/gpu_check.sh runs on the CPU with --dry-run, so that it works the day a GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_every_check():
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=600,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert [line.split(":")[0] for line in lines] == [
        "PASS extraction and cached training",
        "PASS streaming training",
        "PASS torchrun",
        "PASS scan",
        "PASS forward speed",
    ]


def test_gpu_check_refuses_a_machine_without_a_gpu(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no nvidia-smi on it
    done = subprocess.run(["/bin/bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "FAIL setup: no NVIDIA GPU visible" in done.stderr
