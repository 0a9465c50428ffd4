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


#: TensorFlow's switch to its pooling (best-fit with coalescing) allocator for tensors in host memory
TF_POOLED_ALLOCATOR = "TF_CPU_ALLOCATOR_USE_BFC"


def pool_tensor_memory() -> None:
    """Make TensorFlow keep the host memory of freed tensors in a pool for the next ones (its BFC allocator),
    unless the environment already says otherwise (``TF_CPU_ALLOCATOR_USE_BFC=false`` turns it off).

    Must run before TensorFlow allocates its first tensor (importing TensorFlow is fine); ``import bpnetz`` runs
    it. Without it every tensor of more than 128 KiB is a fresh mmap whose pages fault when first written: the
    first ``tf.data`` generator of a process sets glibc's M_TRIM_THRESHOLD ("Memory patch applied"), which
    also freezes glibc's mmap threshold at 128 KiB, and tensors over 32 MiB are mmapped in any case. Measured on
    this project's 2-core VM (TensorFlow 2.21, 2 threads, the default BPNet, after a generator dataset): a
    training step of 64 examples 26.2 -> 43.1 examples/s (5.3 M -> 0.3 M page faults, 11.9 -> 0.8 s of system
    time per 512 examples; peak resident memory 1,461 -> 1,574 MB); the forward pass, 8 per call 57 -> 205
    and 128 per call 72 -> 187 examples/s. A no-op for GPU memory (the GPU has its own pool).
    """
    import os

    os.environ.setdefault(TF_POOLED_ALLOCATOR, "true")


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
