#!/usr/bin/env python
"""Loader throughput, side by side in one run: the store loader (RAM-cached and streamed from disk), the store read
one random row at a time, and extraction on the fly from FASTA + bigWigs with pyfaidx + pyBigWig.

Every method delivers the same thing per locus: a jittered (uniform in [-max_jitter, max_jitter]) window of the
one-hot sequence (uint8, as the loader yields it), the signal and bias tracks, reverse-complemented with
probability 0.5. The experiment is made
with ``bpnetz simulate`` + ``bpnetz build`` in a temporary directory (or pass ``--store``/``--experiment``).
With ``--store URL`` (a store in object storage) the loader also streams from the URL, beside the same
store's local copy.
Prints loci/s (wall clock) and loci per CPU-second (all threads of this process: robust when the machine is
shared), and the ratios. Nothing is asserted.

    python scripts/bench_loader.py [--n-peaks 24000] [--batch-size 64] [--epochs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_experiment(directory: Path, n_peaks: int, n_chroms: int) -> Path:
    """Simulate an experiment and build its store (2114/1000, max_jitter 128) under ``directory``."""
    exp = directory / "experiment"
    if not (exp / "store.zarr").exists():
        length = max(1_000_000, n_peaks * 2_500 // n_chroms)
        subprocess.run(["bpnetz", "simulate", str(exp), "--n-peaks", str(n_peaks), "--n-chroms", str(n_chroms),
                        "--chrom-length", str(length), "--force", "--quiet"], check=True)
        subprocess.run(["bpnetz", "build", "--input-data", "input_data.json", "--reference-genome", "genome.fa",
                        "--chrom-sizes", "chrom.sizes", "--output", "store.zarr", "--quiet"], check=True, cwd=exp)
    return exp / "store.zarr"


def download(url: str, directory: Path) -> Path:
    """A local copy of the committed store at ``url`` (the same bytes: the local/remote comparison is fair)."""
    from bpnetz.files.remote import filesystem
    from bpnetz.store import schema

    schema.open_group(url)  # refuses an uncommitted store
    fs, key = filesystem(url)
    local = directory / "store-copy.zarr"
    fs.get(key + "/", str(local), recursive=True)
    return local


class Timer:
    """Wall-clock and CPU seconds (all threads of this process) of a block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def bench_loader(store: Path | str, cache: bool, batch_size: int, epochs: int) -> tuple[int, Timer, float]:
    """``epochs`` full epochs of the tf.data pipeline (after a warm-up epoch), each a new iteration as in
    training (new backgrounds order, jitter and flips; a streamed epoch first waits for its first block group);
    returns loci, timer, setup seconds."""
    from bpnetz.model.data import stream_dataset
    from bpnetz.store.stream import LocusStream

    setup = time.perf_counter()
    stream = LocusStream(store, None, "all", batch_size=batch_size, jitter=True, reverse_complement="random",
                         backgrounds="all", shuffle=True, cache=cache, seed=1)
    dataset = stream_dataset(stream)
    setup = time.perf_counter() - setup
    for _ in dataset:  # warm-up epoch: graph tracing, thread pools, page cache
        pass
    n = 0
    with Timer() as timer:
        for _ in range(epochs):
            for inputs, _, _ in dataset:
                n += int(inputs["sequence"].shape[0])
    return n, timer, setup


def bench_random_rows(store: Path, n: int, seed: int = 0) -> tuple[int, Timer]:
    """Read ``n`` random loci one row at a time from Zarr (each read decompresses a whole chunk)."""
    from bpnetz.genome import sequence
    from bpnetz.store import schema

    group = schema.open_group(store)
    lay = schema.layout(group)
    arrays = [group[name] for name in ("seq", "signal", "bias") if name in group]
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, arrays[0].shape[0], n)
    with Timer() as timer:
        for row in rows:
            j = lay.max_jitter + int(rng.integers(-lay.max_jitter, lay.max_jitter + 1))
            seq, *tracks = (np.asarray(a[int(row)]) for a in arrays)
            seq = seq[j:j + lay.input_len]
            tracks = [t[j:j + lay.output_len].astype(np.float32) for t in tracks]
            seq, tracks = _random_flip(seq, tracks, lay, rng)
            sequence.one_hot(seq, np.uint8)
    return n, timer


def _random_flip(seq: np.ndarray, tracks: list[np.ndarray], lay, rng: np.random.Generator):
    """Per-example reverse complement with p = 0.5, as the baselines do it (codes complemented and reversed,
    positions reversed and strands swapped in signal (tracks[0]) and bias (tracks[1]))."""
    from bpnetz.genome import sequence

    if rng.random() < 0.5:
        seq = sequence.reverse_complement(seq)
        tracks = [t[::-1][:, lay.strand_swap(lay.tracks if k == 0 else lay.bias_tracks)] for k, t in enumerate(tracks)]
    return seq, tracks


def bench_on_the_fly(store: Path, n: int, seed: int = 0) -> tuple[int, Timer]:
    """Extract ``n`` random loci straight from the FASTA and bigWigs the store was built from."""
    import pyBigWig
    import pyfaidx

    from bpnetz.genome import sequence
    from bpnetz.store import schema

    group = schema.open_group(store)
    lay = schema.layout(group)
    meta = schema.metadata(group)
    fasta_path = next((s["path"] for s in meta.get("sources", []) if s.get("role") == "genome"), None)
    fasta_path = fasta_path or str(store.parent / "genome.fa")
    chrom, summit = np.asarray(group["chrom"][:]).astype(object), np.asarray(group["summit"][:])
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(chrom), n)
    fasta = pyfaidx.Fasta(fasta_path)
    signal = [pyBigWig.open(t.source) for t in lay.tracks]
    bias = [pyBigWig.open(t.source) for t in lay.bias_tracks]
    with Timer() as timer:
        for row in rows:
            c, s = chrom[row], int(summit[row]) + int(rng.integers(-lay.max_jitter, lay.max_jitter + 1))
            s0, p0 = s - lay.input_len // 2, s - lay.output_len // 2
            seq = sequence.encode(str(fasta[c][s0:s0 + lay.input_len]))
            tracks = [np.nan_to_num(np.stack([bw.values(c, p0, p0 + lay.output_len, numpy=True) for bw in group_],
                                             axis=1)) for group_ in (signal, bias) if group_]
            seq, tracks = _random_flip(seq, tracks, lay, rng)
            sequence.one_hot(seq, np.uint8)
    return n, timer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="an existing store (built from files that still exist): a path, or a URL "
                                        "(s3://...): then a local copy is downloaded and the rate streamed from the "
                                        "URL is reported beside the local one")
    parser.add_argument("--keep", type=Path, help="simulate/build into this directory and keep it (reused)")
    parser.add_argument("--n-peaks", type=int, default=24000)
    parser.add_argument("--n-chroms", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each loader mode (after a warm-up)")
    parser.add_argument("--random-rows", type=int, default=300, help="loci read row by row at random")
    parser.add_argument("--on-the-fly", type=int, default=2000, help="loci extracted with pyfaidx + pyBigWig")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        url = args.store if args.store and "://" in args.store else None
        store = (download(url, Path(tmp)) if url else Path(args.store) if args.store
                 else make_experiment(args.keep or Path(tmp), args.n_peaks, args.n_chroms))
        import tensorflow  # noqa: F401  (imported before timing the cache fill)

        from bpnetz.store import schema

        lay = schema.layout(schema.open_group(store))
        results = {}
        n, timer, setup = bench_loader(store, True, args.batch_size, args.epochs)
        results["(a) store loader, RAM-cached"] = (n, timer)
        print(f"RAM cache filled in {setup:.1f} s", file=sys.stderr)
        n, timer, _ = bench_loader(store, False, args.batch_size, args.epochs)
        results["(b) store loader, streamed from disk"] = (n, timer)
        results["(c) store, random single rows"] = bench_random_rows(store, args.random_rows)
        results["(d) on the fly, pyfaidx + pyBigWig"] = bench_on_the_fly(store, args.on_the_fly)
        if url:
            n, timer, _ = bench_loader(url, False, args.batch_size, args.epochs)
            results["(e) store loader, streamed from the URL"] = (n, timer)

    fly_rate = results["(d) on the fly, pyfaidx + pyBigWig"][0] / results["(d) on the fly, pyfaidx + pyBigWig"][1].wall
    print(f"\nloader throughput: {lay.input_len}/{lay.output_len}, max_jitter {lay.max_jitter}, "
          f"{lay.n_tracks} signal + {lay.n_bias} bias tracks, jitter + reverse complement on, batch "
          f"{args.batch_size}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'method':40s} {'loci':>7s} {'loci/s':>9s} {'loci/CPU-s':>11s} {'vs on-the-fly':>14s}")
    for name, (n, timer) in results.items():
        rate = n / timer.wall
        print(f"{name:40s} {n:7d} {rate:9,.0f} {n / max(timer.cpu, 1e-9):11,.0f} {rate / fly_rate:13.1f}x")
    streamed = results["(b) store loader, streamed from disk"]
    rate = streamed[0] / streamed[1].wall
    print(f"targets: streamed >= 10x on-the-fly: {rate / fly_rate:.1f}x; streamed >= 20,000 loci/s: {rate:,.0f} "
          "(wall clock; on a shared machine see loci/CPU-s)")
    if url:
        remote = results["(e) store loader, streamed from the URL"]
        print(f"target: streamed from the URL >= 50% of streamed from disk: {remote[0] / remote[1].wall / rate:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
