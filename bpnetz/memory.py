"""Process memory: glibc's reuse of freed buffers, and the memory available to new allocations.

A module of its own (no numpy, no pandas) because the build's worker processes, the loader and the stream cache
all need it, and the build's start-up should not import the store reader's pandas (~0.3 s) for it.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def keep_freed_memory() -> None:
    """Let glibc keep freed batch buffers for reuse instead of handing them back to the kernel (once per process:
    later calls return at once).

    Every batch allocates fresh arrays of a few MB (numpy crops, then TensorFlow's copies). With glibc's defaults
    these come from mmap and each page faults when first written, which measured as half of the host-side cost
    per locus. A fixed mmap threshold (32 MiB, the maximum) and a high trim threshold make the buffers cycle
    through the heap. Process-wide, harmless (memory stays reusable), and a no-op where glibc is absent.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 1 << 30)


def available_memory() -> int:
    """Bytes of memory available to new allocations (psutil, else /proc/meminfo, else 4 GiB)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
