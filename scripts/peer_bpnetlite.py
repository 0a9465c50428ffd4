#!/usr/bin/env python
"""Train and apply a bpnet-lite BPNet on loci exported by ``scripts/bench_quality.py`` (the benchmark's peer).

Runs under a separate interpreter that has ``bpnet-lite`` and torch installed (e.g. ``/work/peer-venv/bin/python``:
torch for the CPU, tangermeme, then bpnet-lite 1.1.0 with ``pip install --no-deps``, which skips MACS3, bam2bw and
modisco, none of which training or prediction imports); bpnetz never imports bpnet-lite. Everything goes
through two ``.npz`` files:

input (``--data``), written by bench_quality.py from the bpnetz store, channels first as bpnet-lite expects:

- ``train_peak_seq`` (n, in + 2·mj) uint8 base codes A=0 C=1 G=2 T=3 N=4, ``train_peak_signal`` (n, 2,
  out + 2·mj) counts, ``train_peak_control`` (n, 2, in + 2·mj) control counts: windows widened by the jitter
  budget, as bpnet-lite's ``PeakNegativeSampler`` wants them (it draws one offset in [0, 2·mj) per example);
- ``train_bg_*``: background loci at the exact in/out widths (bpnet-lite never jitters negatives);
- ``val_*`` and ``test_*``: exact widths, no jitter (``test_signal`` is not needed);
- ``settings``: a JSON string (in_window, out_window, max_jitter, negative_ratio, n_filters, n_layers, epochs,
  batch_size, lr, early_stopping, seed, threads, count_loss_weight or null for bpnet-lite's own default).

output (``--out``): ``test_logits`` (n, 2, out) profile logits (one softmax over both strands), ``test_logcounts``
(n,) bpnet-lite's predicted log(1 + total count), and ``history`` (JSON string: per-epoch log, best epoch,
training seconds, the count loss weight used).

Training follows bpnet-lite's own ``bpnet fit`` recipe: Adam (lr 0.001), ReduceLROnPlateau(factor 0.5, patience
5, min lr 1e-4), reverse-complement augmentation, count loss weight = mean per-strand reads of the training
peaks, the best model (lowest validation loss) kept. The caller sets the epoch budget and the negative ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def one_hot_channels_first(codes: np.ndarray):
    """(..., L) base codes -> (..., 4, L) float32 torch tensor, N (code 4) all zero."""
    import torch

    table = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(table[codes], -1, -2)))


def read_exchange(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays of an .npz written by a bpnetz benchmark for the peer, and its ``settings`` (JSON)."""
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    return data, json.loads(str(data.pop("settings")))


def tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def train_and_predict(data: dict[str, np.ndarray], settings: dict, workdir: Path) -> dict[str, np.ndarray]:
    """Fit a BPNet with bpnet-lite on the exported loci and predict the test loci with its best weights."""
    import torch
    from bpnetlite.bpnet import BPNet
    from bpnetlite.io import PeakNegativeSampler
    from tangermeme.predict import predict

    torch.manual_seed(settings["seed"])
    torch.set_num_threads(settings["threads"])
    weight = settings.get("count_loss_weight")
    if weight is None:  # bpnet-lite's default (its `bpnet fit` command): mean per-strand reads of training peaks
        weight = float(data["train_peak_signal"].sum(axis=-1).mean())
    sampler = PeakNegativeSampler(
        peak_sequences=one_hot_channels_first(data["train_peak_seq"]),
        peak_signals=tensor(data["train_peak_signal"]), peak_controls=tensor(data["train_peak_control"]),
        negative_sequences=one_hot_channels_first(data["train_bg_seq"]),
        negative_signals=tensor(data["train_bg_signal"]), negative_controls=tensor(data["train_bg_control"]),
        negative_ratio=settings["negative_ratio"], in_window=settings["in_window"],
        out_window=settings["out_window"], max_jitter=settings["max_jitter"], reverse_complement=True,
        shuffle=True, random_state=settings["seed"])
    loader = torch.utils.data.DataLoader(sampler, batch_size=settings["batch_size"], num_workers=0)
    name = str(workdir / "bpnetlite")
    model = BPNet(n_filters=settings["n_filters"], n_layers=settings["n_layers"], n_outputs=2, n_control_tracks=2,
                  count_loss_weight=weight, trimming=(settings["in_window"] - settings["out_window"]) // 2,
                  name=name, verbose=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5, threshold=1e-4,
                                                           min_lr=1e-4)
    began = time.perf_counter()
    model.fit(loader, optimizer, scheduler, X_valid=one_hot_channels_first(data["val_seq"]),
              X_ctl_valid=tensor(data["val_control"]), y_valid=tensor(data["val_signal"]),
              max_epochs=settings["epochs"], batch_size=settings["batch_size"], device="cpu",
              early_stopping=settings["early_stopping"])
    seconds = time.perf_counter() - began
    best = torch.load(f"{name}.torch", weights_only=False)  # fit keeps the last weights; it saved the best here
    best.eval()
    with torch.no_grad():
        logits, logcounts = predict(best, one_hot_channels_first(data["test_seq"]),
                                    args=(tensor(data["test_control"]),), batch_size=settings["batch_size"],
                                    device="cpu")
    log = {k: [v.item() if hasattr(v, "item") else v for v in values] for k, values in model.logger.data.items()}
    saved = [i for i, flag in enumerate(log.get("Saved?", [])) if flag]
    history = {"log": log, "epochs_run": len(log.get("Epoch", [])), "best_epoch": saved[-1] + 1 if saved else None,
               "train_seconds": seconds, "count_loss_weight": weight,
               "n_train_peaks": int(len(data["train_peak_seq"])), "n_train_background": int(len(data["train_bg_seq"])),
               "examples_per_epoch": len(sampler)}
    return {"test_logits": logits.numpy().astype(np.float32),
            "test_logcounts": logcounts.numpy().reshape(-1).astype(np.float32),
            "history": np.array(json.dumps(history))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="input .npz written by bench_quality.py")
    parser.add_argument("--out", type=Path, required=True, help="output .npz (predictions and history)")
    parser.add_argument("--workdir", type=Path, required=True, help="where bpnet-lite writes its model and log")
    args = parser.parse_args()
    data, settings = read_exchange(args.data)
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = train_and_predict(data, settings, args.workdir)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, **result)
    tmp.rename(args.out)
    history = json.loads(str(result["history"]))
    print(f"bpnet-lite: {history['epochs_run']} epochs (best {history['best_epoch']}) in "
          f"{history['train_seconds']:.0f} s, count loss weight {history['count_loss_weight']:.4g}; "
          f"{len(result['test_logcounts'])} test loci predicted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
