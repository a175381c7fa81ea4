"""course_utils.memory: after importing course_utils, freed large tensors go back to the system (glibc, Linux)."""
import platform
import subprocess
import sys

import pytest

from course_utils import memory

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# One 32 MB tensor freed (glibc then raises its mmap threshold to 32 MB), twenty of 10 MB allocated and freed, with a
# small tensor allocated after them: what a notebook does when it decodes and measures batches of images.
HELD_AFTER_FREEING = """
import re, sys
def anonymous_mb():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
import torch
if sys.argv[1] == "course_utils":
    import course_utils  # noqa: F401
before = anonymous_mb()
large = torch.ones(8_000_000)
del large
tensors = [torch.ones(2_500_000) for _ in range(20)]
small = torch.ones(1000)
del tensors
print(anonymous_mb() - before)
"""


def held_mb(imports: str) -> float:
    out = subprocess.run([sys.executable, "-c", HELD_AFTER_FREEING, imports], check=True, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"})
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not ON_GLIBC, reason="the threshold is glibc's (Linux)")
def test_freed_large_tensors_go_back_to_the_system_after_importing_course_utils():
    assert held_mb("torch only") > 50  # glibc's own behaviour: the freed 200 MB mostly stay with the process
    assert held_mb("course_utils") < 10


def test_it_leaves_the_threshold_alone_where_the_environment_sets_it(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert memory.keep_large_allocations_on_mmap() is False


def test_it_leaves_glibc_as_it_is_when_asked(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("COURSE_GLIBC_MALLOC", "1")
    assert memory.keep_large_allocations_on_mmap() is False


def test_it_does_nothing_outside_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert memory.keep_large_allocations_on_mmap() is False
