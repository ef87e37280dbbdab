"""A run's resumable state: the model, the optimiser, the random generators and the position
(epoch, step, history so far) in one safetensors file, written by a rename so that a kill
at any moment leaves the previous state whole. Only rank 0 writes; every rank reads."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .distributed import is_main

STATE_FILE = "state.safetensors"


def save_state(
    folder: Path, model: torch.nn.Module, optimiser: torch.optim.Optimizer, epoch: int, step: int, history: list
) -> None:
    """Model + optimiser tensors and the position (in the header) in one file, renamed into place."""
    if not is_main():
        return
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimiser.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()  # this rank's device (dropout draws there)
    position = {"epoch": epoch, "step": step, "history": history, "param_groups": opt["param_groups"]}
    save_file(tensors, str(folder / (STATE_FILE + ".tmp")), metadata={"position": json.dumps(position)})
    os.replace(folder / (STATE_FILE + ".tmp"), folder / STATE_FILE)


def resume(folder: Path, model: torch.nn.Module, optimiser: torch.optim.Optimizer) -> tuple[int, int, list]:
    """Load the state into ``model`` and ``optimiser``: (epoch, step, history) to go on from;
    (0, 0, []) for a new run."""
    path = folder / STATE_FILE
    if not path.exists():
        return 0, 0, []
    with safe_open(str(path), framework="pt") as handle:
        position = json.loads(handle.metadata()["position"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": position["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():  # a run moved to the CPU has no use for it
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if is_main():
        print(f"resuming from {path}: epoch {position['epoch'] + 1}, step {position['step']}", file=sys.stderr)
    return position["epoch"], position["step"], position["history"]
