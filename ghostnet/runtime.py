"""Process-wide settings of the C libraries under ghostnet (layer 0: no model knowledge)."""
from __future__ import annotations

MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 64 << 20


def set_malloc_thresholds() -> bool:
    """glibc only: keep freed blocks of up to 16 MB in the heap (M_MMAP_THRESHOLD) and up to
    64 MB of free heap (M_TRIM_THRESHOLD) instead of handing them back to the system.

    A training step allocates dozens of short-lived batch-sized arrays (100 x 500 float32 is
    200 kB, above glibc's initial 128 kB mmap threshold). Depending on the process's allocation
    history glibc either recycles them or maps and unmaps fresh pages for every one of them, and
    the page faults then double the time of an equilibrium step (784-500-500-10, batch 100,
    float32: 6.2 against 3.3 ms, the same code in two processes). Fixing both thresholds makes the
    fast case the only one. Returns whether it was done (False off glibc)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
            libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc
        return False
