"""training.allocator: glibc keeps freed blocks for reuse instead of mapping fresh, zeroed pages every step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: a process that allocates, writes and frees a 64 MiB block 20 times through malloc (as torch's CPU allocator
#: does a training step's large buffers; numpy would ask for huge pages, which hides the cost)
CHURN = """
import ctypes, ctypes.util, resource
from fmnist_tui.training.allocator import keep_freed_memory
state = keep_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
print(state, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churn(allocator: str) -> tuple[str, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FMNIST_ALLOCATOR=allocator)
    out = subprocess.run([sys.executable, "-c", CHURN], env=env, capture_output=True, text=True, check=True)
    state, faults = out.stdout.split()
    return state, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc (elsewhere: 'unavailable')")
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    """A 64 MiB block is 16,384 pages: glibc's default maps it afresh each time (20 × 16,384 faults); kept, the
    pages of the first are reused by the next 19."""
    default_state, default_faults = churn("default")
    kept_state, kept_faults = churn("")
    assert (default_state, kept_state) == ("default", "kept")
    assert default_faults > 15 * 16384
    assert kept_faults < 3 * 16384 and kept_faults * 5 < default_faults
