"""DeepLIFT-SHAP contribution scores on the model's own Keras graph (Keras 3, TensorFlow backend).

DeepLIFT's rescale rule, computed with ordinary backpropagation: the model is cloned with every elementwise
nonlinearity (ReLU, Activation, …) replaced by :class:`DeepLiftRescale`, whose gradient is the multiplier
Δout/Δin = (f(x) − f(r)) / (x − r) between an input and its reference. A batch carries the inputs and their
references side by side, ``[x; r]`` along the batch axis, so every nonlinearity sees both. Linear layers
(convolutions, dense, pooling, cropping, add, concatenate) backpropagate as usual, which is DeepLIFT's linear rule.
The gradient of a target with respect to the inputs is then the multiplier, and Σ (x − r)·m equals
target(x) − target(r) exactly (summation to delta).

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
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from bpnetz.shap.shuffle import onehot_to_codes, reference_shuffles
from bpnetz.store.schema import StoreLayout

TARGETS = ("counts", "profile")
DEFAULT_SEED = 20210304
SEQUENCE_INPUT = "sequence"
#: below this |x − r| the multiplier is the ordinary derivative at x (the rescale ratio is 0/0 there)
RESCALE_EPSILON = 1e-6
#: elementwise nonlinear layers replaced by the rescale rule
NONLINEAR_LAYERS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.LeakyReLU, keras.layers.ELU,
                    keras.layers.PReLU)
NON_ELEMENTWISE = ("softmax", "log_softmax")


class DeepLiftRescale(keras.layers.Layer):
    """An elementwise nonlinearity whose gradient is DeepLIFT's rescale multiplier.

    The batch must be ``[inputs; references]`` (first half inputs, second half their references, row by row).
    Forward: the original layer. Backward: the upstream gradient times (f(x) − f(r)) / (x − r), the same
    multiplier for an input row and its reference row; where |x − r| < 1e-6, the derivative of f at x.
    """

    def __init__(self, nonlinearity: keras.layers.Layer, **kwargs: Any):
        super().__init__(name=nonlinearity.name, dtype=nonlinearity.dtype_policy, **kwargs)
        self.nonlinearity = nonlinearity

    def call(self, x: tf.Tensor) -> tf.Tensor:
        f = self.nonlinearity.call

        @tf.custom_gradient
        def rescale(x: tf.Tensor) -> tuple[tf.Tensor, Any]:
            y = f(x)

            def gradient(upstream: tf.Tensor) -> tf.Tensor:
                half = tf.shape(x)[0] // 2
                x_in, x_ref = x[:half], x[half:]
                delta_in = x_in - x_ref
                with tf.GradientTape() as tape:
                    tape.watch(x_in)
                    y_in = f(x_in)
                derivative = tape.gradient(y_in, x_in)
                small = tf.abs(delta_in) < RESCALE_EPSILON
                ratio = (y[:half] - y[half:]) / tf.where(small, tf.ones_like(delta_in), delta_in)
                multiplier = tf.where(small, derivative, ratio)
                return upstream * tf.concat([multiplier, multiplier], axis=0)

            return y, gradient

        return rescale(x)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


def deeplift_clone(model: keras.Model) -> keras.Model:
    """The model with every elementwise nonlinearity replaced by :class:`DeepLiftRescale` (weights shared)."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, NONLINEAR_LAYERS):
            name = getattr(getattr(layer, "activation", None), "__name__", "")
            if name in NON_ELEMENTWISE:
                raise ValueError(f"layer {layer.name!r} applies {name}, which is not elementwise: DeepLIFT's "
                                 "rescale rule does not apply; keep softmax outside the model.")
            return DeepLiftRescale(layer)
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
        self.clone = deeplift_clone(model)
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

    def _targets(self, outputs: Mapping[str, tf.Tensor], half: tf.Tensor) -> dict[str, tf.Tensor]:
        """Per-example targets of the input half of the batch."""
        logcounts = tf.gather(outputs["logcounts"][:half], self.counts_columns, axis=-1)
        logits = tf.gather(outputs["profile"][:half], self.profile_tracks, axis=-1)
        logits = tf.reshape(logits, (half, -1))
        weights = tf.stop_gradient(tf.nn.softmax(logits, axis=-1))
        centred = logits - tf.reduce_mean(logits, axis=-1, keepdims=True)
        return {"counts": tf.reduce_sum(logcounts, axis=-1), "profile": tf.reduce_sum(centred * weights, axis=-1)}

    def _paired_multipliers(self, paired: dict[str, tf.Tensor],
                            targets: tuple[str, ...]) -> dict[str, dict[str, tf.Tensor]]:
        """Multipliers of each input of the input half of a paired batch ``[x; r]``: {target: {input: (M, …)}}."""
        half = tf.shape(paired[SEQUENCE_INPUT])[0] // 2
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(paired)
            outputs = self.clone(paired, training=False)
            values = self._targets(outputs, half)
            totals = {t: tf.reduce_sum(values[t]) for t in targets}
        result = {}
        for target in targets:
            grads = tape.gradient(totals[target], paired, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            result[target] = {name: grads[name][:half] for name in paired}
        return result

    def _multiplier_function(self, targets: tuple[str, ...]) -> Any:
        """tf.function: paired batch ``[x; r]`` (dict by input name) -> {target: {input: multipliers of x}}."""
        return tf.function(lambda paired: self._paired_multipliers(paired, targets),
                           input_signature=[self.input_specs], reduce_retracing=True, autograph=False)

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
            paired = {SEQUENCE_INPUT: tf.concat([tf.repeat(sequences, num_shuffles, axis=0), references], 0)}
            for name, values in bias.items():
                repeated = tf.repeat(values, num_shuffles, axis=0)
                paired[name] = tf.concat([repeated, tf.zeros_like(repeated)], 0)
            result = {}
            for target, per_input in self._paired_multipliers(paired, targets).items():
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
        paired = {SEQUENCE_INPUT: np.concatenate([sequences, references]).astype(dtype)}
        for name, values in bias.items():
            paired[name] = np.concatenate([values, np.zeros_like(values)]).astype(dtype)
        function = self._cached(("multipliers", targets), lambda: self._multiplier_function(targets))
        return {t: {k: v.numpy() for k, v in per_input.items()} for t, per_input in function(paired).items()}

    def explain(self, sequences: np.ndarray, bias_inputs: Mapping[str, np.ndarray] | None = None, *,
                targets: Sequence[str] = TARGETS, num_shuffles: int = 20, seed: int = DEFAULT_SEED,
                batch_size: int = 8, progress: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """DeepLIFT-SHAP of (N, L, 4) one-hot sequences: {target: (hypothetical, projected)}, each (N, L, 4).

        Sequence ``i`` is compared with ``num_shuffles`` dinucleotide shuffles drawn from the generator
        (seed, i); bias inputs ((N, …) arrays by input name) with zeros. ``batch_size`` sequences per step
        (each step runs 2 × batch_size × num_shuffles examples through the model).
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
            for start, stop, reference_codes in _references(sequences, num_shuffles, seed, batch_size):
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
             progress: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DeepLIFT-SHAP of one task: {target: (hypothetical (N, L, 4), projected (N, L, 4))}.

    ``target`` is "counts", "profile" or "both". See :class:`DeepLiftExplainer` to reuse the compiled graph.
    """
    targets = TARGETS if target == "both" else (target,)
    explainer = DeepLiftExplainer(model, task, store_layout, orig_multi_loss)
    return explainer.explain(sequences_onehot, bias_inputs, targets=targets, num_shuffles=num_shuffles, seed=seed,
                             batch_size=batch_size, progress=progress)


def _check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(dict.fromkeys(targets))
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise ValueError(f"targets must be among {TARGETS}, got {targets}.")
    return targets


def _references(sequences: np.ndarray, num_shuffles: int, seed: int,
                batch_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, (B, num_shuffles, L) reference codes) per batch, the next batch's shuffled on a thread.

    The walk releases the GIL, so the shuffles of batch k+1 are drawn while the model runs batch k.
    """
    bounds = [(s, min(s + batch_size, len(sequences))) for s in range(0, len(sequences), batch_size)]

    def draw(start: int, stop: int) -> np.ndarray:
        return reference_shuffles(onehot_to_codes(sequences[start:stop]), num_shuffles, seed, range(start, stop))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, *bounds[0]) if bounds else None
        for k, (start, stop) in enumerate(bounds):
            codes = pending.result()
            if k + 1 < len(bounds):
                pending = pool.submit(draw, *bounds[k + 1])
            yield start, stop, codes
