"""Keep freed memory in the process for the next step, instead of handing it back to the kernel (glibc only).

A training step frees and allocates the same large buffers (activations, their gradients, a validation part's
outputs) thousands of times. glibc's malloc serves a block over its mmap threshold (from 128 KiB, rising to at most
32 MiB as it adapts) with a fresh mmap and returns it with munmap, and trims the heap's free top above 128 KiB:
every step the kernel maps and zeroes those pages again, one page fault per 4 KiB, in system time the training
waits for. With the thresholds below the blocks stay in the process and are reused (`bench/allocator_speed.py`
measures the page faults and the time it saves).

The cost: the process keeps up to its peak of freed memory for reuse (bounded by what one step and one evaluation
part need at once), so its peak resident set grows a little. `FMNIST_ALLOCATOR=default` leaves glibc's settings
alone (the benchmark's baseline).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: blocks up to this size come from the heap and are reused; the heap's free top is kept up to this size
KEEP_BYTES = 1 << 30
#: the heap grows by this much more than asked, so that it grows a few times, not once per step
TOP_PAD_BYTES = 256 << 20
#: the environment variable that turns it off: FMNIST_ALLOCATOR=default
ENV = "FMNIST_ALLOCATOR"

_state: str | None = None


def keep_freed_memory() -> str:
    """Set glibc malloc's thresholds for this process (once; later calls return the first outcome): 'kept' when
    set, 'default' when turned off by FMNIST_ALLOCATOR=default, 'unavailable' off glibc (macOS, musl, Windows)."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def _apply() -> str:
    if os.environ.get(ENV, "").strip().lower() == "default":
        return "default"
    if not sys.platform.startswith("linux"):
        return "unavailable"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no C library to load, or one without mallopt (musl)
        return "unavailable"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, KEEP_BYTES), (M_TRIM_THRESHOLD, KEEP_BYTES), (M_TOP_PAD, TOP_PAD_BYTES))
    return "kept" if all([mallopt(param, value) for param, value in settings]) else "unavailable"
