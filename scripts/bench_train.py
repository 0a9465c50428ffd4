#!/usr/bin/env python
"""Training throughput of the default BPNet (2114 -> 1000) fed by the store loader: examples/s per configuration.

On the CPU: float32 (and float32 + XLA with ``--cpu-xla``). With a GPU: float32, mixed precision, XLA, and both.
Each configuration trains a fresh model with ``model.fit`` for ``--warmup`` + ``--steps`` batches and is timed
from the end of the warm-up batches (tracing and XLA compilation excluded) to the end of the last batch. The
loader alone (same batches, no model) is timed too, to show whether the model or the input waits. Beside each
rate: the process' peak resident memory so far (VmHWM, :mod:`bpnetz.model.memory`; cumulative, configurations run
in the order printed).
The experiment is made with ``bpnetz simulate`` + ``bpnetz build`` in a temporary directory unless ``--store``.

    python scripts/bench_train.py [--store store.zarr] [--steps 5] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_store(directory: Path, n_peaks: int) -> Path:
    exp = directory / "experiment"
    if not (exp / "store.zarr").exists():
        subprocess.run(["bpnetz", "simulate", str(exp), "--n-peaks", str(n_peaks), "--n-chroms", "3",
                        "--chrom-length", "1000000", "--force", "--quiet"], check=True)
        subprocess.run(["bpnetz", "build", "--input-data", "input_data.json", "--reference-genome", "genome.fa",
                        "--chrom-sizes", "chrom.sizes", "--output", "store.zarr", "--quiet"], check=True, cwd=exp)
    return exp / "store.zarr"


def time_loader(stream, batches: int) -> float:
    """Examples/s of the tf.data pipeline alone over ``batches`` batches (after one warm-up batch)."""
    from bpnetz.model.data import stream_dataset

    dataset = iter(stream_dataset(stream).repeat())
    next(dataset)
    began, n = time.perf_counter(), 0
    for _ in range(batches):
        n += int(next(dataset)[0]["sequence"].shape[0])
    return n / (time.perf_counter() - began)


def time_training(stream, params, layout, *, mixed: bool, xla: bool, warmup: int, steps: int) -> float:
    """Examples/s of model.fit over ``steps`` batches after ``warmup`` batches."""
    import keras

    from bpnetz.model.bpnet import build_model, compile_model
    from bpnetz.model.contract import TrackGroups
    from bpnetz.model.data import stream_dataset

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == warmup - 1:
                self.began = time.perf_counter()
            self.ended = time.perf_counter()

    keras.backend.clear_session()
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    try:
        model = build_model(params, layout)
        compile_model(model, params, learning_rate=0.004, task_tracks=TrackGroups.of(layout).task_lists(),
                      jit_compile=xla)
        clock = StepClock()
        dataset = stream_dataset(stream).repeat().take(warmup + steps)
        model.fit(dataset, epochs=1, verbose=0, callbacks=[clock], shuffle=False)
    finally:
        keras.config.set_dtype_policy("float32")
    return steps * stream.batch_size / (clock.ended - clock.began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="an existing 2114/1000 store")
    parser.add_argument("--n-peaks", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first (XLA compiles here)")
    parser.add_argument("--steps", type=int, default=5, help="timed batches (use ~50 on a GPU)")
    parser.add_argument("--cpu-xla", action="store_true", help="also time XLA on the CPU")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import tensorflow as tf

    from bpnetz.config import BpnetParams
    from bpnetz.model.memory import peak_rss_gb
    from bpnetz.store.stream import LocusStream

    gpus = tf.config.list_physical_devices("GPU")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        store = args.store or make_store(Path(tmp), args.n_peaks)
        stream = LocusStream(store, None, "all", batch_size=args.batch_size, jitter=True,
                             reverse_complement="random", backgrounds="all", shuffle=True, seed=1)
        params = BpnetParams()
        configs = ([("float32", False, False), ("mixed_float16", True, False), ("float32 + XLA", False, True),
                    ("mixed_float16 + XLA", True, True)] if gpus
                   else [("float32", False, False)] + ([("float32 + XLA", False, True)] if args.cpu_xla else []))
        loader_rate = time_loader(stream, max(20, args.steps))
        peaks = {"loader alone": peak_rss_gb()}
        rates = {}
        for name, mixed, xla in configs:
            rates[name] = time_training(stream, params, stream.layout, mixed=mixed, xla=xla, warmup=args.warmup,
                                        steps=args.steps)
            peaks[name] = peak_rss_gb()

    device = f"GPU: {', '.join(d.name for d in gpus)}" if gpus else f"CPU only, {os.cpu_count()} cores"
    print(f"\ntraining throughput, default BPNet {params.input_len} -> {params.output_profile_len}, batch "
          f"{args.batch_size}, {args.steps} timed steps after {args.warmup}; {device}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'configuration':24s} {'examples/s':>11s} {'peak RSS GB':>12s}")
    print(f"{'loader alone':24s} {loader_rate:11,.0f} {peaks['loader alone']:12.2f}")
    for name, rate in rates.items():
        print(f"{name:24s} {rate:11,.1f} {peaks[name]:12.2f}")
    fastest = max(rates, key=rates.get)
    print(f"fastest: {fastest} ({rates[fastest] / rates['float32']:.2f}x float32); the loader delivers "
          f"{loader_rate / rates[fastest]:.0f}x what it consumes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
