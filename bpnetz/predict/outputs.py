"""Prediction and metric files, compatible with the reference tool's, each written atomically.

- ``<model>_predictions.h5``: ``coords/{coords_chrom, coords_start, coords_end}`` and
  ``predictions/{pred_profs, pred_logcounts, true_profs, true_logcounts}`` (:func:`write_predictions_h5`).
- ``pearson.txt`` / ``spearman.txt``: the counts correlation averaged over tracks; ``jsd.txt``: the median
  normalised JSD over examples and tracks; each one number rounded to 3 decimals, as the reference writes them.
- per-metric ``.npz`` with the reference's names and keys (per example × track), ``true_logcounts_{i}.npy`` /
  ``pred_logcounts_{i}.npy``, and beyond the reference ``metrics_per_example.npz`` (every metric, per track and
  per task) and ``metrics.json`` (summaries of the model and of any reference points: baseline, upper bound).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.files.atomic import atomic_output, write_text
from bpnetz.files.h5 import h5_output
from bpnetz.predict.metrics import MetricsResult

#: reference file stem -> (key inside the .npz, metric at the track level).
REFERENCE_NPZ = {
    "mnll": ("mnll", "mnll_norm"),
    "cross_entropy": ("cross_entropy", "cross_entropy_norm"),
    "jsd": ("jsd", "jsd_norm"),
    "mse": ("mse", "profile_mse"),
    "pearson": ("pearson", "profile_pearson"),
    "spearman": ("spearman", "profile_spearman"),
}


def write_predictions_h5(path: str | Path, chrom: Sequence[str], start: np.ndarray, end: np.ndarray,
                         pred_profs: np.ndarray, pred_logcounts: np.ndarray, true_profs: np.ndarray,
                         true_logcounts: np.ndarray) -> Path:
    """Write the reference's predictions file (gzip-compressed; chromosome names as variable-length UTF-8).

    Profiles are (N, L, T) counts, log counts (N, T) per track as the reference stores them (or (N, tasks));
    coordinates are each example's output window. Values are stored as float32.
    """
    import h5py

    n = len(chrom)
    arrays = {"pred_profs": pred_profs, "pred_logcounts": pred_logcounts, "true_profs": true_profs,
              "true_logcounts": true_logcounts}
    for name, values in {"coords_start": start, "coords_end": end, **arrays}.items():
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} rows for {n} examples")
    path = Path(path)
    with h5_output(path) as h5:
        coords = h5.create_group("coords")
        coords.create_dataset("coords_chrom", data=np.asarray([str(c) for c in chrom], dtype=object),
                              dtype=h5py.string_dtype(encoding="utf-8"), compression="gzip")
        coords.create_dataset("coords_start", data=np.asarray(start, dtype=np.int64), compression="gzip")
        coords.create_dataset("coords_end", data=np.asarray(end, dtype=np.int64), compression="gzip")
        preds = h5.create_group("predictions")
        for name, values in arrays.items():
            preds.create_dataset(name, data=np.asarray(values, dtype=np.float32), compression="gzip")
    return path


def _reference_number(value: float) -> str:
    """A summary number as the reference writes it: NaN -> 0, rounded to 3 decimals."""
    return str(round(float(np.nan_to_num(value)), 3))


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def _per_example_arrays(result: MetricsResult) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for level_name, level in (("track", result.track), ("task", result.task)):
        out[f"{level_name}_names"] = np.asarray(level.units)
        out[f"{level_name}_true_logcounts"] = level.true_logcounts
        out[f"{level_name}_pred_logcounts"] = level.pred_logcounts
        for metric, values in level.profile.items():
            out[f"{level_name}_{metric}"] = values
    return out


def write_metric_files(out_dir: str | Path, result: MetricsResult,
                       reference_points: Mapping[str, MetricsResult] | None = None,
                       extra: Mapping[str, Any] | None = None) -> list[Path]:
    """Write the reference's metric files and bpnetz's summaries for ``result`` into ``out_dir``.

    ``reference_points`` (e.g. {"baseline": …, "upper_bound": …}) are summarised beside the model in
    ``metrics.json``; ``extra`` adds top-level entries there (e.g. the command's settings). Returns the paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    track = result.track
    texts = {
        "pearson.txt": _reference_number(np.mean(track.counts["counts_pearson"])),
        "spearman.txt": _reference_number(np.mean(track.counts["counts_spearman"])),
        "jsd.txt": _reference_number(np.nanmedian(track.profile["jsd_norm"])
                                     if np.isfinite(track.profile["jsd_norm"]).any() else np.nan),
    }
    for name, text in texts.items():
        write_text(out_dir / name, text)
        written.append(out_dir / name)
    for stem, (key, metric) in REFERENCE_NPZ.items():
        _write_npz(out_dir / f"{stem}.npz", **{key: track.profile[metric]})
        written.append(out_dir / f"{stem}.npz")
    for metric in ("counts_pearson", "counts_spearman"):
        _write_npz(out_dir / f"{metric}.npz", **{metric: track.counts[metric]})
        written.append(out_dir / f"{metric}.npz")
    for i in range(len(track.units)):
        for kind, values in (("true", track.true_logcounts), ("pred", track.pred_logcounts)):
            _write_npy(out_dir / f"{kind}_logcounts_{i}.npy", values[:, i])
            written.append(out_dir / f"{kind}_logcounts_{i}.npy")
    _write_npz(out_dir / "metrics_per_example.npz", **_per_example_arrays(result))
    written.append(out_dir / "metrics_per_example.npz")
    summary: dict[str, Any] = dict(extra or {})
    summary["n_examples"] = result.n_examples
    summary["results"] = {"model": result.summary()}
    for name, point in (reference_points or {}).items():
        summary["results"][name] = point.summary()
    write_text(out_dir / "metrics.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    written.append(out_dir / "metrics.json")
    return written
