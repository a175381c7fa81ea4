"""Freed tensors go back to the operating system: glibc's malloc keeps large allocations on mmap (Linux).

glibc serves an allocation above its mmap threshold (128 KB at first) with mmap and returns it to the system when it
is freed, but every such free raises the threshold to the freed size (up to 32 MB). After a notebook has decoded
10,000 images once, the next arrays of that size come from the heap, where freed memory mostly stays with the
process, and a notebook's kernel grows with every set of images it measures. Fixing the threshold at 8 MB keeps
every large array (10,000 images, a batch of 1,000 images through the classifier) on mmap, while the tensors of a
training step (batches of 128) stay below it. benchmarks/memory.py measures what it saves (docs/performance.md).

`keep_large_allocations_on_mmap()` runs once when course_utils is imported. It changes nothing where glibc is not the
C library (macOS, Windows, musl), where the MALLOC_MMAP_THRESHOLD_ environment variable already sets the threshold,
or where COURSE_GLIBC_MALLOC=1 asks to leave glibc as it is (benchmarks/memory.py measures both ways).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

MMAP_THRESHOLD = 8 * 2**20  # bytes: allocations this large or larger are mmapped, and unmapped when freed
M_MMAP_THRESHOLD = -3       # mallopt's parameter number for it (glibc's malloc.h)


def keep_large_allocations_on_mmap(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at threshold bytes; True if it was set, False where it does not apply."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if os.environ.get("COURSE_GLIBC_MALLOC", "0") not in ("", "0"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1  # mallopt returns 1 on success
    except (OSError, AttributeError):
        return False
