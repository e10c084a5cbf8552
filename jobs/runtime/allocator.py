"""The C allocator set for array work: freed memory stays in the process for the next step.

glibc hands every block above its mmap threshold (128 KiB, raised on the fly to at most
32 MiB) back to the OS when it is freed, and maps fresh pages for the next one: a loop that
allocates the same tens of megabytes each step (a batch's activations, a stamp batch, an FFT
plane) then pays a page fault per 4 KiB, every step. On the demo's two cores that was ~10 M
faults and 30 s of system time in `inject` alone (48.6 s → 35 s wall, back to back). Blocks
up to 256 MiB (32 MiB where an older glibc caps the threshold there) now come from the heap
and are reused; free memory at the heap's top goes back to the OS once it passes 512 MiB (free
space below a live block stays until the process ends: a stage's peak, which it reaches
again next step). Elsewhere than glibc (macOS, musl) nothing changes.

Every stage calls it in `stage_runtime.main`; pool workers inherit it where they fork and call
it again where they start afresh (forkserver, spawn)."""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLDS = (256 << 20, 32 << 20)  # the first one this glibc takes
TRIM_THRESHOLD = 512 << 20


def release_freed_memory() -> bool:
    """Give the free memory the process keeps back to the OS (glibc's malloc_trim, and Arrow's
    pool where pyarrow is loaded), at the end of a step whose blocks will not come again
    (score's stream of stamp batches, before the ranking): the next step starts from what is
    live. Whether glibc could."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def keep_freed_memory() -> bool:
    """Set the thresholds in this process; whether it could."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    # the mmap threshold first: setting the trim threshold alone would also freeze the mmap
    # threshold at its 128 KiB start, worse than glibc's default
    if not any(mallopt(M_MMAP_THRESHOLD, size) for size in MMAP_THRESHOLDS):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
