"""Peak resident memory of this process, recorded in ``training.json`` and printed by ``scripts/bench_train.py``.

Measured (2-core CPU machine, 2114/1000, 32 filters × 6 layers): the 16 GB peak of training came from one
allocation pattern, not fragmentation nor the epochs: the counts-head calibration called the model eagerly on
2,048 joined loci (14.1 GB VmHWM for that call alone; 1.3 GB for the same loci 64 at a time), so calibration now
predicts batch by batch. A fit on fixed tensors peaks at 1.4 GB, TensorFlow's import at 0.73 GB.

The peak is the kernel's high-water mark (``VmHWM`` of ``/proc/self/status``), which covers memory that
Python's tracemalloc never sees (TensorFlow's allocator, oneDNN scratch); elsewhere ``getrusage``'s
``ru_maxrss`` (the same figure on Linux, in kB; bytes on macOS).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_bytes() -> int:
    """The most resident memory this process has held so far, in bytes."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def peak_rss_gb() -> float:
    """:func:`peak_rss_bytes` in GB (10^9 bytes), rounded to 3 decimals."""
    return round(peak_rss_bytes() / 1e9, 3)
