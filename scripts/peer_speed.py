#!/usr/bin/env python
"""Speed of bpnet-lite's BPNet under tangermeme (the peer of ``scripts/bench_shap.py`` and
``scripts/bench_predict.py``), on inputs the bpnetz side exported.

Runs under a separate interpreter that has ``bpnet-lite``, ``tangermeme`` and torch installed (e.g.
``/work/peer-venv/bin/python``); bpnetz never imports either. Everything goes through two ``.npz`` files.

input (``--data``), channels first as bpnet-lite expects:

- ``seq`` (n, L) uint8 base codes A=0 C=1 G=2 T=3 N=4; ``control`` (n, 2, L) control counts over the input
  window (bpnet-lite's ``X_ctl``);
- ``shap`` mode: ``references`` (n, k, L) uint8 codes, the dinucleotide shuffles bpnetz drew for each sequence;
- ``predict`` mode, optionally: ``bed`` (a path) plus ``fasta`` and ``control_bigwigs`` (JSON list): the same loci
  read end to end with tangermeme's ``extract_loci``;
- ``settings``: a JSON string (n_filters, n_layers, in_window, out_window, threads, batch_size, seed, targets;
  ``predict`` mode also batch_sizes and probe: the sizes tried for the peer's fastest, on that many examples).

output (``--out``): per measured thing, its wall and process CPU seconds and examples; for ``shap``, per
target, the sum of each sequence's attributions, f(x) and the mean of f over its references (controls held at
the input's, as tangermeme pairs them), so the caller computes the completeness error.

Threads: ``torch.set_num_threads(threads)`` and as many inter-op threads, before any work.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from peer_bpnetlite import one_hot_channels_first, read_exchange  # the peer venv's helpers, one copy


def build_model(settings: dict):
    import torch
    from bpnetlite.bpnet import BPNet

    torch.manual_seed(settings["seed"])
    model = BPNet(n_filters=settings["n_filters"], n_layers=settings["n_layers"], n_outputs=2, n_control_tracks=2,
                  trimming=(settings["in_window"] - settings["out_window"]) // 2, verbose=False)
    return model.eval()


def timed(function, *args, **kwargs):
    """(result, wall seconds, process CPU seconds) of one call."""
    began, began_cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - began, time.process_time() - began_cpu


def shap(data: dict, settings: dict) -> dict[str, np.ndarray]:
    """bpnet-lite's ``deep_lift_shap`` (tangermeme's, with BPNet's nonlinear ops registered) per target, after
    one untimed warm-up call on the first sequence; references are bpnetz's, passed as a tensor."""
    import torch
    from bpnetlite.attribute import deep_lift_shap
    from bpnetlite.bpnet import CountWrapper, ProfileWrapper

    model = build_model(settings)
    X, control = one_hot_channels_first(data["seq"]), torch.from_numpy(data["control"])
    references = one_hot_channels_first(data["references"])
    out: dict[str, np.ndarray] = {}
    for target in settings["targets"]:
        wrapper = (CountWrapper if target == "counts" else ProfileWrapper)(model).eval()
        kwargs = {"batch_size": settings["batch_size"], "device": "cpu", "warning_threshold": float("inf")}
        deep_lift_shap(wrapper, X[:1], args=(control[:1],), references=references[:1], **kwargs)
        attributions, seconds, cpu = timed(deep_lift_shap, wrapper, X, args=(control,), references=references,
                                           **kwargs)
        out[f"{target}_seconds"], out[f"{target}_cpu_seconds"] = np.array(seconds), np.array(cpu)
        out[f"{target}_attribution_sum"] = attributions.sum(dim=(1, 2)).double().numpy()
        out[f"{target}_f_x"], out[f"{target}_f_refs"] = target_values(wrapper, X, control, references)
    return out


def target_values(wrapper, X, control, references) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and the mean of f over each sequence's references (controls as the input's), float64."""
    import torch

    n, k = references.shape[:2]
    with torch.no_grad():
        f_x = wrapper(X, control).reshape(n).double().numpy()
        f_r = np.stack([wrapper(references[i], control[i:i + 1].expand(k, -1, -1)).reshape(k).double().numpy()
                        for i in range(n)])
    return f_x, f_r.mean(axis=1)


def forward(model, X, control, batch_size: int, rc: bool):
    """Profile logits and log counts of every example; ``rc``: averaged with the reverse complement's, mapped
    back (positions reversed, strands swapped), as ``bpnetz predict --reverse-complement-average`` does."""
    import torch
    from tangermeme.predict import predict

    logits, logcounts = predict(model, X, args=(control,), batch_size=batch_size, device="cpu")
    if rc:
        rc_logits, rc_counts = predict(model, torch.flip(X, dims=(1, 2)), args=(torch.flip(control, dims=(1, 2)),),
                                       batch_size=batch_size, device="cpu")
        logits, logcounts = (logits + torch.flip(rc_logits, dims=(1, 2))) / 2, (logcounts + rc_counts) / 2
    return logits, logcounts


def predict_speed(data: dict, settings: dict) -> dict[str, np.ndarray]:
    """Seconds of the forward pass alone (in-memory tensors; with and without RC averaging), and end to end from
    the FASTA and control bigWigs (tangermeme's ``extract_loci`` + the RC-averaged forward) when a BED is given;
    all at ``batch_size``, and again at the fastest of ``batch_sizes`` (RC-averaged forward timed at each on the
    first ``probe`` examples) so the peer is also shown at its best."""
    import torch

    model = build_model(settings)
    X, control = one_hot_channels_first(data["seq"]), torch.from_numpy(data["control"])
    batch = settings["batch_size"]
    with torch.no_grad():
        forward(model, X[:batch], control[:batch], batch, rc=True)  # warm-up
        out = {"n": np.array(len(X))}
        (logits, logcounts), out["forward_rc_seconds"], out["forward_rc_cpu_seconds"] = timed(
            forward, model, X, control, batch, rc=True)
        _, out["forward_seconds"], out["forward_cpu_seconds"] = timed(forward, model, X, control, batch, rc=False)
        out["logcounts_rc"] = logcounts.numpy().reshape(-1)
        fastest = fastest_batch(model, X[:settings["probe"]], control[:settings["probe"]], settings["batch_sizes"])
        out["fastest_batch"] = np.array(fastest)
        _, out["forward_rc_fastest_seconds"], out["forward_rc_fastest_cpu_seconds"] = timed(
            forward, model, X, control, fastest, rc=True)
        if "bed" in data:
            out.update(end_to_end(model, data, settings, batch))
            out.update({f"{k}_fastest": v for k, v in end_to_end(model, data, settings, fastest).items()})
    return out


def fastest_batch(model, X, control, sizes: list[int]) -> int:
    """The batch size of the fastest RC-averaged forward pass over these examples (each size warmed up once)."""
    seconds = {}
    for size in sizes:
        forward(model, X[:size], control[:size], size, rc=True)
        seconds[size] = timed(forward, model, X, control, size, rc=True)[1]
    return min(seconds, key=seconds.get)


def end_to_end(model, data: dict, settings: dict, batch: int) -> dict[str, np.ndarray]:
    from tangermeme.io import extract_loci

    began, began_cpu = time.perf_counter(), time.process_time()
    X, control = extract_loci(str(data["bed"]), str(data["fasta"]), in_signals=json.loads(str(data["control_bigwigs"])),
                              in_window=settings["in_window"], out_window=settings["out_window"],
                              n_jobs=settings["threads"])
    forward(model, X.float(), control.float(), batch, rc=True)
    return {"end_to_end_seconds": np.array(time.perf_counter() - began),
            "end_to_end_cpu_seconds": np.array(time.process_time() - began_cpu), "end_to_end_n": np.array(len(X))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["shap", "predict"])
    parser.add_argument("--data", type=Path, required=True, help="input .npz written by the bench script")
    parser.add_argument("--out", type=Path, required=True, help="output .npz")
    args = parser.parse_args()
    data, settings = read_exchange(args.data)
    import torch

    torch.set_num_threads(settings["threads"])
    torch.set_num_interop_threads(settings["threads"])
    result = (shap if args.mode == "shap" else predict_speed)(data, settings)
    result["torch_version"] = np.array(torch.__version__)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, **result)
    tmp.rename(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
