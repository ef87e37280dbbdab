"""The model's processes keep freed memory for the next batch (trainer.memory)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from trainer.memory import USER_SETTINGS, keep_freed_memory


def block(mode: str) -> tuple[str, int, int, int]:
    clean = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    program = [sys.executable, "-m", "tests.programs.malloc_block", mode]  # a fresh process: glibc's own defaults
    done = subprocess.run(program, capture_output=True, text=True, env=clean, cwd=ROOT)
    if "mallinfo2" in done.stderr:
        pytest.skip("this C library has no mallinfo2 (glibc 2.33 and later)")
    assert done.returncode == 0, done.stderr[-2000:]
    kept, mapped, heap, heap_after = done.stdout.split()
    return kept, int(mapped), int(heap), int(heap_after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_batch_sized_block_is_reused_from_the_heap_instead_of_mapped_and_given_back():
    # glibc's defaults: a 16 MiB block is a mapping of its own, unmapped (its pages lost) when freed.
    kept, mapped, heap, _ = block("default")
    assert kept == "False" and mapped >= 16 << 20 and heap < 16 << 20
    # Kept: it comes from the heap, which grows with room to spare and keeps it once freed.
    kept, mapped, heap, heap_after = block("keep")
    assert kept == "True" and mapped == 0
    assert heap >= 256 << 20 and heap_after == heap  # measured: 271.9 MiB, all of it still held


@pytest.mark.parametrize(
    "name,value", [("MALLOC_TRIM_THRESHOLD_", "131072"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")]
)
def test_a_users_malloc_setting_is_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert keep_freed_memory() is False
