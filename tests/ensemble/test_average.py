"""Fold averaging: hand-written h5 files (h5py directly, loci shuffled per fold) against numpy/scipy computations
aligned by coordinates; locus matching, --intersect, input checks, bigWigs, CLI."""

from __future__ import annotations

import h5py
import numpy as np
import pyBigWig
import pytest
from scipy.special import softmax
from scipy.stats import gmean

from bpnetz.cli import main as bpnetz_main
from bpnetz.ensemble import average as folds_module
from bpnetz.ensemble.average import (
    average_predictions,
    average_scores,
    track_bigwig_template,
)
from bpnetz.errors import InputError

SIZES = {"chr1": 2000, "chr2": 1500}
OUT_LEN, WIDTH, TRACKS, SEQ_LEN = 20, 16, 2, 24  # profile width < output window: a cropped prediction window
LOCI = [("chr1", 100), ("chr2", 40), ("chr1", 500), ("chr1", 300), ("chr2", 900), ("chr1", 1200), ("chr2", 10)]


def _truth(rng):
    """Observed counts per locus (shared by every fold)."""
    return {locus: rng.poisson(3, size=(WIDTH, TRACKS)).astype(np.float32) for locus in LOCI}


def _write_predictions(path, loci, pred, truth, *, fixed_length_names=False):
    """A predictions file in the reference layout, rows in the order of ``loci``."""
    chrom = [c for c, _ in loci]
    start = np.array([s for _, s in loci])
    with h5py.File(path, "w") as h5:
        if fixed_length_names:
            h5["coords/coords_chrom"] = np.array(chrom, dtype="S8")
        else:
            h5.create_dataset("coords/coords_chrom", data=chrom, dtype=h5py.string_dtype())
        h5["coords/coords_start"] = start
        h5["coords/coords_end"] = start + OUT_LEN
        h5["predictions/pred_profs"] = np.stack([pred[k] for k in loci]).astype(np.float32)
        with np.errstate(divide="ignore"):
            h5["predictions/pred_logcounts"] = np.log(np.stack([pred[k].sum(axis=0) for k in loci]), dtype=np.float32)
        h5["predictions/true_profs"] = np.stack([truth[k] for k in loci])
        h5["predictions/true_logcounts"] = np.log1p(np.stack([truth[k].sum(axis=0) for k in loci]))
    return path


def _fold_predictions(rng):
    pred = {}
    for locus in LOCI:
        counts = rng.gamma(2.0, size=(WIDTH, TRACKS)) * rng.uniform(1, 50)
        counts[rng.integers(WIDTH), rng.integers(TRACKS)] = 0.0  # a position one fold predicts as exactly 0
        pred[locus] = counts
    return pred


def _expected_profile(per_fold):
    """Independent rule: per track, softmax over positions of the mean log probability, × geometric mean total."""
    stack = np.stack([p.astype(np.float64) for p in per_fold])  # (F, W, T)
    totals = stack.sum(axis=1)  # (F, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(stack / totals[:, None, :])
    return softmax(logp.mean(axis=0), axis=0) * gmean(totals, axis=0)[None, :]


def _read(path, key):
    with h5py.File(path, "r") as h5:
        values = h5[key][()]
    return [v.decode() for v in values] if values.dtype.kind in "SO" else values


@pytest.fixture
def prediction_folds(tmp_path):
    rng = np.random.default_rng(0)
    truth = _truth(rng)
    folds, paths = [], []
    for f in range(3):
        pred = _fold_predictions(rng)
        order = [LOCI[i] for i in rng.permutation(len(LOCI))]
        paths.append(_write_predictions(tmp_path / f"m_split00{f}_predictions.h5", order, pred, truth,
                                        fixed_length_names=f == 1))
        folds.append(pred)
    return paths, folds, truth


def test_predictions_average_in_log_space_aligned_by_coordinates(tmp_path, prediction_folds, monkeypatch):
    monkeypatch.setattr(folds_module, "CHUNK_LOCI", 3)  # several blocks per file, the last one partial
    paths, folds, truth = prediction_folds
    summary = average_predictions(paths, tmp_path / "avg.h5", progress=False)
    assert (summary.n_loci, summary.n_dropped, summary.kind) == (len(LOCI), 0, "predictions")
    chrom, start = _read(summary.output, "coords/coords_chrom"), _read(summary.output, "coords/coords_start")
    order = list(zip(chrom, start.tolist()))
    first = list(zip(_read(paths[0], "coords/coords_chrom"), _read(paths[0], "coords/coords_start").tolist()))
    assert order == first  # the first file's order
    np.testing.assert_array_equal(_read(summary.output, "coords/coords_end"), start + OUT_LEN)
    profs = _read(summary.output, "predictions/pred_profs")
    logcounts = _read(summary.output, "predictions/pred_logcounts")
    for i, locus in enumerate(order):
        per_fold = [fold[locus] for fold in folds]
        np.testing.assert_allclose(profs[i], _expected_profile(per_fold), rtol=2e-5, atol=1e-6)
        fold_lc = [np.log(p.astype(np.float32).sum(axis=0)) for p in per_fold]
        np.testing.assert_allclose(logcounts[i], np.mean(fold_lc, axis=0), rtol=1e-5)
        np.testing.assert_array_equal(_read(summary.output, "predictions/true_profs")[i], truth[locus])
        np.testing.assert_allclose(_read(summary.output, "predictions/true_logcounts")[i],
                                   np.log1p(truth[locus].sum(axis=0)), rtol=1e-6)
    # the files' identity pred_logcounts = log(sum of predicted counts) holds for the average too
    np.testing.assert_allclose(np.log(profs.astype(np.float64).sum(axis=1)), logcounts, rtol=1e-5)
    # a position that one fold predicts as exactly 0 is 0 in the geometric mean
    assert (profs == 0).sum() == sum((f[k] == 0).sum() for f in folds for k in LOCI)


def test_identical_folds_average_to_themselves(tmp_path):
    rng = np.random.default_rng(1)
    truth = _truth(rng)
    pred = _fold_predictions(rng)
    paths = [_write_predictions(tmp_path / f"{f}.h5", LOCI[::1 - 2 * f], pred, truth) for f in range(2)]
    out = average_predictions(paths, tmp_path / "avg.h5", progress=False).output
    np.testing.assert_allclose(_read(out, "predictions/pred_profs"), np.stack([pred[k] for k in LOCI]), rtol=1e-5)


def test_a_track_predicted_as_zero_by_one_fold_averages_to_zero(tmp_path):
    rng = np.random.default_rng(4)
    truth = _truth(rng)
    folds = [_fold_predictions(rng) for _ in range(2)]
    folds[1][LOCI[2]][:, 1] = 0.0
    paths = [_write_predictions(tmp_path / f"{f}.h5", LOCI, folds[f], truth) for f in range(2)]
    out = average_predictions(paths, tmp_path / "avg.h5", progress=False).output
    profs = _read(out, "predictions/pred_profs")
    assert np.isfinite(profs).all() and (profs[2, :, 1] == 0).all()
    np.testing.assert_allclose(profs[2, :, 0], _expected_profile([f[LOCI[2]] for f in folds])[:, 0], rtol=2e-5)
    assert _read(out, "predictions/pred_logcounts")[2, 1] == -np.inf  # the mean of log(0) and a finite log


def test_mismatched_loci_error_names_the_file_and_intersect_drops_them(tmp_path, monkeypatch):
    monkeypatch.setattr(folds_module, "CHUNK_LOCI", 2)
    rng = np.random.default_rng(2)
    truth = _truth(rng)
    folds = [_fold_predictions(rng) for _ in range(2)]
    truth[("chr2", 77)] = truth[LOCI[0]]
    folds[1][("chr2", 77)] = folds[1][LOCI[0]]
    a = _write_predictions(tmp_path / "a.h5", LOCI, folds[0], truth)
    b_loci = [("chr2", 77)] + LOCI[2:][::-1]  # lacks LOCI[0] and LOCI[1], has one extra
    b = _write_predictions(tmp_path / "b.h5", b_loci, folds[1], truth)
    with pytest.raises(InputError) as err:
        average_predictions([a, b], tmp_path / "avg.h5", progress=False)
    message = str(err.value)
    assert message.startswith(str(b)) and "lacks 2 of the 7 loci" in message and "chr1:100-120" in message
    assert "has 1 loci" in message and "--intersect" in message
    assert not (tmp_path / "avg.h5").exists()

    summary = average_predictions([a, b], tmp_path / "avg.h5", intersect=True, progress=False)
    assert (summary.n_loci, summary.n_dropped) == (5, 3)
    assert "3 loci dropped" in summary.format()
    chrom, start = _read(summary.output, "coords/coords_chrom"), _read(summary.output, "coords/coords_start")
    assert list(zip(chrom, start.tolist())) == LOCI[2:]
    profs = _read(summary.output, "predictions/pred_profs")
    for i, locus in enumerate(LOCI[2:]):
        np.testing.assert_allclose(profs[i], _expected_profile([folds[0][locus], folds[1][locus]]), rtol=2e-5,
                                   atol=1e-6)


def test_disagreeing_truth_wrong_kind_and_shapes_are_input_errors(tmp_path, prediction_folds):
    paths, folds, truth = prediction_folds
    other = {k: v + 1 for k, v in truth.items()}
    bad = _write_predictions(tmp_path / "other_truth.h5", LOCI, folds[1], other)
    with pytest.raises(InputError, match="true_profs differs"):
        average_predictions([paths[0], bad], tmp_path / "avg.h5", progress=False)

    scores = tmp_path / "counts_scores.h5"
    with h5py.File(scores, "w") as h5:
        for name in ("coords_chrom", "coords_start", "coords_end"):
            h5[name] = np.zeros(2, dtype=np.int64)
        h5["hyp_scores"] = np.zeros((2, 4, 4))
        h5["input_seqs"] = np.zeros((2, 4, 4))
    with pytest.raises(InputError) as err:
        average_predictions([paths[0], scores], tmp_path / "avg.h5", progress=False)
    assert "coords/coords_chrom" in str(err.value) and "predictions/pred_profs" in str(err.value)
    assert "--scores" in str(err.value)

    short = tmp_path / "short.h5"
    with h5py.File(paths[1], "r") as src, h5py.File(short, "w") as dst:
        for group in ("coords", "predictions"):
            for name, ds in src[group].items():
                dst[f"{group}/{name}"] = ds[:, :WIDTH - 2] if ds.ndim == 3 else ds[()]
    with pytest.raises(InputError, match="per-locus shape"):
        average_predictions([paths[0], short], tmp_path / "avg.h5", progress=False)

    with h5py.File(paths[2], "a") as h5:  # one row short
        data = h5["predictions/pred_logcounts"][1:]
        del h5["predictions/pred_logcounts"]
        h5["predictions/pred_logcounts"] = data
    with pytest.raises(InputError, match="not one row for each of the 7 loci"):
        average_predictions([paths[0], paths[2]], tmp_path / "avg.h5", progress=False)
    with pytest.raises(InputError, match="given more than once"):
        average_predictions([paths[0], paths[0]], tmp_path / "avg.h5", progress=False)
    assert not (tmp_path / "avg.h5").exists()


def test_prediction_bigwigs_hold_the_averaged_counts(tmp_path, prediction_folds):
    paths, folds, _ = prediction_folds
    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    summary = average_predictions(paths, tmp_path / "avg.h5", chrom_sizes=sizes, bigwig=tmp_path / "avg.bw",
                                  progress=False)
    assert [p.name for p in summary.bigwigs] == ["avg_track_0.bw", "avg_track_1.bw"]
    offset = OUT_LEN // 2 - WIDTH // 2  # the profile window is centred on the output window
    for t, path in enumerate(summary.bigwigs):
        bw = pyBigWig.open(str(path))
        try:
            for chrom, start in LOCI:  # no two windows overlap
                got = np.array(bw.values(chrom, start + offset, start + offset + WIDTH))
                want = _expected_profile([f[(chrom, start)] for f in folds])[:, t]
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
        finally:
            bw.close()


def _write_scores(path, loci, hyp, seqs):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("coords_chrom", data=[c for c, _ in loci], dtype=h5py.string_dtype())
        h5["coords_start"] = np.array([s for _, s in loci])
        h5["coords_end"] = np.array([s for _, s in loci]) + SEQ_LEN
        h5["hyp_scores"] = np.stack([hyp[k] for k in loci]).astype(np.float32)
        h5["input_seqs"] = np.stack([seqs[k] for k in loci]).astype(np.int8)
    return path


@pytest.fixture
def score_folds(tmp_path):
    rng = np.random.default_rng(3)
    seqs = {k: np.eye(4, dtype=np.int8)[rng.integers(4, size=SEQ_LEN)] for k in LOCI}
    folds, paths = [], []
    for f in range(3):
        hyp = {k: rng.normal(size=(SEQ_LEN, 4)) for k in LOCI}
        order = [LOCI[i] for i in rng.permutation(len(LOCI))]
        (tmp_path / f"split{f}").mkdir()
        paths.append(_write_scores(tmp_path / f"split{f}" / "counts_scores.h5", order, hyp, seqs))
        folds.append(hyp)
    return paths, folds, seqs


def test_scores_average_is_the_mean_aligned_by_coordinates(tmp_path, score_folds):
    from bpnetz.motifs.modisco import load_score_window

    paths, folds, seqs = score_folds
    sizes = dict(SIZES)
    summary = average_scores(paths, tmp_path / "avg_scores.h5", chrom_sizes=sizes, bigwig=tmp_path / "avg.bw",
                             progress=False)
    assert (summary.n_loci, summary.kind) == (len(LOCI), "scores")
    loci = list(zip(_read(summary.output, "coords_chrom"), _read(summary.output, "coords_start").tolist()))
    assert sorted(loci) == sorted(LOCI)
    hyp = _read(summary.output, "hyp_scores")
    for i, locus in enumerate(loci):
        np.testing.assert_allclose(hyp[i], sum(f[locus] for f in folds) / 3, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(_read(summary.output, "input_seqs")[i], seqs[locus])
    window = load_score_window(summary.output, window=SEQ_LEN)  # what bpnetz modisco reads
    np.testing.assert_allclose(window.hypothetical, hyp)
    bw = pyBigWig.open(str(summary.bigwigs[0]))
    try:
        for chrom, start in LOCI:
            want = sum((f[(chrom, start)] * seqs[(chrom, start)]).sum(axis=1) for f in folds) / 3
            np.testing.assert_allclose(bw.values(chrom, start, start + SEQ_LEN), want, rtol=1e-5, atol=1e-6)
    finally:
        bw.close()


def test_scores_with_different_sequences_are_an_error(tmp_path, score_folds):
    paths, folds, seqs = score_folds
    changed = dict(seqs)
    changed[LOCI[3]] = np.roll(seqs[LOCI[3]], 1, axis=1)
    bad = _write_scores(tmp_path / "bad.h5", LOCI, folds[1], changed)
    with pytest.raises(InputError, match="input_seqs differs .* chr1:300-324"):
        average_scores([paths[0], bad], tmp_path / "avg.h5", progress=False)


def test_bigwig_template():
    assert track_bigwig_template("out/avg.bw") == "out/avg_track_{i}.bw"
    assert track_bigwig_template("out/{x}/avg") == "out/{{x}}/avg_track_{i}.bw"
    assert track_bigwig_template("out/avg_{i}.bigWig") == "out/avg_{i}.bigWig"


def test_cli_missing_file_exits_2_and_averages_scores(tmp_path, score_folds, capsys):
    paths, _, _ = score_folds
    missing = tmp_path / "split9" / "counts_scores.h5"
    code = bpnetz_main(["average-folds", "--scores", str(paths[0]), str(missing), "--output",
                        str(tmp_path / "avg.h5")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err
    assert bpnetz_main(["average-folds", "--scores", *map(str, paths), "-o", str(tmp_path / "avg.h5"),
                        "--quiet"]) == 0
    assert "averaged the scores of 3 files over 7 loci" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        bpnetz_main(["average-folds", "--scores", *map(str, paths), "-o", str(tmp_path / "x.h5"), "--bigwig",
                     str(tmp_path / "x.bw")])
    assert exit_.value.code == 2
