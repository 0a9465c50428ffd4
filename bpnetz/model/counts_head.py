"""The counts head after training: which last-layer fit to keep, and how far to trust it on peaks.

Contract. :func:`fit_counts_head` runs one epoch of training batches and the validation batches (each
``(inputs, targets, weights, {"row": store rows})``) through the trained trunk, then sets the log-count output
to the candidate that predicts *validation peaks* best, calibrated on them:

* candidates: the trained head; ridge fits of the last counts layer (and the counts-bias weights) on the
  training loci, with the ridge strength ``alpha`` (per example, on standardised features) from
  :data:`RIDGE_ALPHAS`, fitted on all training loci or on training peaks only;
* calibration: per output, ``y ≈ offset + slope · prediction`` with the slope least-squares on validation peaks
  and clipped to [MIN_SLOPE, 1] (shrinking toward the peaks' mean, never spreading predictions wider), the offset
  making the mean right. The slope never reaches 0 and a constant is no candidate, so the counts output always
  depends on the sequence: counts attributions (``bpnetz shap`` → tfmodisco-lite) scale with the slope but stay
  usable (measured: on the tutorial test's tiny experiment, 13 validation peaks, a constant candidate won, every
  counts contribution score was 0 and tfmodisco-lite failed). With fewer than MIN_CALIBRATION_PEAKS validation
  peaks the slope estimate is noise: then there is no calibration and candidates are compared on all validation
  loci; candidates are compared by the 2-fold cross-fitted validation-peak MSE of this calibration
  (calibrate on one half, score on the other), so the choice does not reward fitting the validation noise;
  candidates within PEAK_TOLERANCE of the best are tied and the one predicting validation backgrounds best wins.

The record it returns (training.json ``counts_refit``) holds the validation-peak log-count MSE of the chosen
head beside the trained head's, every candidate's before calibration, and the **constant predictor's** (the mean
training-peak log count), the training peaks' MSE (the fit on training peaks beside held-out peaks), the
validation backgrounds' MSE and the predicted / observed log-count SD on validation peaks.

Why (measured, docs/benchmarks.md "Counts on experiments we did not design"): the previous refit was an
ordinary least-squares fit on training peaks and backgrounds together. Backgrounds hold ~1/5 of the loci but a
log count ~3 lower, so most of the target variance is peak-vs-background; the fitted slope reproduces that
contrast and, within peaks, spreads predictions far wider than the data (predicted log-count SD 0.92 vs 0.63
observed on an externally generated experiment, held-out peak MSE 0.97 vs 0.40 for the training mean).
Evaluation, like the reference's metrics, is on peaks; the validation peaks decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bpnetz.model.bpnet import _last_counts_dense
from bpnetz.model.contract import TrackGroups
from bpnetz.store.schema import StoreLayout

#: ridge strengths tried, per example on standardised features (0 = ordinary least squares)
RIDGE_ALPHAS = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
#: candidates whose validation-peak score is within this share of the best one tie; the tie goes to the one
#: predicting validation backgrounds best (a fit on peaks alone can put backgrounds at the peaks' level)
PEAK_TOLERANCE = 0.02
#: fewer validation peaks than this: no calibration (slope 1, offset 0), candidates compared on all loci
MIN_CALIBRATION_PEAKS = 30
#: the smallest calibration slope: the counts output keeps depending on the sequence (see the module docstring)
MIN_SLOPE = 0.05


@dataclass
class CountsData:
    """One pass of batches through the model, for the counts head."""

    features: np.ndarray  # (N, F) inputs of the last counts Dense layer (inference mode)
    controls: np.ndarray  # (N, B) control log counts (``counts_bias``; B = 0 without controls)
    outputs: np.ndarray  # (N, C) the model's predicted log counts
    targets: np.ndarray  # (N, C) observed log counts
    peak: np.ndarray  # (N,) bool: the locus is a peak


@dataclass
class Candidate:
    """A counts-output candidate: its name and, for ridge fits, the coefficients of each task."""

    name: str
    coefs: list[np.ndarray] | None = None  # per task (features + task controls + 1, task columns)


def collect(model: Any, batches: Iterable[Sequence[Any]], peak_rows: np.ndarray) -> CountsData | None:
    """Run ``batches`` ``(inputs, targets, weights, {"row": …})`` through ``model`` (inference mode); None when
    there are no batches.

    ``peak_rows``: bool per store row, true for peaks.
    """
    import keras

    probe = keras.Model(model.inputs, {"features": _last_counts_dense(model).input,
                                        "logcounts": model.get_layer("logcounts").output})
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("features", "controls", "outputs", "targets", "peak")}
    for batch in batches:
        inputs, targets, index = dict(batch[0]), batch[1], batch[3]
        out = probe(inputs, training=False)
        parts["features"].append(np.asarray(out["features"], dtype=np.float64))
        parts["outputs"].append(np.asarray(out["logcounts"], dtype=np.float64))
        n = len(parts["outputs"][-1])
        parts["controls"].append(np.asarray(inputs["counts_bias"], dtype=np.float64) if "counts_bias" in inputs
                                 else np.zeros((n, 0)))
        parts["targets"].append(np.asarray(targets["logcounts"], dtype=np.float64))
        parts["peak"].append(np.asarray(peak_rows)[np.asarray(index["row"])])
    if not parts["peak"]:
        return None
    return CountsData(**{k: np.concatenate(v) for k, v in parts.items()})


def _task_controls(data: CountsData, layout: StoreLayout, task: int, biased: bool) -> np.ndarray:
    return data.controls[:, layout.task_bias_tracks(task)] if biased else data.controls[:, :0]


def ridge_coefficients(features: np.ndarray, controls: np.ndarray, targets: np.ndarray,
                       alpha: float) -> np.ndarray:
    """Coefficients (features + controls + 1, columns) minimising ‖[h, c, 1]·β − y‖² + α·n·‖β_h ⊙ sd(h)‖².

    The features are standardised for the penalty (so one alpha fits any trunk's feature scale) and mapped back;
    controls and the intercept are not penalised. ``alpha = 0`` is ordinary least squares (minimum norm).
    """
    n, f = features.shape
    mean, sd = features.mean(axis=0), features.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    design = np.concatenate([(features - mean) / sd, controls, np.ones((n, 1))], axis=1)
    y = targets
    if alpha > 0:
        penalty = np.zeros((f, design.shape[1]))
        penalty[:, :f] = np.sqrt(alpha * n) * np.eye(f)
        design, y = np.concatenate([design, penalty]), np.concatenate([targets, np.zeros((f, targets.shape[1]))])
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    beta[:f] /= sd[:, None]
    beta[-1] -= mean @ beta[:f]
    return beta


def _biased(model: Any, task: int) -> bool:
    return f"counts_bias_dense_{task}" in {layer.name for layer in model.layers}


def candidate_predictions(candidate: Candidate, data: CountsData, layout: StoreLayout, columns: list[list[int]],
                          biased: list[bool]) -> np.ndarray:
    """(N, C) log counts the candidate predicts for ``data``."""
    if candidate.name == "trained":
        return data.outputs
    out = np.zeros_like(data.targets)
    for t, cols in enumerate(columns):
        design = np.concatenate([data.features, _task_controls(data, layout, t, biased[t]),
                                 np.ones((len(data.features), 1))], axis=1)
        out[:, cols] = design @ candidate.coefs[t]
    return out


def ridge_candidates(train: CountsData, layout: StoreLayout, columns: list[list[int]],
                     biased: list[bool]) -> list[Candidate]:
    """Ridge fits for every alpha, on all training loci and on training peaks only (when there are some)."""
    found = []
    for rows_name, rows in (("all loci", np.ones(len(train.peak), bool)), ("peaks", train.peak)):
        if rows.sum() < 2:
            continue
        for alpha in RIDGE_ALPHAS:
            coefs = [ridge_coefficients(train.features[rows], _task_controls(train, layout, t, biased[t])[rows],
                                        train.targets[rows][:, cols], alpha) for t, cols in enumerate(columns)]
            found.append(Candidate(f"ridge on training {rows_name}, alpha {alpha:g}", coefs))
    return found


def calibration(predicted: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, (slope, offset) of observed ≈ offset + slope · predicted: least squares, slope clipped to
    [MIN_SLOPE, 1]."""
    centred = predicted - predicted.mean(axis=0)
    variance = (centred ** 2).sum(axis=0)
    covariance = (centred * (observed - observed.mean(axis=0))).sum(axis=0)
    slope = np.clip(np.divide(covariance, variance, out=np.zeros_like(variance), where=variance > 1e-12),
                    MIN_SLOPE, 1.0)
    return slope, observed.mean(axis=0) - slope * predicted.mean(axis=0)


def cross_fitted_mse(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Mean squared error of the calibration when each half of the loci is calibrated on the other half."""
    halves = (np.arange(len(predicted)) % 2 == 0, np.arange(len(predicted)) % 2 == 1)
    errors = []
    for fit, score in (halves, halves[::-1]):
        slope, offset = calibration(predicted[fit], observed[fit])
        errors.append((offset + slope * predicted[score] - observed[score]) ** 2)
    return float(np.mean(np.concatenate(errors)))


def _mse(predicted: np.ndarray, observed: np.ndarray) -> float:
    return float(np.mean((predicted - observed) ** 2)) if observed.size else float("nan")


def choose(candidates: list[Candidate], val: CountsData, layout: StoreLayout, columns: list[list[int]],
           biased: list[bool]) -> tuple[Candidate, np.ndarray, np.ndarray, dict[str, float]]:
    """The candidate with the lowest cross-fitted validation-peak MSE (ties within PEAK_TOLERANCE: the lowest
    validation-background MSE), its (slope, offset) on all validation peaks and every candidate's score. Too few
    validation peaks: the lowest plain MSE on all validation loci, uncalibrated (slope 1, offset 0)."""
    calibrate = int(val.peak.sum()) >= MIN_CALIBRATION_PEAKS
    scores = {}
    for candidate in candidates:
        predicted = candidate_predictions(candidate, val, layout, columns, biased)
        scores[candidate.name] = (cross_fitted_mse(predicted[val.peak], val.targets[val.peak]) if calibrate
                                  else _mse(predicted, val.targets))
    lowest = min(scores.values())
    tied = [c for c in candidates if c.name in scores and scores[c.name] <= lowest * (1 + PEAK_TOLERANCE)]
    fits = {c.name: _calibrated(c, val, layout, columns, biased, calibrate) for c in tied}
    best = min(tied, key=lambda c: (_mse(fits[c.name][2][~val.peak], val.targets[~val.peak])
                                    if (~val.peak).any() else 0.0, scores[c.name]))
    slope, offset, _ = fits[best.name]
    return best, slope, offset, scores


def _calibrated(candidate: Candidate, val: CountsData, layout: StoreLayout, columns: list[list[int]],
                biased: list[bool], calibrate: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slope, offset) on all validation peaks (1, 0 without calibration) and the calibrated predictions."""
    predicted = candidate_predictions(candidate, val, layout, columns, biased)
    if calibrate:
        slope, offset = calibration(predicted[val.peak], val.targets[val.peak])
    else:
        slope, offset = np.ones(val.targets.shape[1]), np.zeros(val.targets.shape[1])
    return slope, offset, offset + slope * predicted


def write_candidate(model: Any, layout: StoreLayout, candidate: Candidate, slope: np.ndarray, offset: np.ndarray,
                    *, orig_multi_loss: bool = False) -> None:
    """Set the model's log-count output to ``offset + slope · candidate`` (per output column).

    A ridge candidate's coefficients go to the last counts layer and, for tasks with controls, to the counts-bias
    layer (identity on the head's outputs, the fitted control weights, zero bias); then the layer producing each
    output is scaled by its slope and shifted by its offset. The profile output does not change.
    """
    head = _last_counts_dense(model)
    kernel, bias = head.get_weights()
    n_features = kernel.shape[0]
    for t, cols in enumerate(TrackGroups.of(layout, orig_multi_loss).count_columns()):
        biased = _biased(model, t)
        if candidate.coefs is not None:
            coef = candidate.coefs[t]
            kernel[:, cols], bias[cols] = coef[:n_features], coef[-1]
            if biased:
                joined = np.concatenate([np.eye(len(cols)), coef[n_features:-1]])
                model.get_layer(f"counts_bias_dense_{t}").set_weights([joined, np.zeros(len(cols))])
        if biased:
            layer = model.get_layer(f"counts_bias_dense_{t}")
            k, b = layer.get_weights()
            layer.set_weights([k * slope[cols], b * slope[cols] + offset[cols]])
        else:
            kernel[:, cols] *= slope[cols]
            bias[cols] = bias[cols] * slope[cols] + offset[cols]
    head.set_weights([kernel, bias])


def _spread(values: np.ndarray) -> float:
    return float(np.std(values)) if values.size else float("nan")


def assessment(predicted_val: np.ndarray, predicted_train: np.ndarray, val: CountsData,
               train: CountsData) -> dict[str, Any]:
    """Validation-peak MSE beside the constant predictor's (the training peaks' mean log count), the training
    peaks' MSE, the validation backgrounds' MSE and the predicted / observed log-count SD on validation peaks."""
    constant = train.targets[train.peak].mean(axis=0) if train.peak.any() else train.targets.mean(axis=0)
    peaks, background = val.peak, ~val.peak
    record = {"val_peaks": int(peaks.sum()), "val_peaks_mse": _mse(predicted_val[peaks], val.targets[peaks]),
              "val_peaks_mse_constant": _mse(np.broadcast_to(constant, val.targets[peaks].shape),
                                             val.targets[peaks]),
              "train_peaks_mse": _mse(predicted_train[train.peak], train.targets[train.peak]),
              "val_background_mse": _mse(predicted_val[background], val.targets[background]),
              "val_peaks_sd_predicted": _spread(predicted_val[peaks]),
              "val_peaks_sd_observed": _spread(val.targets[peaks])}
    record["beats_constant"] = bool(record["val_peaks_mse"] < record["val_peaks_mse_constant"])
    return record


def fit_counts_head(model: Any, layout: StoreLayout, train_batches: Iterable[Sequence[Any]],
                    val_batches: Iterable[Sequence[Any]], peak_rows: np.ndarray, *, refit: bool = True,
                    orig_multi_loss: bool = False) -> dict[str, Any] | None:
    """Choose, calibrate and write the counts output (see the module docstring); returns the record (None, the
    model unchanged, when there are no training or no validation examples).

    ``refit=False`` leaves the model unchanged and only assesses the trained head.
    """
    train, val = collect(model, train_batches, peak_rows), collect(model, val_batches, peak_rows)
    if train is None or val is None:
        return None
    columns = TrackGroups.of(layout, orig_multi_loss).count_columns()
    biased = [_biased(model, t) for t in range(len(columns))]
    trained = Candidate("trained")
    before = assessment(val.outputs, train.outputs, val, train)
    if not refit:
        return {"chosen": "trained", "refit": False, **before}
    candidates = [trained, *ridge_candidates(train, layout, columns, biased)]
    best, slope, offset, scores = choose(candidates, val, layout, columns, biased)
    uncalibrated = {c.name: _mse(candidate_predictions(c, val, layout, columns, biased)[val.peak],
                                 val.targets[val.peak]) for c in candidates}
    write_candidate(model, layout, best, slope, offset, orig_multi_loss=orig_multi_loss)
    after = assessment(*(offset + slope * candidate_predictions(best, data, layout, columns, biased)
                         for data in (val, train)), val, train)
    return {"chosen": best.name, "refit": True, "slope": slope.tolist(), "offset": offset.tolist(), **after,
            "val_peaks_mse_trained": before["val_peaks_mse"], "train_peaks_mse_trained": before["train_peaks_mse"],
            "val_peaks_sd_predicted_trained": before["val_peaks_sd_predicted"], "candidate_scores": scores,
            "candidate_val_peaks_mse_uncalibrated": uncalibrated}


def describe(record: dict[str, Any]) -> str:
    """One clause for the training summary line."""
    text = (f"counts: val peaks log-count MSE {record['val_peaks_mse']:.4g} (constant predictor "
            f"{record['val_peaks_mse_constant']:.4g}, training peaks {record['train_peaks_mse']:.4g}; predicted SD "
            f"{record['val_peaks_sd_predicted']:.3g} vs observed {record['val_peaks_sd_observed']:.3g})")
    if record.get("refit"):
        text += f", head: {record['chosen']} (trained head {record['val_peaks_mse_trained']:.4g})"
    return text
