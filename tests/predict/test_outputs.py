"""Prediction h5 and metric files: the reference's keys, shapes and values; atomic writes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from bpnetz.predict import metrics as M
from bpnetz.predict.outputs import write_metric_files, write_predictions_h5


def test_predictions_h5_has_reference_keys_shapes_and_full_chrom_names(tmp_path):
    rng = np.random.default_rng(0)
    n, length, tracks = 5, 30, 2
    chrom = ["chr1", "chrUn_KI270302v1", "chr2", "chr10_random_alt", "chrX"]
    start = rng.integers(0, 10000, size=n)
    arrays = dict(pred_profs=rng.gamma(1, size=(n, length, tracks)), pred_logcounts=rng.normal(size=(n, tracks)),
                  true_profs=rng.poisson(2, size=(n, length, tracks)), true_logcounts=rng.normal(size=(n, tracks)))
    path = write_predictions_h5(tmp_path / "m_predictions.h5", chrom, start, start + length, **arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["m_predictions.h5"]
    with h5py.File(path, "r") as h5:
        assert set(h5) == {"coords", "predictions"}
        assert set(h5["coords"]) == {"coords_chrom", "coords_start", "coords_end"}
        assert set(h5["predictions"]) == {"pred_profs", "pred_logcounts", "true_profs", "true_logcounts"}
        assert [c.decode() for c in h5["coords/coords_chrom"][:]] == chrom
        np.testing.assert_array_equal(h5["coords/coords_start"][:], start)
        np.testing.assert_array_equal(h5["coords/coords_end"][:], start + length)
        for name, values in arrays.items():
            assert h5["predictions"][name].shape == values.shape
            np.testing.assert_allclose(h5["predictions"][name][:], values, rtol=1e-6)


def test_failed_h5_write_leaves_no_file(tmp_path):
    bad = np.array([["not a number"]], dtype=object)  # fails when converted, after the file was opened
    with pytest.raises(ValueError):
        write_predictions_h5(tmp_path / "p.h5", ["chr1"], [0], [1], np.zeros((1, 1, 1)), np.zeros((1, 1)),
                             bad, np.zeros((1, 1)))
    assert list(tmp_path.iterdir()) == []


def test_metric_files(tmp_path):
    rng = np.random.default_rng(1)
    true = rng.poisson(rng.uniform(0.5, 5, size=(12, 1, 1)), size=(12, 50, 2)).astype(float)
    true[4] = 0
    groups = [[0, 1]]
    lc = M.task_logcounts(true, groups) + rng.normal(0, 0.2, size=(12, 1))
    result = M.compute_metrics(true, pred_logits=rng.normal(size=true.shape), pred_logcounts=lc,
                               task_tracks=groups, track_names=["t/+", "t/-"], task_names=["t"])
    probs, base_lc = M.baseline_predictions(true, groups, 12)
    baseline = M.compute_metrics(true, pred_probs=probs, pred_logcounts=base_lc, task_tracks=groups)
    write_metric_files(tmp_path, result, {"baseline": baseline, "upper_bound": M.upper_bound(true, groups)})

    true_lc = np.log1p(true.sum(axis=1))
    pred_lc = np.stack([np.load(tmp_path / f"pred_logcounts_{i}.npy") for i in range(2)], axis=1)
    np.testing.assert_allclose(np.stack([np.load(tmp_path / f"true_logcounts_{i}.npy") for i in range(2)], 1),
                               true_lc)
    pearson = np.mean([pearsonr(true_lc[:, i], pred_lc[:, i])[0] for i in range(2)])
    spearman = np.mean([spearmanr(true_lc[:, i], pred_lc[:, i])[0] for i in range(2)])
    assert (tmp_path / "pearson.txt").read_text() == str(round(pearson, 3))
    assert (tmp_path / "spearman.txt").read_text() == str(round(spearman, 3))
    jsd = np.load(tmp_path / "jsd.npz")["jsd"]
    assert jsd.shape == (12, 2) and np.isnan(jsd[4]).all()
    assert (tmp_path / "jsd.txt").read_text() == str(round(float(np.median(np.delete(jsd, 4, 0))), 3))
    for stem in ("mnll", "cross_entropy", "mse", "pearson", "spearman"):
        with np.load(tmp_path / f"{stem}.npz") as npz:
            assert list(npz) == [stem] and npz[stem].shape == (12, 2)
    assert np.load(tmp_path / "counts_pearson.npz")["counts_pearson"].shape == (2,)
    with np.load(tmp_path / "metrics_per_example.npz") as npz:
        assert npz["task_mnll_norm"].shape == (12, 1) and list(npz["track_names"]) == ["t/+", "t/-"]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert set(summary["results"]) == {"model", "baseline", "upper_bound"}
    assert summary["n_examples"] == 12
    entry = summary["results"]["model"]["track"]["t/-"]
    assert entry["jsd_norm"]["n_undefined"] == 1
    assert entry["jsd_norm"]["median"] == pytest.approx(np.median(np.delete(jsd[:, 1], 4)))
    assert summary["results"]["baseline"]["task"]["task 0"]["counts_pearson"] == 0.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
