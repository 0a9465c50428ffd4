#!/usr/bin/env python
"""Loader throughput, side by side in one run, on stores of several sizes: the store loader (RAM-cached and
streamed from disk), the store read one random row at a time, and a fast on-the-fly extractor (FASTA in RAM,
pyBigWig ``values(numpy=True)``, one-hot by table lookup).

Every method delivers the same thing per locus: a jittered (uniform in [-max_jitter, max_jitter]) window of the
one-hot sequence (uint8, as the loader yields it), the signal and bias tracks, reverse-complemented with
probability 0.5. By default two experiments are made with ``bpnetz simulate`` + ``bpnetz build`` (4,000 and 32,000
peaks: stores of 5,076 and 40,636 loci) in a temporary directory (``--keep DIR`` keeps and reuses them; or pass
``--store``). With ``--store URL`` (a store in object storage) the loader also streams from the URL, beside the
same store's local copy.
Prints loci/s (wall clock) and loci per CPU-second (all threads of this process: robust when the machine is
shared), the ratios to the extractor, the wait for each epoch's first batch and each method's peak resident
memory. The loader is iterated as training iterates it: one continuous iterator over all epochs (Keras ``fit``
with ``steps_per_epoch``), so an epoch's start waits for no pipeline restart. Beside the whole-run rates it
prints the median of per-round rates (each loader epoch; each 256-locus chunk of the extractor) and their ratio:
identical runs on this shared 2-core VM moved the whole-run figure of the 5k store by up to 40%. Small stores run
more epochs (``--min-loci``). Nothing is asserted.

    python scripts/bench_loader.py [--n-peaks 4000 32000] [--batch-size 64] [--epochs 5] [--min-loci 100000]
                                   [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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


@dataclass
class Result:
    """One method's figures on one store."""

    loci: int
    timer: Timer
    rss: int = 0  # peak resident bytes while it ran (0: unknown)
    first: list[float] = field(default_factory=list)  # seconds to each timed epoch's first batch
    rounds: list[tuple[int, float]] = field(default_factory=list)  # (loci, wall seconds) of each epoch or chunk

    @property
    def rate(self) -> float:
        return self.loci / self.timer.wall

    @property
    def median_rate(self) -> float:
        """Median of the rounds' rates (epochs of a loader, chunks of the extractor): on this shared VM a single
        1-3 s figure moved by up to 40% between identical runs, the median of a run's rounds by far less."""
        return float(np.median([n / wall for n, wall in self.rounds])) if self.rounds else self.rate

    @property
    def cpu_rate(self) -> float:
        return self.loci / max(self.timer.cpu, 1e-9)


def bench_loader(store: Path | str, cache: bool, batch_size: int, epochs: int) -> tuple[Result, float]:
    """``epochs`` full epochs of the tf.data pipeline (after a warm-up epoch) as training iterates it: one
    continuous iterator, each epoch its next ``n_batches`` batches (new backgrounds order, jitter and flips);
    returns the result (with each epoch's wait for its first batch) and the setup seconds (a cache fill)."""
    from bpnetz.model.data import stream_dataset
    from bpnetz.store.stream import LocusStream

    setup = time.perf_counter()
    stream = LocusStream(store, None, "all", batch_size=batch_size, jitter=True, reverse_complement="random",
                         backgrounds="all", shuffle=True, cache=cache, seed=1)
    batches = iter(stream_dataset(stream, continuous=True))
    setup = time.perf_counter() - setup
    for _ in range(stream.n_batches):  # warm-up epoch: graph tracing, thread pools, page cache
        next(batches)
    n, first, rounds = 0, [], []
    with Timer() as timer:
        for _ in range(epochs):
            start, n_before = time.perf_counter(), n
            for i in range(stream.n_batches):
                inputs = next(batches)[0]
                if i == 0:
                    first.append(time.perf_counter() - start)
                n += int(inputs["sequence"].shape[0])
            rounds.append((n - n_before, time.perf_counter() - start))
    return Result(n, timer, first=first, rounds=rounds), setup


def bench_random_rows(store: Path, n: int, seed: int = 0) -> Result:
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
            if rng.random() < 0.5:  # reverse complement: codes complemented and reversed, strands swapped
                seq = sequence.reverse_complement(seq)
                tracks = [t[::-1][:, lay.strand_swap(group_)] for t, group_ in zip(tracks, (lay.tracks,
                                                                                          lay.bias_tracks))]
            sequence.one_hot(seq, np.uint8)
    return Result(n, timer)


def bench_on_the_fly(store: Path, n: int, batch_size: int, seed: int = 0) -> tuple[Result, float]:
    """Extract ``n`` random loci straight from the FASTA and bigWigs the store was built from, as fast as one
    thread can: the genome read into RAM as base codes once (its seconds returned, not timed), then per locus a
    slice of it and one ``values(numpy=True)`` per bigWig into a batch array; per batch of ``batch_size`` loci one
    table lookup for all one-hot rows (complements included: the loader's ``one_hot_oriented``) and one strided
    copy reversing the flipped loci's tracks. The same output per locus as the loader."""
    import pyBigWig
    import pyfaidx

    from bpnetz.genome import sequence
    from bpnetz.store import schema
    from bpnetz.store.stream import one_hot_oriented

    group = schema.open_group(store)
    lay = schema.layout(group)
    meta = schema.metadata(group)
    fasta_path = next((s["path"] for s in meta.get("sources", []) if s.get("role") == "genome"), None)
    fasta_path = fasta_path or str(store.parent / "genome.fa")
    chrom, summit = np.asarray(group["chrom"][:]).astype(object), np.asarray(group["summit"][:])
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(chrom), n)
    load = time.perf_counter()
    with pyfaidx.Fasta(fasta_path, as_raw=True) as fasta:
        genome = {c: sequence.encode(fasta[c][:]) for c in set(chrom[rows])}
    load = time.perf_counter() - load
    bigwigs = [pyBigWig.open(t.source) for t in (*lay.tracks, *lay.bias_tracks)]
    swap = np.concatenate([lay.strand_swap(lay.tracks), lay.n_tracks + lay.strand_swap(lay.bias_tracks)])
    codes = np.empty((batch_size, lay.input_len), np.uint8)
    tracks = np.empty((batch_size, lay.output_len, len(bigwigs)), np.float32)
    rounds, chunk_began = [], time.perf_counter()
    with Timer() as timer:
        for start in range(0, n, batch_size):
            if start and start % EXTRACTOR_ROUND == 0:
                rounds.append((EXTRACTOR_ROUND, time.perf_counter() - chunk_began))
                chunk_began = time.perf_counter()
            batch = rows[start:start + batch_size]
            for i, row in enumerate(batch):
                c, s = chrom[row], int(summit[row]) + int(rng.integers(-lay.max_jitter, lay.max_jitter + 1))
                s0, p0 = s - lay.input_len // 2, s - lay.output_len // 2
                codes[i] = genome[c][s0:s0 + lay.input_len]
                for k, bw in enumerate(bigwigs):
                    tracks[i, :, k] = bw.values(c, p0, p0 + lay.output_len, numpy=True)
            flip = rng.random(len(batch)) < 0.5
            one_hot_oriented(np.where(flip[:, None], codes[:len(batch), ::-1], codes[:len(batch)]), flip)
            np.where(flip[:, None, None], np.nan_to_num(tracks[:len(batch), ::-1][:, :, swap]),
                     np.nan_to_num(tracks[:len(batch)]))
    rounds.append((n - (len(rounds) * EXTRACTOR_ROUND), time.perf_counter() - chunk_began))
    for bw in bigwigs:
        bw.close()
    return Result(n, timer, rounds=rounds), load


#: loci per timed round of the extractor (a multiple of the batch size)
EXTRACTOR_ROUND = 256
LOADER = {"cached": "(a) store loader, RAM-cached", "streamed": "(b) store loader, streamed from disk"}
NAMES = {**LOADER, "rows": "(c) store, random single rows", "fly": "(d) on the fly, FASTA in RAM + pyBigWig",
         "url": "(e) store loader, streamed from the URL"}


def run_method(method: str, store: str, args: argparse.Namespace) -> dict:
    """One method on one store, measured in this process (its peak resident memory is the method's)."""
    import resource

    extra = 0.0
    if method in ("cached", "streamed", "url"):
        import tensorflow  # noqa: F401  (imported before timing the cache fill)

        result, extra = bench_loader(store, method == "cached", args.batch_size, args.epochs)
    elif method == "rows":
        result = bench_random_rows(Path(store), args.random_rows)
    else:
        result, extra = bench_on_the_fly(Path(store), args.on_the_fly, args.batch_size)
    return {"loci": result.loci, "wall": result.timer.wall, "cpu": result.timer.cpu, "first": result.first,
            "rounds": result.rounds, "setup": extra, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def bench_store(store: Path, url: str | None, args: argparse.Namespace) -> dict[str, Result]:
    """Every method on one store (and its URL), each in a fresh process (no memory or thread pools carried from
    one to the next): cached, streamed, random rows, on the fly, URL."""
    from bpnetz.store import schema

    results, n_loci = {}, int(schema.open_group(store)["seq"].shape[0])
    for method in ("cached", "streamed", "rows", "fly", *(("url",) if url else ())):
        epochs = max(args.epochs, -(-args.min_loci // n_loci))  # short epochs of small stores: more of them
        command = [sys.executable, __file__, "--method", method, "--store", str(url if method == "url" else store),
                   "--batch-size", str(args.batch_size), "--epochs", str(epochs),
                   "--random-rows", str(args.random_rows), "--on-the-fly", str(args.on_the_fly)]
        out = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1])
        timer = Timer()
        timer.wall, timer.cpu = out["wall"], out["cpu"]
        results[NAMES[method]] = Result(out["loci"], timer, out["rss"], out["first"],
                                        [tuple(r) for r in out["rounds"]])
        if method in ("cached", "fly"):
            what = "RAM cache filled" if method == "cached" else "genome read into RAM for the extractor (not timed)"
            print(f"{store}: {what} in {out['setup']:.1f} s", file=sys.stderr)
    return results


def report(store: Path, results: dict[str, Result]) -> list[str]:
    """The table of one store's results, and its summary line."""
    from bpnetz.store import schema

    group = schema.open_group(store)
    lay, n_loci = schema.layout(group), int(group["seq"].shape[0])
    fly = results[NAMES["fly"]]
    lines = [f"\n{n_loci:,}-locus store {store}: {lay.input_len}/{lay.output_len}, max_jitter {lay.max_jitter}, "
             f"{lay.n_tracks} signal + {lay.n_bias} bias tracks",
             f"{'method':40s} {'loci':>7s} {'loci/s':>9s} {'median':>9s} {'loci/CPU-s':>11s} {'x fly':>6s} "
             f"{'x median':>8s} {'x fly CPU':>9s} {'1st batch ms':>14s} {'peak RSS':>9s}"]
    for name, r in results.items():
        first = f"{1e3 * min(r.first):.0f}-{1e3 * max(r.first):.0f}" if r.first else ""
        lines.append(f"{name:40s} {r.loci:7d} {r.rate:9,.0f} {r.median_rate:9,.0f} {r.cpu_rate:11,.0f} "
                     f"{r.rate / fly.rate:5.1f}x {r.median_rate / fly.median_rate:7.1f}x "
                     f"{r.cpu_rate / fly.cpu_rate:8.1f}x {first:>14s} {r.rss / 2**30:7.2f}GB")
    streamed, cached = results[LOADER["streamed"]], results[LOADER["cached"]]
    lines.append(f"summary {n_loci} loci: streamed {streamed.rate:,.0f} loci/s = {streamed.rate / fly.rate:.1f}x "
                 f"the extractor ({fly.rate:,.0f}/s; per CPU-s {streamed.cpu_rate / fly.cpu_rate:.1f}x; medians of "
                 f"epochs and of {EXTRACTOR_ROUND}-locus chunks {streamed.median_rate:,.0f} / {fly.median_rate:,.0f} "
                 f"= {streamed.median_rate / fly.median_rate:.1f}x); RAM-cached {cached.rate:,.0f} loci/s (median "
                 f"{cached.median_rate:,.0f})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", nargs="*", default=[],
                        help="existing stores (built from files that still exist): paths, or one URL (s3://...): "
                             "then a local copy is downloaded and the rate streamed from the URL is reported "
                             "beside the local one")
    parser.add_argument("--keep", type=Path, help="simulate/build into this directory and keep it (reused)")
    parser.add_argument("--n-peaks", type=int, nargs="+", default=[4000, 32000],
                        help="one simulated store per value (4000 -> 5,076 loci, 32000 -> 40,636)")
    parser.add_argument("--n-chroms", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of each loader mode (after a warm-up)")
    parser.add_argument("--min-loci", type=int, default=100_000,
                        help="at least this many loci timed per loader mode (more epochs on small stores)")
    parser.add_argument("--random-rows", type=int, default=200, help="loci read row by row at random")
    parser.add_argument("--on-the-fly", type=int, default=2048, help="loci extracted from the FASTA and bigWigs")
    parser.add_argument("--method", choices=sorted(NAMES), help=argparse.SUPPRESS)  # one method, JSON out
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.method:
        print(json.dumps(run_method(args.method, args.store[0], args)))
        return 0

    lines = []
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        urls = [s for s in args.store if "://" in s]
        stores = ([(download(u, Path(tmp)), u) for u in urls] + [(Path(s), None) for s in args.store if s not in urls]
                  if args.store else [(make_experiment((args.keep or Path(tmp)) / f"peaks-{n}", n, args.n_chroms),
                                       None) for n in args.n_peaks])
        for store, url in stores:
            lines += report(store, bench_store(store, url, args))
    print(f"\nloader throughput, jitter + reverse complement on, batch {args.batch_size}, at least {args.epochs} "
          f"epochs and {args.min_loci:,} loci per loader mode; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end (on a shared machine compare loci/CPU-s)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
