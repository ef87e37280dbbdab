"""epsilon-train (argv) that, at its KILL_AT-th optimiser step, SIGKILLs itself (a crash) or
raises SIGINT (Ctrl-C): DIE_WITH names the signal (SIGKILL unless told)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import torch

from trainer.cli import main

kill_at, calls = int(os.environ.get("KILL_AT", 0)), [0]
original = torch.optim.Adam.step


def step(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> Any:
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), getattr(signal, os.environ.get("DIE_WITH", "SIGKILL")))
    return original(self, *args, **kwargs)


torch.optim.Adam.step = step  # type: ignore[method-assign]
sys.argv = ["epsilon-train", *sys.argv[1:]]
main()
