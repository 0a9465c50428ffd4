"""Running a model over batches: inputs in, profile logits and log counts out (optionally averaged with the
reverse complement, mapped back), then probabilities and log counts inside the evaluated window.

Predicted counts = the joint softmax of each group's logits over the *full* output window × exp(its predicted
log count) (:func:`bpnetz.predict.metrics.joint_probabilities`), then centre-cropped to ``output_window_size``
(offset ``output_len // 2 − window // 2``, as the reference crops). Metrics see the cropped window: its
probabilities renormalised per group and the log count of the predicted counts inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bpnetz.errors import InputError
from bpnetz.model.contract import TrackGroups
from bpnetz.predict import metrics as M
from bpnetz.predict.reverse_complement import rc_average
from bpnetz.store.schema import StoreLayout

PredictFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


def model_predict_fn(model: Any, per_call: int | None = None) -> PredictFn:
    """A function running the model (inference mode, one traced graph for any batch size) on a dict of numpy
    inputs, ``per_call`` examples per call of the graph (default :func:`bpnetz.model.batching.examples_per_call`:
    cache-sized calls without a GPU, 1.13–1.26 times the examples/s of 64 per call; the whole batch on a GPU)."""
    import tensorflow as tf

    from bpnetz.model.batching import examples_per_call

    names = list(model.input)
    specs = {k: tf.TensorSpec((None, *tuple(model.input[k].shape)[1:]), tf.float32) for k in names}
    per_call = per_call or examples_per_call(model)

    @tf.function(input_signature=[specs])
    def call(inputs: dict[str, Any]) -> dict[str, Any]:
        return model(inputs, training=False)

    def predict_fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {k: np.asarray(inputs[k], dtype=np.float32) for k in names}
        n = len(arrays[names[0]])
        step = per_call or max(n, 1)
        parts = [call({k: tf.convert_to_tensor(v[lo:lo + step]) for k, v in arrays.items()})
                 for lo in range(0, max(n, 1), step)]
        if len(parts) == 1:
            return {k: np.asarray(v) for k, v in parts[0].items()}
        return {k: np.concatenate([np.asarray(part[k]) for part in parts]) for k in parts[0]}

    return predict_fn


def predict_batch(predict_fn: PredictFn, inputs: Mapping[str, np.ndarray], layout: StoreLayout, *,
                  reverse_complement_average: bool, set_bias_as_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """Profile logits and log counts of one batch of model inputs."""
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    bias = {k: inputs[k] for k in ("profile_bias", "counts_bias") if k in inputs}
    if set_bias_as_zero:
        bias = {k: np.zeros_like(v) for k, v in bias.items()}
    if reverse_complement_average:
        out = rc_average(predict_fn, inputs["sequence"], bias, layout)
    else:
        out = predict_fn({"sequence": inputs["sequence"], **bias})
    return np.asarray(out["profile"]), np.asarray(out["logcounts"])


@dataclass(frozen=True)
class Window:
    """The centre crop of the output window that is evaluated and written."""

    output_len: int
    size: int

    @property
    def offset(self) -> int:
        return self.output_len // 2 - self.size // 2

    def crop(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.offset:self.offset + self.size]


def window_of(output_len: int, output_window_size: int | None) -> Window:
    size = output_len if output_window_size is None else int(output_window_size)
    if not 0 < size <= output_len:
        raise InputError(f"--output-window-size {size} must be between 1 and the model's output length "
                         f"{output_len}.", fix=f"Use at most {output_len}.")
    return Window(output_len, size)


def window_predictions(logits: np.ndarray, logcounts: np.ndarray, groups: M.TaskTracks,
                       window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities inside the window, renormalised per group, and each group's log count inside it.

    The joint softmax runs over the full output window; the window's predicted counts are ``probs ×
    exp(logcounts)`` with the returned values (the full-window counts, cropped).
    """
    probs = window.crop(M.joint_probabilities(logits, groups))
    logcounts = np.array(logcounts, dtype=np.float64)
    for g, tracks in enumerate(groups):
        idx = list(tracks)
        mass = probs[:, :, idx].sum(axis=(1, 2))
        probs[:, :, idx] /= mass[:, None, None]
        logcounts[:, g] += np.log(mass)
    return probs, logcounts


@dataclass
class LocusPredictions:
    """Predictions of the evaluated loci, in store order, over the evaluated window."""

    rows: np.ndarray  # store rows
    chrom: np.ndarray
    summit: np.ndarray
    probs: np.ndarray  # (N, W, T) float32, summing to 1 per group
    logcounts: np.ndarray  # (N, G) log predicted counts inside the window
    observed: np.ndarray  # (N, W, T) float32 observed counts
    track_group: np.ndarray  # (T,) softmax group of each track

    @property
    def counts(self) -> np.ndarray:
        """Predicted counts (N, W, T) per track."""
        return self.probs * np.exp(self.logcounts[:, self.track_group])[:, None, :]


def predict_loci(stream: Any, predict_fn: PredictFn, groups: M.TaskTracks, window: Window, *,
                 reverse_complement_average: bool, set_bias_as_zero: bool, progress: bool) -> LocusPredictions:
    """Run the model over every batch of an unshuffled, unjittered loader stream."""
    layout = stream.layout
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", "probs", "logcounts", "observed")}
    from bpnetz.model.batching import has_gpu
    from bpnetz.model.data import iterate, iterate_here

    batches = (iterate if has_gpu() else iterate_here)(stream, with_index=True)  # tf.data overlaps a GPU's work
    bar = tqdm(batches, total=stream.n_batches, desc="predicting", unit="batch",
               disable=not progress)
    for inputs, targets, _, index in bar:
        logits, logcounts = predict_batch(predict_fn, inputs, layout,
                                          reverse_complement_average=reverse_complement_average,
                                          set_bias_as_zero=set_bias_as_zero)
        probs, window_lc = window_predictions(logits, logcounts, groups, window)
        parts["rows"].append(np.asarray(index["row"]))
        parts["probs"].append(probs.astype(np.float32))
        parts["logcounts"].append(window_lc)
        parts["observed"].append(window.crop(np.asarray(targets["profile"])).astype(np.float32))
    loci = stream.reader.loci
    rows = np.concatenate(parts["rows"])
    return LocusPredictions(rows=rows, chrom=loci["chrom"].to_numpy()[rows], summit=loci["summit"].to_numpy()[rows],
                            probs=np.concatenate(parts["probs"]), logcounts=np.concatenate(parts["logcounts"]),
                            observed=np.concatenate(parts["observed"]),
                            track_group=TrackGroups.from_lists(groups).owner())
