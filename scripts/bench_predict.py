#!/usr/bin/env python
"""Prediction speed: examples/s of ``bpnetz predict`` (reverse-complement averaged, with controls) on a store and
on ``--regions`` (BED + FASTA + control bigWigs), beside bpnet-lite's ``BPNet`` of the same size (64 filters × 8
dilated layers, 2114 -> 1000, one stranded task, two control tracks) on the same loci, in one run.

    python scripts/bench_predict.py [--loci 512] [--workdir DIR] [--peer-python PATH] [--threads 2] [--rounds 2]

The experiment is ``bpnetz simulate``d and built by ``scripts/bench_gpu.py``'s ``make_store`` (3 × 1 Mb, 2,400
bound regions) in ``--workdir`` (reused when its store exists); the model is the default-size BPNet with random
weights (speed does not depend on training), saved as a model directory. The first ``--loci`` peaks (in the
order ``bpnetz predict`` visits them) are predicted:

- ``bpnetz predict`` on the store (``--split all``, their positions as ``--test-indices``) and on ``--regions``
  (a BED of their output windows; the tiles are the same windows), in-process through :func:`bpnetz.predict`:
  the time of the call (model load, graph tracing, reading, the model, metrics, writing outputs; no Python or
  TensorFlow start-up);
- the bpnetz model's forward pass alone on the same inputs in memory (``rc_average`` as ``predict`` calls it, and
  without RC averaging), after one untimed warm-up batch;
- the peer (``scripts/peer_speed.py predict`` under ``--peer-python``, default ``$BPNETZ_PEER_PYTHON``; skipped,
  saying why, when absent): bpnet-lite's ``BPNet`` through tangermeme's ``predict`` on the same sequences and
  controls in memory, with RC averaging (the reverse complement's outputs mapped back and averaged, as bpnetz
  does) and without; and end to end from the same BED, FASTA and control bigWigs (tangermeme's ``extract_loci``,
  then the RC-averaged forward pass; nothing written). All at ``--batch-size``, and the RC-averaged figures again
  at the peer's fastest batch size among :data:`PEER_BATCH_SIZES` (torch on a CPU, like bpnetz's cache-sized
  calls, runs faster in small calls), so that bpnetz is also compared with the peer tuned to its best.

Both sides use ``--threads`` threads (TensorFlow's intra- and inter-op pools; torch's intra- and inter-op
threads) and batches of ``--batch-size``. Rounds interleave bpnetz and the peer; the load is printed per round.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

from bench_gpu import make_store  # noqa: E402  (simulate + build, one copy)
from bench_quality import peer_arrays  # noqa: E402  (sequences and input-window controls of store rows)
from bench_shap import add_peer_options, load, peer_python, run_peer, set_tf_threads  # noqa: E402


def model_directory(store: Path, directory: Path) -> Path:
    """A model directory of the default-size BPNet (random weights) for the store, as ``bpnetz train`` lays
    it out (model.keras, bpnet_params.json, splits.json, store.json)."""
    import keras

    from bpnetz.config import BpnetParams, Split
    from bpnetz.model.bpnet import build_model
    from bpnetz.model.contract import MODEL_FILE, write_fold_records
    from bpnetz.store.reader import StoreReader

    model_dir = directory / "model_split000"
    if (model_dir / MODEL_FILE).is_file():
        return model_dir
    reader = StoreReader(store)
    chroms = list(reader.chromosomes)
    params = BpnetParams()
    keras.utils.set_random_seed(0)
    model_dir.mkdir(parents=True)
    build_model(params, reader.layout).save(model_dir / MODEL_FILE)
    fold = Split(train=chroms[2:], val=chroms[1:2], test=chroms[:1])
    write_fold_records(model_dir, "0", fold, params.to_json(), reader)
    return model_dir


def chosen_rows(store: Path, n: int) -> np.ndarray:
    """Store rows of the first ``n`` peaks in the order ``bpnetz predict --split all`` visits them."""
    from bpnetz.store.reader import StoreReader
    from bpnetz.store.stream import LocusStream

    reader = StoreReader(store)
    stream = LocusStream(reader, None, "all", batch_size=64, all_chroms=list(reader.chromosomes), jitter=False,
                         shuffle=False, reverse_complement="none", backgrounds="none")
    rows = stream.loci()["row"].to_numpy()
    if len(rows) < n:
        raise SystemExit(f"error: the store has {len(rows)} peaks, fewer than --loci {n}.")
    return rows[:n]


class Case:
    """The predicted loci: store rows, sequences and controls in memory, the BED of their output windows."""

    def __init__(self, directory: Path, store: Path, n: int):
        from bpnetz.store.reader import StoreReader

        reader = StoreReader(store)
        self.layout = reader.layout
        self.rows = chosen_rows(store, n)
        arrays = peer_arrays(reader, self.rows, "x", widened=False)
        self.codes, self.control = arrays["x_seq"], arrays["x_control"]
        loci = reader.loci.iloc[self.rows]
        self.bed = directory / f"regions_{n}.bed"
        half = self.layout.output_len // 2
        with self.bed.open("w") as f:
            for chrom, summit in zip(loci["chrom"], loci["summit"]):
                f.write(f"{chrom}\t{int(summit) - half}\t{int(summit) - half + self.layout.output_len}\n")
        experiment = directory / "experiment"
        self.fasta, self.sizes = experiment / "genome.fa", experiment / "chrom.sizes"
        self.control_bigwigs = [str(experiment / t.source) for t in self.layout.bias_tracks]

    def bpnetz_inputs(self) -> dict[str, np.ndarray]:
        """The model's inputs: one-hot sequence, control over the profile window and log(1 + its totals)."""
        lo = (self.layout.input_len - self.layout.output_len) // 2
        profile_bias = np.ascontiguousarray(self.control[:, :, lo:lo + self.layout.output_len].transpose(0, 2, 1))
        return {"sequence": np.eye(4, dtype=np.float32)[self.codes], "profile_bias": profile_bias,
                "counts_bias": np.log1p(profile_bias.sum(axis=1))}


def rate(examples: int, seconds: float, cpu_seconds: float) -> dict:
    return {"examples": int(examples), "per_s": examples / seconds, "per_cpu_s": examples / cpu_seconds}


def time_predict(model_dir: Path, out_dir: Path, options) -> dict:
    """The rate of one in-process ``bpnetz predict``."""
    from bpnetz.predict.predict import predict

    began, began_cpu = time.perf_counter(), time.process_time()
    summary = predict(model_dir, out_dir, options)
    return rate(summary.n_examples, time.perf_counter() - began, time.process_time() - began_cpu)


def bpnetz_end_to_end(model_dir: Path, store: Path, case: Case, args: argparse.Namespace, out: Path) -> dict:
    """Examples/s of ``bpnetz predict --reverse-complement-average`` on the store and on ``--regions``."""
    from bpnetz.predict.options import PredictOptions

    common = {"store": store, "reverse_complement_average": True, "batch_size": args.batch_size, "progress": False}
    store_rate = time_predict(model_dir, out / "store", PredictOptions(
        split="all", test_indices=list(range(len(case.rows))), **common))
    regions_rate = time_predict(model_dir, out / "regions", PredictOptions(
        regions=case.bed, reference_genome=case.fasta, chrom_sizes=case.sizes, **common))
    return {"store": store_rate, "regions": regions_rate}


def bpnetz_forward(model, case: Case, batch: int) -> dict:
    """Examples/s of the model's forward pass alone on inputs in memory, RC-averaged and not."""
    from bpnetz.predict.inference import model_predict_fn, predict_batch

    predict_fn, inputs = model_predict_fn(model), case.bpnetz_inputs()
    n = len(case.rows)
    result = {}
    for rc in (True, False):
        def run(lo: int, hi: int) -> None:
            predict_batch(predict_fn, {k: v[lo:hi] for k, v in inputs.items()}, case.layout,
                          reverse_complement_average=rc, set_bias_as_zero=False)

        run(0, batch)  # tracing
        began, began_cpu = time.perf_counter(), time.process_time()
        for lo in range(0, n, batch):
            run(lo, min(lo + batch, n))
        result["forward_rc" if rc else "forward"] = rate(n, time.perf_counter() - began,
                                                         time.process_time() - began_cpu)
    return result


def peer_figures(python: str, case: Case, args: argparse.Namespace, workdir: Path) -> dict:
    from bpnetz.config import BpnetParams

    params = BpnetParams()
    settings = {"n_filters": params.syntax_module_params.filters,
                "n_layers": params.syntax_module_params.num_dilation_layers, "in_window": params.input_len,
                "out_window": params.output_profile_len, "threads": args.threads, "batch_size": args.batch_size,
                "seed": 0, "batch_sizes": PEER_BATCH_SIZES, "probe": min(64, len(case.rows))}
    out = run_peer(python, "predict", {"seq": case.codes, "control": case.control, "bed": np.array(str(case.bed)),
                                       "fasta": np.array(str(case.fasta)),
                                       "control_bigwigs": np.array(json.dumps(case.control_bigwigs))},
                   settings, workdir)
    n = int(out["n"])
    return {"forward_rc": rate(n, float(out["forward_rc_seconds"]), float(out["forward_rc_cpu_seconds"])),
            "forward": rate(n, float(out["forward_seconds"]), float(out["forward_cpu_seconds"])),
            "end_to_end": rate(int(out["end_to_end_n"]), float(out["end_to_end_seconds"]),
                               float(out["end_to_end_cpu_seconds"])),
            "fastest_batch": int(out["fastest_batch"]),
            "forward_rc_fastest": rate(n, float(out["forward_rc_fastest_seconds"]),
                                       float(out["forward_rc_fastest_cpu_seconds"])),
            "end_to_end_fastest": rate(int(out["end_to_end_n_fastest"]), float(out["end_to_end_seconds_fastest"]),
                                       float(out["end_to_end_cpu_seconds_fastest"]))}


#: batch sizes the peer is timed at for its fastest (torch on a CPU, like bpnetz, runs faster in small calls)
PEER_BATCH_SIZES = [4, 8, 16, 32]
#: (label, bpnetz figure, peer figure) of each printed comparison; "*_fastest": the peer at its fastest batch size
COMPARISONS = (("predict on the store, RC-averaged", "store", "end_to_end"),
               ("  ... bpnet-lite at its fastest batch", "store", "end_to_end_fastest"),
               ("predict --regions, RC-averaged", "regions", "end_to_end"),
               ("  ... bpnet-lite at its fastest batch", "regions", "end_to_end_fastest"),
               ("forward pass in memory, RC-averaged", "forward_rc", "forward_rc"),
               ("  ... bpnet-lite at its fastest batch", "forward_rc", "forward_rc_fastest"),
               ("forward pass in memory, no RC", "forward", "forward"))


def format_round(number: int, row: dict) -> str:
    lines = [f"round {number} (load {row['load_before']} -> {row['load_after']}):"]
    for label, ours, theirs in COMPARISONS:
        mine = row["bpnetz"][ours]
        text = (f"  {label}: bpnetz {mine['per_s']:.1f} examples/s ({mine['per_cpu_s']:.1f} per CPU-s, "
                f"{mine['examples']})")
        if row.get("peer"):
            peer = row["peer"][theirs]
            batch = f" (batch {row['peer']['fastest_batch']})" if theirs.endswith("_fastest") else ""
            text += (f", bpnet-lite{batch} {peer['per_s']:.1f} examples/s ({peer['per_cpu_s']:.1f} per CPU-s, "
                     f"{peer['examples']}) -> {mine['per_s'] / peer['per_s']:.2f}x "
                     f"({mine['per_cpu_s'] / peer['per_cpu_s']:.2f}x per CPU-s)")
        lines.append(text)
    return "\n".join(lines)


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path, Case]:
    store = workdir / "store.zarr"
    if not store.exists():
        print("simulating and building the store (3 × 1 Mb, 2114/1000 bp) ...", flush=True)
        make_store(workdir, smoke=False)
    return store, model_directory(store, workdir), Case(workdir, store, args.loci)


def rounds(args: argparse.Namespace, workdir: Path, python: str | None) -> list[dict]:
    from bpnetz.model.registry import load_model

    store, model_dir, case = prepare(args, workdir)
    model = load_model(model_dir / "model.keras", compile=False)
    print(f"{len(case.rows)} peaks, default BPNet (64 filters × 8 dilated layers, 2114 -> 1000, 2 control tracks), "
          f"batch {args.batch_size}, {args.threads} threads each side", flush=True)
    rows = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            row = {"load_before": load()}
            row["bpnetz"] = {**bpnetz_end_to_end(model_dir, store, case, args, Path(tmp)),
                             **bpnetz_forward(model, case, args.batch_size)}
            row["peer"] = peer_figures(python, case, args, Path(tmp)) if python else None
            row["load_after"] = load()
        rows.append(row)
        print(format_round(r + 1, row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loci", type=int, default=512, help="peaks predicted (default 512)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per batch, both sides (64)")
    parser.add_argument("--workdir", type=Path, help="keep the experiment, store and model here (reused)")
    add_peer_options(parser, "rounds")
    args = parser.parse_args(argv)
    set_tf_threads(args.threads)
    python, why = peer_python(args.peer_python)
    if python is None:
        print(f"peer (bpnet-lite's BPNet through tangermeme): skipped, {why}", flush=True)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = rounds(args, args.workdir.absolute(), python)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = rounds(args, Path(tmp), python)
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "rounds": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
