"""Many genome windows read at once: nearby windows are grouped into *merged spans* read with one library call.

A pyBigWig call costs about as much as reading ~20 kb (measured: ~140 µs per call, ~7 ns per base), so windows
closer than :data:`MERGE_GAP` bases share a read, and the windows are then gathered from the span with one
vectorised index. Used by the FASTA and bigWig window readers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: windows whose gap is below this many bases are read with one call (≈ the per-call cost of pyBigWig).
MERGE_GAP = 16_384
#: never read a merged span longer than this (bounds memory for dense loci on long chromosomes).
MAX_SPAN = 4_000_000


def merged_spans(starts: np.ndarray, length: int, max_gap: int = MERGE_GAP) -> list[tuple[int, int, np.ndarray]]:
    """Group windows [s, s + length) (``starts`` sorted) into spans: (span start, span end, window indices)."""
    if len(starts) == 0:
        return []
    gap_after = starts[1:] - (starts[:-1] + length)
    breaks = np.flatnonzero(gap_after > max_gap) + 1
    spans = []
    for group in np.split(np.arange(len(starts)), breaks):
        # cut overlong groups so that no span exceeds MAX_SPAN
        first = 0
        while first < len(group):
            limit = starts[group[first]] + MAX_SPAN - length
            last = first + max(1, int(np.searchsorted(starts[group[first:]], limit, side="right")))
            idx = group[first:last]
            spans.append((int(starts[idx[0]]), int(starts[idx[-1]]) + length, idx))
            first = last
    return spans


def windows_by_span(chroms: np.ndarray, starts: np.ndarray, length: int, max_gap: int = MERGE_GAP
                    ) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """(chrom, span start, span end, row indices) over all windows, rows grouped by chromosome and position."""
    order = np.lexsort((starts, chroms.astype(str)))
    sorted_chroms = chroms[order]
    bounds = np.flatnonzero(np.r_[True, sorted_chroms[1:] != sorted_chroms[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        rows = order[lo:hi]
        for span_start, span_end, idx in merged_spans(starts[rows], length, max_gap):
            yield str(sorted_chroms[lo]), span_start, span_end, rows[idx]


def _window_view(span: np.ndarray, length: int) -> np.ndarray:
    """Read-only view (len(span) - length + 1, length, ...) of every window of a span along its first axis (a 1-D
    span, or one column per track) (``sliding_window_view``'s argument checks cost ~100 µs per call, a third of a
    builder's gathers)."""
    step = span.strides[0]
    return np.lib.stride_tricks.as_strided(span, (max(len(span) - length + 1, 0), length, *span.shape[1:]),
                                           (step, *span.strides), writeable=False)


def gather(span: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
    """Rows ``span[o : o + length]`` for each offset (one copy through a strided window view; a 2-D span gives
    (offsets, length, columns))."""
    if len(span) < length:
        raise ValueError(f"a span of {len(span)} holds no window of {length}")
    return _window_view(span, length)[offsets]
