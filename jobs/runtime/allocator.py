"""The C allocator set for array work: freed memory stays in the process for the next step.

glibc hands every block above its mmap threshold (128 KiB, raised on the fly to at most
32 MiB) back to the OS when it is freed, and maps fresh pages for the next one: a loop that
allocates the same tens of megabytes each step (a batch's activations, a stamp batch, an FFT
plane) then pays a page fault per 4 KiB, every step. On the demo's two cores that was ~10 M
faults and 30 s of system time in `inject` alone (42 s → 27 s with this, same run). Blocks up
to 256 MiB now come from the heap and are reused; the heap gives memory back once more than
1 GiB of it is free. Elsewhere than glibc (macOS, musl) nothing changes."""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set the thresholds in this process (forked workers inherit them); whether it could."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
