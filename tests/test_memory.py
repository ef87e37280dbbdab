"""The model's processes keep freed memory for the next batch (trainer.memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from trainer.memory import USER_SETTINGS, keep_freed_memory

# In a fresh process: where glibc serves a 16 MiB block (its own mmap, or the heap) and
# whether freeing it gives the heap back, from mallinfo2's byte counts.
BLOCK = textwrap.dedent("""
    import ctypes, sys
    from trainer.memory import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    libc = ctypes.CDLL(None)
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = Info
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2()
    block = libc.malloc(16 << 20)
    during = libc.mallinfo2()
    libc.free(block)
    after = libc.mallinfo2()
    print(kept, during.hblkhd - before.hblkhd, during.arena - before.arena, after.arena - before.arena)
""")


def block(mode: str) -> tuple[str, int, int, int]:
    clean = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    done = subprocess.run([sys.executable, "-c", BLOCK, mode], capture_output=True, text=True, env=clean)
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
