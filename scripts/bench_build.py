"""Benchmark `bpnetz build` against its peers, in one run: loci/s with 1 and 2 workers at each size (10k and 40k
loci by default), per-locus pyfaidx + pyBigWig reads of the same loci, and tangermeme's ``extract_loci`` in its own
venv (``--peer-python``; skipped with the reason when not given or absent); ratios side by side; store bytes per
locus against the reference.

Uses a `bpnetz simulate` experiment when that command is available (``--simulate``, the default when it is),
otherwise writes its own: a multi-megabase genome, sparse stranded count bigWigs (ChIP-nexus-like), a control
pair, narrowPeak peaks and background loci. Each size takes a seeded subset of the experiment's peak and
background lines (in their proportion). Prints, asserts nothing.

Rates: "blocks" counts the block tasks only (reading, encoding, compressing, writing), "all" the whole
``build_store`` call (input checks, checksums, locus selection, Dask start-up); loci per CPU-second of the block
tasks is the rate one free core gives, and what to compare when the machine is shared. Each build runs twice in
the bench's own checksum cache (``BPNETZ_CHECKSUM_CACHE``): "cold" with the cache emptied, so every input is hashed
(a first build on a machine), then warm, where the inputs' checksums are remembered (every later build from the
same files: an atlas builds hundreds of stores against one genome); the block rates are the warm build's. Then
the same warm build on a local dask.distributed cluster of each worker count (``--no-distributed`` skips it). The
per-locus peer reads ``min(size, --peer-sample)`` loci (its rate does not depend on the size); tangermeme extracts
every locus.

The reference materialises, per locus and batch, a float64 one-hot sequence (input_len × 4 × 8 bytes) and float64
profile and bias arrays (output_len × tracks × 8 bytes each); a store keeps uint8 codes and uint8/uint16/int32/
float32 rows (the narrowest integer dtype for counts) with jitter flanks, compressed.

    python scripts/bench_build.py [--sizes 10000 40000] [--workers 1 2] [--peer-python /work/peer-venv/bin/python]
                                  [--keep DIR] [--experiment DIR] [--no-distributed]
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
from typing import Any

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


def subset_experiment(exp: Path, out: Path, n_loci: int, seed: int = 0) -> Path:
    """``out``/input_data.json over a seeded subset of ``n_loci`` peak and background lines of ``exp`` (absolute
    paths to the same genome and bigWigs)."""
    spec = json.loads((exp / "input_data.json").read_text())
    files = [(task, key, i, exp / path) for task, t in spec.items() for key in ("loci", "background_loci")
             if key in t for i, path in enumerate(t[key]["source"])]
    lines = {f: [x for x in f[3].read_text().splitlines() if x.strip() and not x.startswith(("#", "track"))]
             for f in files}
    fraction = min(1.0, n_loci / sum(len(v) for v in lines.values()))
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for (task, key, i, path), rows in lines.items():
        keep = np.sort(rng.choice(len(rows), int(round(len(rows) * fraction)), replace=False))
        target = out / f"{task}_{key}_{i}_{path.name}"
        target.write_text("".join(rows[k] + "\n" for k in keep))
        spec[task][key]["source"][i] = str(target)
    for t in spec.values():
        for key in ("signal", "bias"):
            if key in t:
                t[key]["source"] = [str((exp / p).resolve()) for p in t[key]["source"]]
    (out / "input_data.json").write_text(json.dumps(spec))
    return out / "input_data.json"


def per_locus_rate(store: Path, genome: Path, sample: int) -> tuple[int, float, float]:
    """Loci/s of reading each locus on its own: pyfaidx sequence + pyBigWig values of every track (the way a
    loader without a store extracts), over the first ``sample`` store rows."""
    import pyBigWig
    import pyfaidx

    from bpnetz.genome.sequence import encode
    from bpnetz.store import schema

    group = schema.open_group(store)
    layout = schema.layout(group)
    chrom = [str(c) for c in np.asarray(group["chrom"][:sample]).tolist()]
    summit = np.asarray(group["summit"][:sample], dtype=np.int64)
    seq_start, _ = layout.seq_window(summit)
    prof_start, _ = layout.profile_window(summit)
    sources = [t.source for t in layout.tracks + layout.bias_tracks]
    fasta = pyfaidx.Fasta(str(genome), as_raw=True, sequence_always_upper=False)
    bigwigs = [pyBigWig.open(src) for src in sources]
    began, cpu = time.perf_counter(), time.process_time()
    for c, s, p in zip(chrom, seq_start.tolist(), prof_start.tolist(), strict=True):
        encode(fasta[c][s:s + layout.seq_len])
        for bw in bigwigs:
            np.nan_to_num(bw.values(c, p, p + layout.profile_len, numpy=True))
    return len(chrom), len(chrom) / (time.perf_counter() - began), len(chrom) / (time.process_time() - cpu)


def tangermeme_rate(args: argparse.Namespace, store: Path, genome: Path, workdir: Path, n_jobs: int
                    ) -> tuple[tuple[float, float] | None, str]:
    """Loci per second and per CPU-second of tangermeme's extract_loci on the store's loci (in the peer
    interpreter), or None and why not."""
    if args.peer_python is None:
        return None, "skipped: no --peer-python given"
    if not Path(args.peer_python).exists():
        return None, f"skipped: {args.peer_python} does not exist"
    from bpnetz.store import schema

    group = schema.open_group(store)
    layout = schema.layout(group)
    chrom = [str(c) for c in np.asarray(group["chrom"][:]).tolist()]
    summit = np.asarray(group["summit"][:], dtype=np.int64)
    bed = workdir / "peer_loci.bed"
    bed.write_text("".join(f"{c}\t{s}\t{s + 1}\n" for c, s in zip(chrom, summit.tolist(), strict=True)))
    sources = [t.source for t in layout.tracks + layout.bias_tracks]
    command = [args.peer_python, str(Path(__file__).with_name("peer_tangermeme.py")), "--loci", str(bed),
               "--fasta", str(genome), "--signals", *sources, "--in-window", str(layout.input_len),
               "--out-window", str(layout.output_len), "--max-jitter", str(layout.max_jitter),
               "--n-jobs", str(n_jobs)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rates = result["loci"] / result["seconds"], result["loci"] / result["cpu_seconds"]
    return rates, (f"{result['loci']:,} loci in {result['seconds']:.1f} s, n_jobs={n_jobs}, seq "
                   f"{result['seq_shape']}, signals {result['signal_shape']}")


def build_rates(input_data: Path, genome: Path, sizes: Path, out: Path, workers: int, cache: Path,
                scheduler: str | None = None) -> Any:
    """One build, its inputs' checksums remembered in ``cache`` (the bench's own checksum cache file); on the
    dask.distributed cluster at ``scheduler`` when given."""
    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.store.checksum import CACHE_ENV

    os.environ[CACHE_ENV] = str(cache)
    shutil.rmtree(out, ignore_errors=True)
    return build_store(input_data, genome, sizes, out,
                       BuildOptions(workers=workers, scheduler=scheduler, progress=False))


def distributed_rates(args: argparse.Namespace, input_data: Path, genome: Path, sizes: Path, out: Path,
                      cache: Path) -> None:
    """Warm builds on a local dask.distributed cluster of 1, 2, ... worker processes (one thread each), the
    cluster started before the timing; the best of two builds per worker count."""
    try:
        from distributed import LocalCluster
    except ImportError:
        print("dask.distributed: skipped (not installed)")
        return
    for workers in args.workers:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            runs = [build_rates(input_data, genome, sizes, out, workers, cache, cluster.scheduler_address)
                    for _ in range(2)]
        best = min(runs, key=lambda s: s.seconds)
        print(f"bpnetz build on a dask.distributed cluster, {workers} worker process(es): blocks "
              f"{best.loci_per_second:,.0f} loci/s ({best.block_seconds:.2f} s), all "
              f"{best.loci_built / best.seconds:,.0f} loci/s ({best.seconds:.2f} s; best of 2)")


def remembered(cache: Path) -> int:
    """Files whose checksums ``cache`` holds."""
    return len(json.loads(cache.read_text())) if cache.is_file() else 0


def bench_size(args: argparse.Namespace, exp: Path, root: Path, n_loci: int) -> Any:
    """Build ``n_loci`` loci with each worker count, then the peers on the same loci; print one block of lines."""
    input_data = subset_experiment(exp, root / f"loci_{n_loci}", n_loci)
    genome, sizes = exp / "genome.fa", exp / "chrom.sizes"
    print(f"\n== {n_loci:,} loci requested (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    best, best_cpu = 0.0, 0.0
    cache = root / "checksums.json"
    for workers in args.workers:
        out = root / f"store_{n_loci}_w{workers}.zarr"
        cache.unlink(missing_ok=True)
        cold = build_rates(input_data, genome, sizes, out, workers, cache)
        n_remembered = remembered(cache)
        summary = build_rates(input_data, genome, sizes, out, workers, cache)
        best, best_cpu = max(best, summary.loci_per_second), max(best_cpu, summary.loci_per_cpu_second)
        print(f"bpnetz build, workers={workers}: {summary.loci_built:,} loci, blocks {summary.loci_per_second:,.0f}"
              f" loci/s ({summary.block_seconds:.2f} s; {summary.loci_per_cpu_second:,.0f} per CPU-second), all "
              f"{summary.loci_built / summary.seconds:,.0f} loci/s ({summary.seconds:.2f} s incl. input checks, "
              f"start-up; {n_remembered} inputs' checksums remembered) / cold {cold.loci_built / cold.seconds:,.0f} "
              f"loci/s ({cold.seconds:.2f} s, every input hashed)")
    if args.distributed:
        distributed_rates(args, input_data, genome, sizes, root / f"store_{n_loci}_dist.zarr", cache)
    n, rate, rate_cpu = per_locus_rate(summary.path, genome, args.peer_sample)
    print(f"per-locus pyfaidx + pyBigWig reads: {rate:,.0f} loci/s, {rate_cpu:,.0f} per CPU-second ({n:,} loci) "
          f"-> build {best / rate:.1f}x wall, {best_cpu / rate_cpu:.1f}x per CPU-second")
    peer, note = tangermeme_rate(args, summary.path, genome, root, max(args.workers))
    if peer is None:
        print(f"tangermeme extract_loci: {note}")
    else:
        print(f"tangermeme extract_loci: {peer[0]:,.0f} loci/s, {peer[1]:,.0f} per CPU-second ({note}) -> build "
              f"{best / peer[0]:.1f}x wall, {best_cpu / peer[1]:.1f}x per CPU-second")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 40000], help="loci per build")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--simulate", choices=["auto", "yes", "no"], default="auto",
                        help="use `bpnetz simulate` (auto: when available)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the experiment and stores here")
    parser.add_argument("--experiment", type=Path, default=None,
                        help="use this existing experiment folder (with input_data.json) instead of writing one")
    parser.add_argument("--peer-python", default=None,
                        help="interpreter with tangermeme installed (e.g. /work/peer-venv/bin/python)")
    parser.add_argument("--peer-sample", type=int, default=5000, help="loci read one by one by the per-locus peer")
    parser.add_argument("--distributed", action=argparse.BooleanOptionalAction, default=True,
                        help="also build on a local dask.distributed cluster of each worker count")
    args = parser.parse_args()

    from bpnetz.store import schema

    root = (args.keep or Path(tempfile.mkdtemp(prefix="bench_build_"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    use_sim = args.simulate == "yes" or (args.simulate == "auto"
                                         and importlib.util.find_spec("bpnetz.cli.simulate") is not None)
    began = time.perf_counter()
    peaks = int(max(args.sizes) * 0.8) + 1
    if args.experiment is not None:
        exp = args.experiment.resolve()
        print(f"experiment: {exp}")
    else:
        exp = simulate_experiment(root, peaks) if use_sim else write_experiment(root, peaks)
        print(f"experiment: {'bpnetz simulate' if use_sim else 'self-written'} in {exp} "
              f"({time.perf_counter() - began:.1f} s to write)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall-clock rates shrink when it "
          "exceeds the cores; loci per CPU-second do not)")
    for n_loci in args.sizes:
        summary = bench_size(args, exp, root, n_loci)
    group = schema.open_group(summary.path)
    layout = schema.layout(group)
    per_locus = summary.bytes_on_disk / summary.n_loci
    ref = reference_bytes_per_locus(layout.input_len, layout.output_len, layout.n_tracks, layout.n_bias)
    print(f"\nstore: {summary.n_loci:,} loci, {summary.bytes_on_disk / 1e6:.1f} MB on disk, "
          f"{per_locus:,.0f} bytes/locus (uncompressed {summary.raw_bytes / summary.n_loci:,.0f}, "
          f"compression {summary.compression_ratio:.1f}x), {', '.join(f'{k} {v}' for k, v in summary.dtypes.items())}")
    print(f"reference float64 per locus: {ref:,} bytes (one-hot {layout.input_len}x4x8 + profiles "
          f"{layout.output_len}x{layout.n_tracks}x8 + bias {layout.output_len}x{layout.n_bias}x8) "
          f"-> store is {ref / per_locus:.0f}x smaller")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
