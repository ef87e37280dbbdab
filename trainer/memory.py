"""How a process that runs the model (scan, train, evaluate) asks the C library for memory.

A forward pass allocates and frees the same large blocks (a batch's activations, up to tens
of MB) again and again. glibc's defaults give such a block back to the kernel when it is
freed (its own mmap, or a trim of the heap), so the next batch faults every page in again,
zero-filled by the kernel. Keeping freed memory for reuse removes that: on `epsilon-tag scan`
of 250 Corel-5K photos (`--workers 0`, one thread, this 2-core machine) the process's system
time went from 5.6-6.5 s to 2.7-3.5 s and its wall time from 21.3-26.5 s to 20.3-21.3 s, for
the same peak RSS (1.37-1.49 GB either way); five forward passes of EfficientNet-Lite0 on 8
photos fault 2-9 thousand pages in instead of 122 thousand (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# Blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap; freed heap memory
# is kept up to 2 GiB; the heap grows 256 MiB at a time (untouched pages cost nothing).
SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, (1 << 31) - 1), (_M_TOP_PAD, 256 << 20))
# A person's own malloc settings win.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse. Returns whether it did: not on other
    systems or C libraries, nor where the environment sets malloc's parameters already."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already uses
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS)


def return_freed_memory() -> None:
    """Have glibc hand blocks of 1 MiB and more back to the system when freed (evaluation's
    large score blocks, unlike a forward pass's). Its default threshold rises to 32 MiB
    after the first large free, so the blocks after it stay in the heap: at Open Images'
    size the evaluation peaked at 1,566 MiB with a 16 MiB threshold and 1,368 MiB with this
    one, for 360 s instead of 136 s of page faults (bench/open_images_eval.py), minutes in
    a run whose epochs take hours."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except OSError:  # not glibc, or no C library to load: nothing to tune
        pass
