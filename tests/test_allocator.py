"""msgfusion.allocator: freed feature-map-sized blocks stay in the process (glibc only)."""

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import numpy as np
from msgfusion.allocator import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "reuse":
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True  # once; the second call changes nothing
before = libc.mallinfo2().hblkhd
block = np.ones(2 * 2**20)  # 16 MB, a few feature maps' worth
mapped = libc.mallinfo2().hblkhd - before
del block
print(mapped, libc.mallinfo2().fordblks)
"""


def probe(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_are_kept_for_reuse() -> None:
    mapped_default, _ = probe("default")
    mapped, free_after = probe("reuse")
    assert mapped_default >= 16 * 2**20  # glibc maps a 16 MB block on its own by default
    assert mapped == 0  # after reuse_freed_memory it comes from the heap ...
    assert free_after >= 16 * 2**20  # ... and stays there, free, when released
