"""Benchmark `bpnetz build`: loci/s with 1 and 2 workers, and store bytes per locus against the reference.

Uses a `bpnetz simulate` experiment when that command is available (``--simulate``, the default when it is),
otherwise writes its own: a multi-megabase genome, sparse stranded count bigWigs (ChIP-nexus-like), a control
pair, narrowPeak peaks and background loci. Prints, asserts nothing.

The reference materialises, per locus and batch, a float64 one-hot sequence (input_len × 4 × 8 bytes) and float64
profile and bias arrays (output_len × tracks × 8 bytes each); a store keeps uint8 codes and uint8/uint16/int32/
float32 rows (the narrowest integer dtype for counts) with jitter flanks, compressed.

    python scripts/bench_build.py [--peaks 10000] [--workers 1 2] [--keep DIR] [--experiment DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_bigwig(path: Path, sizes: dict[str, int], rng: np.random.Generator, density: float, lam: float) -> None:
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, size in sizes.items():
        pos = np.sort(rng.choice(size, int(size * density), replace=False)).astype(np.int64)
        values = (1 + rng.poisson(lam, len(pos))).astype(float)
        bw.addEntries(chrom, pos.tolist(), values=values.tolist(), span=1)
    bw.close()


def write_experiment(root: Path, n_peaks: int, seed: int = 0) -> Path:
    """A synthetic experiment without `bpnetz simulate`; returns the folder (input_data.json paths relative)."""
    rng = np.random.default_rng(seed)
    sizes = {f"chr{i}": 6_000_000 - 500_000 * i for i in range(1, 6)}
    with open(root / "genome.fa", "w") as handle:
        for chrom, size in sizes.items():
            seq = np.array(list("ACGT"), dtype="S1")[rng.integers(0, 4, size)].tobytes().decode()
            handle.write(f">{chrom}\n")
            handle.writelines(seq[i:i + 60] + "\n" for i in range(0, size, 60))
    (root / "chrom.sizes").write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
    for name, density, lam in (("plus", 0.05, 1.0), ("minus", 0.05, 1.0), ("control_plus", 0.02, 0.5),
                               ("control_minus", 0.02, 0.5)):
        _write_bigwig(root / f"{name}.bw", sizes, rng, density, lam)
    chroms = list(sizes)
    weights = np.array([sizes[c] for c in chroms], dtype=float)
    for name, n, cols in (("peaks.narrowPeak", n_peaks, 10), ("background.bed", n_peaks // 2, 3)):
        lines = []
        for chrom in rng.choice(chroms, n, p=weights / weights.sum()):
            start = int(rng.integers(2000, sizes[chrom] - 2400))
            row = [chrom, str(start), str(start + 400)]
            lines.append("\t".join(row + (["p", "0", ".", "0", "0", "0", "200"] if cols == 10 else [])))
        (root / name).write_text("\n".join(lines) + "\n")
    task = {"signal": {"source": ["plus.bw", "minus.bw"]}, "loci": {"source": ["peaks.narrowPeak"]},
            "background_loci": {"source": ["background.bed"], "ratio": 0.5},
            "bias": {"source": ["control_plus.bw", "control_minus.bw"], "smoothing": [None, None]}}
    (root / "input_data.json").write_text(json.dumps({"0": task}))
    return root


def simulate_experiment(root: Path, n_peaks: int) -> Path:
    """`bpnetz simulate` at its default peak density (2000 peaks per ~5 Mb), scaled to ``n_peaks``."""
    out = root / "sim"
    length = max(1_000_000, n_peaks * 500)
    subprocess.run([sys.executable, "-m", "bpnetz", "simulate", str(out), "--n-peaks", str(n_peaks),
                    "--chrom-length", str(length), "--force", "--quiet"], check=True)
    return out


def reference_bytes_per_locus(input_len: int, output_len: int, n_tracks: int, n_bias: int) -> int:
    return input_len * 4 * 8 + output_len * n_tracks * 8 + output_len * n_bias * 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peaks", type=int, default=10000, help="peaks of the experiment (10000: 4 blocks)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--simulate", choices=["auto", "yes", "no"], default="auto",
                        help="use `bpnetz simulate` (auto: when available)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the experiment and stores here")
    parser.add_argument("--experiment", type=Path, default=None,
                        help="use this existing experiment folder (with input_data.json) instead of writing one")
    args = parser.parse_args()

    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.store import schema

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_build_"))
    root.mkdir(parents=True, exist_ok=True)
    use_sim = args.simulate == "yes" or (args.simulate == "auto"
                                         and importlib.util.find_spec("bpnetz.cli.simulate") is not None)
    began = time.perf_counter()
    if args.experiment is not None:
        exp = args.experiment.resolve()
        print(f"experiment: {exp}")
    else:
        exp = simulate_experiment(root, args.peaks) if use_sim else write_experiment(root, args.peaks)
        print(f"experiment: {'bpnetz simulate' if use_sim else 'self-written'} in {exp} "
              f"({time.perf_counter() - began:.1f} s to write)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall-clock rates shrink when it "
          "exceeds the cores; loci per CPU-second do not)")
    os.chdir(exp)  # input_data.json paths are relative to the experiment folder
    results = []
    for workers in args.workers:
        output = root / f"store_w{workers}.zarr"
        shutil.rmtree(output, ignore_errors=True)
        summary = build_store("input_data.json", "genome.fa", "chrom.sizes", output,
                              BuildOptions(workers=workers, progress=False))
        results.append((workers, summary))
        print(f"workers={workers}: {summary.loci_built:,} loci, {summary.loci_per_second:,.0f} loci/s wall in the "
              f"block tasks ({summary.block_seconds:.1f} s; {summary.loci_per_cpu_second:,.0f} loci per CPU-second), "
              f"{summary.seconds:.1f} s in all incl. input checks and checksums")
    summary = results[-1][1]
    group = schema.open_group(summary.path)
    layout = schema.layout(group)
    per_locus = summary.bytes_on_disk / summary.n_loci
    ref = reference_bytes_per_locus(layout.input_len, layout.output_len, layout.n_tracks, layout.n_bias)
    print(f"store: {summary.n_loci:,} loci, {summary.bytes_on_disk / 1e6:.1f} MB on disk, "
          f"{per_locus:,.0f} bytes/locus (uncompressed {summary.raw_bytes / summary.n_loci:,.0f}, "
          f"compression {summary.compression_ratio:.1f}x), {', '.join(f'{k} {v}' for k, v in summary.dtypes.items())}")
    print(f"reference float64 per locus: {ref:,} bytes (one-hot {layout.input_len}x4x8 + profiles "
          f"{layout.output_len}x{layout.n_tracks}x8 + bias {layout.output_len}x{layout.n_bias}x8) "
          f"-> store is {ref / per_locus:.0f}x smaller")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
