"""Shared pytest fixtures: small simulated experiments (``bpnetz simulate``), built once per session.

``tiny_experiment`` is 3 chromosomes (60, 52.5, 45 kb) with 60 peaks, input_len 400, output_len 200, max_jitter 16,
controls, one stranded task. ``make_experiment(**options)`` simulates with ``TINY_OPTIONS`` overridden by the given
keyword arguments of :func:`bpnetz.simulate.experiment.simulate` and caches the result per option set. Treat the
returned directories as read-only: they are shared by every test of the session (copy one to modify it).
Commands that read input_data.json must run from inside the directory (its paths are relative to it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# Tests use tiny models on a shared machine: one TensorFlow thread each (also in the subprocesses they start),
# and none of TensorFlow's C++ start-up chatter.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Builds remember their inputs' checksums in the user's cache file (bpnetz.store.checksum.CACHE_ENV); the tests'
# go to a file of their own, not the home folder.
os.environ.setdefault("BPNETZ_CHECKSUM_CACHE",
                      str(Path(tempfile.mkdtemp(prefix="bpnetz-test-checksums-")) / "checksums.json"))

import pytest

TINY_OPTIONS = dict(n_chroms=3, chrom_length=60_000, n_peaks=60, input_len=400, output_len=200, max_jitter=16)


@pytest.fixture(scope="session")
def make_experiment(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_experiment(**options) -> Path`` of a simulated experiment, cached by its options."""
    from bpnetz.simulate.experiment import simulate

    cache: dict[tuple, Path] = {}

    def make(**options) -> Path:
        merged = {**TINY_OPTIONS, **options}
        key = tuple(sorted((name, repr(value)) for name, value in merged.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp("experiment") / "sim"
            simulate(out, progress=False, **merged)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_experiment(make_experiment: Callable[..., Path]) -> Path:
    """The default tiny experiment (see the module docstring)."""
    return make_experiment()
