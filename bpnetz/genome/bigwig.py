"""bigWig files (pyBigWig): reading many windows at once, and writing per-track bigWigs of per-locus values
(predicted counts, or any (N, L, T) array over output windows).

Loci are sorted by chromosome (in the order of the chromosome sizes) and position. Where output windows overlap,
each base takes the value of the locus whose window centre (summit) is nearest, ties going to the right-hand
locus: consecutive windows are split at the midpoint between their summits, so every base is written once.
Loci with the same chromosome and start keep the first one given. Values past a chromosome's ends are dropped.

Every bigWig is written through :func:`bigwig_output`. libBigWig does not report failed writes. Measured on a
1 MiB tmpfs filled to a few hundred KiB: `bpnetz predict --generate-predicted-profile-bigWigs` exited 0 with a
track 66 bytes short (its end signature missing), or failed with "RuntimeError: Received an error while writing
the bigWig header" or a SystemError from addEntries (tests/test_disk_faults.py sweeps the free space). So a finished
file must end with the bigWig signature, and a pyBigWig error or a short file is checked by writing a probe block next
to it: a full or read-only disk becomes the OSError of that write, naming the bigWig (what the CLI reports as one
paragraph).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bpnetz.errors import InputError
from bpnetz.files.atomic import atomic_output
from bpnetz.files.names import safe_name
from bpnetz.genome.intervals import require_file
from bpnetz.genome.windows import gather, windows_by_span


def open_bigwig(path: str | Path) -> Any:
    """An open pyBigWig file, with an InputError when the file is not a bigWig."""
    import pyBigWig

    path = require_file(path, "bigWig file")
    try:
        handle = pyBigWig.open(str(path))
    except RuntimeError:
        handle = None
    if handle is None or not handle.isBigWig():
        raise InputError("is not a readable bigWig file.", path=path,
                         fix="Convert bedGraph with 'bedGraphToBigWig' or counts with 'bpnetz bam2bw'.")
    return handle


#: the first and last four bytes of a bigWig file (little-endian 0x888FFC26)
BIGWIG_SIGNATURE = bytes.fromhex("26fc8f88")
PROBE_BYTES = 1 << 16


def _raise_write_failure(tmp: Path, path: Path, what: str) -> None:
    """Raise the OSError a probe write beside ``tmp`` meets (full, read-only disk), named ``path``; else EIO."""
    probe = tmp.with_name(tmp.name + ".probe")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        probe.unlink(missing_ok=True)
    raise OSError(errno.EIO, f"the bigWig writer failed ({what})", str(path))


@contextmanager
def bigwig_output(path: str | Path, chrom_sizes: Sequence[tuple[str, int]], **header_options: Any) -> Iterator[Any]:
    """Yield a pyBigWig writer (header written) on a temporary file, renamed onto ``path`` once checked complete.

    A write failure (see the module docstring) is an OSError naming ``path``; nothing is left behind.
    """
    import pyBigWig

    path = Path(path)
    with atomic_output(path) as tmp:
        try:
            bw = pyBigWig.open(str(tmp), "w")
        except RuntimeError:
            bw = None
        if bw is None:
            _raise_write_failure(tmp, path, "it could not be created")
        try:
            bw.addHeader(list(chrom_sizes), **header_options)
            yield bw
        except (RuntimeError, SystemError) as err:  # how pyBigWig signals a failed write, when it does
            bw.close()
            _raise_write_failure(tmp, path, str(err))
        except BaseException:
            bw.close()
            raise
        bw.close()
        with open(tmp, "rb") as handle:
            handle.seek(max(tmp.stat().st_size - len(BIGWIG_SIGNATURE), 0))
            complete = handle.read() == BIGWIG_SIGNATURE
        if not complete:
            _raise_write_failure(tmp, path, "the file ends early")


def bigwig_windows(bigwig: Any, chroms: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Values (float32, shape (n, length), NaN where the bigWig has no value) of windows [start, start+length).

    Windows may extend past the chromosome ends; positions outside the chromosome read as NaN.
    """
    out = np.empty((len(starts), length), dtype=np.float32)  # every row belongs to exactly one span
    chrom_lengths = bigwig.chroms()
    for chrom, span_start, span_end, rows in windows_by_span(chroms, starts, length):
        lo, hi = max(span_start, 0), min(span_end, chrom_lengths[chrom])
        if (lo, hi) == (span_start, span_end):
            span = bigwig.values(chrom, lo, hi, numpy=True)
        else:
            span = np.full(span_end - span_start, np.nan, dtype=np.float32)
            if hi > lo:
                span[lo - span_start:hi - span_start] = bigwig.values(chrom, lo, hi, numpy=True)
        out[rows] = gather(span, starts[rows] - span_start, length)
    return out


def bigwig_has_data(bigwig: Any, chroms: list[str]) -> bool:
    """Whether the bigWig holds any value on any of these chromosomes (from its summary, without a full read)."""
    if not bigwig.header().get("nBasesCovered"):
        return False
    present = bigwig.chroms()
    for chrom in chroms:
        if chrom in present and bigwig.stats(chrom, type="coverage")[0]:
            return True
    return False


def locus_segments(chroms: Sequence[str], starts: np.ndarray, length: int,
                   chrom_sizes: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The part of each window to write: ``(order, seg_start, seg_end)`` in genome order.

    ``order`` indexes the input loci (duplicates removed), sorted by chromosome rank in ``chrom_sizes`` then
    start; ``seg_start``/``seg_end`` are genomic and may be empty (seg_end <= seg_start) for a fully shadowed or
    off-chromosome window.
    """
    rank = {c: i for i, c in enumerate(chrom_sizes)}
    missing = sorted({str(c) for c in chroms} - set(rank))
    if missing:
        raise InputError(f"chromosomes {', '.join(missing[:5])} are not in the chromosome sizes.",
                         fix="Pass the chromosome sizes file of the genome the loci come from (--chrom-sizes).")
    chrom_rank = np.array([rank[str(c)] for c in chroms], dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    order = np.lexsort((starts, chrom_rank))  # stable: equal loci keep their input order
    chrom_rank, starts = chrom_rank[order], starts[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (chrom_rank[1:] != chrom_rank[:-1]) | (starts[1:] != starts[:-1])
    order, chrom_rank, starts = order[first], chrom_rank[first], starts[first]

    centres = starts + length // 2
    same_chrom = chrom_rank[1:] == chrom_rank[:-1]
    split = (centres[:-1] + centres[1:] + 1) // 2  # first base nearer the right-hand summit (or equidistant)
    seg_start = starts.copy()
    seg_end = starts + length
    seg_start[1:] = np.where(same_chrom, np.maximum(seg_start[1:], split), seg_start[1:])
    seg_end[:-1] = np.where(same_chrom, np.minimum(seg_end[:-1], split), seg_end[:-1])
    sizes = np.array(list(chrom_sizes.values()), dtype=np.int64)[chrom_rank]
    return order, np.clip(seg_start, 0, sizes), np.clip(seg_end, 0, sizes)


def write_track_bigwigs(path_template: str, chrom_sizes: Mapping[str, int], chroms: Sequence[str],
                        starts: np.ndarray, values: np.ndarray, track_names: Sequence[str]) -> list[Path]:
    """Write one bigWig per track of ``values`` (N, L, T) whose windows start at ``starts`` on ``chroms``.

    ``path_template`` is formatted with ``i`` (track index) and ``name`` (track name, '/' replaced by '_', then
    checked by :func:`~bpnetz.files.names.safe_name`), e.g.
    ``"out/model_predictions_track_{i}.bw"``. The header lists every chromosome of ``chrom_sizes`` in its order.
    Files are written atomically; returns their paths.
    """

    values = np.asarray(values)
    if values.ndim != 3 or values.shape[2] != len(track_names) or not len(values) == len(chroms) == len(starts):
        raise ValueError(f"values {values.shape} do not match {len(chroms)} loci and {len(track_names)} tracks")
    length = values.shape[1]
    order, seg_start, seg_end = locus_segments(chroms, starts, length, chrom_sizes)
    keep = seg_end > seg_start
    order, seg_start, seg_end = order[keep], seg_start[keep], seg_end[keep]
    offsets = seg_start - np.asarray(starts, dtype=np.int64)[order]
    header = [(str(c), int(s)) for c, s in chrom_sizes.items()]
    paths = []
    for t, name in enumerate(tqdm(track_names, desc="bigWig tracks", unit="track", leave=False)):
        safe = safe_name(str(name).replace("/", "_"), what="track name") if "{name" in path_template else ""
        path = Path(path_template.format(i=t, name=safe))
        with bigwig_output(path, header) as bw:
            for k, locus in enumerate(order):
                row = np.ascontiguousarray(
                    values[locus, offsets[k]:offsets[k] + seg_end[k] - seg_start[k], t], dtype=np.float64)
                bw.addEntries(str(chroms[locus]), int(seg_start[k]), values=row, span=1, step=1)
        paths.append(path)
    return paths
