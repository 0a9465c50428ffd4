"""Prediction beyond peaks: tile regions (``--regions regions.bed``) or whole chromosomes (``--tile CHROM``)
into model windows and read their sequences straight from the FASTA.

Output windows of ``output_len`` tile each region (overlapping regions are merged first) and are centred on it:
the tiling overhangs both ends of the region by the same amount (±1). Each output window starting at ``o`` has
its summit at ``o + output_len // 2`` and, by the store's window convention, its input sequence starts at
``summit − input_len // 2``. Sequence past a chromosome's ends is N (all-zero one-hot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome.fasta import fasta_lengths, fasta_windows, open_fasta
from bpnetz.genome.intervals import merge_intervals, read_bed
from bpnetz.genome.sequence import N_CODE, encode

Region = tuple[str, int, int]


@dataclass(frozen=True)
class Windows:
    """Model windows: chromosome, output-window start and input-window start (genomic, 0-based) per window."""

    chrom: np.ndarray
    out_start: np.ndarray
    in_start: np.ndarray
    input_len: int
    output_len: int

    def __len__(self) -> int:
        return len(self.chrom)

    @property
    def summit(self) -> np.ndarray:
        return self.out_start + self.output_len // 2


def read_regions_bed(path: str | Path) -> list[Region]:
    """(chrom, start, end) of each interval of a BED file (extra columns ignored), for ``--regions``."""
    bed = read_bed(path, "regions BED file")  # refuses empty intervals, naming the line
    if not len(bed):
        raise InputError("the regions file has no intervals.", path=path, fix="Add at least one BED line.")
    return [(str(c), int(lo), int(hi)) for c, lo, hi in zip(bed.chrom, bed.start, bed.end, strict=True)]


def chromosome_regions(chroms: Sequence[str], chrom_sizes: Mapping[str, int]) -> list[Region]:
    """Whole chromosomes as regions (``--tile CHROM``)."""
    missing = [c for c in chroms if c not in chrom_sizes]
    if missing:
        raise InputError(f"chromosomes {', '.join(missing)} are not in the chromosome sizes.",
                         fix="Name chromosomes exactly as in the chromosome sizes file.")
    return [(c, 0, int(chrom_sizes[c])) for c in chroms]


def _merged(regions: Sequence[Region], chrom_sizes: Mapping[str, int]) -> list[Region]:
    """Regions clipped to their chromosome, merged where they overlap, in chromosome-size order."""
    unknown = sorted({c for c, _, _ in regions} - set(chrom_sizes))
    if unknown:
        raise InputError(f"regions on chromosomes {', '.join(unknown[:5])} that are not in the chromosome sizes.",
                         fix="Use the chromosome sizes of the genome the regions come from.")
    merged: list[Region] = []
    for chrom, size in chrom_sizes.items():
        rows = [(max(0, lo), min(int(size), hi)) for c, lo, hi in regions if c == chrom]
        rows = [(lo, hi) for lo, hi in rows if hi > lo]
        if rows:
            starts, ends = merge_intervals(*np.asarray(rows, dtype=np.int64).T)
            merged += [(chrom, int(lo), int(hi)) for lo, hi in zip(starts, ends, strict=True)]
    return merged


def tile_regions(regions: Sequence[Region], chrom_sizes: Mapping[str, int], input_len: int,
                 output_len: int) -> Windows:
    """Windows whose output windows tile every (merged) region, centred on it, in genome order."""
    chroms: list[str] = []
    out_starts: list[np.ndarray] = []
    for chrom, start, end in _merged(regions, chrom_sizes):
        n = -(-(end - start) // output_len)
        first = start - (n * output_len - (end - start)) // 2
        out_starts.append(first + output_len * np.arange(n, dtype=np.int64))
        chroms += [chrom] * n
    if not chroms:
        raise InputError("no region overlaps its chromosome.", fix="Check the regions' coordinates.")
    out_start = np.concatenate(out_starts)
    in_start = out_start + output_len // 2 - input_len // 2
    return Windows(np.asarray(chroms, dtype=object), out_start, in_start, input_len, output_len)


def read_sequences(fasta: str | Path, windows: Windows) -> np.ndarray:
    """Base codes (N, input_len) uint8 of every window's input sequence; N (4) past the chromosome ends."""
    genome = open_fasta(fasta)
    lengths = fasta_lengths(genome)
    unknown = sorted(set(windows.chrom) - set(lengths))
    if unknown:
        raise InputError(f"chromosome {unknown[0]} is not in the reference genome.", path=fasta,
                         fix="Use the FASTA of the genome the regions and chromosome sizes describe.")
    size = np.array([lengths[c] for c in windows.chrom], dtype=np.int64)
    start, end = windows.in_start, windows.in_start + windows.input_len
    inside = (start >= 0) & (end <= size)
    codes = np.full((len(windows), windows.input_len), N_CODE, dtype=np.uint8)
    with genome:
        codes[inside] = fasta_windows(genome, windows.chrom[inside], start[inside], windows.input_len)
        for i in np.flatnonzero(~inside):  # at most the ends of each region
            lo, hi = max(0, int(start[i])), min(int(size[i]), int(end[i]))
            if hi > lo:
                codes[i, lo - start[i]:hi - start[i]] = encode(genome[str(windows.chrom[i])][lo:hi])
    return codes
