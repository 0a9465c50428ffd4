"""The Fourier attribution prior (Tseng, Shrikumar & Kundaje, NeurIPS 2020), as used by BPNet/ChromBPNet.

Idea: real regulatory grammar gives attributions that are sparse, smooth peaks (motifs), not base-to-base
noise. For each example we take the input gradient of an output target, multiply it by the one-hot input and
sum over bases (gradient × input, one value per position), take its absolute value and smooth it with a
Gaussian of ``grad_smooth_sigma``. Let ``m_k = |FFT(a)_k|`` for frequencies k = 1 … L/2 (the DC term dropped),
normalised so that Σ m_k = 1. Frequencies up to ``frequency_limit`` get weight 1, higher ones a soft cutoff
``w_k = 1 / (1 + (k - frequency_limit) ** limit_softness)``. The penalty is

    prior(a) = 1 − Σ_k w_k · m_k

which is 0 when all the spectral mass lies below the limit and approaches 1 for white noise. The training loss
adds ``profile_grad_loss_weight · prior(profile gradients) + counts_grad_loss_weight · prior(counts gradients)``,
averaged over examples with the profile sample weights (so background loci, weighted 0 by default, are left
out, as the original applies the prior to positives only).

Targets: the counts target is the sum of predicted log counts; the profile target is, per task, the joint logits
minus their mean weighted by their softmax probabilities held constant (the same target as the profile
contribution scores), summed over tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel, truncated at 4 σ (scipy.ndimage's default radius)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def smooth(values: tf.Tensor, sigma: float) -> tf.Tensor:
    """Gaussian smoothing of (B, L) along L with zero padding; sigma <= 0 returns the input."""
    if sigma <= 0:
        return values
    kernel = tf.constant(gaussian_kernel(sigma)[:, None, None])
    return tf.nn.conv1d(values[:, :, None], kernel, stride=1, padding="SAME")[:, :, 0]


def frequency_weights(length: int, frequency_limit: int, limit_softness: float) -> np.ndarray:
    """Weights of frequencies 1 … length//2 of an rfft: 1 up to the limit, then a soft power-law cutoff."""
    n_freq = length // 2 + 1 - 1  # rfft bins minus DC
    weights = np.ones(n_freq, dtype=np.float32)
    above = np.arange(1, max(n_freq - frequency_limit, 0) + 1, dtype=np.float64)
    weights[frequency_limit:] = 1.0 / (1.0 + above ** limit_softness)
    return weights


def fourier_penalty(attributions: tf.Tensor, frequency_limit: int, limit_softness: float,
                    grad_smooth_sigma: float) -> tf.Tensor:
    """Per-example prior (B,) of position-wise attributions (B, L): 1 − low-frequency share of the spectrum."""
    values = smooth(tf.abs(tf.cast(attributions, tf.float32)), grad_smooth_sigma)
    magnitudes = tf.abs(tf.signal.rfft(values))[:, 1:]
    total = tf.reduce_sum(magnitudes, axis=-1, keepdims=True)
    share = magnitudes / tf.where(total > 0, total, tf.ones_like(total))
    weights = tf.constant(frequency_weights(int(attributions.shape[-1]), frequency_limit, limit_softness))
    return 1.0 - tf.reduce_sum(share * weights, axis=-1)


def profile_target(logits: tf.Tensor, task_tracks: Sequence[Sequence[int]]) -> tf.Tensor:
    """Scalar profile target: Σ_tasks Σ (logits − mean) · stop_gradient(softmax), joint per task."""
    batch = tf.shape(logits)[0]
    total = tf.constant(0.0)
    for tracks in task_tracks:
        z = tf.reshape(tf.gather(tf.cast(logits, tf.float32), list(tracks), axis=-1), (batch, -1))
        weights = tf.stop_gradient(tf.nn.softmax(z, axis=-1))
        total += tf.reduce_sum((z - tf.reduce_mean(z, axis=-1, keepdims=True)) * weights)
    return total


def gradient_times_input(target: tf.Tensor, sequence: tf.Tensor, tape: tf.GradientTape) -> tf.Tensor:
    """(B, L) gradient × one-hot input summed over bases; the tape must watch ``sequence``."""
    grads = tape.gradient(target, sequence)
    return tf.reduce_sum(grads * sequence, axis=-1)


def weighted_mean(values: tf.Tensor, sample_weight: tf.Tensor | None) -> tf.Tensor:
    """Mean of (B,) values weighted per example; 0 when every weight is 0."""
    if sample_weight is None:
        return tf.reduce_mean(values)
    weight = tf.cast(tf.reshape(sample_weight, (-1,)), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(values * weight), tf.reduce_sum(weight))
