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
from tqdm import tqdm

from bpnetz.errors import InputError
from bpnetz.store.schema import N_CODE, encode

#: longest genomic span read from the FASTA at once when gathering nearby windows.
MAX_READ_SPAN = 1 << 23

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
    """(chrom, start, end) of each interval of a BED file (extra columns ignored; track/browser/# lines skipped)."""
    regions: list[Region] = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise InputError(f"cannot read the regions file ({err.strerror}).", path=path,
                         fix="Pass an existing BED file with --regions.") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            chrom, start, end = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise InputError(f"line {number} is not a BED interval (chrom, start, end): {line[:80]!r}.",
                             path=path, fix="Use tab-separated chrom, 0-based start and end columns.") from None
        if start < 0 or end <= start:
            raise InputError(f"line {number} has an empty or negative interval {start}-{end}.", path=path,
                             fix="Each region needs 0 <= start < end.")
        regions.append((chrom, start, end))
    if not regions:
        raise InputError("the regions file has no intervals.", path=path, fix="Add at least one BED line.")
    return regions


def chromosome_regions(chroms: Sequence[str], chrom_sizes: Mapping[str, int]) -> list[Region]:
    """Whole chromosomes as regions (``--tile CHROM``)."""
    missing = [c for c in chroms if c not in chrom_sizes]
    if missing:
        raise InputError(f"chromosomes {', '.join(missing)} are not in the chromosome sizes.",
                         fix="Name chromosomes exactly as in the chromosome sizes file.")
    return [(c, 0, int(chrom_sizes[c])) for c in chroms]


def _merged(regions: Sequence[Region], chrom_sizes: Mapping[str, int]) -> list[Region]:
    """Regions clipped to their chromosome, sorted in chromosome-size order and merged where they overlap."""
    rank = {c: i for i, c in enumerate(chrom_sizes)}
    unknown = sorted({c for c, _, _ in regions} - set(rank))
    if unknown:
        raise InputError(f"regions on chromosomes {', '.join(unknown[:5])} that are not in the chromosome sizes.",
                         fix="Use the chromosome sizes of the genome the regions come from.")
    merged: list[list] = []
    for chrom, start, end in sorted(regions, key=lambda r: (rank[r[0]], r[1])):
        start, end = max(0, start), min(int(chrom_sizes[chrom]), end)
        if end <= start:
            continue
        if merged and merged[-1][0] == chrom and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([chrom, start, end])
    return [(c, s, e) for c, s, e in merged]


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
    """Base codes (N, input_len) uint8 of every window's input sequence; N (4) past the chromosome ends.

    Nearby windows are gathered from one FASTA read (spans of up to :data:`MAX_READ_SPAN` bases).
    """
    from pyfaidx import Fasta, FastaIndexingError

    try:
        genome = Fasta(str(fasta), as_raw=True, rebuild=False)
    except (OSError, FastaIndexingError) as err:
        raise InputError(f"cannot open the reference genome ({err}).", path=fasta,
                         fix="Pass a readable (optionally bgzipped) FASTA file with --reference-genome.") from None
    length = windows.input_len
    codes = np.full((len(windows), length), N_CODE, dtype=np.uint8)
    order = np.lexsort((windows.in_start, windows.chrom.astype(str)))
    groups = []
    lo = 0
    while lo < len(order):
        first = order[lo]
        hi = lo + 1
        while (hi < len(order) and windows.chrom[order[hi]] == windows.chrom[first]
               and windows.in_start[order[hi]] + length - windows.in_start[first] <= MAX_READ_SPAN):
            hi += 1
        groups.append(order[lo:hi])
        lo = hi
    with genome:
        for group in tqdm(groups, desc="reading sequences", unit="block", leave=False,
                          disable=len(groups) < 10):
            chrom = str(windows.chrom[group[0]])
            if chrom not in genome:
                raise InputError(f"chromosome {chrom} is not in the reference genome.", path=fasta,
                                 fix="Use the FASTA of the genome the regions and chromosome sizes describe.")
            span_lo = int(windows.in_start[group].min())
            span_hi = int(windows.in_start[group].max()) + length
            block = np.full(span_hi - span_lo, N_CODE, dtype=np.uint8)
            read_lo, read_hi = max(0, span_lo), min(len(genome[chrom]), span_hi)
            if read_hi > read_lo:
                block[read_lo - span_lo:read_hi - span_lo] = encode(genome[chrom][read_lo:read_hi])
            offsets = windows.in_start[group] - span_lo
            codes[group] = block[offsets[:, None] + np.arange(length)]
    return codes
