"""Reverse-complement averaging of model predictions (``--reverse-complement-average``).

The model sees a sequence and its reverse complement; the prediction for the reverse complement is mapped back
to the forward orientation (positions reversed, + and − tracks swapped) and the two are averaged, logits and log
counts alike. Works on plain numpy arrays with any callable model, following the model I/O contract: inputs
``sequence`` (B, input_len, 4) one-hot in A, C, G, T order, optional ``profile_bias`` (B, output_len, n_bias) and
``counts_bias`` (B, n_bias); outputs ``profile`` (B, output_len, n_tracks) logits and ``logcounts`` (B, n_tasks)
or (B, n_tracks) with orig_multi_loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from bpnetz.genome.sequence import reverse_complement_onehot
from bpnetz.store.schema import StoreLayout

PredictFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


def reverse_complement_bias(bias_inputs: Mapping[str, np.ndarray], store_layout: StoreLayout) -> dict[str, np.ndarray]:
    """Bias inputs of the reverse-complement strand: profile bias reversed and strand-swapped, counts bias
    strand-swapped (a log total does not depend on orientation)."""
    perm = store_layout.strand_swap(store_layout.bias_tracks)
    out: dict[str, np.ndarray] = {}
    if "profile_bias" in bias_inputs:
        out["profile_bias"] = np.asarray(bias_inputs["profile_bias"])[:, ::-1][:, :, perm]
    if "counts_bias" in bias_inputs:
        out["counts_bias"] = np.asarray(bias_inputs["counts_bias"])[:, perm]
    return out


def map_back(outputs: Mapping[str, np.ndarray], store_layout: StoreLayout) -> dict[str, np.ndarray]:
    """Map outputs predicted for reverse-complement inputs to the forward orientation.

    Profile logits: positions reversed and + / − tracks swapped. Log counts: per-task values unchanged;
    per-track values (orig_multi_loss, one column per track) strand-swapped.
    """
    perm = store_layout.strand_swap(store_layout.tracks)
    logcounts = np.asarray(outputs["logcounts"])
    if logcounts.shape[-1] == store_layout.n_tracks:  # per track (identity when every task has one track)
        logcounts = logcounts[:, perm]
    return {"profile": np.asarray(outputs["profile"])[:, ::-1][:, :, perm], "logcounts": logcounts}


def rc_average(predict_fn: PredictFn, onehot: np.ndarray, bias_inputs: Mapping[str, np.ndarray] | None,
               store_layout: StoreLayout) -> dict[str, np.ndarray]:
    """Average of the model's outputs for a batch and for its reverse complement mapped back.

    ``predict_fn`` takes the model's input dict and returns at least ``profile`` and ``logcounts``; it is called
    once, on the forward and reverse-complement batches concatenated (2B examples). Returns float arrays
    ``profile`` (B, output_len, n_tracks) averaged logits and ``logcounts`` averaged log counts.
    """
    onehot = np.asarray(onehot)
    bias_inputs = dict(bias_inputs or {})
    rc_bias = reverse_complement_bias(bias_inputs, store_layout)
    inputs = {"sequence": np.concatenate([onehot, reverse_complement_onehot(onehot)])}
    for name, value in bias_inputs.items():
        inputs[name] = np.concatenate([np.asarray(value), rc_bias[name]])
    outputs = predict_fn(inputs)
    batch = len(onehot)
    forward = {k: np.asarray(outputs[k])[:batch] for k in ("profile", "logcounts")}
    backward = map_back({k: np.asarray(outputs[k])[batch:] for k in ("profile", "logcounts")}, store_layout)
    return {k: (forward[k] + backward[k]) / 2 for k in ("profile", "logcounts")}
