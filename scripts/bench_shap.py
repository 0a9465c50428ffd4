"""Benchmark DeepLIFT-SHAP: pairs/s (sequence × shuffled reference) for 2114-bp inputs, 20 dinucleotide-shuffled
references each, on the default-size BPNet (build_model with default BpnetParams: 64 filters × 8 dilated layers,
2114 -> 1000, one stranded task with two control tracks), on the CPU and on the GPU when one is visible, beside the
peer: tangermeme's ``deep_lift_shap`` (through bpnet-lite's wrapper, which registers BPNet's nonlinear ops) on
bpnet-lite's ``BPNet`` of the same size, on the same sequences, controls and references. Also times the
dinucleotide shuffles alone.

    python scripts/bench_shap.py [--num-seqs 8] [--batch-size 4] [--targets counts profile both]
                                 [--devices cpu gpu] [--peer-python PATH] [--threads 2] [--rounds 2]

The peer runs under its own interpreter (``--peer-python``, default ``$BPNETZ_PEER_PYTHON``; skipped, saying why,
when unset or absent) as ``scripts/peer_speed.py shap``: bpnetz never imports it. Both sides get the same random
sequences, the same control counts (the peer the input window, bpnetz its model's profile window and log(1 +
totals)), the same references (bpnetz's seeded shuffles, passed to the peer as a tensor), the same number of
threads (``--threads``: TensorFlow's intra- and inter-op pools, torch's intra- and inter-op threads) and the same
pairs per step (``--batch-size`` sequences × shuffles for bpnetz, as many pairs for tangermeme). Random weights
(speed and completeness do not depend on training). Rounds interleave bpnetz and the peer.

Per target: pairs/s after one untimed warm-up call per side (graph tracing), and the completeness error: the
largest |Σ attributions − (f(x) − mean f(refs))| over the sequences, absolute and relative to the mean
|f(x) − mean f(refs)|. f is each side's explained target: the peer's wrapper output with the references taking the
input's controls (as tangermeme pairs them); bpnetz's counts head, or its profile target with the softmax weights
held at the input's (bpnetz compares controls with zero: the control inputs enter the heads linearly, so the
sequence's attributions sum to f(x, c) − f(r, c)). ``both``: bpnetz's counts and profile from one pass (what
``bpnetz shap`` runs), the peer's two targets one after the other (it has no joint pass); pairs counted once.
bpnetz's time includes drawing the shuffles (on a thread beside the model); the peer gets them precomputed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
PEER_SCRIPT = SCRIPTS / "peer_speed.py"
TARGET_SETS = {"counts": ("counts",), "profile": ("profile",), "both": ("counts", "profile")}


def bench_shuffles(num_shuffles: int, length: int, n: int = 64) -> float:
    """Sequences/s of reference_shuffles (num_shuffles shuffles each), batches of n sequences."""
    from bpnetz.shap.shuffle import reference_shuffles

    codes = np.random.default_rng(0).integers(0, 4, size=(n, length)).astype(np.uint8)
    reference_shuffles(codes[:1], num_shuffles, 0, [0])  # load the compiled walk
    begin = time.perf_counter()
    reference_shuffles(codes, num_shuffles, 0, range(n))
    return n / (time.perf_counter() - begin)


@dataclass
class Inputs:
    """Random sequences and controls: the first ``n`` are timed, the rest (one batch) warm up."""

    codes: np.ndarray  # (N, L) uint8
    control: np.ndarray  # (N, 2, L) float32 control counts over the input window
    n: int
    output_len: int

    @property
    def onehot(self) -> np.ndarray:
        return np.eye(4, dtype=np.float32)[self.codes]

    def bias(self, rows: slice) -> dict[str, np.ndarray]:
        """bpnetz's control inputs: the control over the profile window, and log(1 + its totals)."""
        lo = (self.codes.shape[1] - self.output_len) // 2
        profile_bias = self.control[rows, :, lo:lo + self.output_len].transpose(0, 2, 1)
        return {"profile_bias": np.ascontiguousarray(profile_bias),
                "counts_bias": np.log1p(profile_bias.sum(axis=1))}


def make_inputs(n: int, warm: int, input_len: int, output_len: int) -> Inputs:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=(n + warm, input_len)).astype(np.uint8)
    control = rng.poisson(0.5, size=(n + warm, 2, input_len)).astype(np.float32)
    return Inputs(codes, control, n, output_len)


def build_explainer(seed: int = 0, params=None):
    """A BPNet (random weights; default: the default-size one) of a one-task stranded store with two control
    tracks, and its params."""
    import keras

    from bpnetz.config import BpnetParams
    from bpnetz.model.bpnet import build_model
    from bpnetz.shap.deeplift import DeepLiftExplainer
    from bpnetz.store.schema import StoreLayout, Track

    params = params or BpnetParams()
    tracks = [Track("plus", 0, "+", "plus.bw"), Track("minus", 0, "-", "minus.bw")]
    bias = [Track("ctl_plus", 0, "+", "c+.bw"), Track("ctl_minus", 0, "-", "c-.bw")]
    layout = StoreLayout(params.input_len, params.output_profile_len, 0, ["0"], tracks, bias)
    keras.utils.set_random_seed(seed)
    return DeepLiftExplainer(build_model(params, layout), 0, layout), params


def time_bpnetz(explainer, inputs: Inputs, targets: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Seconds and CPU seconds of ``explain`` on the timed sequences (after one untimed warm-up batch), and the
    projected attributions."""
    onehot, n = inputs.onehot, inputs.n
    warm = slice(n, len(onehot))
    explainer.explain(onehot[warm], inputs.bias(warm), targets=targets, num_shuffles=args.num_shuffles,
                      batch_size=args.batch_size, progress=False)
    begin, begin_cpu = time.perf_counter(), time.process_time()
    scores = explainer.explain(onehot[:n], inputs.bias(slice(0, n)), targets=targets, num_shuffles=args.num_shuffles,
                               batch_size=args.batch_size, progress=False)
    return {"seconds": time.perf_counter() - begin, "cpu_seconds": time.process_time() - begin_cpu,
            "sums": {t: scores[t][1].sum(axis=(1, 2), dtype=np.float64) for t in targets}}


def bpnetz_targets(model, onehot: np.ndarray, bias: dict[str, np.ndarray], weights: np.ndarray | None = None):
    """bpnetz's explained targets in numpy (float64): the counts head's log count, and Σ w·(z − mean z) over the
    flattened profile logits z, w = softmax of the inputs' own logits unless ``weights`` are given. Returns
    (counts, profile, w)."""
    out = model.predict({"sequence": onehot, **bias}, batch_size=32, verbose=0)
    z = np.asarray(out["profile"], np.float64).reshape(len(onehot), -1)
    if weights is None:
        weights = np.exp(z - z.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
    profile = (weights * (z - z.mean(axis=1, keepdims=True))).sum(axis=1)
    return np.asarray(out["logcounts"], np.float64)[:, 0], profile, weights


def references(inputs: Inputs, num_shuffles: int) -> np.ndarray:
    """(n, num_shuffles, L) codes: the shuffles ``explain`` draws for the timed sequences (seed, index i)."""
    from bpnetz.shap.options import DEFAULT_SEED
    from bpnetz.shap.shuffle import reference_shuffles

    return reference_shuffles(inputs.codes[:inputs.n], num_shuffles, DEFAULT_SEED, range(inputs.n))


def bpnetz_deltas(model, inputs: Inputs, refs: np.ndarray) -> dict[str, np.ndarray]:
    """f(x) − mean f(refs) per timed sequence and target, controls at the input's for both."""
    n, k = refs.shape[:2]
    bias = inputs.bias(slice(0, n))
    counts_x, profile_x, weights = bpnetz_targets(model, inputs.onehot[:n], bias)
    ref_bias = {name: np.repeat(values, k, axis=0) for name, values in bias.items()}
    onehot_refs = np.eye(4, dtype=np.float32)[refs.reshape(n * k, -1)]
    counts_r, profile_r, _ = bpnetz_targets(model, onehot_refs, ref_bias, np.repeat(weights, k, axis=0))
    return {"counts": counts_x - counts_r.reshape(n, k).mean(axis=1),
            "profile": profile_x - profile_r.reshape(n, k).mean(axis=1)}


def completeness(sums: np.ndarray, deltas: np.ndarray) -> tuple[float, float]:
    """max |Σ attributions − Δ| and that over mean |Δ|."""
    error = float(np.abs(sums - deltas).max())
    return error, error / max(float(np.abs(deltas).mean()), 1e-30)


def run_peer(python: str, mode: str, data: dict[str, np.ndarray], settings: dict, workdir: Path) -> dict:
    """Run ``peer_speed.py MODE`` under the peer's interpreter on an exported .npz; returns its output arrays.

    OpenMP threads wait passively (torch's default spinning made a 2-thread step 5x slower on a shared machine,
    measured for bench_quality.py)."""
    data_path, out_path = workdir / f"peer_{mode}_in.npz", workdir / f"peer_{mode}_out.npz"
    np.savez(data_path, settings=np.array(json.dumps(settings)), **data)
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_WAIT_POLICY="PASSIVE")
    subprocess.run([python, str(PEER_SCRIPT), mode, "--data", str(data_path), "--out", str(out_path)], env=env,
                   check=True)
    with np.load(out_path) as npz:
        return {k: npz[k] for k in npz.files}


def peer_python(path: str | None) -> tuple[str | None, str]:
    """The peer's interpreter, or None and the reason it is skipped."""
    if not path:
        return None, "no --peer-python and BPNETZ_PEER_PYTHON is unset"
    if not Path(path).is_file():
        return None, f"{path} does not exist"
    return path, ""


def peer_shap(python: str, inputs: Inputs, refs: np.ndarray, params, args: argparse.Namespace,
              workdir: Path) -> dict[str, dict]:
    """The peer's seconds and completeness per target (counts, profile)."""
    n = inputs.n
    settings = {"n_filters": params.syntax_module_params.filters,
                "n_layers": params.syntax_module_params.num_dilation_layers, "in_window": params.input_len,
                "out_window": params.output_profile_len, "threads": args.threads,
                "batch_size": args.batch_size * args.num_shuffles, "seed": 0, "targets": ["counts", "profile"]}
    out = run_peer(python, "shap", {"seq": inputs.codes[:n], "control": inputs.control[:n], "references": refs},
                   settings, workdir)
    return {t: {"seconds": float(out[f"{t}_seconds"]), "cpu_seconds": float(out[f"{t}_cpu_seconds"]),
                "completeness": completeness(out[f"{t}_attribution_sum"], out[f"{t}_f_x"] - out[f"{t}_f_refs"])}
            for t in ("counts", "profile")}


def load() -> str:
    """The 1-minute load average, as `uptime` shows it."""
    return f"{os.getloadavg()[0]:.2f}"


def one_round(explainer, inputs: Inputs, refs: np.ndarray, params, args: argparse.Namespace, python: str | None,
              workdir: Path) -> dict:
    """bpnetz then the peer; pairs/s per target set and the peer's completeness."""
    pairs = inputs.n * args.num_shuffles
    row: dict = {"load_before": load(), "bpnetz": {}, "peer": {}}
    for name in args.targets:
        timing = time_bpnetz(explainer, inputs, TARGET_SETS[name], args)
        row["bpnetz"][name] = {"pairs_per_s": pairs / timing["seconds"],
                               "pairs_per_cpu_s": pairs / timing["cpu_seconds"], "sums": timing["sums"]}
    if python:
        peer = peer_shap(python, inputs, refs, params, args, workdir)
        for name in args.targets:
            row["peer"][name] = {"pairs_per_s": pairs / sum(peer[t]["seconds"] for t in TARGET_SETS[name]),
                                 "pairs_per_cpu_s": pairs / sum(peer[t]["cpu_seconds"] for t in TARGET_SETS[name])}
        row["peer_completeness"] = {t: peer[t]["completeness"] for t in ("counts", "profile")}
    row["load_after"] = load()
    return row


def bpnetz_completeness(rows: list[dict], deltas: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Worst completeness error of bpnetz per target over every timed run."""
    worst: dict[str, tuple[float, float]] = {}
    for row in rows:
        for result in row["bpnetz"].values():
            for target, sums in result["sums"].items():
                error = completeness(sums, deltas[target])
                worst[target] = max(worst.get(target, (0.0, 0.0)), error)
    return worst


def cpu_comparison(args: argparse.Namespace, python: str | None, workdir: Path) -> dict:
    """Rounds of bpnetz and the peer on the CPU, printed as they end; returns the figures."""
    explainer, params = build_explainer()
    inputs = make_inputs(args.num_seqs, args.batch_size, params.input_len, params.output_profile_len)
    refs = references(inputs, args.num_shuffles)
    print(f"cpu: {inputs.n} sequences × {args.num_shuffles} shuffles = {inputs.n * args.num_shuffles} pairs, "
          f"{params.syntax_module_params.filters} filters × {params.syntax_module_params.num_dilation_layers} "
          f"dilated layers, {params.input_len} -> {params.output_profile_len} bp, {args.threads} threads each, "
          f"{args.batch_size * args.num_shuffles} pairs per step", flush=True)
    rows = []
    for r in range(args.rounds):
        rows.append(one_round(explainer, inputs, refs, params, args, python, workdir))
        print(format_round(r + 1, rows[-1]), flush=True)
    deltas = bpnetz_deltas(explainer.model, inputs, refs)
    result = {"rounds": [without_sums(row) for row in rows], "bpnetz_completeness": bpnetz_completeness(rows, deltas)}
    if python:
        result["peer_completeness"] = {t: max(row["peer_completeness"][t] for row in rows)
                                       for t in ("counts", "profile")}
    for target, (absolute, relative) in result["bpnetz_completeness"].items():
        peer = result.get("peer_completeness", {}).get(target)
        peer_text = f"; peer {peer[0]:.2e} ({peer[1]:.2e})" if peer else ""
        print(f"completeness {target}: max |Σ attributions − (f(x) − mean f(refs))| bpnetz {absolute:.2e} "
              f"(relative {relative:.2e}){peer_text}", flush=True)
    return result


def without_sums(row: dict) -> dict:
    ours = {name: {k: v for k, v in res.items() if k != "sums"} for name, res in row["bpnetz"].items()}
    return {**row, "bpnetz": ours}


def format_round(number: int, row: dict) -> str:
    parts = []
    for name, ours in row["bpnetz"].items():
        text = f"  {name}: bpnetz {ours['pairs_per_s']:.1f} pairs/s ({ours['pairs_per_cpu_s']:.1f} per CPU-s)"
        if name in row["peer"]:
            theirs = row["peer"][name]
            text += (f", tangermeme/bpnet-lite {theirs['pairs_per_s']:.1f} pairs/s ({theirs['pairs_per_cpu_s']:.1f} "
                     f"per CPU-s) -> {ours['pairs_per_s'] / theirs['pairs_per_s']:.2f}x "
                     f"({ours['pairs_per_cpu_s'] / theirs['pairs_per_cpu_s']:.2f}x per CPU-s)")
        parts.append(text)
    return "\n".join([f"round {number} (load {row['load_before']} -> {row['load_after']}):", *parts])


def gpu_figure(args: argparse.Namespace) -> None:
    """Pairs/s of ``explain`` (counts and profile in one pass) on the first visible GPU, or why not."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        print("gpu: none visible, skipped")
        return
    with tf.device(gpus[0].name):
        explainer, params = build_explainer()
        inputs = make_inputs(args.gpu_num_seqs, args.gpu_batch_size, params.input_len, params.output_profile_len)
        run = argparse.Namespace(**{**vars(args), "batch_size": args.gpu_batch_size})
        timing = time_bpnetz(explainer, inputs, TARGET_SETS["both"], run)
    pairs = inputs.n * args.num_shuffles
    print(f"gpu ({gpus[0].name}): {pairs / timing['seconds']:.1f} pairs/s, counts and profile, "
          f"batch {args.gpu_batch_size}, {inputs.n} sequences")


def add_peer_options(parser: argparse.ArgumentParser, rounds: str) -> None:
    """The options of a side-by-side benchmark (this one and ``bench_predict.py``): the peer's interpreter, the
    CPU threads of each side, the rounds (``rounds`` names them in the help) and the JSON output."""
    parser.add_argument("--peer-python", default=os.environ.get("BPNETZ_PEER_PYTHON"),
                        help="interpreter with bpnet-lite and tangermeme (default $BPNETZ_PEER_PYTHON)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads of each side")
    parser.add_argument("--rounds", type=int, default=2, help=f"{rounds}, bpnetz then the peer in each (2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")


def set_tf_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op pools, both ``threads`` (the peer's torch gets the same)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-seqs", type=int, default=8, help="timed sequences on the CPU (default 8)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per step (default 4)")
    parser.add_argument("--gpu-num-seqs", type=int, default=512, help="timed sequences on a GPU (default 512)")
    parser.add_argument("--gpu-batch-size", type=int, default=32, help="sequences per step on a GPU (default 32)")
    parser.add_argument("--num-shuffles", type=int, default=20)
    parser.add_argument("--targets", nargs="+", choices=list(TARGET_SETS), default=["counts", "profile", "both"])
    parser.add_argument("--devices", nargs="+", choices=["cpu", "gpu"], default=["cpu", "gpu"])
    add_peer_options(parser, "CPU rounds")
    args = parser.parse_args(argv)
    set_tf_threads(args.threads)
    results: dict = {"shuffles_seq_per_s": bench_shuffles(args.num_shuffles, 2114), "threads": args.threads}
    print(f"dinucleotide shuffles: {results['shuffles_seq_per_s']:.0f} sequences/s ({args.num_shuffles} shuffles "
          "of 2114 bp each)", flush=True)
    python, why = peer_python(args.peer_python)
    if python is None:
        print(f"peer (tangermeme deep_lift_shap on bpnet-lite's BPNet): skipped, {why}", flush=True)
    if "cpu" in args.devices:
        with tempfile.TemporaryDirectory() as tmp:
            results["cpu"] = cpu_comparison(args, python, Path(tmp))
    if "gpu" in args.devices:
        gpu_figure(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
