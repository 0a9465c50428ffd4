"""BPNet in Keras 3, built from bpnet_params.json and a store layout, with every key of the reference honoured.

Architecture (defaults in brackets; lengths for input 2114)::

    sequence (L, 4)
      motif module: Conv1D(filters[i], kernel_sizes[i], padding) for each entry, a ReLU after every conv but the
                    last (that one is activated by the syntax module)                    [64, 21 valid: 2094]
      syntax module: num_dilation_layers residual units, dilation 2^i for i = 1..n       [8 × (64, 3): 1074]
          pre-activation (default):  x ← Conv(ReLU(x)) + crop(x), then a final ReLU
          post-activation:           y ← ReLU(Conv(y) + crop(y)) starting from y = ReLU(motif output)
          (crop = symmetric crop of the residual when padding is valid; none when same)
      profile head: Conv1D(n_tracks, kernel_size, padding) → centre crop to output_profile_len  [75: 1000]
      counts head: global average pool over the uncropped syntax output → Dense layers (units, activations,
                    dropouts); the last Dense has one unit per task (per track with orig_multi_loss)
      with bias tracks, per task t:
          profile: concat(task t's profile logits, task t's profile bias tracks) → Conv1D(task tracks,
                   profile_bias_module_params.kernel_sizes[t], same padding)
          counts:  concat(task t's counts output(s), task t's counts bias) → Dense(1, or task tracks)
      outputs, concatenated in layout order: profile (B, output_len, n_tracks) logits,
                                             logcounts (B, n_tasks) or (B, n_tracks) with orig_multi_loss

Departures from the reference (its defects, fixed): the profile bias convolution uses "same" padding so kernel
sizes above 1 keep the output length; a single profile-bias kernel size applies to every task; the counts bias
Dense gives one output per task (the reference's gives n_tasks per task); the last counts Dense always has
one unit per counts output, whatever the last ``units`` entry says; the counts head always pools (the
reference flattens the whole syntax output, with a fixed 25% dropout, when ``units`` has several entries).
Activations are separate layers (``keras.layers.ReLU`` / ``LeakyReLU`` / ``Activation``), never ``activation=``
arguments, so attribution can swap them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from bpnetz.config import (
    BpnetParams,
    CountsHeadParams,
    MotifModuleParams,
    ProfileHeadParams,
    SyntaxModuleParams,
)
from bpnetz.errors import InputError
from bpnetz.model import attribution_prior as prior
from bpnetz.model.contract import PARAMS_FILE, TrackGroups, check_lengths
from bpnetz.model.losses import PACKAGE, ProfileMultinomialLoss, counts_loss
from bpnetz.store.schema import StoreLayout

# ------------------------------------------------------------------------------------------------ layers


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelSelect(layers.Layer):
    """Selects channels (last axis) by index: a task's tracks out of all tracks, in the given order."""

    def __init__(self, indices: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return ops.take(inputs, self.indices, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self) -> dict:
        return {**super().get_config(), "indices": self.indices}


# ------------------------------------------------------------------------------------------------ lengths


@dataclass(frozen=True)
class ModelLengths:
    """Sequence lengths along the network for a given input length."""

    motif: int  # after the motif module
    syntax: int  # after the dilated stack: what the counts head pools over
    profile_head: int  # after the profile head convolution, before the centre crop


def _conv_length(length: int, kernel_size: int, dilation: int, padding: str) -> int:
    return length if padding == "same" else length - (kernel_size - 1) * dilation


def model_lengths(params: BpnetParams) -> ModelLengths:
    """Lengths through the network; InputError when the convolutions leave fewer than output_profile_len."""
    motif, syntax, head = params.motif_module_params, params.syntax_module_params, params.profile_head_params
    length = params.input_len
    for kernel in motif.kernel_sizes:
        length = _conv_length(length, kernel, 1, motif.padding)
    motif_len = length
    for i in range(1, syntax.num_dilation_layers + 1):
        length = _conv_length(length, syntax.kernel_size, 2**i, syntax.padding)
    syntax_len = length
    head_len = _conv_length(length, head.kernel_size, 1, head.padding)
    lengths = ModelLengths(motif=motif_len, syntax=syntax_len, profile_head=head_len)
    if min(motif_len, syntax_len, head_len) < params.output_profile_len:
        need = params.output_profile_len + (params.input_len - min(motif_len, syntax_len, head_len))
        raise InputError(
            f"key 'input_len' = {params.input_len} is too short for this architecture: the motif kernels "
            f"{motif.kernel_sizes}, {syntax.num_dilation_layers} dilated layers of kernel {syntax.kernel_size} "
            f"and the profile head kernel {head.kernel_size} leave {min(motif_len, syntax_len, head_len)} "
            f"positions, fewer than 'output_profile_len' = {params.output_profile_len}.", path=PARAMS_FILE,
            fix=f"Use input_len >= {need} (and a store built with it), or fewer/smaller convolutions.")
    return lengths


def _check_layout(params: BpnetParams, store_layout: StoreLayout) -> None:
    """The params' lengths must be the store's (the loader feeds store windows to the model)."""
    check_lengths(store_layout, params.input_len, params.output_profile_len, who=PARAMS_FILE,
                  names=("input_len", "output_profile_len"), where=PARAMS_FILE,
                  fix=f"Set 'input_len' to {store_layout.input_len} and 'output_profile_len' to "
                      f"{store_layout.output_len}, or rebuild the store with 'bpnetz build --input-seq-len "
                      f"{params.input_len} --output-len {params.output_profile_len}'.")
    if not store_layout.tracks:
        raise InputError("the store has no signal tracks, so there is nothing to predict.",
                         fix="Rebuild the store from an input_data.json with signal bigWigs.")


# ------------------------------------------------------------------------------------------------ modules


def _motif_module(x, p: MotifModuleParams):
    if len(p.filters) != len(p.kernel_sizes) or not p.filters:
        raise InputError(f"'motif_module_params' needs as many 'filters' as 'kernel_sizes' (got "
                         f"{len(p.filters)} and {len(p.kernel_sizes)}).", path=PARAMS_FILE)
    last = len(p.filters) - 1
    for i, (filters, kernel) in enumerate(zip(p.filters, p.kernel_sizes, strict=True)):
        x = layers.Conv1D(filters, kernel, padding=p.padding, name=f"motif_conv_{i}")(x)
        if i < last:
            x = layers.ReLU(name=f"motif_relu_{i}")(x)
    return x


def _crop_to(x, length: int, name: str):
    """Symmetric centre crop along positions (left = L//2 - length//2, as the reference centres)."""
    current = x.shape[1]
    if current == length:
        return x
    left = current // 2 - length // 2
    return layers.Cropping1D((left, current - length - left), name=name)(x)


def _syntax_module(x, p: SyntaxModuleParams):
    if p.pre_activation_residual_unit:
        for i in range(1, p.num_dilation_layers + 1):
            activated = layers.ReLU(name=f"syntax_relu_{i}")(x)
            conv = layers.Conv1D(p.filters, p.kernel_size, dilation_rate=2**i, padding=p.padding,
                                 name=f"syntax_conv_{i}")(activated)
            x = layers.Add(name=f"syntax_add_{i}")([conv, _crop_to(x, conv.shape[1], f"syntax_crop_{i}")])
        return layers.ReLU(name="syntax_relu_out")(x)
    x = layers.ReLU(name="syntax_relu_0")(x)
    for i in range(1, p.num_dilation_layers + 1):
        conv = layers.Conv1D(p.filters, p.kernel_size, dilation_rate=2**i, padding=p.padding,
                             name=f"syntax_conv_{i}")(x)
        x = layers.Add(name=f"syntax_add_{i}")([conv, _crop_to(x, conv.shape[1], f"syntax_crop_{i}")])
        x = layers.ReLU(name=f"syntax_relu_{i}")(x)
    return x


def _profile_head(x, p: ProfileHeadParams, n_tracks: int, output_len: int):
    """Conv1D with one filter per track (the params' 'filters' is replaced, as in the reference), then crop."""
    x = layers.Conv1D(n_tracks, p.kernel_size, padding=p.padding, name="profile_head_conv")(x)
    return _crop_to(x, output_len, "profile_head_crop")


def _activation_layer(name: str, layer_name: str) -> layers.Layer | None:
    """A separate activation layer for a counts_head_params activation name; None for 'linear'."""
    key = name.lower()
    if key in ("linear", "none", ""):
        return None
    if key == "relu":
        return layers.ReLU(name=layer_name)
    if key in ("leakyrelu", "leaky_relu"):
        return layers.LeakyReLU(name=layer_name)
    try:
        keras.activations.get(key)
    except (ValueError, TypeError):
        raise InputError(f"'counts_head_params.activations' names an unknown activation {name!r}.",
                         path=PARAMS_FILE, fix="Use a Keras activation name such as 'relu', 'leakyrelu', "
                                               "'tanh' or 'linear'.") from None
    return layers.Activation(key, name=layer_name)


def _counts_head(x, p: CountsHeadParams, n_outputs: int, n_tasks: int):
    """Global average pool, batch-normalised, then Dense layers; a units value of -1 means one per task.

    The normalisation is bpnetz's addition to the reference head. Averaged over the ~1000 positions of the trunk,
    motif-driven features vary between loci by a few percent of their mean, so a Dense layer on them needs weights
    one to two orders of magnitude larger than its initial ones, which Adam reaches only after thousands of steps:
    on the demo experiment the counts head lagged far behind the profile head (held-out counts Pearson 0.27, where
    a least-squares fit on the same pooled features reached 0.71; 0.78–0.80 with the normalisation). Batch
    statistics follow the trunk as it changes (a fixed standardisation amplified its drift and broke training);
    momentum 0.9 keeps the running averages used at inference within tens of steps of them. At inference the
    layer is affine, so DeepLIFT's linear rule applies to it.
    """
    x = layers.GlobalAveragePooling1D(name="counts_pool")(x)
    x = layers.BatchNormalization(momentum=0.9, synchronized=True, name="counts_pool_norm")(x)  # one set of
    # batch statistics over all replicas (per-replica ones made 2-device training diverge from 1-device)
    last = len(p.units) - 1
    if p.activations[last].lower() not in ("linear", "none", "") or p.dropouts[last] > 0:
        warnings.warn(f"{PARAMS_FILE}: the last counts Dense layer predicts log counts and stays linear without "
                      f"dropout (as in the reference); ignoring its activation {p.activations[last]!r} and "
                      f"dropout {p.dropouts[last]}.", stacklevel=3)
    for i in range(last):
        units = n_tasks if p.units[i] == -1 else p.units[i]
        if units <= 0:
            raise InputError(f"'counts_head_params.units[{i}]' is {p.units[i]}; expected a positive number or "
                             "-1 (one per task).", path=PARAMS_FILE)
        x = layers.Dense(units, name=f"counts_dense_{i}")(x)
        activation = _activation_layer(p.activations[i], f"counts_activation_{i}")
        if activation is not None:
            x = activation(x)
        if p.dropouts[i] > 0:
            x = layers.Dropout(p.dropouts[i], name=f"counts_dropout_{i}")(x)
    return layers.Dense(n_outputs, name=f"counts_dense_{last}")(x)


def _in_layout_order(pieces: list, columns: list[int], name: str):
    """Concatenate per-task pieces (holding ``columns``) and reorder them into layout order."""
    x = pieces[0] if len(pieces) == 1 else layers.Concatenate(axis=-1, name=f"{name}_concat")(pieces)
    order = np.argsort(columns)
    if np.array_equal(order, np.arange(len(columns))):
        return x
    return ChannelSelect(order.tolist(), name=f"{name}_reorder")(x)


def _select(x, indices: list[int], name: str):
    """Channels ``indices`` of x (no layer when they are all channels in order)."""
    if indices == list(range(x.shape[-1])):
        return x
    return ChannelSelect(indices, name=name)(x)


def _profile_bias_module(profile, profile_bias, task_tracks, task_bias, kernel_sizes: list[int]):
    n_tasks = len(task_tracks)
    if len(kernel_sizes) not in (1, n_tasks):
        raise InputError(f"'profile_bias_module_params.kernel_sizes' has {len(kernel_sizes)} entries; expected "
                         f"one per task ({n_tasks}) or a single one for all tasks.", path=PARAMS_FILE)
    pieces = []
    for t, (tracks, bias) in enumerate(zip(task_tracks, task_bias, strict=True)):
        logits = _select(profile, tracks, f"profile_task_{t}")
        if bias:
            joined = layers.Concatenate(axis=-1, name=f"profile_bias_concat_{t}")(
                [logits, _select(profile_bias, bias, f"profile_bias_task_{t}")])
            kernel = kernel_sizes[t if len(kernel_sizes) == n_tasks else 0]
            logits = layers.Conv1D(len(tracks), kernel, padding="same", name=f"profile_bias_conv_{t}")(joined)
        pieces.append(logits)
    return _in_layout_order(pieces, [i for tracks in task_tracks for i in tracks], "profile_tasks")


def _counts_bias_module(counts, counts_bias, count_columns, task_bias):
    pieces = []
    for t, (columns, bias) in enumerate(zip(count_columns, task_bias, strict=True)):
        logcounts = _select(counts, columns, f"counts_task_{t}")
        if bias:
            joined = layers.Concatenate(axis=-1, name=f"counts_bias_concat_{t}")(
                [logcounts, _select(counts_bias, bias, f"counts_bias_task_{t}")])
            logcounts = layers.Dense(len(columns), name=f"counts_bias_dense_{t}")(joined)
        pieces.append(logcounts)
    return _in_layout_order(pieces, [i for columns in count_columns for i in columns], "counts_tasks")


# ------------------------------------------------------------------------------------------------ model


#: global gradient-norm clip of the optimizer (see compile_model)
GRADIENT_CLIPNORM = 1.0


@keras.saving.register_keras_serializable(package=PACKAGE)
class BPNet(keras.Model):
    """A functional BPNet whose training step adds the Fourier attribution prior when it is enabled.

    ``task_tracks`` lists each task's profile track indices (for the prior's profile target);
    ``attribution_prior`` holds the ``attribution_prior_params`` when ``use_attribution_prior`` is true, else
    None (then training is Keras' default step). Both travel in the ``.keras`` config. With the prior, the
    ``loss`` (training and validation alike, so early stopping watches the objective being minimised)
    includes it, and it is also reported alone as ``attribution_prior``.
    """

    def __init__(self, inputs, outputs, name=None, *, task_tracks: Sequence[Sequence[int]] = (),
                 attribution_prior: dict[str, float] | None = None, **kwargs: Any):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.task_tracks = tuple(tuple(int(i) for i in tracks) for tracks in task_tracks)
        self.attribution_prior = None if attribution_prior is None else tuple(sorted(attribution_prior.items()))
        self.prior_tracker = keras.metrics.Mean(name="attribution_prior") if attribution_prior else None

    def get_config(self) -> dict:
        config = super().get_config()
        config["task_tracks"] = [list(tracks) for tracks in self.task_tracks]
        config["attribution_prior"] = None if self.attribution_prior is None else dict(self.attribution_prior)
        return config

    def train_step(self, data):
        if self.attribution_prior is None:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            x, y_pred, loss = self._loss_with_prior(x, y, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        if self.attribution_prior is None:
            return super().test_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y_pred, _ = self._loss_with_prior(x, y, sample_weight, training=False)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _loss_with_prior(self, x, y, sample_weight, training: bool):
        """Forward pass, compiled losses plus the attribution prior; records both in the loss trackers.

        Returns the inputs (sequence as float32), the predictions and the per-replica scaled total loss.
        """
        sequence = tf.cast(x["sequence"], tf.float32)
        x = {**x, "sequence": sequence}
        with tf.GradientTape(persistent=True) as input_tape:
            input_tape.watch(sequence)
            y_pred = self(x, training=training)
            profile_target = prior.profile_target(y_pred["profile"], self.task_tracks)
            counts_target = tf.reduce_sum(tf.cast(y_pred["logcounts"], tf.float32))
        profile_attr = prior.gradient_times_input(profile_target, sequence, input_tape)
        counts_attr = prior.gradient_times_input(counts_target, sequence, input_tape)
        del input_tape
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        prior_loss = self._prior_loss(profile_attr, counts_attr, sample_weight)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        loss = loss + prior_loss / replicas  # compute_loss is already scaled per replica
        # The tracker behind the "loss" key, updated as Keras' own train step does.
        self._loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(sequence)[0])
        self.prior_tracker.update_state(prior_loss)
        return x, y_pred, loss

    def _prior_loss(self, profile_attr, counts_attr, sample_weight):
        """Weighted Fourier penalties of the profile and counts attributions (profile sample weights)."""
        p = dict(self.attribution_prior)
        weight = sample_weight.get("profile") if isinstance(sample_weight, dict) else sample_weight

        def penalty(attr):
            values = prior.fourier_penalty(attr, int(p["frequency_limit"]), float(p["limit_softness"]),
                                           float(p["grad_smooth_sigma"]))
            return prior.weighted_mean(values, weight)

        return (float(p["profile_grad_loss_weight"]) * penalty(profile_attr)
                + float(p["counts_grad_loss_weight"]) * penalty(counts_attr))


def _last_counts_dense(model: keras.Model) -> keras.layers.Layer:
    """The counts head's last Dense layer (``counts_dense_<last>``)."""
    names = [layer.name for layer in model.layers if layer.name.startswith("counts_dense_")]
    return model.get_layer(max(names, key=lambda n: int(n.rsplit("_", 1)[1])))


def build_model(params: BpnetParams, store_layout: StoreLayout, *, orig_multi_loss: bool = False) -> BPNet:
    """BPNet for this params file and store: inputs ``sequence`` (+ ``profile_bias``, ``counts_bias`` when the
    store has bias tracks), outputs ``profile`` (B, output_len, n_tracks) logits and ``logcounts``
    (B, n_tasks), or (B, n_tracks) with ``orig_multi_loss``."""
    _check_layout(params, store_layout)
    model_lengths(params)
    groups = TrackGroups.of(store_layout, per_track=orig_multi_loss)
    task_tracks = groups.task_lists()
    task_bias = [store_layout.task_bias_tracks(t) for t in range(len(task_tracks))]
    n_tracks, n_tasks = store_layout.n_tracks, len(task_tracks)
    columns = groups.count_columns()

    sequence = keras.Input((params.input_len, 4), name="sequence")
    inputs = {"sequence": sequence}
    trunk = _syntax_module(_motif_module(sequence, params.motif_module_params), params.syntax_module_params)
    profile = _profile_head(trunk, params.profile_head_params, n_tracks, params.output_profile_len)
    logcounts = _counts_head(trunk, params.counts_head_params, n_tracks if orig_multi_loss else n_tasks, n_tasks)
    if store_layout.n_bias:
        inputs["profile_bias"] = keras.Input((params.output_profile_len, store_layout.n_bias),
                                             name="profile_bias")
        inputs["counts_bias"] = keras.Input((store_layout.n_bias,), name="counts_bias")
        profile = _profile_bias_module(profile, inputs["profile_bias"], task_tracks, task_bias,
                                       params.profile_bias_module_params.kernel_sizes)
        logcounts = _counts_bias_module(logcounts, inputs["counts_bias"], columns, task_bias)
    outputs = {"profile": layers.Identity(name="profile", dtype="float32")(profile),
               "logcounts": layers.Identity(name="logcounts", dtype="float32")(logcounts)}
    attribution_prior = params.attribution_prior_params.model_dump() if params.use_attribution_prior else None
    return BPNet(inputs=inputs, outputs=outputs, name="bpnet", task_tracks=task_tracks,
                 attribution_prior=attribution_prior)


def calibrate_counts_head(model: keras.Model, store_layout: StoreLayout,
                          batches: Iterable[tuple[Mapping[str, Any], Mapping[str, Any], Any]], *,
                          orig_multi_loss: bool = False) -> None:
    """Start each log-count output at the mean target of training batches ``(inputs, targets, weights)``.

    Shifts the bias of the layer producing each log-count output so that the mean prediction (in training mode,
    as the first steps see it) equals the mean target: from a zero start, Adam moves a bias by about the learning
    rate per step, so reaching a mean log count of 5–10 cost hundreds of steps spent on the offset alone.
    Predicted batch by batch, as training sees them (batch statistics of batch normalisation included). The means
    are weighted by the counts-loss sample weights (``weights["logcounts"]``, when given and not all zero), so
    the start is the mean the counts loss pulls toward (the peaks' when backgrounds weigh 0 in it).
    """
    predicted, targets, weights = [], [], []
    for batch in batches:  # one batch at a time: one call on 2,048 joined 2114-bp loci peaked at 14 GB (eager)
        predicted.append(np.asarray(model(dict(batch[0]), training=True)["logcounts"]))
        targets.append(np.asarray(batch[1]["logcounts"]))
        given = batch[2]["logcounts"] if len(batch) > 2 and isinstance(batch[2], Mapping) else None
        weights.append(np.ones(len(targets[-1])) if given is None else np.asarray(given, np.float64))
    w = np.concatenate(weights)
    w = w if w.sum() > 0 else np.ones_like(w)
    shift = np.average(np.concatenate(targets) - np.concatenate(predicted), axis=0, weights=w)
    names = {layer.name for layer in model.layers}
    head = _last_counts_dense(model)
    for t, cols in enumerate(TrackGroups.of(store_layout, orig_multi_loss).count_columns()):
        layer = model.get_layer(f"counts_bias_dense_{t}") if f"counts_bias_dense_{t}" in names else head
        kernel, bias = layer.get_weights()
        bias[cols if layer is head else slice(None)] += shift[cols]
        layer.set_weights([kernel, bias])


def compile_model(model: keras.Model, params: BpnetParams, *, learning_rate: float,
                  task_tracks: Sequence[Sequence[int]], orig_multi_loss: bool = False,
                  **compile_options: Any) -> keras.Model:
    """Adam, the profile multinomial NLL and the counts loss (``counts_loss``), weighted by ``loss_weights``.

    The global gradient norm is clipped to :data:`GRADIENT_CLIPNORM` (as bpnet-lite does): the first batches'
    log-count errors (weighted by the counts-loss weight) otherwise fill Adam's second-moment estimates with
    gradients orders of magnitude above later ones, and for the ~1,000 steps those estimates take to decay the
    trunk and the counts head barely move (held-out counts Pearson −0.12 → 0.84 and profile Pearson 0.30 → 0.83
    within 10 epochs with the batch-normalised head, a calibrated counts offset and clipping; clipping alone on
    the original head gave 0.20 / 0.63, docs/benchmarks.md).
    Sample weights per output (``{"profile": w, "logcounts": w}``) apply per example. Metrics: the log-count
    MSE (whatever the counts loss) so runs with MSE and POISSON compare. ``compile_options`` (e.g.
    ``jit_compile``, ``steps_per_execution``) go to ``model.compile`` unchanged.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=GRADIENT_CLIPNORM),
        loss={"profile": ProfileMultinomialLoss(task_tracks, joint=not orig_multi_loss),
              "logcounts": counts_loss(params.counts_loss, task_tracks, orig_multi_loss)},
        loss_weights={"profile": float(params.loss_weights[0]), "logcounts": float(params.loss_weights[1])},
        metrics={"logcounts": [keras.metrics.MeanSquaredError(name="mse")]},
        **compile_options,
    )
    return model
