"""Where glibc serves a 16 MiB block (its own mmap, or the heap) and whether freeing it gives
the heap back, from mallinfo2's byte counts; argv[1] "keep" first keeps freed memory as the
model's processes do (trainer.memory). Prints: kept, mapped, heap while held, heap after."""

from __future__ import annotations

import ctypes
import sys

from trainer.memory import keep_freed_memory

_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]  # ctypes reads it as is


kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = libc.mallinfo2()
block = libc.malloc(16 << 20)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(kept, during.hblkhd - before.hblkhd, during.arena - before.arena, after.arena - before.arena)
