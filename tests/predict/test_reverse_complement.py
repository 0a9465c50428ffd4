"""Reverse-complement averaging with a small, strand-asymmetric numpy convolutional model."""

from __future__ import annotations

import numpy as np
import pytest

from bpnetz.genome.sequence import COMPLEMENT_CODE, one_hot
from bpnetz.predict.reverse_complement import rc_average
from bpnetz.store.schema import StoreLayout, Track

IN_LEN, OUT_LEN, K = 40, 20, 5


def _layout() -> StoreLayout:
    tracks = [Track("a/+", 0, "+", "a+.bw"), Track("a/-", 0, "-", "a-.bw"), Track("b", 1, ".", "b.bw")]
    bias = [Track("ca/+", 0, "+", "c+.bw"), Track("ca/-", 0, "-", "c-.bw"),
            Track("ca/+s", 0, "+", "c+.bw", (5.0, 21)), Track("ca/-s", 0, "-", "c-.bw", (5.0, 21)),
            Track("cb", 1, ".", "cb.bw")]
    return StoreLayout(IN_LEN, OUT_LEN, 0, ["a", "b"], tracks, bias)


# hand-written index maps (not from the code under test): + <-> - within task and smoothing
TRACK_SWAP = [1, 0, 2]
BIAS_SWAP = [1, 0, 3, 2, 4]


class NumpyModel:
    """conv(K) -> ReLU -> crop -> linear profile head + bias mix; pooled counts head + counts bias."""

    def __init__(self, rng: np.random.Generator, per_track_counts: bool):
        self.kernel = rng.normal(size=(K, 4, 6))
        self.head = rng.normal(size=(6, 3))
        self.bias_mix = rng.normal(size=(5, 3))
        self.counts_w = rng.normal(size=(6, 3 if per_track_counts else 2))
        self.counts_b = rng.normal(size=(5, 3 if per_track_counts else 2))

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["sequence"]
        windows = np.lib.stride_tricks.sliding_window_view(x, K, axis=1)  # (B, L-K+1, 4, K)
        features = np.maximum(np.einsum("blck,kcf->blf", windows, self.kernel), 0)
        crop = (features.shape[1] - OUT_LEN) // 2
        body = features[:, crop:crop + OUT_LEN]
        profile = body @ self.head + inputs["profile_bias"] @ self.bias_mix
        logcounts = features.mean(axis=1) @ self.counts_w + inputs["counts_bias"] @ self.counts_b
        return {"profile": profile, "logcounts": logcounts}


def _batch(rng: np.random.Generator):
    codes = rng.integers(0, 5, size=(3, IN_LEN)).astype(np.uint8)
    bias = {"profile_bias": rng.gamma(1.0, size=(3, OUT_LEN, 5))}
    bias["counts_bias"] = np.log1p(bias["profile_bias"].sum(axis=1))
    return codes, bias


def _rc(codes, bias):
    rc_codes = COMPLEMENT_CODE[codes[:, ::-1]]
    return rc_codes, {"profile_bias": bias["profile_bias"][:, ::-1, BIAS_SWAP],
                      "counts_bias": bias["counts_bias"][:, BIAS_SWAP]}


@pytest.mark.parametrize("per_track_counts", [False, True])
def test_rc_average_is_strand_symmetric(per_track_counts):
    rng = np.random.default_rng(0)
    model = NumpyModel(rng, per_track_counts)
    layout = _layout()
    codes, bias = _batch(rng)
    rc_codes, rc_bias = _rc(codes, bias)

    fwd = rc_average(model, one_hot(codes), bias, layout)
    rev = rc_average(model, one_hot(rc_codes), rc_bias, layout)
    counts_swap = TRACK_SWAP if per_track_counts else [0, 1]
    np.testing.assert_allclose(fwd["profile"], rev["profile"][:, ::-1, TRACK_SWAP], rtol=1e-12)
    np.testing.assert_allclose(fwd["logcounts"], rev["logcounts"][:, counts_swap], rtol=1e-12)

    # the average written out by hand, and a model that is not symmetric by itself (so the test can fail)
    plain, flipped = model({"sequence": one_hot(codes), **bias}), model({"sequence": one_hot(rc_codes), **rc_bias})
    np.testing.assert_allclose(
        fwd["profile"], (plain["profile"] + flipped["profile"][:, ::-1, TRACK_SWAP]) / 2, rtol=1e-12)
    np.testing.assert_allclose(
        fwd["logcounts"], (plain["logcounts"] + flipped["logcounts"][:, counts_swap]) / 2, rtol=1e-12)
    assert not np.allclose(plain["profile"], flipped["profile"][:, ::-1, TRACK_SWAP])


def test_rc_average_without_bias_inputs():
    rng = np.random.default_rng(1)
    layout = StoreLayout(IN_LEN, OUT_LEN, 0, ["a"], [Track("a/+", 0, "+", "p"), Track("a/-", 0, "-", "m")])
    kernel = rng.normal(size=(K, 4, 2))
    seen = []

    def model(inputs):
        seen.append(sorted(inputs))
        w = np.lib.stride_tricks.sliding_window_view(inputs["sequence"], K, axis=1)
        out = np.einsum("blck,kcf->blf", w, kernel)[:, :OUT_LEN]
        return {"profile": out, "logcounts": out.sum(axis=(1, 2))[:, None]}

    codes = rng.integers(0, 4, size=(2, IN_LEN))
    rc_codes = COMPLEMENT_CODE[codes[:, ::-1]]
    fwd = rc_average(model, one_hot(codes), None, layout)
    rev = rc_average(model, one_hot(rc_codes), None, layout)
    assert seen[0] == ["sequence"]
    plain, flipped = model({"sequence": one_hot(codes)}), model({"sequence": one_hot(rc_codes)})
    np.testing.assert_allclose(fwd["profile"], (plain["profile"] + flipped["profile"][:, ::-1, [1, 0]]) / 2)
    np.testing.assert_allclose(fwd["profile"], rev["profile"][:, ::-1, [1, 0]], rtol=1e-12)
    np.testing.assert_allclose(fwd["logcounts"], rev["logcounts"], rtol=1e-12)
