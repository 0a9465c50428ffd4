"""BPNet losses: multinomial NLL of the profile, and MSE or Poisson NLL of the total counts.

Shapes follow the model I/O contract: profile targets are observed counts (B, output_len, n_tracks) against
logits of the same shape; log-count targets are (B, n_tasks) in joint mode, or (B, n_tracks) with
``orig_multi_loss``. Every loss returns one value per example (B,), so Keras applies per-example sample weights
(backgrounds weighted by ``--mnll-loss-background-sample-weight`` in the profile loss) and averages over the
batch ("sum over batch size": weighted sum divided by the number of examples, as the reference does).

The losses are written in TensorFlow (the backend bpnetz uses; Keras ops lack lgamma). All classes are
registered for ``.keras`` serialization under the package name "bpnetz".
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from bpnetz.model.contract import TrackGroups

PACKAGE = "bpnetz"


def multinomial_nll(counts, logits, task_tracks: Sequence[Sequence[int]], joint: bool = True):
    """Negative multinomial log-likelihood per example, summed over the multinomials.

    For each multinomial (one per task over positions × its tracks when ``joint``; one per track otherwise):
    ``p = softmax(logits)`` over its cells, ``N = Σ n`` and
    ``NLL = -(lgamma(N + 1) - Σ lgamma(n + 1) + Σ n · log p)``, the exact multinomial log-pmf (so it equals
    ``-scipy.stats.multinomial.logpmf(n, N, p)``). Returns shape (B,).
    """
    counts = tf.cast(counts, tf.float32)
    logits = tf.cast(logits, tf.float32)
    total = 0.0
    for group in TrackGroups.from_lists(task_tracks, per_track=not joint).softmax():
        n = tf.reshape(tf.gather(counts, group, axis=-1), (tf.shape(counts)[0], -1))
        z = tf.reshape(tf.gather(logits, group, axis=-1), (tf.shape(logits)[0], -1))
        log_p = z - tf.reduce_logsumexp(z, axis=-1, keepdims=True)
        n_total = tf.reduce_sum(n, axis=-1)
        log_coefficient = tf.math.lgamma(n_total + 1.0) - tf.reduce_sum(tf.math.lgamma(n + 1.0), axis=-1)
        total = total - (log_coefficient + tf.reduce_sum(n * log_p, axis=-1))
    return total


@keras.saving.register_keras_serializable(package=PACKAGE)
class ProfileMultinomialLoss(keras.losses.Loss):
    """Profile loss: :func:`multinomial_nll` per example (joint over strands, or per track)."""

    def __init__(self, task_tracks: Sequence[Sequence[int]], joint: bool = True,
                 name: str = "profile_multinomial_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.task_tracks = TrackGroups.from_lists(task_tracks).task_lists()
        self.joint = bool(joint)

    def call(self, y_true, y_pred):
        return multinomial_nll(y_true, y_pred, self.task_tracks, self.joint)

    def get_config(self) -> dict:
        return {**super().get_config(), "task_tracks": self.task_tracks, "joint": self.joint}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CountsMSELoss(keras.losses.Loss):
    """Counts loss "MSE": squared error of log counts, averaged over the count outputs. Shape (B,)."""

    def __init__(self, name: str = "logcounts_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        y_pred = tf.cast(y_pred, tf.float32)
        return tf.reduce_mean(tf.square(y_pred - y_true), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CountsPoissonLoss(keras.losses.Loss):
    """Counts loss "POISSON": Poisson NLL of the raw total counts, with rate exp(predicted log count).

    The target is a log count with pseudocounts, log(pseudocount + total) — one pseudocount per track summed,
    i.e. 2 for a stranded task in joint mode and 1 per track otherwise (``pseudocounts``, one per output
    column). The raw total is recovered as ``y = exp(target) - pseudocount`` (clipped at 0) and, with
    ``λ = exp(prediction)``, the loss is ``λ - y·log λ + lgamma(y + 1)`` = −log Poisson(y; λ), averaged over
    the count outputs. Shape (B,).
    """

    def __init__(self, pseudocounts: Sequence[float], name: str = "logcounts_poisson_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pseudocounts = [float(p) for p in pseudocounts]

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        log_rate = tf.cast(y_pred, tf.float32)
        pseudo = tf.constant(self.pseudocounts, dtype=tf.float32)
        observed = tf.maximum(tf.exp(y_true) - pseudo, 0.0)
        nll = tf.exp(log_rate) - observed * log_rate + tf.math.lgamma(observed + 1.0)
        return tf.reduce_mean(nll, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "pseudocounts": self.pseudocounts}


def counts_loss(kind: str, task_tracks: Sequence[Sequence[int]], orig_multi_loss: bool) -> keras.losses.Loss:
    """The counts loss named by bpnet_params.json's ``counts_loss`` ("MSE" or "POISSON")."""
    if kind == "MSE":
        return CountsMSELoss()
    if kind == "POISSON":
        return CountsPoissonLoss(TrackGroups.from_lists(task_tracks, orig_multi_loss).pseudocounts())
    raise ValueError(f"unknown counts loss {kind!r}; expected 'MSE' or 'POISSON'")
