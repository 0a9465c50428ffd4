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
    TensorFlow's generator dataset lowers the trim threshold to 128 KiB again when first iterated ("Memory patch
    applied"); TensorFlow's own tensors are pooled instead (:func:`pool_tensor_memory`).
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


#: TensorFlow's switch to its pooling (best-fit with coalescing) allocator for tensors in host memory, and its cap
TF_POOLED_ALLOCATOR, TF_POOL_LIMIT_MB = "TF_CPU_ALLOCATOR_USE_BFC", "TF_CPU_BFC_MEM_LIMIT_IN_MB"


def pool_tensor_memory() -> None:
    """Make TensorFlow keep the host memory of freed tensors in a pool for the next ones (its BFC allocator),
    its cap (TensorFlow's default: 64 GiB) raised to the machine's physical memory where that is larger; a variable
    the environment already sets wins (``TF_CPU_ALLOCATOR_USE_BFC=false`` turns pooling off).

    ``import bpnetz`` runs it. It sets environment variables, so subprocesses (build and dask workers) inherit
    them; it takes effect only if TensorFlow has not allocated a tensor yet (importing TensorFlow is fine). The
    pool never hands memory back to the kernel: resident memory stays at its high-water mark.

    Why: glibc hands TensorFlow's freed tensors back to the kernel, and the next ones fault in page by page.
    Tensors over 32 MiB (one layer of 64 examples of the default BPNet is 34.6 MB) are always fresh mmaps, and
    when a ``tf.data`` generator is first iterated TensorFlow sets glibc's trim threshold to 128 KiB ("Memory
    patch applied"), overriding :func:`keep_freed_memory`'s (had nothing set the mmap threshold before, every
    tensor over 128 KiB would be an mmap). Measured on this project's 2-core VM (TensorFlow 2.21, 2 threads, the
    default BPNet): ``model.fit`` through the store loader (``scripts/bench_train.py``) 23.3 -> 36.5 examples/s,
    peak resident memory 1.57 -> 1.76 GB; a training step of 64 examples after a generator dataset 26.2 -> 43.1
    examples/s (5.3 M -> 0.3 M page faults, 11.9 -> 0.8 s of system time per 512 examples); the forward pass
    after one, 8 per call 57 -> 205 and 128 per call 72 -> 187 examples/s. GPU memory has its own pool.
    """
    import os

    os.environ.setdefault(TF_POOLED_ALLOCATOR, "true")
    try:
        physical_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    except (ValueError, OSError, AttributeError):
        return
    os.environ.setdefault(TF_POOL_LIMIT_MB, str(max(physical_mb, 1 << 16)))


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
