"""torchrun support: who am I, wait for the others, average what must be averaged.

Outside torchrun every function is a cheap no-op, so the same code runs on one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .devices import check_device, resolve_device
from .memory import keep_freed_memory


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup(device: str) -> torch.device:
    """Join the process group torchrun describes (if any) and return this rank's device:
    under torchrun each rank takes its local GPU (the CPU for ``cpu`` or without one),
    else ``device`` as trainer.devices resolves it. The process is about to run the model:
    freed memory is kept for the next batch."""
    check_device(device)
    keep_freed_memory()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
        return torch.device("cpu")
    return resolve_device(device)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place and returned); itself on one process."""
    if world()[1] > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def is_main() -> bool:
    return world()[0] == 0
