"""DeepLIFT-SHAP contribution scores on the model's own Keras graph (Keras 3, TensorFlow backend).

DeepLIFT's rescale rule, computed with ordinary backpropagation: the model is cloned with every elementwise
nonlinearity (ReLU, Activation, …) replaced by :class:`DeepLiftRescale`, whose gradient is the multiplier
Δout/Δin = (f(x) − f(r)) / (x − r) between an input and its reference. Linear layers (convolutions, dense,
pooling, cropping, add, concatenate) backpropagate as usual, which is DeepLIFT's linear rule. The gradient of a
target with respect to the inputs is then the multiplier, and Σ (x − r)·m equals target(x) − target(r) exactly
(summation to delta).

Inputs and references travel side by side, row i of one paired with row i of the other, in two passes through
the clone inside one compiled function: the reference pass records what every nonlinearity receives
(:class:`ReferencePairing`), and the input pass, under the gradient tape, pairs each nonlinearity's input with
that record. Only the input pass is differentiated, so backpropagation runs over half the examples that one
concatenated ``[x; r]`` batch would need (measured 1.6 times faster for both targets on the default BPNet).

DeepSHAP averages over references: each sequence is compared with ``num_shuffles`` dinucleotide shuffles of itself
(seeded by (seed, sequence index), so results do not depend on batching); bias inputs are compared with zero.
Hypothetical contributions say what each of the four bases would contribute at a position:
hyp[b] = mean over references of Σ_c (e_b − r)_c · m_c; the projected contributions are hyp × one-hot.

Targets are defined on the model outputs (the softmax is not inside the model):

- ``counts``: the task's predicted log count (summed over the task's tracks with ``orig_multi_loss``);
- ``profile``: Σ (z − mean z) · softmax(z) over the task's joint logits z (positions × the task's tracks), the
  softmax weights held constant (no gradient through them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from bpnetz.genome.sequence import onehot_to_codes
from bpnetz.shap.options import DEFAULT_SEED
from bpnetz.shap.shuffle import reference_shuffles
from bpnetz.store.schema import StoreLayout

TARGETS = ("counts", "profile")
SEQUENCE_INPUT = "sequence"
#: below this |x − r| the multiplier is the ordinary derivative at x (the rescale ratio is 0/0 there)
RESCALE_EPSILON = 1e-6
#: elementwise nonlinear layers replaced by the rescale rule
NONLINEAR_LAYERS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.LeakyReLU, keras.layers.ELU,
                    keras.layers.PReLU)
NON_ELEMENTWISE = ("softmax", "log_softmax")


class ReferencePairing:
    """Carries what each nonlinearity receives on the reference pass to the same nonlinearity on the input pass.

    Within :meth:`recording`, every :class:`DeepLiftRescale` layer appends its input to its own queue; within
    :meth:`replaying`, it takes the oldest entry of its queue as the reference of its input (a layer called
    several times in the graph is called in the same order on both passes). Outside both, layers are plain.
    """

    def __init__(self) -> None:
        self.mode: str | None = None
        self.queues: dict[int, list[tf.Tensor]] = {}

    @contextmanager
    def recording(self) -> Iterator[None]:
        self.mode, self.queues = "record", {}
        try:
            yield
        finally:
            self.mode = None

    @contextmanager
    def replaying(self) -> Iterator[None]:
        self.mode = "replay"
        try:
            yield
            if any(self.queues.values()):
                raise RuntimeError("the input pass used fewer nonlinearities than the reference pass")
        finally:
            self.mode, self.queues = None, {}


class DeepLiftRescale(keras.layers.Layer):
    """An elementwise nonlinearity whose gradient is DeepLIFT's rescale multiplier.

    Forward: the original layer. On the input pass of a :class:`ReferencePairing`, the backward pass multiplies
    the upstream gradient by (f(x) − f(r)) / (x − r), r being this layer's input on the reference pass for the
    same row; where |x − r| < 1e-6, by the derivative of f at x.
    """

    def __init__(self, nonlinearity: keras.layers.Layer, pairing: ReferencePairing, **kwargs: Any):
        super().__init__(name=nonlinearity.name, dtype=nonlinearity.dtype_policy, **kwargs)
        self.nonlinearity = nonlinearity
        self.pairing = pairing

    def call(self, x: tf.Tensor) -> tf.Tensor:
        f = self.nonlinearity.call
        if self.pairing.mode == "record":
            self.pairing.queues.setdefault(id(self), []).append(x)
        elif self.pairing.mode == "replay":
            return _rescale(f, x, self.pairing.queues[id(self)].pop(0))
        return f(x)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


def _rescale(f: Any, x: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """f(x), with the rescale multiplier against ``reference`` as its gradient (none flows to the reference)."""

    @tf.custom_gradient
    def rescale(x: tf.Tensor) -> tuple[tf.Tensor, Any]:
        y = f(x)

        def gradient(upstream: tf.Tensor, variables: Sequence[tf.Variable] | None = None) -> Any:
            delta = x - reference
            with tf.GradientTape() as tape:
                tape.watch(x)
                y_local = f(x)
            derivative = tape.gradient(y_local, x)
            small = tf.abs(delta) < RESCALE_EPSILON
            ratio = (y - f(reference)) / tf.where(small, tf.ones_like(delta), delta)
            grad = upstream * tf.where(small, derivative, ratio)
            if variables is None:
                return grad
            return grad, [tf.zeros_like(v) for v in variables]  # a layer's own weights (PReLU) are constants

        return y, gradient

    return rescale(x)


def deeplift_clone(model: keras.Model, pairing: ReferencePairing) -> keras.Model:
    """The model with every elementwise nonlinearity replaced by :class:`DeepLiftRescale` (weights shared)."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, NONLINEAR_LAYERS):
            name = getattr(getattr(layer, "activation", None), "__name__", "")
            if name in NON_ELEMENTWISE:
                raise ValueError(f"layer {layer.name!r} applies {name}, which is not elementwise: DeepLIFT's "
                                 "rescale rule does not apply; keep softmax outside the model.")
            return DeepLiftRescale(layer, pairing)
        if isinstance(layer, keras.layers.Softmax):
            raise ValueError(f"layer {layer.name!r} is a softmax inside the model; DeepLIFT needs logits outputs.")
        activation = getattr(layer, "activation", None)
        if activation is not None and activation is not keras.activations.linear:
            raise ValueError(f"layer {layer.name!r} has a built-in activation ({activation.__name__}); DeepLIFT "
                             "needs activations as separate layers (keras.layers.ReLU / Activation).")
        return layer

    return keras.models.clone_model(model, clone_function=swap, recursive=True)


class DeepLiftExplainer:
    """DeepLIFT-SHAP for one task of a BPNet model; build once, call :meth:`explain` many times.

    ``store_layout`` gives the task's tracks; without it the model must have a single task (all profile tracks).
    ``orig_multi_loss``: the model's ``logcounts`` has one column per track (the counts target sums the task's).
    """

    def __init__(self, model: keras.Model, task: int = 0, store_layout: StoreLayout | None = None,
                 orig_multi_loss: bool = False):
        self.model = model
        self.task = task
        self.input_names = [t.name for t in model.inputs]
        if SEQUENCE_INPUT not in self.input_names:
            raise ValueError(f"the model has no '{SEQUENCE_INPUT}' input (inputs: {self.input_names}).")
        self.input_specs = {t.name: tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in model.inputs}
        self.sequence_length = int(model.inputs[self.input_names.index(SEQUENCE_INPUT)].shape[1])
        self.profile_tracks, self.counts_columns = self._task_columns(store_layout, orig_multi_loss)
        self.pairing = ReferencePairing()
        self.clone = deeplift_clone(model, self.pairing)
        self._functions: dict[tuple, Any] = {}

    def _task_columns(self, store_layout: StoreLayout | None, orig_multi_loss: bool) -> tuple[list[int], list[int]]:
        """Profile track indices and log-count columns of the task."""
        outputs = self.model.output
        if not isinstance(outputs, Mapping) or {"profile", "logcounts"} - set(outputs):
            raise ValueError("the model must have outputs named 'profile' and 'logcounts'.")
        n_tracks, n_counts = int(outputs["profile"].shape[-1]), int(outputs["logcounts"].shape[-1])
        if store_layout is None:
            n_tasks = n_counts if not orig_multi_loss else 1
            if n_tasks != 1 or self.task != 0:
                raise ValueError("a model with several tasks needs the store layout to know the task's tracks.")
            tracks = list(range(n_tracks))
        else:
            if not 0 <= self.task < len(store_layout.tasks):
                raise ValueError(f"task {self.task} does not exist (the store has {len(store_layout.tasks)}).")
            tracks = store_layout.task_tracks(self.task)
        return tracks, (tracks if orig_multi_loss else [self.task])

    def _targets(self, outputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Per-example targets."""
        logcounts = tf.gather(outputs["logcounts"], self.counts_columns, axis=-1)
        logits = tf.gather(outputs["profile"], self.profile_tracks, axis=-1)
        logits = tf.reshape(logits, (tf.shape(logits)[0], -1))
        weights = tf.stop_gradient(tf.nn.softmax(logits, axis=-1))
        centred = logits - tf.reduce_mean(logits, axis=-1, keepdims=True)
        return {"counts": tf.reduce_sum(logcounts, axis=-1), "profile": tf.reduce_sum(centred * weights, axis=-1)}

    def _paired_multipliers(self, inputs: dict[str, tf.Tensor], references: dict[str, tf.Tensor],
                            targets: tuple[str, ...]) -> dict[str, dict[str, tf.Tensor]]:
        """Multipliers of each input against the reference in the same row: {target: {input name: (M, …)}}."""
        with self.pairing.recording():
            self.clone(references, training=False)
        with tf.GradientTape(persistent=len(targets) > 1) as tape:
            tape.watch(inputs)
            with self.pairing.replaying():
                outputs = self.clone(inputs, training=False)
            values = self._targets(outputs)
            totals = {t: tf.reduce_sum(values[t]) for t in targets}
        return {t: tape.gradient(totals[t], inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                for t in targets}

    def _multiplier_function(self, targets: tuple[str, ...]) -> Any:
        """tf.function: (inputs, references), dicts by input name -> {target: {input: multipliers}}."""
        return tf.function(lambda inputs, references: self._paired_multipliers(inputs, references, targets),
                           input_signature=[self.input_specs, self.input_specs], reduce_retracing=True,
                           autograph=False)

    def _hypothetical_function(self, targets: tuple[str, ...], num_shuffles: int) -> Any:
        """tf.function: (sequences, reference codes, bias inputs) -> {target: hypothetical contributions}."""
        dtype = self.input_specs[SEQUENCE_INPUT].dtype
        specs = [self.input_specs[SEQUENCE_INPUT], tf.TensorSpec((None, num_shuffles, None), tf.uint8),
                 {k: v for k, v in self.input_specs.items() if k != SEQUENCE_INPUT}]

        def hypothetical(sequences: tf.Tensor, reference_codes: tf.Tensor,
                         bias: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            shape = tf.shape(sequences)
            references = tf.one_hot(tf.reshape(tf.cast(reference_codes, tf.int32), (-1, shape[1])), 4,
                                    dtype=dtype)  # code 4 (N) -> all-zero row
            inputs = {SEQUENCE_INPUT: tf.repeat(sequences, num_shuffles, axis=0)}
            inputs.update({name: tf.repeat(values, num_shuffles, axis=0) for name, values in bias.items()})
            reference_inputs = {SEQUENCE_INPUT: references}
            reference_inputs.update({name: tf.zeros_like(inputs[name]) for name in bias})
            result = {}
            for target, per_input in self._paired_multipliers(inputs, reference_inputs, targets).items():
                m = per_input[SEQUENCE_INPUT]
                hyp = m - tf.reduce_sum(m * references, axis=-1, keepdims=True)
                result[target] = tf.reduce_mean(tf.reshape(hyp, (shape[0], num_shuffles, shape[1], 4)), axis=1)
            return result

        return tf.function(hypothetical, input_signature=specs, reduce_retracing=True, autograph=False)

    def _cached(self, key: tuple, build: Any) -> Any:
        if key not in self._functions:
            self._functions[key] = build()
        return self._functions[key]

    def multipliers(self, sequences: np.ndarray, references: np.ndarray,
                    bias_inputs: Mapping[str, np.ndarray] | None = None,
                    targets: Sequence[str] = TARGETS) -> dict[str, dict[str, np.ndarray]]:
        """DeepLIFT multipliers of each input, for row-paired (M, L, 4) sequences and references.

        Bias inputs (M, …) are compared with zero references. Returns {target: {input name: (M, …) multipliers}}.
        """
        targets = _check_targets(targets)
        bias = self._bias(bias_inputs, len(sequences))
        dtype = self.input_specs[SEQUENCE_INPUT].dtype.as_numpy_dtype
        inputs = {SEQUENCE_INPUT: np.asarray(sequences, dtype=dtype)}
        inputs.update({name: np.asarray(values, dtype=dtype) for name, values in bias.items()})
        reference_inputs = {SEQUENCE_INPUT: np.asarray(references, dtype=dtype)}
        reference_inputs.update({name: np.zeros_like(inputs[name]) for name in bias})
        function = self._cached(("multipliers", targets), lambda: self._multiplier_function(targets))
        result = function(inputs, reference_inputs)
        return {t: {k: v.numpy() for k, v in per_input.items()} for t, per_input in result.items()}

    def explain(self, sequences: np.ndarray, bias_inputs: Mapping[str, np.ndarray] | None = None, *,
                targets: Sequence[str] = TARGETS, num_shuffles: int = 20, seed: int = DEFAULT_SEED,
                batch_size: int = 8, first_index: int = 0,
                progress: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """DeepLIFT-SHAP of (N, L, 4) one-hot sequences: {target: (hypothetical, projected)}, each (N, L, 4).

        Sequence ``i`` is compared with ``num_shuffles`` dinucleotide shuffles drawn from the generator
        (seed, first_index + i), so a long list scored in chunks (``first_index`` = the chunk's offset) gets the
        scores of one call; bias inputs ((N, …) arrays by input name) are compared with zeros. ``batch_size``
        sequences per step (each step runs 2 × batch_size × num_shuffles examples through the model).
        """
        targets = _check_targets(targets)
        sequences = np.asarray(sequences)
        if sequences.ndim != 3 or sequences.shape[1:] != (self.sequence_length, 4):
            raise ValueError(f"sequences must be (N, {self.sequence_length}, 4) one-hot, got {sequences.shape}.")
        if num_shuffles < 1 or batch_size < 1:
            raise ValueError("num_shuffles and batch_size must be at least 1.")
        bias = self._bias(bias_inputs, len(sequences))
        function = self._cached(("hypothetical", targets, num_shuffles),
                                lambda: self._hypothetical_function(targets, num_shuffles))
        dtype = self.input_specs[SEQUENCE_INPUT].dtype.as_numpy_dtype
        hypothetical = {t: np.empty(sequences.shape, dtype=np.float32) for t in targets}
        with tqdm(total=len(sequences), unit="seq", desc="DeepLIFT-SHAP", disable=not progress) as bar:
            for start, stop, reference_codes in _references(sequences, num_shuffles, seed, batch_size, first_index):
                batch_bias = {k: v[start:stop].astype(dtype) for k, v in bias.items()}
                scores = function(sequences[start:stop].astype(dtype), reference_codes, batch_bias)
                for target, values in scores.items():
                    hypothetical[target][start:stop] = values.numpy()
                bar.update(stop - start)
        return {t: (hyp, hyp * sequences.astype(np.float32)) for t, hyp in hypothetical.items()}

    def _bias(self, bias_inputs: Mapping[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
        """The bias inputs the model needs, checked against its input names and the number of sequences."""
        bias = dict(bias_inputs or {})
        needed = [name for name in self.input_names if name != SEQUENCE_INPUT]
        if sorted(bias) != sorted(needed):
            raise ValueError(f"the model needs bias inputs {needed}, got {sorted(bias)}.")
        for name, values in bias.items():
            if len(values) != n:
                raise ValueError(f"bias input {name!r} has {len(values)} rows for {n} sequences.")
        return bias


def deepshap(model: keras.Model, sequences_onehot: np.ndarray, bias_inputs: Mapping[str, np.ndarray] | None = None,
             *, task: int = 0, target: str = "both", store_layout: StoreLayout | None = None,
             orig_multi_loss: bool = False, num_shuffles: int = 20, seed: int = DEFAULT_SEED, batch_size: int = 8,
             first_index: int = 0, progress: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DeepLIFT-SHAP of one task: {target: (hypothetical (N, L, 4), projected (N, L, 4))}.

    ``target`` is "counts", "profile" or "both". See :class:`DeepLiftExplainer` to reuse the compiled graph.
    """
    targets = TARGETS if target == "both" else (target,)
    explainer = DeepLiftExplainer(model, task, store_layout, orig_multi_loss)
    return explainer.explain(sequences_onehot, bias_inputs, targets=targets, num_shuffles=num_shuffles, seed=seed,
                             batch_size=batch_size, first_index=first_index, progress=progress)


def _check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(dict.fromkeys(targets))
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise ValueError(f"targets must be among {TARGETS}, got {targets}.")
    return targets


def _references(sequences: np.ndarray, num_shuffles: int, seed: int, batch_size: int,
                first_index: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, (B, num_shuffles, L) reference codes) per batch, the next batch's shuffled on a thread.

    The walk releases the GIL, so the shuffles of batch k+1 are drawn while the model runs batch k.
    """
    bounds = [(s, min(s + batch_size, len(sequences))) for s in range(0, len(sequences), batch_size)]

    def draw(start: int, stop: int) -> np.ndarray:
        return reference_shuffles(onehot_to_codes(sequences[start:stop]), num_shuffles, seed,
                                  range(first_index + start, first_index + stop))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, *bounds[0]) if bounds else None
        for k, (start, stop) in enumerate(bounds):
            codes = pending.result()
            if k + 1 < len(bounds):
                pending = pool.submit(draw, *bounds[k + 1])
            yield start, stop, codes
