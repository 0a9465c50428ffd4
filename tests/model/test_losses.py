"""Losses against scipy's multinomial and Poisson log-pmfs and a numpy MSE on hand-made examples."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import multinomial, poisson

from bpnetz.model.contract import TrackGroups
from bpnetz.model.losses import (
    CountsMSELoss,
    CountsPoissonLoss,
    ProfileMultinomialLoss,
    counts_loss,
    multinomial_nll,
)

RNG = np.random.default_rng(11)
B, L = 4, 6
# task 0 stranded (tracks 0, 1), task 1 unstranded (track 2)
TASK_TRACKS = [[0, 1], [2]]
COUNTS = RNG.poisson(1.5, (B, L, 3)).astype(np.float32)
LOGITS = RNG.normal(0, 1.5, (B, L, 3)).astype(np.float32)


def scipy_nll(counts: np.ndarray, logits: np.ndarray) -> float:
    """-log multinomial pmf of counts (any shape) under softmax(logits) over all cells together."""
    n = counts.ravel().astype(int)
    p = softmax(logits.ravel().astype(np.float64))
    return -multinomial.logpmf(n, n.sum(), p)


def test_joint_multinomial_matches_scipy():
    expected = [scipy_nll(COUNTS[b][:, [0, 1]], LOGITS[b][:, [0, 1]]) + scipy_nll(COUNTS[b][:, 2], LOGITS[b][:, 2])
                for b in range(B)]
    got = np.asarray(multinomial_nll(COUNTS, LOGITS, TASK_TRACKS, joint=True))
    assert got.shape == (B,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_per_strand_multinomial_matches_scipy():
    expected = [sum(scipy_nll(COUNTS[b][:, k], LOGITS[b][:, k]) for k in range(3)) for b in range(B)]
    got = np.asarray(multinomial_nll(COUNTS, LOGITS, TASK_TRACKS, joint=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # joint and per-strand differ for the stranded task (the strand split is part of the joint model)
    assert not np.allclose(got, multinomial_nll(COUNTS, LOGITS, TASK_TRACKS, joint=True))


def test_zero_counts_cost_nothing():
    zeros = np.zeros((1, L, 3), np.float32)
    np.testing.assert_allclose(np.asarray(multinomial_nll(zeros, LOGITS[:1], TASK_TRACKS)), [0.0], atol=1e-6)


def test_profile_loss_applies_sample_weights_per_example():
    weights = np.array([1.0, 0.0, 1.0, 0.5], np.float32)
    per_example = [scipy_nll(COUNTS[b][:, [0, 1]], LOGITS[b][:, [0, 1]]) + scipy_nll(COUNTS[b][:, 2], LOGITS[b][:, 2])
                   for b in range(B)]
    loss = ProfileMultinomialLoss(TASK_TRACKS, joint=True)
    got = float(loss(COUNTS, LOGITS, sample_weight=weights))
    assert got == pytest.approx(np.dot(weights, per_example) / B, rel=1e-5)


def test_mse_matches_numpy():
    target = RNG.normal(4, 1, (B, 2)).astype(np.float32)
    pred = RNG.normal(4, 1, (B, 2)).astype(np.float32)
    got = np.asarray(CountsMSELoss().call(target, pred))
    np.testing.assert_allclose(got, ((pred - target) ** 2).mean(axis=1), rtol=1e-6)
    assert float(CountsMSELoss()(target, pred)) == pytest.approx(((pred - target) ** 2).mean(), rel=1e-6)


def test_poisson_is_poisson_nll_of_raw_totals():
    totals = COUNTS.sum(axis=1)  # (B, 3) per track
    stranded_total, unstranded_total = totals[:, 0] + totals[:, 1], totals[:, 2]
    # joint targets per the contract: log(2 + plus + minus), log(1 + counts)
    target = np.stack([np.log(2 + stranded_total), np.log(1 + unstranded_total)], axis=1).astype(np.float32)
    pred = RNG.normal(2, 0.5, (B, 2)).astype(np.float32)
    loss = counts_loss("POISSON", TASK_TRACKS, orig_multi_loss=False)
    assert isinstance(loss, CountsPoissonLoss)
    expected = -(poisson.logpmf(stranded_total, np.exp(pred[:, 0])) + poisson.logpmf(unstranded_total,
                                                                                    np.exp(pred[:, 1]))) / 2
    np.testing.assert_allclose(np.asarray(loss.call(target, pred)), expected, rtol=1e-4)


def test_pseudocounts_follow_the_target_definition():
    assert TrackGroups.from_lists(TASK_TRACKS, per_track=False).pseudocounts() == [2.0, 1.0]
    assert TrackGroups.from_lists(TASK_TRACKS, per_track=True).pseudocounts() == [1.0, 1.0, 1.0]


def test_losses_serialize():
    for loss in (ProfileMultinomialLoss(TASK_TRACKS, joint=False), CountsPoissonLoss([2.0, 1.0]), CountsMSELoss()):
        revived = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(revived) is type(loss)
        assert revived.get_config() == loss.get_config()
