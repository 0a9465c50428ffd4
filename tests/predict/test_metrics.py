"""Metrics checked against independent scipy/numpy computations on hand-made profiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal.windows import gaussian
from scipy.spatial.distance import jensenshannon
from scipy.stats import multinomial, pearsonr, spearmanr

from bpnetz.predict import metrics as M

L = 120


def _peaky_counts(rng: np.random.Generator, n: int, tracks: int, depth: float = 30.0) -> np.ndarray:
    pos = np.arange(L)
    out = np.zeros((n, L, tracks))
    for i in range(n):
        for t in range(tracks):
            centre = rng.integers(30, 90)
            rate = np.exp(-0.5 * ((pos - centre) / 6.0) ** 2) + 0.02
            out[i, :, t] = rng.poisson(depth * rng.uniform(0.3, 3) * rate / rate.sum() * 10)
    return out


def _reference_smooth(profile: np.ndarray) -> np.ndarray:
    """The reference's call: gaussian_filter1d with truncate chosen so that the window is 81 taps."""
    return gaussian_filter1d(profile.astype(float), sigma=7.0, truncate=((81 - 1) / 2 - 0.5) / 7.0)


def test_smoothing_matches_gaussian_filter_and_explicit_convolution():
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(3, L, 2)).astype(float)
    ours = M.smooth_profiles(counts)
    kernel = gaussian(81, std=7.0)
    kernel /= kernel.sum()
    assert len(M.gaussian_kernel(7.0, 81)) == 81
    for i in range(3):
        for t in range(2):
            x = counts[i, :, t]
            np.testing.assert_allclose(ours[i, :, t], _reference_smooth(x), atol=1e-12)
            padded = np.pad(x, 40, mode="symmetric")  # half-sample reflection, like scipy's 'reflect'
            np.testing.assert_allclose(ours[i, :, t], np.convolve(padded, kernel, mode="valid"), atol=1e-12)


def _scipy_unit(obs: np.ndarray, pred_counts: np.ndarray) -> dict[str, float]:
    """One example, one unit, written the way the reference's per-example loop does it, with scipy."""
    smooth = np.concatenate([_reference_smooth(obs[:, t]) for t in range(obs.shape[1])])
    obs_flat, pred_flat = obs.T.ravel(), pred_counts.T.ravel()
    q = smooth / smooth.sum()
    p = pred_flat / pred_flat.sum()
    freqs = obs_flat / obs_flat.sum()
    uniform = np.full(len(p), 1 / len(p))
    n = int(obs_flat.sum())

    def mnll(probs):
        return -multinomial(n, probs).logpmf(obs_flat.astype(int)) / len(obs_flat)

    def norm(v, best, worst):
        return float(np.clip((v - worst) / (best - worst), 0, 1))

    def ce(probs):
        return -np.sum(freqs * np.log(probs + 1e-7))

    return {
        "profile_pearson": pearsonr(q, p)[0],
        "profile_spearman": spearmanr(q, p)[0],
        "mnll": mnll(p),
        "mnll_norm": norm(mnll(p), mnll(freqs), mnll(uniform)),
        "cross_entropy_norm": norm(ce(p), ce(freqs), ce(uniform)),
        "jsd": jensenshannon(q, p),
        "jsd_norm": norm(jensenshannon(q, p), 0.0, jensenshannon(freqs, uniform)),
        "profile_mse": np.mean((obs_flat - pred_flat) ** 2),
    }


def test_profile_metrics_match_scipy_per_track_and_per_task():
    rng = np.random.default_rng(1)
    n, groups = 6, [[0, 1], [2]]
    true = _peaky_counts(rng, n, 3)
    logits = rng.normal(size=(n, L, 3)) + np.log(_peaky_counts(rng, n, 3) + 1)
    logcounts = rng.normal(5, 1, size=(n, 2))
    res = M.compute_metrics(true, pred_logits=logits, pred_logcounts=logcounts, task_tracks=groups)
    # predicted counts written independently: softmax over the flattened group, times exp(log count)
    pred_counts = np.zeros_like(true)
    for i in range(n):
        for g, tracks in enumerate(groups):
            flat = logits[i][:, tracks].ravel()
            e = np.exp(flat - flat.max())
            pred_counts[i][:, tracks] = (e / e.sum() * np.exp(logcounts[i, g])).reshape(L, len(tracks))
    np.testing.assert_allclose(M.predicted_counts(logits, logcounts, groups), pred_counts, rtol=1e-10)
    for i in range(n):
        for t in range(3):
            expected = _scipy_unit(true[i, :, [t]].T, pred_counts[i, :, [t]].T)
            for key, value in expected.items():
                assert res.track.profile[key][i, t] == pytest.approx(value, rel=1e-7, abs=1e-9), (key, i, t)
        for g, tracks in enumerate(groups):
            expected = _scipy_unit(true[i][:, tracks], pred_counts[i][:, tracks])
            for key, value in expected.items():
                assert res.task.profile[key][i, g] == pytest.approx(value, rel=1e-7, abs=1e-9), (key, i, g)


def test_perfect_and_uniform_predictions_hit_the_normalisation_bounds():
    rng = np.random.default_rng(2)
    true = _peaky_counts(rng, 4, 1)
    freqs = true / true.sum(axis=1, keepdims=True)
    lc = np.log(true.sum(axis=(1, 2)) + 1)[:, None]
    perfect = M.compute_metrics(true, pred_probs=freqs, pred_logcounts=lc, task_tracks=[[0]])
    np.testing.assert_allclose(perfect.track.profile["mnll_norm"], 1.0)
    np.testing.assert_allclose(perfect.track.profile["cross_entropy_norm"], 1.0, atol=1e-6)
    smooth = np.stack([_reference_smooth(true[i, :, 0]) for i in range(4)])[:, :, None]
    smooth_probs = smooth / smooth.sum(axis=1, keepdims=True)
    matched = M.compute_metrics(true, pred_probs=smooth_probs, pred_logcounts=lc, task_tracks=[[0]])
    np.testing.assert_allclose(matched.track.profile["jsd"], 0.0, atol=1e-7)
    np.testing.assert_allclose(matched.track.profile["jsd_norm"], 1.0, atol=1e-6)
    np.testing.assert_allclose(matched.track.profile["profile_pearson"], 1.0)
    uniform = np.full_like(true, 1.0 / L)
    flat = M.compute_metrics(true, pred_probs=uniform, pred_logcounts=lc, task_tracks=[[0]])
    np.testing.assert_allclose(flat.track.profile["mnll_norm"], 0.0, atol=1e-12)
    np.testing.assert_allclose(flat.track.profile["cross_entropy_norm"], 0.0, atol=1e-12)
    assert (flat.track.profile["profile_pearson"] == 0).all()  # constant prediction: the reference's 0
    # the reference bounds JSD by raw-vs-uniform while measuring smoothed-vs-prediction: uniform scores above 0
    expected = [1 - jensenshannon(smooth[i, :, 0], np.ones(L)) / jensenshannon(true[i, :, 0], np.ones(L))
                for i in range(4)]
    np.testing.assert_allclose(flat.track.profile["jsd_norm"][:, 0], expected, rtol=1e-9)


def test_zero_count_examples_are_nan_excluded_and_counted():
    rng = np.random.default_rng(3)
    true = _peaky_counts(rng, 5, 2)
    true[1, :, 0] = 0
    true[3] = 0
    logits = rng.normal(size=true.shape)
    res = M.compute_metrics(true, pred_logits=logits, pred_logcounts=np.full((5, 1), 4.0), task_tracks=[[0, 1]])
    assert np.isnan(res.track.profile["jsd"][[1, 3], 0]).all()
    assert np.isnan(res.track.profile["jsd"][3, 1]) and not np.isnan(res.track.profile["jsd"][1, 1])
    assert np.isnan(res.task.profile["mnll"][3, 0]) and not np.isnan(res.task.profile["mnll"][1, 0])
    summary = res.summary()
    assert summary["track"]["track 0"]["jsd"]["n_undefined"] == 2
    assert summary["track"]["track 1"]["jsd"]["n_undefined"] == 1
    assert summary["task"]["task 0"]["mnll_norm"]["n_undefined"] == 1
    keep = [0, 2, 4]
    assert summary["track"]["track 0"]["profile_pearson"]["mean"] == pytest.approx(
        np.mean(res.track.profile["profile_pearson"][keep, 0]))


def test_counts_metrics_match_scipy_and_track_logcounts_use_the_track_share():
    rng = np.random.default_rng(4)
    true = _peaky_counts(rng, 30, 2)
    logits = rng.normal(size=true.shape)
    true_lc = np.log((1 + true.sum(axis=1)).sum(axis=1))[:, None]
    pred_lc = true_lc + rng.normal(0, 0.3, size=true_lc.shape)
    res = M.compute_metrics(true, pred_logits=logits, pred_logcounts=pred_lc, task_tracks=[[0, 1]])
    np.testing.assert_allclose(res.task.true_logcounts, true_lc)  # default target = model contract
    s = res.summary()["task"]["task 0"]
    assert s["counts_pearson"] == pytest.approx(pearsonr(true_lc[:, 0], pred_lc[:, 0])[0])
    assert s["counts_spearman"] == pytest.approx(spearmanr(true_lc[:, 0], pred_lc[:, 0])[0])
    assert s["counts_mse"] == pytest.approx(np.mean((true_lc - pred_lc) ** 2))
    e = np.exp(logits - logits.max(axis=(1, 2), keepdims=True))
    share = e.sum(axis=1) / e.sum(axis=(1, 2))[:, None]
    np.testing.assert_allclose(res.track.pred_logcounts, np.log(share * np.exp(pred_lc)), rtol=1e-10)
    np.testing.assert_allclose(res.track.true_logcounts, np.log(1 + true.sum(axis=1)))


def test_baseline_is_the_average_shape_with_the_mean_log_count():
    rng = np.random.default_rng(5)
    ref = _peaky_counts(rng, 8, 2)
    ref[2] = 0  # left out of the average shape
    probs, lc = M.baseline_predictions(ref, [[0, 1]], n_examples=3)
    expected = sum(ref[i] / ref[i].sum() for i in range(8) if i != 2) / 7
    assert probs.shape == (3, L, 2)
    np.testing.assert_allclose(probs[1], expected)
    np.testing.assert_allclose(lc[:, 0], np.mean([np.log(2 + ref[i].sum()) for i in range(8)]))
    res = M.compute_metrics(ref, pred_probs=probs[:1].repeat(8, 0), pred_logcounts=lc[:1].repeat(8, 0),
                            task_tracks=[[0, 1]])
    assert res.summary()["task"]["task 0"]["counts_pearson"] == 0.0  # constant prediction


def test_one_prediction_for_all_gives_the_metrics_of_its_rows_repeated():
    """The baseline's broadcast views take the one-row paths (matrix-vector products, ranks once); the same
    prediction materialised row by row takes the elementwise paths, which match scipy above."""
    rng = np.random.default_rng(8)
    true = _peaky_counts(rng, 9, 2)
    true[3] = 0  # undefined: NaN on both paths
    probs, lc = M.baseline_predictions(_peaky_counts(rng, 6, 2), [[0, 1]], n_examples=9)
    probs = np.array(probs[:1])
    probs[0, 5, 0] = 0.0  # a position the prediction rules out: mnll is infinite where it holds counts
    probs = np.broadcast_to(probs / probs.sum(), true.shape)
    true[0, 5, 0], true[1, 5, 0] = 4, 0
    results = M.compare_predictions(true, {"view": (probs, lc), "rows": (np.array(probs), np.array(lc))},
                                    task_tracks=[[0, 1]])
    assert np.isinf(results["rows"].track.profile["mnll"][0, 0])
    for level in ("track", "task"):
        view, rows = getattr(results["view"], level), getattr(results["rows"], level)
        for metric in M.PROFILE_METRICS:
            np.testing.assert_allclose(view.profile[metric], rows.profile[metric], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{level} {metric}")
        np.testing.assert_allclose(view.pred_logcounts, rows.pred_logcounts, rtol=1e-12)
    assert np.isnan(results["view"].task.profile["jsd"][3, 0])


def test_binomial_thinning_properties():
    rng = np.random.default_rng(6)
    fixed = np.full(20000, 40.0)
    a, b = M.thin_counts(fixed, rng)
    np.testing.assert_array_equal(a + b, fixed)
    assert a.mean() == pytest.approx(20.0, abs=0.2)
    assert a.var() == pytest.approx(40 * 0.25, rel=0.05)  # Binomial(40, 1/2) variance
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(-1.0)  # a + b fixed: perfectly anti-correlated
    poisson = rng.poisson(40.0, size=20000).astype(float)
    a, b = M.thin_counts(poisson, rng)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03  # Poisson thinning: independent halves
    assert a.var() == pytest.approx(20.0, rel=0.05)  # Poisson(20)


def test_upper_bound_behaviour():
    rng = np.random.default_rng(7)
    pos = np.arange(L)
    shape = np.exp(-0.5 * ((pos - 60) / 8.0) ** 2) + 0.01
    shape /= shape.sum()
    depth = np.exp(rng.uniform(4, 9, size=40))  # totals spread over two orders of magnitude
    true = rng.poisson(depth[:, None] * shape[None])[:, :, None].astype(float)
    ub = M.upper_bound(true, [[0]], seed=11)
    again = M.upper_bound(true, [[0]], seed=11)
    np.testing.assert_array_equal(ub.track.profile["jsd"], again.track.profile["jsd"])
    s = ub.summary()["task"]["task 0"]
    assert s["counts_pearson"] > 0.98
    assert s["profile_pearson"]["median"] > 0.95
    # the halves' log counts are doubled to the full-depth scale
    assert np.median(ub.task.true_logcounts[:, 0] - np.log(true.sum(axis=(1, 2)) + 1)) == pytest.approx(0, abs=0.1)
    # deeper data -> the halves agree better (JSD falls with depth)
    jsd = ub.track.profile["jsd"][:, 0]
    assert np.corrcoef(np.log(depth), jsd)[0, 1] < -0.8


def test_metrics_table_has_one_column_per_result():
    rng = np.random.default_rng(8)
    true = _peaky_counts(rng, 10, 2)
    model = M.compute_metrics(true, pred_logits=np.log(true + 1), pred_logcounts=M.task_logcounts(true, [[0, 1]]),
                              task_tracks=[[0, 1]], track_names=["p/+", "p/-"], task_names=["p"])
    probs, lc = M.baseline_predictions(true, [[0, 1]], 10)
    base = M.compute_metrics(true, pred_probs=probs, pred_logcounts=lc, task_tracks=[[0, 1]],
                             track_names=["p/+", "p/-"], task_names=["p"])
    ub = M.upper_bound(true, [[0, 1]], track_names=["p/+", "p/-"], task_names=["p"])
    table = M.metrics_table({"model": model, "baseline": base, "upper bound": ub})
    lines = table.splitlines()
    assert lines[0].split()[-4:] == ["model", "baseline", "upper", "bound"]
    assert "task p" in lines and "track p/-" in lines
    row = next(line for line in lines if line.strip().startswith("counts pearson"))
    assert row.split()[-2] == "0.000"  # the baseline predicts one log count for all
    assert float(row.split()[-3]) == pytest.approx(model.task.counts["counts_pearson"][0], abs=5e-4)


def test_upper_bound_definition_reproduced_from_the_seeded_split():
    rng = np.random.default_rng(9)
    true = _peaky_counts(rng, 5, 2)
    ub = M.upper_bound(true, [[0, 1]], seed=3)
    half_a = np.random.default_rng(3).binomial(true.astype(int), 0.5).astype(float)
    half_b = true - half_a
    np.testing.assert_allclose(ub.track.true_logcounts, np.log(1 + 2 * half_a.sum(axis=1)))
    np.testing.assert_allclose(ub.track.pred_logcounts, np.log(1 + 2 * half_b.sum(axis=1)))
    np.testing.assert_allclose(ub.task.pred_logcounts[:, 0], np.log(2 + 2 * half_b.sum(axis=(1, 2))))
    for i in range(5):
        smooth_b = np.stack([_reference_smooth(half_b[i, :, t]) for t in range(2)], axis=1)
        probs = (smooth_b + 1 / smooth_b.size) / (smooth_b.sum() + 1)
        counts = probs * (half_b[i].sum() + 1)
        a_flat = half_a[i].T.ravel().astype(int)
        p_flat = probs.T.ravel()
        mnll = -multinomial(a_flat.sum(), p_flat / p_flat.sum()).logpmf(a_flat) / a_flat.size
        assert ub.task.profile["mnll"][i, 0] == pytest.approx(mnll, rel=1e-8)
        assert ub.task.profile["profile_mse"][i, 0] == pytest.approx(np.mean((2 * half_a[i] - 2 * counts) ** 2))
