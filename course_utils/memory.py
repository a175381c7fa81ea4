"""Freed tensors go back to the operating system: glibc's malloc keeps large allocations on mmap (Linux).

glibc serves an allocation above its mmap threshold (128 KB at first) with mmap and returns it to the system when it
is freed, but every such free raises the threshold to the freed size (up to 32 MB). After a notebook has decoded
10,000 images once, the next arrays of that size come from the heap, where freed memory mostly stays with the
process, and a notebook's kernel grows with every set of images it measures. Fixing the threshold at 8 MB keeps
every large array (10,000 images, a batch of 1,000 images through the classifier) on mmap, while the tensors of a
training step (batches of 128) stay below it. benchmarks/memory.py measures what it saves (docs/performance.md).

`in_batches(f, x, batch_size)` runs f over x batch by batch and writes each result into one tensor made for all of
them. A list of results, joined at the end, keeps small tensors alive between the batches' large temporary buffers
(a classifier's activations, 5 MB for 100 images); glibc then places those small tensors in the holes the freed
buffers leave, a hole no longer fits the next batch's buffer, and the heap grows by a buffer per batch: up to 240 MB
over 10,000 images, given back only when the list is freed (tests/test_memory.py measures it).

`keep_large_allocations_on_mmap()` runs once when course_utils is imported. It changes nothing where glibc is not the
C library (macOS, Windows, musl), where the MALLOC_MMAP_THRESHOLD_ environment variable already sets the threshold,
or where COURSE_GLIBC_MALLOC=1 asks to leave glibc as it is (benchmarks/memory.py measures both ways).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Callable

import torch

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


def in_batches(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """f(x) computed batch by batch: f(x[i:i + batch_size]) for each i, written into one tensor (N, ...) on the CPU.

    x must hold at least one example: f's first result gives the shape and dtype of the whole.
    """
    if len(x) == 0:
        raise ValueError("in_batches needs at least one example in x, to learn the shape of f's results.")
    out = None
    for i in range(0, len(x), batch_size):
        result = f(x[i:i + batch_size])  # (b, ...)
        if out is None:  # the first result gives the shape and dtype of the whole
            out = torch.empty((len(x), *result.shape[1:]), dtype=result.dtype)  # (N, ...)
        out[i:i + len(result)] = result
        del result  # freed before the next batch's buffers are allocated
    return out
