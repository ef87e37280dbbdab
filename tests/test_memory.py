"""The model's processes keep freed memory for the next batch (trainer.memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from trainer.memory import USER_SETTINGS, keep_freed_memory

# Five forward passes of a small conv net after a warm-up; prints the page faults they took.
FORWARDS = textwrap.dedent("""
    import resource, sys
    from trainer.memory import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    import torch
    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, 2, 1),
    )
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        net(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            net(x)
    print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def faults(mode: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    done = subprocess.run([sys.executable, "-c", FORWARDS, mode], capture_output=True, text=True, env=clean)
    assert done.returncode == 0, done.stderr[-2000:]
    kept, count = done.stdout.split()
    return kept, int(count)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_forward_passes_reuse_freed_memory_instead_of_faulting_it_in_again():
    # Measured: 11,240 page faults with glibc's defaults, 1,568 with freed memory kept.
    kept, default = faults("default")
    assert kept == "False"
    kept, reused = faults("keep")
    assert kept == "True" and reused < 0.3 * default, (reused, default)


@pytest.mark.parametrize(
    "name,value", [("MALLOC_TRIM_THRESHOLD_", "131072"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")]
)
def test_a_users_malloc_setting_is_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert keep_freed_memory() is False
