"""Keep freed memory in the process for the next pair instead of handing it back to the OS.

Fusing one 256 x 256 pair allocates and frees a few dozen arrays of 0.25-2 MB (the network's
feature maps, colour and PNG buffers). With glibc's default settings such blocks are either
mapped and unmapped one by one (above the mmap threshold) or returned when more than 128 kB lies
free at the top of the heap (the trim threshold), so the next pair touches fresh pages again and
the kernel zero-fills every one of them: about a sixth of `msgfusion fuse-dir`'s CPU time per pair
(measured, docs/speed.md). :func:`reuse_freed_memory` raises both thresholds with glibc's
``mallopt``; freed blocks then stay in the process and are reused. It changes no result, only
when memory goes back to the OS: at most :data:`TRIM_THRESHOLD` bytes of free heap top are kept,
and blocks above :data:`MMAP_THRESHOLD` (a 4096 x 4096 float image is 64 MB) are still mapped
and unmapped on their own, so the peak resident memory of a large pair stays where it was.

Other C libraries are left as they are (musl's ``mallopt`` accepts nothing: False).
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache

#: Blocks larger than this are mapped on their own and unmapped when freed (glibc M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept for reuse before it is trimmed (glibc M_TRIM_THRESHOLD).
TRIM_THRESHOLD = 128 * 2**20

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3


@cache
def reuse_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once; later calls do nothing).
    True where the C library is glibc and took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded in this process
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
