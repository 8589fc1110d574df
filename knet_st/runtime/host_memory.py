"""Host memory: freed arrays' memory stays in the process for the next step.

A training step allocates the same large arrays every iteration (LeNet's
im2col columns are 6 and 13 MB, its activations 5 MB).  glibc's ``malloc``
serves blocks over its mmap threshold with ``mmap`` and gives them back
with ``munmap`` when NumPy frees them, and it trims freed memory at the top
of its heap, so every step faults its large arrays in again, page by page
(about 4,000 page faults a LeNet step, each zeroing 4 KiB).  A caching
allocator (CuPy's pool on the GPU, :mod:`knet_st.runtime.memory`) keeps
such blocks; on the host the same is two ``mallopt`` settings: serve
blocks up to 32 MiB (glibc's largest mmap threshold) from the heap, and
keep up to 1 GiB of freed heap memory instead of returning it.

:func:`keep_freed_memory` applies them once, when the first gradient is
compiled (``import knet_st`` alone changes nothing).  It does nothing
outside glibc Linux, and nothing with ``KNET_ST_HOST_MEMORY=system``.  The
cost is the usual one of a caching allocator: the process keeps the memory
of its largest step after the step ends.
"""

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc refuses more (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied = None


def keep_freed_memory():
    """Sets glibc's malloc to keep freed blocks for reuse (see the module
    doc), once per process; returns whether the settings are in effect."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply():
    if os.environ.get("KNET_ST_HOST_MEMORY", "cache") == "system" or \
            not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version      # glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
