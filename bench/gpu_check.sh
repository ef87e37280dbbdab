#!/usr/bin/env bash
# Every CUDA path of epsilon-tag in one command, on a fresh machine with an NVIDIA GPU
# (installs into .venv-gpu first; a few minutes in all):
#     bash bench/gpu_check.sh
# One line per check, PASS or FAIL; exit status 1 if any failed. The throughputs it measured
# go to gpu-rates.json (`epsilon-train estimate --rates gpu-rates.json`). `--dry-run` runs the same
# checks on the CPU at toy sizes (gloo instead of nccl), as the test suite does, so the
# script cannot rot where no GPU is lent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--dry-run" ]; then
    exec "${PYTHON:-.venv/bin/python}" bench/gpu_check.py --device cpu --nproc 2 --batch 1 --epochs 1 --vit vit_tiny_patch16_224
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "FAIL setup: no NVIDIA GPU visible (nvidia-smi); run on a GPU machine, or pass --dry-run" >&2
    exit 1
fi
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q -e . 2>&1 | grep -v "^WARNING" || true
exec .venv-gpu/bin/python bench/gpu_check.py --device cuda --nproc "$(nvidia-smi -L | wc -l)" --batch 256
