"""Plots: the numbers shown match independent computations, and PNGs are written atomically."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.stats import pearsonr

from bpnetz.predict.plots import (
    logcounts_figure,
    plot_logcounts_scatter,
    plot_top_profiles,
    top_profiles_figure,
)


def test_logcounts_scatter_title_has_scipy_pearson(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.normal(5, 1, size=(50, 2))
    pred = true + rng.normal(0, [0.3, 1.0], size=(50, 2))
    fig = logcounts_figure(true, pred, ["a", "b"])
    for g, ax in enumerate(fig.axes):
        r = float(re.search(r"r = (-?[0-9.]+)", ax.get_title()).group(1))
        assert r == pytest.approx(pearsonr(true[:, g], pred[:, g])[0], abs=5e-4)
        np.testing.assert_array_equal(ax.collections[0].get_offsets(), np.c_[true[:, g], pred[:, g]])
    path = plot_logcounts_scatter(tmp_path / "counts.png", true, pred, ["a", "b"])
    assert imread(path).ndim == 3
    assert [p.name for p in tmp_path.iterdir()] == ["counts.png"]


def test_top_profiles_shows_the_highest_count_examples_with_minus_strand_mirrored(tmp_path):
    rng = np.random.default_rng(1)
    true = rng.poisson(1.0, size=(6, 30, 3)).astype(float)
    true[4, :, :2] += 10  # top for task 0 (tracks 0, 1)
    true[1, :, 2] += 20  # top for task 1 (track 2)
    pred = rng.gamma(1.0, size=true.shape)
    fig = top_profiles_figure(true, pred, [[0, 1], [2]], ["+", "-", "."], ["a", "b"], k=2)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "a: example 4" and fig.axes[2].get_title() == "b: example 1"
    lines = fig.axes[0].get_lines()
    np.testing.assert_array_equal(lines[0].get_ydata(), true[4, :, 0])
    np.testing.assert_array_equal(lines[1].get_ydata(), pred[4, :, 0])
    np.testing.assert_array_equal(lines[2].get_ydata(), -true[4, :, 1])
    np.testing.assert_array_equal(fig.axes[2].get_lines()[0].get_ydata(), true[1, :, 2])
    path = plot_top_profiles(tmp_path / "profiles.png", true, pred, [[0, 1], [2]], ["+", "-", "."], ["a", "b"])
    assert imread(path).ndim == 3
