#!/usr/bin/env python
"""GPU figures in one run (under 8 minutes on one GPU): training examples/s of the default BPNet (2114 -> 1000,
64 filters × 8 dilated layers) fed by an in-memory batch vs by the store loader (RAM-cached and streamed), at batch
64 and 256, float32 vs mixed precision, XLA off/on; prediction examples/s; DeepLIFT-SHAP pairs/s (sequence ×
shuffled reference); and the device memory each used (GPU peak from TensorFlow's allocator; on the CPU the process'
peak RSS). Prints a table, then one JSON object (also written to ``--json``).

Training is timed with ``model.fit`` from the end of ``--warmup`` untimed steps (tracing, XLA compilation) to the
end of the last of ``--steps`` timed steps. "synthetic" repeats one batch that tf.data holds in host memory (the
model's own speed, with the host-to-device copy); "cached"/"streamed" are the training pipeline of ``bpnetz
train`` (:func:`bpnetz.model.data.stream_dataset`). A configuration that would start after ``--budget-s`` is
skipped and listed as such, so the run stays within the time a GPU is lent for.

The experiment is simulated and built in a temporary directory (or ``--store``). ``--smoke``: a tiny experiment
(400 -> 200), a tiny model, batch 8, float32 and mixed + XLA, 2 steps, on the CPU: the test of this script
(tests/model/test_bench_gpu.py).

    python scripts/bench_gpu.py [--store store.zarr] [--steps 30] [--json bench_gpu.json] [--smoke]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TINY = {"n_chroms": 3, "chrom_length": 60_000, "n_peaks": 60, "input_len": 400, "output_len": 200,
        "max_jitter": 16}
FULL = {"n_chroms": 3, "chrom_length": 1_000_000, "n_peaks": 2400, "input_len": 2114, "output_len": 1000,
        "max_jitter": 128}


def make_store(directory: Path, smoke: bool) -> Path:
    """Simulate an experiment and build its store under ``directory``."""
    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.simulate.experiment import simulate

    spec = TINY if smoke else FULL
    experiment = directory / "experiment"
    simulate(experiment, progress=False, **spec)
    store = directory / "store.zarr"
    cwd = os.getcwd()
    os.chdir(experiment)  # input_data.json names its files relative to the experiment
    try:
        build_store("input_data.json", "genome.fa", "chrom.sizes", store,
                    BuildOptions(input_len=spec["input_len"], output_len=spec["output_len"],
                                 max_jitter=spec["max_jitter"], progress=False))
    finally:
        os.chdir(cwd)
    return store


def model_params(smoke: bool, layout: Any) -> Any:
    from bpnetz.config import BpnetParams

    if not smoke:
        return BpnetParams()
    return BpnetParams.model_validate({"input_len": layout.input_len, "output_profile_len": layout.output_len,
                                       "motif_module_params": {"filters": [8], "kernel_sizes": [21]},
                                       "syntax_module_params": {"num_dilation_layers": 2, "filters": 8}})


class Device:
    """The device benchmarked, and its peak memory since the last :meth:`reset`."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf
        gpus = tf.config.list_logical_devices("GPU")
        self.gpu = gpus[0].name.replace("/device:", "") if gpus else None
        self.name = f"GPU {self.gpu}" if self.gpu else f"CPU ({os.cpu_count()} cores)"

    def reset(self) -> None:
        if self.gpu:
            self.tf.config.experimental.reset_memory_stats(self.gpu)

    def peak_gb(self) -> float:
        if self.gpu:
            return round(self.tf.config.experimental.get_memory_info(self.gpu)["peak"] / 1e9, 3)
        from bpnetz.model.memory import peak_rss_gb

        return peak_rss_gb()


def fresh_model(params: Any, layout: Any, *, mixed: bool, xla: bool) -> Any:
    import keras

    from bpnetz.model.bpnet import build_model, compile_model
    from bpnetz.model.contract import TrackGroups

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    model = build_model(params, layout)
    return compile_model(model, params, learning_rate=0.004, task_tracks=TrackGroups.of(layout).task_lists(),
                         jit_compile=xla)


def time_fit(model: Any, dataset: Any, *, warmup: int, steps: int, batch: int) -> float:
    """Examples/s of ``model.fit`` over ``steps`` steps after ``warmup`` untimed ones."""
    import keras

    marks: dict[str, float] = {}

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, step: int, logs: Any = None) -> None:
            if step == warmup - 1:
                marks["began"] = time.perf_counter()
            marks["ended"] = time.perf_counter()

    model.fit(dataset.take(warmup + steps), epochs=1, verbose=0, callbacks=[StepClock()], shuffle=False)
    return steps * batch / (marks["ended"] - marks["began"])


def training_configs(batches: list[int], smoke: bool = False) -> list[dict[str, Any]]:
    """Every (input, batch, precision, XLA) measured: synthetic input in all 4 precision × XLA combinations per
    batch size, the loader (cached, streamed) at float32 without XLA. ``smoke``: float32 and mixed + XLA only."""
    settings = [(False, False), (True, True)] if smoke else list(itertools.product((False, True), (False, True)))
    synthetic = [{"input": "synthetic", "batch": b, "mixed": m, "xla": x} for b in batches for m, x in settings]
    loader = [{"input": i, "batch": b, "mixed": False, "xla": False}
              for b, i in itertools.product(batches, ("cached", "streamed"))]
    return synthetic + loader


def input_dataset(store: Path, kind: str, batch: int) -> Any:
    """The training dataset of one input kind (repeated: a benchmark takes what it needs)."""
    import tensorflow as tf

    from bpnetz.model.data import stream_dataset
    from bpnetz.store.stream import LocusStream

    stream = LocusStream(store, None, "all", batch_size=batch, jitter=True, reverse_complement="random",
                         backgrounds="all", shuffle=True, seed=1, cache=kind != "streamed")
    dataset = stream_dataset(stream)
    if kind == "synthetic":
        return tf.data.Dataset.from_tensors(next(iter(dataset))).repeat()
    return dataset.repeat()


def bench_training(store: Path, params: Any, layout: Any, device: Device, args: argparse.Namespace,
                   deadline: float) -> list[dict[str, Any]]:
    import keras
    import tensorflow as tf

    rows = []
    for config in training_configs(args.batches, args.smoke):
        if time.perf_counter() > deadline:
            rows.append({**config, "examples_per_s": None, "skipped": "time budget"})
            continue
        device.reset()
        try:
            model = fresh_model(params, layout, mixed=config["mixed"], xla=config["xla"])
            rate = time_fit(model, input_dataset(store, config["input"], config["batch"]), warmup=args.warmup,
                            steps=args.steps, batch=config["batch"])
            rows.append({**config, "examples_per_s": round(rate, 1), "memory_gb": device.peak_gb()})
        except (tf.errors.OpError, RuntimeError, ValueError) as err:  # one the device cannot run is reported
            rows.append({**config, "examples_per_s": None, "error": f"{type(err).__name__}: {str(err)[:200]}"})
        finally:
            keras.config.set_dtype_policy("float32")
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def bench_prediction(params: Any, layout: Any, device: Device, batch: int, batches: int) -> dict[str, Any]:
    """Examples/s of the compiled forward pass (float32) on fixed in-memory batches."""
    from bpnetz.predict.inference import model_predict_fn

    model = fresh_model(params, layout, mixed=False, xla=False)
    inputs = synthetic_inputs(model, batch)
    predict = model_predict_fn(model)
    predict(inputs)  # tracing
    device.reset()
    began = time.perf_counter()
    for _ in range(batches):
        predict(inputs)  # returns numpy arrays: the device has finished
    return {"batch": batch, "examples_per_s": round(batch * batches / (time.perf_counter() - began), 1),
            "memory_gb": device.peak_gb()}


def synthetic_inputs(model: Any, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: (np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch, tensor.shape[1]))] if name == "sequence"
                   else rng.random((batch, *tensor.shape[1:])).astype(np.float32))
            for name, tensor in model.input.items()}


def bench_shap(params: Any, layout: Any, device: Device, n: int, shuffles: int, batch: int) -> dict[str, Any]:
    """DeepLIFT-SHAP (counts and profile targets) pairs/s, after one untimed batch."""
    from bpnetz.shap.deeplift import DeepLiftExplainer

    model = fresh_model(params, layout, mixed=False, xla=False)
    inputs = synthetic_inputs(model, n + batch)
    sequences = inputs.pop("sequence")
    explainer = DeepLiftExplainer(model, 0, layout)

    def explain(rows: slice) -> None:
        explainer.explain(sequences[rows], {k: v[rows] for k, v in inputs.items()}, targets=("counts", "profile"),
                          num_shuffles=shuffles, batch_size=batch, progress=False)

    explain(slice(n, n + batch))
    device.reset()
    began = time.perf_counter()
    explain(slice(0, n))
    return {"sequences": n, "shuffles": shuffles, "pairs_per_s": round(n * shuffles / (time.perf_counter() - began),
                                                                       1), "memory_gb": device.peak_gb()}


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['device']}; model {result['model']}; {result['steps']} timed steps after {result['warmup']}")
    print(f"{'input':10s} {'batch':>5s} {'precision':>14s} {'XLA':>4s} {'examples/s':>11s} {'memory GB':>10s}")
    for row in result["training"]:
        rate = f"{row['examples_per_s']:11,.1f}" if row["examples_per_s"] else f"{row.get('skipped', 'error'):>11s}"
        print(f"{row['input']:10s} {row['batch']:5d} {'mixed_float16' if row['mixed'] else 'float32':>14s} "
              f"{'on' if row['xla'] else 'off':>4s} {rate} {row.get('memory_gb') or float('nan'):10.2f}")
    p, s = result["prediction"], result["shap"]
    print(f"prediction (batch {p['batch']}): {p['examples_per_s']:,.1f} examples/s, {p['memory_gb']:.2f} GB")
    print(f"DeepLIFT-SHAP ({s['sequences']} sequences × {s['shuffles']} shuffles): {s['pairs_per_s']:,.1f} pairs/s, "
          f"{s['memory_gb']:.2f} GB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="an existing store (default: simulate and build one)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, XLA compilation)")
    parser.add_argument("--budget-s", type=float, default=420, help="start no training configuration after this")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--smoke", action="store_true", help="tiny experiment and model on the CPU (a test)")
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        args.steps, args.warmup = min(args.steps, 2), 1
    args.batches = [8] if args.smoke else [64, 256]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        from bpnetz.store.reader import StoreReader

        store = args.store or make_store(Path(tmp), args.smoke)
        layout = StoreReader(store).layout
        params = model_params(args.smoke, layout)
        device = Device()
        result = {"device": device.name, "model": f"{params.input_len} -> {params.output_profile_len}, "
                  f"{params.syntax_module_params.filters} filters x {params.syntax_module_params.num_dilation_layers}"
                  " layers", "steps": args.steps, "warmup": args.warmup}
        result["training"] = bench_training(store, params, layout, device, args, began + args.budget_s)
        result["prediction"] = bench_prediction(params, layout, device, batch=args.batches[-1],
                                                batches=2 if args.smoke else 20)
        result["shap"] = bench_shap(params, layout, device, n=2 if args.smoke else 64,
                                    shuffles=2 if args.smoke else 20, batch=2 if args.smoke else 32)
    result["seconds"] = round(time.perf_counter() - began, 1)
    print_table(result)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
