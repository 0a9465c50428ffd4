"""Benchmark DeepLIFT-SHAP: sequences/s for 2114-bp inputs, 20 dinucleotide-shuffled references each, on the
default-size BPNet (build_model with default BpnetParams, one stranded task with two control tracks), on the CPU
and on the GPU when one is visible. Also times the dinucleotide shuffles alone.

    python scripts/bench_shap.py [--num-seqs 8] [--batch-size 4] [--target both] [--devices cpu gpu]

The first batch on each device (graph tracing) is not timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def bench_shuffles(num_shuffles: int, length: int, n: int = 64) -> float:
    """Sequences/s of reference_shuffles (num_shuffles shuffles each), batches of n sequences."""
    from bpnetz.shap.shuffle import reference_shuffles

    codes = np.random.default_rng(0).integers(0, 4, size=(n, length)).astype(np.uint8)
    reference_shuffles(codes[:1], num_shuffles, 0, [0])  # load the compiled walk
    begin = time.perf_counter()
    reference_shuffles(codes, num_shuffles, 0, range(n))
    return n / (time.perf_counter() - begin)


def bench_device(device: str, args: argparse.Namespace) -> tuple[float, float]:
    """Sequences/s of DeepLiftExplainer.explain on one device (after one untimed warm-up batch), and the process's
    CPU seconds per sequence (all threads; steadier than wall time on a shared machine)."""
    import keras
    import tensorflow as tf

    from bpnetz.config import BpnetParams
    from bpnetz.model.bpnet import build_model
    from bpnetz.shap.deeplift import DeepLiftExplainer
    from bpnetz.store.schema import StoreLayout, Track

    params = BpnetParams()
    tracks = [Track("plus", 0, "+", "plus.bw"), Track("minus", 0, "-", "minus.bw")]
    bias = [Track("ctl_plus", 0, "+", "c+.bw"), Track("ctl_minus", 0, "-", "c-.bw")]
    layout = StoreLayout(params.input_len, params.output_profile_len, 0, ["0"], tracks, bias)
    rng = np.random.default_rng(1)
    n = args.num_seqs
    sequences = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(n + args.batch_size, params.input_len))]
    profile_bias = rng.poisson(1.0, size=(len(sequences), params.output_profile_len, 2)).astype(np.float32)
    bias_inputs = {"profile_bias": profile_bias, "counts_bias": np.log1p(profile_bias.sum(axis=1))}
    targets = ("counts", "profile") if args.target == "both" else (args.target,)
    with tf.device(device):
        keras.utils.set_random_seed(0)
        explainer = DeepLiftExplainer(build_model(params, layout), 0, layout)
        warm = slice(n, n + args.batch_size)
        explainer.explain(sequences[warm], {k: v[warm] for k, v in bias_inputs.items()}, targets=targets,
                          num_shuffles=args.num_shuffles, batch_size=args.batch_size, progress=False)
        begin, begin_cpu = time.perf_counter(), time.process_time()
        explainer.explain(sequences[:n], {k: v[:n] for k, v in bias_inputs.items()}, targets=targets,
                          num_shuffles=args.num_shuffles, batch_size=args.batch_size, progress=True)
        return n / (time.perf_counter() - begin), (time.process_time() - begin_cpu) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-seqs", type=int, default=8, help="timed sequences per device (default 8)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per step (default 4)")
    parser.add_argument("--gpu-num-seqs", type=int, default=512, help="timed sequences on a GPU (default 512)")
    parser.add_argument("--gpu-batch-size", type=int, default=32, help="sequences per step on a GPU (default 32)")
    parser.add_argument("--num-shuffles", type=int, default=20)
    parser.add_argument("--target", choices=["counts", "profile", "both"], default="both")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "gpu"], default=["cpu", "gpu"])
    args = parser.parse_args(argv)

    import tensorflow as tf

    results = {"shuffles": bench_shuffles(args.num_shuffles, 2114)}
    print(f"dinucleotide shuffles: {results['shuffles']:.0f} sequences/s ({args.num_shuffles} shuffles of 2114 bp "
          "each)", flush=True)
    gpus = tf.config.list_logical_devices("GPU")
    for kind in args.devices:
        if kind == "gpu" and not gpus:
            print("gpu: none visible, skipped")
            continue
        device = gpus[0].name if kind == "gpu" else "/CPU:0"
        run = args if kind == "cpu" else argparse.Namespace(**{**vars(args), "num_seqs": args.gpu_num_seqs,
                                                              "batch_size": args.gpu_batch_size})
        results[kind], cpu_seconds = bench_device(device, run)
        print(f"{kind} ({device}): {results[kind]:.2f} sequences/s ({cpu_seconds:.2f} CPU s/sequence), target "
              f"{args.target}, {args.num_shuffles} shuffles, batch {run.batch_size}, {run.num_seqs} sequences",
              flush=True)
    print("summary: " + ", ".join(f"{k} {v:.2f} seq/s" for k, v in results.items()))


if __name__ == "__main__":
    main()
