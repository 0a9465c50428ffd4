"""The synthetic genome of a simulated experiment: base codes, GC segments, N runs, soft-masking, IUPAC letters.

Sequence is held as base-code arrays (A=0 C=1 G=2 T=3 N=4, the store's codes) so that motif planting and GC
computations are index arithmetic; letters (lowercase soft-masking, a handful of IUPAC ambiguity codes) are only
applied when the FASTA is written. GC content varies in segments of a few to tens of kb (35–60 %), as isochores
do in real genomes, and peaks later prefer GC-rich segments, so that background loci need GC matching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpnetz.genome.sequence import N_CODE

LONG_CHROM_NAME = "chrUn_KI270742v1"
FASTA_LINE = 60
GC_RANGE = (0.35, 0.60)
MEAN_SEGMENT = 20_000
IUPAC_LETTERS = np.frombuffer(b"RYSWKMBDHV", dtype=np.uint8)
LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


@dataclass
class Chromosome:
    """One chromosome: codes, soft-mask, GC per segment, N runs and IUPAC positions (set late)."""

    name: str
    codes: np.ndarray  # uint8 base codes
    lower: np.ndarray  # bool, soft-masked positions
    segment_starts: np.ndarray  # int64, start of each GC segment (first is 0)
    segment_gc: np.ndarray  # float64, target GC fraction of each segment
    n_runs: np.ndarray  # int64 (k, 2) [start, end) of N runs
    iupac: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def length(self) -> int:
        return int(self.codes.size)

    def gc_per_base(self) -> np.ndarray:
        """The segment GC fraction at every base (float64)."""
        lengths = np.diff(np.append(self.segment_starts, self.length))
        return np.repeat(self.segment_gc, lengths)

    def letters(self) -> np.ndarray:
        """ASCII bytes of the sequence: soft-masked bases lowercase, IUPAC letters at ``iupac`` positions."""
        out = LETTERS[self.codes].copy()
        out[self.lower & (self.codes < N_CODE)] += 32
        if self.iupac.size:
            out[self.iupac] = IUPAC_LETTERS[np.arange(self.iupac.size) % IUPAC_LETTERS.size]
        return out


def chromosome_names_lengths(n_chroms: int, chrom_length: int, long_chrom_name: bool,
                             names: tuple[str, ...] | None = None) -> list[tuple[str, int]]:
    """chr1 … chrN (or ``names``), shrinking linearly from ``chrom_length`` to 75 % of it; plus a long-named one
    (a third)."""
    shrink = np.linspace(1.0, 0.75, n_chroms) if n_chroms > 1 else np.ones(1)
    names = names or tuple(f"chr{i + 1}" for i in range(n_chroms))
    out = [(name, int(round(chrom_length * s))) for name, s in zip(names, shrink, strict=True)]
    if long_chrom_name:
        out.append((LONG_CHROM_NAME, chrom_length // 3))
    return out


def _gc_segments(length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Segment starts and GC fractions: exponential lengths (≥ 2 kb) with GC uniform in GC_RANGE."""
    n_max = length // 2000 + 2
    lengths = np.maximum(rng.exponential(MEAN_SEGMENT, n_max), 2000).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    starts = starts[starts < length]
    return starts, rng.uniform(*GC_RANGE, starts.size)


def _intervals_mask(length: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask of the union of [start, end) intervals."""
    delta = np.zeros(length + 1, dtype=np.int32)
    np.add.at(delta, np.clip(starts, 0, length), 1)
    np.add.at(delta, np.clip(ends, 0, length), -1)
    return np.cumsum(delta[:-1]) > 0


def _n_runs(length: int, edge_clear: int, rng: np.random.Generator) -> np.ndarray:
    """One or two runs of N (≤ 1 % of the chromosome, ~300–1500 bp), kept ``edge_clear`` bp from both ends."""
    count = 1 + int(length >= 500_000)
    longest = max(50, min(1500, length // 100))
    sizes = rng.integers(min(300, longest // 2), longest + 1, count)
    lo, hi = edge_clear, length - edge_clear - int(sizes.max())
    if hi <= lo:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.sort(rng.integers(lo, hi, count))
    return np.stack([starts, starts + sizes], axis=1).astype(np.int64)


def make_chromosome(name: str, length: int, edge_clear: int, rng: np.random.Generator) -> Chromosome:
    """Random sequence with GC segments, soft-masked stretches (~13 %) and N runs away from the ends."""
    segment_starts, segment_gc = _gc_segments(length, rng)
    chrom = Chromosome(name, np.zeros(0, np.uint8), np.zeros(0, bool), segment_starts, segment_gc,
                       np.zeros((0, 2), np.int64))
    gc = np.repeat(segment_gc, np.diff(np.append(segment_starts, length)))
    is_gc = rng.random(length) < gc
    second = rng.random(length) < 0.5  # C vs G, or A vs T
    chrom.codes = np.where(is_gc, 1 + second, 3 * second).astype(np.uint8)
    n_masked = max(1, length // 8000)
    mask_starts = rng.integers(0, length, n_masked)
    chrom.lower = _intervals_mask(length, mask_starts, mask_starts + rng.integers(100, 2000, n_masked))
    chrom.n_runs = _n_runs(length, edge_clear, rng)
    for start, end in chrom.n_runs:
        chrom.codes[start:end] = N_CODE
    return chrom


def gc_fraction(chrom: Chromosome, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """GC fraction of the non-N bases of each [start, end) window (clipped to the chromosome)."""
    codes = chrom.codes
    gc_cum = np.concatenate([[0], np.cumsum((codes == 1) | (codes == 2))])
    acgt_cum = np.concatenate([[0], np.cumsum(codes < N_CODE)])
    starts = np.clip(starts, 0, chrom.length)
    ends = np.clip(ends, 0, chrom.length)
    acgt = acgt_cum[ends] - acgt_cum[starts]
    return (gc_cum[ends] - gc_cum[starts]) / np.maximum(acgt, 1)


def n_count(chrom: Chromosome, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Number of N bases in each [start, end) window (clipped to the chromosome)."""
    n_cum = np.concatenate([[0], np.cumsum(chrom.codes == N_CODE)])
    starts = np.clip(starts, 0, chrom.length)
    ends = np.clip(ends, 0, chrom.length)
    return n_cum[ends] - n_cum[starts]


def place_iupac(chrom: Chromosome, avoid: np.ndarray, clearance: int, count: int,
                rng: np.random.Generator) -> None:
    """Put ``count`` IUPAC letters at positions farther than ``clearance`` from every ``avoid`` point."""
    avoid = np.sort(np.concatenate([avoid, chrom.n_runs.ravel()]))
    chosen: list[int] = []
    for pos in rng.integers(0, chrom.length, 50 * count):
        i = np.searchsorted(avoid, pos)
        near = [avoid[j] for j in (i - 1, i) if 0 <= j < avoid.size]
        if all(abs(int(pos) - int(a)) > clearance for a in near) and chrom.codes[pos] != N_CODE:
            chosen.append(int(pos))
        if len(chosen) == count:
            break
    chrom.iupac = np.sort(np.unique(np.asarray(chosen, dtype=np.int64)))


def write_fasta(path: Path, chroms: list[Chromosome]) -> None:
    """Write the FASTA (60 bases per line) and its samtools-style ``.fai`` index."""
    fai = []
    offset = 0
    with open(path, "wb") as fasta:
        for chrom in chroms:
            header = f">{chrom.name}\n".encode()
            fasta.write(header)
            offset += len(header)
            letters = chrom.letters()
            n_full = chrom.length // FASTA_LINE
            body = np.empty((n_full, FASTA_LINE + 1), dtype=np.uint8)
            body[:, :FASTA_LINE] = letters[: n_full * FASTA_LINE].reshape(n_full, FASTA_LINE)
            body[:, FASTA_LINE] = ord("\n")
            tail = letters[n_full * FASTA_LINE:]
            data = body.tobytes() + (tail.tobytes() + b"\n" if tail.size else b"")
            fasta.write(data)
            fai.append(f"{chrom.name}\t{chrom.length}\t{offset}\t{FASTA_LINE}\t{FASTA_LINE + 1}\n")
            offset += len(data)
    Path(str(path) + ".fai").write_text("".join(fai))


def write_chrom_files(out: Path, chroms: list[Chromosome]) -> None:
    """``chrom.sizes`` (name<TAB>length) and ``chroms.txt`` (one name per line)."""
    (out / "chrom.sizes").write_text("".join(f"{c.name}\t{c.length}\n" for c in chroms))
    (out / "chroms.txt").write_text("".join(f"{c.name}\n" for c in chroms))
