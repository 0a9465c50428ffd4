"""The counts head after training (bpnetz.model.counts_head): ridge fits against the normal equations solved with
numpy, the calibration's slope and offset, the peak/background mechanism that made the old refit worse than the
mean on peaks, and a fitted model whose outputs are exactly what the record says."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bpnetz.model import counts_head as ch
from bpnetz.model.bpnet import build_model
from bpnetz.model.contract import TrackGroups
from tests.model.test_bpnet import TWO_TASK_BIAS, TWO_TASKS, inputs, layout, tiny_params


def _batches(model, n_out: int, n_batches: int = 4, size: int = 32, first_row: int = 0):
    """Batches (inputs, targets, weights, index) whose log counts depend on the sequence, rows numbered on."""
    batches = []
    for seed in range(n_batches):
        x = inputs(model, batch=size, seed=seed + first_row)
        rng = np.random.default_rng(seed + first_row)
        y = x["sequence"][:, :40, 0].sum(axis=1, keepdims=True) / 10 + rng.normal(5.0, 0.3, (size, n_out))
        rows = np.arange(size) + first_row + seed * size
        batches.append((x, {"logcounts": y.astype(np.float32)}, None, {"row": rows}))
    return batches


def _joined(batches):
    x = {k: np.concatenate([b[0][k] for b in batches]) for k in batches[0][0]}
    return x, np.concatenate([b[1]["logcounts"] for b in batches]).astype(np.float64)


@pytest.mark.parametrize("bias, orig_multi_loss, units", [
    ((), False, [1]), (TWO_TASK_BIAS, False, [1]), (TWO_TASK_BIAS, True, [1]), (TWO_TASK_BIAS, False, [4, 1])])
def test_an_unpenalised_fit_written_to_the_model_solves_the_normal_equations(bias, orig_multi_loss, units):
    """Ridge with alpha 0 on all loci, written with slope 1 and offset 0: the model's log-count residuals are
    orthogonal to every regressor of their output (the last layer's inputs, the task's control log counts, a
    constant), checked with numpy; the profile output does not change."""
    lay = layout(TWO_TASKS, bias, tasks=("0", "1"))
    params = tiny_params(counts_head_params={"units": units, "dropouts": [0.0] * len(units),
                                             "activations": ["relu"] * (len(units) - 1) + ["linear"]})
    model = build_model(params, lay, orig_multi_loss=orig_multi_loss)
    n_out = 3 if orig_multi_loss else 2
    batches = _batches(model, n_out)
    x_all, y_all = _joined(batches)
    profile_before = np.asarray(model(x_all, training=False)["profile"])
    data = ch.collect(model, batches, np.ones(200, bool))
    columns = TrackGroups.of(lay).task_lists() if orig_multi_loss else [[0], [1]]
    biased = [bool(bias)] * 2
    fit = next(c for c in ch.ridge_candidates(data, lay, columns, biased) if c.name.endswith("loci, alpha 0"))
    ch.write_candidate(model, lay, fit, np.ones(n_out), np.zeros(n_out), orig_multi_loss=orig_multi_loss)
    predicted = np.asarray(model(x_all, training=False)["logcounts"], dtype=np.float64)
    last = f"counts_dense_{len(units) - 1}"
    h = np.asarray(keras.Model(model.inputs, model.get_layer(last).input)(x_all, training=False), dtype=np.float64)
    for t, cols in enumerate(columns):
        controls = x_all["counts_bias"][:, lay.task_bias_tracks(t)] if bias else np.zeros((len(h), 0))
        design = np.concatenate([h, controls, np.ones((len(h), 1))], axis=1)
        residual = predicted[:, cols] - y_all[:, cols]
        scale = np.abs(design).sum(axis=0)[:, None] * np.abs(residual).mean()
        assert np.all(np.abs(design.T @ residual) <= 1e-3 * scale + 1e-6)
        assert np.mean(residual ** 2) < np.var(y_all[:, cols])  # better than the mean alone
    np.testing.assert_array_equal(np.asarray(model(x_all, training=False)["profile"]), profile_before)


def test_ridge_coefficients_minimise_the_penalised_loss():
    """The ridge solution equals the closed form on standardised features (numpy solve), mapped back."""
    rng = np.random.default_rng(0)
    h = rng.normal(3.0, [0.1, 2.0, 5.0], (300, 3))
    c = rng.normal(0, 1, (300, 1))
    y = h @ [[4.0], [0.5], [-0.2]] + 0.7 * c + 2 + rng.normal(0, 0.5, (300, 1))
    alpha = 0.3
    beta = ch.ridge_coefficients(h, c, y, alpha)
    z = (h - h.mean(axis=0)) / h.std(axis=0)
    design = np.concatenate([z, c, np.ones((300, 1))], axis=1)
    penalty = np.diag([alpha * 300] * 3 + [0, 0])
    expected = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    np.testing.assert_allclose(h @ beta[:3] + c @ beta[3:4] + beta[4], design @ expected, atol=1e-9)
    np.testing.assert_allclose(beta[3], expected[3], atol=1e-9)  # controls are not penalised
    unpenalised = ch.ridge_coefficients(h, c, y, 0.0)
    assert np.abs(beta[:3, 0] * h.std(axis=0)).sum() < np.abs(unpenalised[:3, 0] * h.std(axis=0)).sum()


def test_the_calibration_slope_is_least_squares_within_zero_and_one():
    rng = np.random.default_rng(1)
    p = rng.normal(5, 1, (500, 2))
    y = np.column_stack([3 + 0.4 * p[:, 0] + rng.normal(0, 0.1, 500), 9 - 0.5 * p[:, 1]])
    slope, offset = ch.calibration(p, y)
    assert slope[0] == pytest.approx(np.polyfit(p[:, 0], y[:, 0], 1)[0])  # inside [0, 1]: the least squares
    assert offset[0] == pytest.approx(y[:, 0].mean() - slope[0] * p[:, 0].mean())
    assert slope[1] == ch.MIN_SLOPE  # negative: clipped to the floor, the mean level kept
    assert offset[1] == pytest.approx(y[:, 1].mean() - ch.MIN_SLOPE * p[:, 1].mean())
    slope, _ = ch.calibration(p, 2 * p)  # data wider than the predictions: never widened
    np.testing.assert_array_equal(slope, [1.0, 1.0])


def _peaks_and_background(rng, n_peaks: int, n_background: int) -> ch.CountsData:
    """One feature that separates peaks from backgrounds but says nothing about counts within peaks."""
    peak = np.r_[np.ones(n_peaks, bool), np.zeros(n_background, bool)]
    feature = rng.normal(np.where(peak, 3.0, 0.0), 1.0)[:, None]
    targets = np.where(peak, 5.0, 1.5)[:, None] + rng.normal(0, 0.6, (peak.size, 1))
    return ch.CountsData(feature, np.zeros((peak.size, 0)), np.zeros((peak.size, 1)), targets, peak)


def test_the_choice_is_no_worse_than_the_mean_on_held_out_peaks_where_a_pooled_fit_is():
    """The old refit's mechanism: a least-squares fit on peaks and backgrounds together spreads peak predictions
    (the feature's within-peak noise times the peak-vs-background slope) and loses to the training mean on
    held-out peaks; the chosen, calibrated candidate does not, and its predictions are no wider than the data."""
    rng = np.random.default_rng(2)
    lay = layout()
    train, val, test = (_peaks_and_background(rng, n, n // 4) for n in (1200, 300, 2000))
    pooled = ch.Candidate("pooled", [ch.ridge_coefficients(train.features, train.controls, train.targets, 0.0)])
    train.outputs = ch.candidate_predictions(pooled, train, lay, [[0]], [False])
    val.outputs = ch.candidate_predictions(pooled, val, lay, [[0]], [False])
    test.outputs = ch.candidate_predictions(pooled, test, lay, [[0]], [False])
    mean = train.targets[train.peak].mean()
    y = test.targets[test.peak]
    constant_mse = np.mean((y - mean) ** 2)
    assert np.mean((test.outputs[test.peak] - y) ** 2) > 1.2 * constant_mse  # the pooled fit is worse
    candidates = [ch.Candidate("trained"), *ch.ridge_candidates(train, lay, [[0]], [False])]
    best, slope, offset, scores = ch.choose(candidates, val, lay, [[0]], [False])
    assert set(scores) == {c.name for c in candidates}
    chosen = offset + slope * ch.candidate_predictions(best, test, lay, [[0]], [False])[test.peak]
    assert np.mean((chosen - y) ** 2) <= 1.02 * constant_mse
    assert np.std(chosen) <= np.std(y)


def test_a_fitted_model_predicts_what_its_record_says(tmp_path):
    """fit_counts_head on a model: the saved outputs are offset + slope · candidate; the record's validation-peak
    MSE, constant-predictor MSE and SDs recomputed here with numpy from the model's own predictions."""
    lay = layout(TWO_TASKS, TWO_TASK_BIAS, tasks=("0", "1"))
    model = build_model(tiny_params(), lay)
    train_batches, val_batches = _batches(model, 2), _batches(model, 2, n_batches=2, first_row=128)
    peak_rows = np.arange(400) % 5 != 0  # every fifth row a background
    record = ch.fit_counts_head(model, lay, train_batches, val_batches, peak_rows)
    x_val, y_val = _joined(val_batches)
    _, y_train = _joined(train_batches)
    peaks = peak_rows[np.concatenate([b[3]["row"] for b in val_batches])]
    train_peaks = peak_rows[np.concatenate([b[3]["row"] for b in train_batches])]
    predicted = np.asarray(model(x_val, training=False)["logcounts"], dtype=np.float64)
    assert record["val_peaks_mse"] == pytest.approx(np.mean((predicted[peaks] - y_val[peaks]) ** 2), rel=1e-4)
    constant = y_train[train_peaks].mean(axis=0)
    assert record["val_peaks_mse_constant"] == pytest.approx(np.mean((y_val[peaks] - constant) ** 2), rel=1e-6)
    assert record["val_peaks_mse"] <= record["val_peaks_mse_constant"] and record["beats_constant"]
    assert record["val_peaks_sd_predicted"] == pytest.approx(np.std(predicted[peaks]), rel=1e-4)
    assert record["val_peaks_sd_predicted"] <= record["val_peaks_sd_observed"] + 1e-9
    assert record["val_peaks"] == int(peaks.sum()) and ch.MIN_SLOPE <= min(record["slope"]) <= max(record["slope"]) <= 1
    assert np.abs(model.get_layer("counts_dense_0").get_weights()[0]).sum() > 0  # still depends on the sequence
    unchanged = ch.fit_counts_head(model, lay, train_batches, val_batches, peak_rows, refit=False)
    np.testing.assert_allclose(np.asarray(model(x_val, training=False)["logcounts"]), predicted, rtol=1e-6)
    assert unchanged["val_peaks_mse"] == pytest.approx(record["val_peaks_mse"], rel=1e-4)


def test_a_tie_on_validation_peaks_goes_to_the_candidate_predicting_backgrounds_best():
    """Two candidates predicting peaks identically: the one that puts backgrounds at their own level wins."""
    rng = np.random.default_rng(3)
    peak = np.arange(400) % 4 != 0
    signal_ = np.where(peak, rng.normal(0, 1, 400), 0.0)
    features = np.column_stack([signal_, peak.astype(float)])
    targets = np.where(peak, 4 + signal_, 1.0)[:, None] + rng.normal(0, 0.3, (400, 1))
    val = ch.CountsData(features, np.zeros((400, 0)), (4 + signal_)[:, None], targets, peak)
    aware = ch.Candidate("aware", [np.array([[1.0], [3.0], [1.0]])])  # h0 + 3·peak + 1
    best, slope, _, scores = ch.choose([ch.Candidate("trained"), aware], val, layout(), [[0]], [False])
    assert scores["trained"] == pytest.approx(scores["aware"])
    assert best.name == "aware" and slope[0] == pytest.approx(1.0, abs=0.05)


def test_without_validation_examples_the_model_is_left_as_it_is():
    lay = layout()
    model = build_model(tiny_params(), lay)
    before = [w.copy() for w in model.get_weights()]
    assert ch.fit_counts_head(model, lay, _batches(model, 1, n_batches=1), [], np.ones(64, bool)) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
