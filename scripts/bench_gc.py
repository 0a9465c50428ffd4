"""Time gc-reference and gc-background on a synthetic genome and report how well the negatives match.

Usage: python scripts/bench_gc.py [--mb 5] [--peaks 2000] [--ratio 2] [--out DIR]

The genome has GC-content domains (10-200 kb segments with GC drawn from 0.3-0.65) and N runs; peaks are
placed preferentially in GC-rich domains so that the peaks' GC distribution differs from the genome's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bpnetz.preprocess.gc import gc_background, gc_distance, gc_reference, read_gc_bed


def write_genome(directory: Path, megabases: float, rng: np.random.Generator) -> tuple[Path, dict, dict]:
    """FASTA with GC domains and N runs; returns (path, sizes, per-chromosome domain GC per base)."""
    n_chroms = 4
    sizes = {f"chr{i + 1}": int(megabases * 1e6 / n_chroms * (1.3 - 0.2 * i)) for i in range(n_chroms)}
    fasta = directory / "genome.fa"
    gc_tracks = {}
    with open(fasta, "w") as out:
        for chrom, size in sizes.items():
            bounds = np.cumsum(rng.integers(10_000, 200_000, size // 10_000 + 2))
            bounds = np.concatenate([[0], bounds[bounds < size], [size]])
            gc_level = np.repeat(rng.uniform(0.3, 0.65, len(bounds) - 1), np.diff(bounds))
            u = rng.random(size)
            strong = u < gc_level
            base = np.where(strong, np.where(rng.random(size) < 0.5, b"G", b"C"),
                            np.where(rng.random(size) < 0.5, b"A", b"T")).astype("S1")
            for start in rng.integers(0, size - 5000, 3):
                base[start:start + rng.integers(500, 5000)] = b"N"
            seq = base.tobytes().decode()
            out.write(f">{chrom}\n")
            out.write("\n".join(seq[i:i + 60] for i in range(0, size, 60)) + "\n")
            gc_tracks[chrom] = gc_level
    return fasta, sizes, gc_tracks


def write_peaks(directory: Path, sizes: dict, gc_tracks: dict, n_peaks: int, rng: np.random.Generator) -> Path:
    """narrowPeak with summits drawn with weight ∝ domain GC^6 (GC-rich peaks)."""
    rows = []
    total = sum(sizes.values())
    for chrom, size in sizes.items():
        k = int(n_peaks * size / total)
        weight = gc_tracks[chrom][2000:size - 2000] ** 6
        summits = np.sort(rng.choice(np.arange(2000, size - 2000), size=k, replace=False, p=weight / weight.sum()))
        rows += [f"{chrom}\t{s - 100}\t{s + 100}\tpeak\t0\t.\t5\t-1\t-1\t100\n" for s in summits]
    path = directory / "peaks.narrowPeak"
    path.write_text("".join(rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0, help="genome size in Mb")
    parser.add_argument("--peaks", type=int, default=2000)
    parser.add_argument("--ratio", type=int, default=2)
    parser.add_argument("--stride", type=int, default=50)
    parser.add_argument("--out", help="keep files here (default: a temporary directory)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.out or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        fasta, sizes, gc_tracks = write_genome(directory, args.mb, rng)
        peaks = write_peaks(directory, sizes, gc_tracks, args.peaks, rng)
        began = time.perf_counter()
        ref_path, summary = gc_reference(fasta, directory / "gc_ref", inputlen=2114, stride=args.stride)
        t_ref = time.perf_counter() - began
        print(summary)
        began = time.perf_counter()
        result = gc_background(peaks, fasta, directory, ref_gc_bed=ref_path, flank_size=1057,
                               neg_to_pos_ratio=args.ratio, output_prefix="gc_negatives")
        t_bg = time.perf_counter() - began
        print(result.summary())
        reference = read_gc_bed(ref_path, list(sizes))
        fg = np.loadtxt(directory / "foreground.gc.bed", usecols=3)
        tv_genome, ks_genome = gc_distance(fg, reference.gc)
        print(f"genome {args.mb:g} Mb, {args.peaks} peaks, ratio {args.ratio}, stride {args.stride}: "
              f"gc-reference {t_ref:.2f} s, gc-background {t_bg:.2f} s; peaks vs negatives TV "
              f"{result.tv_distance:.4f} KS {result.ks_statistic:.4f}; peaks vs all genome windows TV "
              f"{tv_genome:.4f} KS {ks_genome:.4f}")


if __name__ == "__main__":
    main()
