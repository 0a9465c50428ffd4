"""GC content of genome-wide windows, and GC-matched background loci (the reference's algorithm, no bedtools).

GC fraction of a window = (G + C) / (A + C + G + T): N and other non-ACGT letters are left out of both counts
(the reference divides by the window length, which is the same for windows without N). Counts come from
cumulative sums over base codes, one FASTA read per block of a few Mb, so the whole genome is one vectorised
pass.

GC reference (``bpnetz gc-reference``): windows [k·stride, k·stride + inputlen) lying wholly inside their
chromosome (the reference also emits windows running past the end), skipping windows with more than
``max_n_fraction`` N; written as ``<prefix>.bed`` with chrom, start, end and the GC fraction (4 decimals).

GC background (``bpnetz gc-background``), as in the reference:
1. foreground GC: per peak, the window summit ± flank (clipped to the chromosome);
2. candidate negatives: reference windows overlapping no peak — neither its BED interval nor its summit ± flank
   window (the reference only excluded the BED interval) — and lying inside their chromosome;
3. matching: GC fractions are binned in 0.01 bins (the reference rounds to 2 decimals: bin k holds
   [k − 0.5, k + 0.5)/100). For each chromosome and bin, ``ratio`` × (peaks in that bin on that chromosome)
   candidates of the same chromosome and bin are drawn at random without replacement (the reference also
   matches per chromosome); a short bin takes the rest from the nearest bins of the same chromosome (either side
   first at random, as the reference's ±0.01 random walk); only when a chromosome runs out do other
   chromosomes' candidates of the nearest bins fill in. Seeded (default 1234, the reference's seed).
Outputs in ``out_dir``: the foreground and candidate GC BEDs, ``<prefix>.bed`` (10-column narrowPeak-like,
summit = window centre, sorted by position, usable as ``background_loci`` directly) and
``<prefix>_compared_with_foreground.png``; the summary reports the total-variation distance between the binned GC
histograms of peaks and negatives and the two-sample KS statistic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.atomic import atomic_output
from bpnetz.genome.fasta import fasta_lengths, open_fasta
from bpnetz.genome.intervals import (
    BedRecords,
    merge_intervals,
    open_text,
    overlaps_any,
    read_chrom_sizes,
    read_narrowpeak,
    sort_by_position,
)
from bpnetz.genome.sequence import N_CODE, encode

#: GC histogram bins: bin k = round(100 × GC), k = 0 … 100.
N_BINS = 101
#: bases read from the FASTA per block when counting window GC.
BLOCK_BASES = 4_000_000
#: rows per write when streaming a GC BED.
WRITE_ROWS = 500_000
DEFAULT_SEED = 1234
DEFAULT_MAX_N_FRACTION = 0.1
NEGATIVE_COLUMNS = (".", "0", ".", "0", "0", "0")  # name, score, strand, signal, p, q of written negatives


@dataclass
class GCWindows:
    """Windows with their GC fraction; ``chrom`` indexes ``names``."""

    names: list[str]
    chrom: np.ndarray  # int32
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    gc: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index: np.ndarray) -> GCWindows:
        return GCWindows(self.names, self.chrom[index], self.start[index], self.end[index], self.gc[index])

    @property
    def bins(self) -> np.ndarray:
        """GC bin of each window (0 … 100)."""
        return gc_bins(self.gc)

    @classmethod
    def concat(cls, names: list[str], parts: Sequence[GCWindows]) -> GCWindows:
        if not parts:
            return cls(names, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        return cls(names, np.concatenate([p.chrom for p in parts]), np.concatenate([p.start for p in parts]),
                   np.concatenate([p.end for p in parts]), np.concatenate([p.gc for p in parts]))


def gc_bins(gc: np.ndarray) -> np.ndarray:
    """0.01-wide GC bins (round half to even of 100 × GC, as the reference's rounding to 2 decimals)."""
    return np.clip(np.rint(np.asarray(gc) * 100), 0, N_BINS - 1).astype(np.int64)


# ------------------------------------------------------------------------------------------ window counts


def window_base_counts(fasta: Any, chrom: str, starts: np.ndarray, ends: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(G+C count, A+C+G+T count) of each window [start, end) of one chromosome (windows inside it)."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    gc = np.zeros(len(starts), np.int64)
    called = np.zeros(len(starts), np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    i = 0
    while i < len(s):
        j = max(i + 1, int(np.searchsorted(s, s[i] + BLOCK_BASES, side="left")))
        lo, hi = int(s[i]), int(e[i:j].max())
        codes = encode(fasta[chrom][lo:hi])
        if len(codes) != hi - lo:
            raise InputError(f"{chrom}:{lo}-{hi} reads {len(codes)} bases, expected {hi - lo}.",
                             path=fasta.filename, fix="Windows must lie inside the chromosome; if they do, the "
                             "FASTA index (.fai) may be stale: delete it and rerun.")
        cum_gc = np.concatenate([[0], np.cumsum((codes == 1) | (codes == 2), dtype=np.int64)])
        cum_called = np.concatenate([[0], np.cumsum(codes < N_CODE, dtype=np.int64)])
        rows = order[i:j]
        gc[rows] = cum_gc[e[i:j] - lo] - cum_gc[s[i:j] - lo]
        called[rows] = cum_called[e[i:j] - lo] - cum_called[s[i:j] - lo]
        i = j
    return gc, called


def _fasta_and_sizes(ref_fasta: str | Path, chrom_sizes: str | Path | None) -> tuple[Any, dict[str, int]]:
    """The open FASTA and the chromosome sizes to use (the chrom.sizes file's, checked against the FASTA)."""
    fasta = open_fasta(ref_fasta)
    lengths = fasta_lengths(fasta)
    if chrom_sizes is None:
        return fasta, lengths
    sizes = read_chrom_sizes(chrom_sizes)
    for chrom, size in sizes.items():
        if chrom not in lengths:
            raise InputError(f"chromosome {chrom} of the chrom sizes is not in the FASTA {ref_fasta}.",
                             path=chrom_sizes, fix="Use the chrom sizes of this genome (names must match).")
        if lengths[chrom] != size:
            raise InputError(f"chromosome {chrom} has length {size} here but {lengths[chrom]} in {ref_fasta}.",
                             path=chrom_sizes, fix="Use the chrom sizes of this genome.")
    return fasta, sizes


def genome_gc_windows(fasta: Any, sizes: dict[str, int], inputlen: int = 2114, stride: int = 50,
                      max_n_fraction: float = DEFAULT_MAX_N_FRACTION) -> tuple[GCWindows, int]:
    """GC of windows [k·stride, k·stride + inputlen) inside each chromosome; returns (windows, N-rich skipped)."""
    from tqdm import tqdm

    if inputlen <= 0 or stride <= 0:
        raise InputError(f"--inputlen and --stride must be positive (got {inputlen} and {stride}).")
    names = list(sizes)
    parts, skipped = [], 0
    for index, chrom in enumerate(tqdm(names, desc="GC windows", unit="chrom", leave=False)):
        starts = np.arange(0, sizes[chrom] - inputlen + 1, stride, dtype=np.int64)
        if len(starts) == 0:
            continue
        gc, called = window_base_counts(fasta, chrom, starts, starts + inputlen)
        keep = called >= (1 - max_n_fraction) * inputlen
        keep &= called > 0
        skipped += int((~keep).sum())
        parts.append(GCWindows(names, np.full(int(keep.sum()), index, np.int32), starts[keep],
                               starts[keep] + inputlen, gc[keep] / called[keep]))
    return GCWindows.concat(names, parts), skipped


# ---------------------------------------------------------------------------------------------- GC BED I/O


def write_gc_bed(path: str | Path, windows: GCWindows) -> Path:
    """chrom, start, end, GC fraction (4 decimals), streamed in blocks, atomically."""
    with atomic_output(path) as tmp, open(tmp, "w") as out:
        for lo in range(0, len(windows), WRITE_ROWS):
            rows = slice(lo, lo + WRITE_ROWS)
            names = [windows.names[i] for i in windows.chrom[rows].tolist()]
            out.write("".join(f"{c}\t{s}\t{e}\t{g:.4f}\n" for c, s, e, g in zip(
                names, windows.start[rows].tolist(), windows.end[rows].tolist(), windows.gc[rows].tolist())))
    return Path(path)


def read_gc_bed(path: str | Path, names: list[str]) -> GCWindows:
    """A GC BED (chrom, start, end, GC fraction; e.g. from gc-reference); chromosomes outside ``names`` fail."""
    import pandas as pd

    try:
        with open_text(path) as handle:
            table = pd.read_csv(handle, sep="\t", header=None, usecols=[0, 1, 2, 3], comment="#",
                                dtype={0: str, 1: np.int64, 2: np.int64, 3: np.float64})
    except (ValueError, pd.errors.ParserError) as err:
        raise InputError(f"cannot read as a GC BED ({err}).", path=path,
                         fix="Expected tab-separated chrom, start, end, GC fraction (made by gc-reference).") from None
    index = {name: i for i, name in enumerate(names)}
    chrom_codes, uniques = pd.factorize(table[0])
    unknown = [u for u in uniques if u not in index]
    if unknown:
        raise InputError(f"chromosomes {', '.join(map(str, unknown[:5]))} are not in the reference FASTA.",
                         path=path, fix="Use a GC reference computed for this genome.")
    gc = table[3].to_numpy()
    if np.isnan(gc).any() or (gc < 0).any() or (gc > 1).any():
        row = int(np.flatnonzero(np.isnan(gc) | (gc < 0) | (gc > 1))[0])
        raise InputError(f"record {row + 1} has GC fraction {gc[row]}; expected a number in [0, 1].", path=path,
                         fix="Recompute it with 'bpnetz gc-reference'.")
    mapping = np.array([index[u] for u in uniques], dtype=np.int32)
    return GCWindows(list(names), mapping[chrom_codes], table[1].to_numpy(np.int64), table[2].to_numpy(np.int64),
                     gc.astype(np.float64))


def gc_reference(ref_fasta: str | Path, output_prefix: str | Path, *, chrom_sizes: str | Path | None = None,
                 inputlen: int = 2114, stride: int = 50,
                 max_n_fraction: float = DEFAULT_MAX_N_FRACTION) -> tuple[Path, str]:
    """Write ``<output_prefix>.bed`` of genome-wide GC windows; returns (path, summary line)."""
    began = time.perf_counter()
    fasta, sizes = _fasta_and_sizes(ref_fasta, chrom_sizes)
    windows, skipped = genome_gc_windows(fasta, sizes, inputlen, stride, max_n_fraction)
    path = write_gc_bed(str(output_prefix) + ".bed", windows)
    return path, (f"gc-reference: {len(windows):,} windows of {inputlen} bp every {stride} bp on {len(sizes)} "
                  f"chromosomes ({skipped:,} skipped for > {max_n_fraction:g} N) -> {path} in "
                  f"{time.perf_counter() - began:.1f} s")


# ------------------------------------------------------------------------------------------------ matching


def peak_gc(fasta: Any, peaks: BedRecords, names: list[str], lengths: dict[str, int], flank: int) -> GCWindows:
    """GC of each peak's summit ± flank window, clipped to its chromosome (NaN when it has no A/C/G/T)."""
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(peaks.chrom) - set(index))
    if unknown:
        first = int(np.flatnonzero(peaks.chrom == unknown[0])[0])
        raise InputError(f"peak on chromosome {unknown[0]}, which the reference FASTA does not have.",
                         path=peaks.where(first), fix="Use the genome the peaks were called on.")
    chrom = np.fromiter((index[c] for c in peaks.chrom), dtype=np.int32, count=len(peaks))
    length = np.asarray([lengths[names[c]] for c in chrom], dtype=np.int64)
    start = np.clip(peaks.summit - flank, 0, length)
    end = np.clip(peaks.summit + flank, 0, length)
    gc = np.full(len(peaks), np.nan)
    for c in np.unique(chrom):
        rows = np.flatnonzero(chrom == c)
        counts, called = window_base_counts(fasta, names[c], start[rows], end[rows])
        with np.errstate(invalid="ignore", divide="ignore"):
            gc[rows] = np.where(called > 0, counts / np.maximum(called, 1), np.nan)
    return GCWindows(names, chrom, start, end, gc)


def candidate_negatives(reference: GCWindows, peaks: BedRecords, lengths: dict[str, int],
                        flank: int) -> tuple[GCWindows, int]:
    """Reference windows inside their chromosome that overlap no peak interval and no summit ± flank window.

    Returns (candidates, windows dropped for running past a chromosome end).
    """
    length = np.asarray([lengths[n] for n in reference.names], dtype=np.int64)[reference.chrom]
    inside = (reference.start >= 0) & (reference.end <= length)
    keep = inside.copy()
    for c, name in enumerate(reference.names):
        on_peaks = peaks.chrom == name
        if not on_peaks.any():
            continue
        excluded = merge_intervals(np.concatenate([peaks.start[on_peaks], peaks.summit[on_peaks] - flank]),
                                   np.concatenate([peaks.end[on_peaks], peaks.summit[on_peaks] + flank]))
        rows = np.flatnonzero(reference.chrom == c)
        keep[rows] &= ~overlaps_any(reference.start[rows], reference.end[rows], excluded)
    return reference.take(np.flatnonzero(keep)), int((~inside).sum())


def _bin_pools(indices: np.ndarray, bins: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Candidate indices per GC bin, each pool in random order."""
    shuffled = rng.permutation(indices)
    b = bins[shuffled]
    order = np.argsort(b, kind="stable")
    shuffled, b = shuffled[order], b[order]
    bounds = np.searchsorted(b, np.arange(N_BINS + 1))
    return [shuffled[bounds[k]:bounds[k + 1]] for k in range(N_BINS)]


@dataclass
class _Draw:
    taken: list[np.ndarray] = field(default_factory=list)
    short: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, np.int64))
    from_neighbour_bins: int = 0
    leftovers: list[np.ndarray] = field(default_factory=list)


def _draw(need: np.ndarray, pools: list[np.ndarray], rng: np.random.Generator) -> _Draw:
    """Take ``need[b]`` candidates from pool b; shortfalls come from the nearest bins with candidates left."""
    used = np.zeros(N_BINS, np.int64)
    result = _Draw(short=need.astype(np.int64).copy())
    for b in np.flatnonzero(need):
        k = min(int(need[b]), len(pools[b]))
        result.taken.append(pools[b][:k])
        used[b] = k
        result.short[b] -= k
    for b in np.flatnonzero(result.short):
        for distance in range(1, N_BINS):
            sides = [b - distance, b + distance]
            if rng.random() < 0.5:
                sides.reverse()
            for nb in sides:
                if 0 <= nb < N_BINS and result.short[b] > 0:
                    k = min(int(result.short[b]), len(pools[nb]) - int(used[nb]))
                    if k > 0:
                        result.taken.append(pools[nb][used[nb]:used[nb] + k])
                        used[nb] += k
                        result.short[b] -= k
                        result.from_neighbour_bins += k
            if result.short[b] == 0:
                break
    result.leftovers = [pools[b][used[b]:] for b in range(N_BINS)]
    return result


@dataclass
class MatchStats:
    """How the negatives were found: exact bin and chromosome, neighbouring bins, other chromosomes, missing."""

    wanted: int = 0
    from_neighbour_bins: int = 0
    from_other_chroms: int = 0
    missing: int = 0


def match_gc(foreground: GCWindows, candidates: GCWindows, ratio: int,
             rng: np.random.Generator) -> tuple[np.ndarray, MatchStats]:
    """Indices of the candidates drawn to match the foreground's GC histogram per chromosome (see module doc)."""
    fg_bins, cand_bins = foreground.bins, candidates.bins
    stats = MatchStats()
    taken: list[np.ndarray] = []
    short = np.zeros(N_BINS, np.int64)
    leftovers: list[list[np.ndarray]] = [[] for _ in range(N_BINS)]
    for c in range(len(candidates.names)):
        pools = _bin_pools(np.flatnonzero(candidates.chrom == c), cand_bins, rng)
        need = np.bincount(fg_bins[foreground.chrom == c], minlength=N_BINS) * ratio
        stats.wanted += int(need.sum())
        draw = _draw(need, pools, rng)
        taken += draw.taken
        short += draw.short
        stats.from_neighbour_bins += draw.from_neighbour_bins
        for b in range(N_BINS):
            leftovers[b].append(draw.leftovers[b])
    if short.any():
        pools = [rng.permutation(np.concatenate(parts)) for parts in leftovers]
        draw = _draw(short, pools, rng)
        taken += draw.taken
        stats.from_other_chroms = int(short.sum() - draw.short.sum())
        stats.missing = int(draw.short.sum())
    chosen = np.concatenate(taken) if taken else np.zeros(0, np.int64)
    return chosen.astype(np.int64), stats


def gc_distance(foreground_gc: np.ndarray, negative_gc: np.ndarray) -> tuple[float, float]:
    """(total-variation distance between the 0.01-binned GC histograms, two-sample KS statistic)."""
    a, b = np.sort(np.asarray(foreground_gc, float)), np.sort(np.asarray(negative_gc, float))
    if len(a) == 0 or len(b) == 0:
        return 1.0, 1.0
    p = np.bincount(gc_bins(a), minlength=N_BINS) / len(a)
    q = np.bincount(gc_bins(b), minlength=N_BINS) / len(b)
    values = np.concatenate([a, b])
    ks = np.abs(np.searchsorted(a, values, side="right") / len(a) - np.searchsorted(b, values, side="right") / len(b))
    return 0.5 * float(np.abs(p - q).sum()), float(ks.max())


def plot_gc_comparison(path: str | Path, foreground_gc: np.ndarray, negative_gc: np.ndarray,
                       distance: tuple[float, float]) -> Path:
    """PNG of the GC densities of peaks and negatives, titled with the distances."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    edges = (np.arange(N_BINS + 1) - 0.5) / 100
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist([negative_gc, foreground_gc], edges, density=True, histtype="step", linewidth=1.5,
            label=[f"negatives (n={len(negative_gc):,})", f"peaks (n={len(foreground_gc):,})"])
    ax.set_xlabel("GC fraction")
    ax.set_ylabel("density")
    ax.set_title(f"GC of peaks vs negatives: TV {distance[0]:.3f}, KS {distance[1]:.3f}")
    ax.legend(loc="upper right")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


@dataclass
class BackgroundResult:
    """Files written by :func:`gc_background` and how well the negatives match."""

    negatives: Path
    plot: Path
    foreground_bed: Path
    candidates_bed: Path
    n_peaks: int
    n_candidates: int
    n_negatives: int
    stats: MatchStats
    tv_distance: float
    ks_statistic: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = self.stats
        return (f"gc-background: {self.n_negatives:,} negatives for {self.n_peaks:,} peaks from "
                f"{self.n_candidates:,} candidates ({s.from_neighbour_bins:,} from neighbouring GC bins, "
                f"{s.from_other_chroms:,} from other chromosomes, {s.missing:,} short); GC histogram distance: "
                f"total variation {self.tv_distance:.4f}, KS {self.ks_statistic:.4f} -> {self.negatives} in "
                f"{self.seconds:.1f} s")


def write_negatives(path: str | Path, windows: GCWindows) -> Path:
    """10-column narrowPeak-like BED of negatives: summit offset = half the window (its centre)."""
    rest = "\t".join(NEGATIVE_COLUMNS)
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{windows.names[c]}\t{s}\t{e}\t{rest}\t{(e - s) // 2}\n" for c, s, e in zip(
            windows.chrom.tolist(), windows.start.tolist(), windows.end.tolist())))
    return Path(path)


def gc_background(peaks_bed: str | Path | Iterable[str | Path], ref_fasta: str | Path, out_dir: str | Path, *,
                  ref_gc_bed: str | Path | None = None, flank_size: int = 1057, neg_to_pos_ratio: int = 1,
                  output_prefix: str = "negatives", foreground_gc_bed: str = "foreground.gc.bed",
                  candidate_negatives_bed: str = "candidate.negatives.bed", seed: int = DEFAULT_SEED,
                  stride: int = 50, max_n_fraction: float = DEFAULT_MAX_N_FRACTION) -> BackgroundResult:
    """GC-matched negatives for the peaks (see the module docstring); files go to ``out_dir``."""
    began = time.perf_counter()
    if neg_to_pos_ratio < 1 or flank_size < 1:
        raise InputError(f"--neg_to_pos_ratio_train and --flank_size must be >= 1 (got {neg_to_pos_ratio} and "
                         f"{flank_size}).")
    out_dir = Path(out_dir)
    peak_files = [peaks_bed] if isinstance(peaks_bed, (str, Path)) else list(peaks_bed)
    peaks = read_narrowpeak(peak_files)
    if len(peaks) == 0:
        raise InputError("no peaks.", path=", ".join(map(str, peak_files)), fix="Pass a non-empty narrowPeak.")
    fasta = open_fasta(ref_fasta)
    lengths = fasta_lengths(fasta)
    names = list(lengths)
    notes = []
    foreground = peak_gc(fasta, peaks, names, lengths, flank_size)
    no_bases = np.isnan(foreground.gc)
    if no_bases.any():
        notes.append(f"{int(no_bases.sum())} peaks have only N around the summit and are not matched")
    if ref_gc_bed is None:
        reference, _ = genome_gc_windows(fasta, lengths, 2 * flank_size, stride, max_n_fraction)
        notes.append(f"GC reference computed on the fly: {len(reference):,} windows of {2 * flank_size} bp "
                     f"every {stride} bp")
    else:
        reference = read_gc_bed(ref_gc_bed, names)
    candidates, outside = candidate_negatives(reference, peaks, lengths, flank_size)
    if outside:
        notes.append(f"{outside:,} reference windows run past a chromosome end and are not candidates")
    matched = foreground.take(np.flatnonzero(~no_bases))
    chosen, stats = match_gc(matched, candidates, neg_to_pos_ratio, np.random.default_rng(seed))
    negatives = candidates.take(chosen)
    negatives = negatives.take(sort_by_position(np.asarray(names, dtype=object)[negatives.chrom],
                                                negatives.start, names))
    fg_path = write_gc_bed(out_dir / foreground_gc_bed, foreground.take(np.flatnonzero(~no_bases)))
    cand_path = write_gc_bed(out_dir / candidate_negatives_bed, candidates)
    neg_path = write_negatives(out_dir / f"{output_prefix}.bed", negatives)
    distance = gc_distance(matched.gc, negatives.gc)
    plot = plot_gc_comparison(out_dir / f"{output_prefix}_compared_with_foreground.png", matched.gc,
                              negatives.gc, distance)
    if stats.missing:
        notes.append(f"only {len(negatives):,} of {stats.wanted:,} negatives found: too few candidates; lower "
                     "--neg_to_pos_ratio_train or use a smaller --stride for the GC reference")
    return BackgroundResult(negatives=neg_path, plot=plot, foreground_bed=fg_path, candidates_bed=cand_path,
                            n_peaks=len(peaks), n_candidates=len(candidates), n_negatives=len(negatives),
                            stats=stats, tv_distance=distance[0], ks_statistic=distance[1],
                            seconds=time.perf_counter() - began, notes=notes)
