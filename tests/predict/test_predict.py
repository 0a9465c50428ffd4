"""The prediction pipeline on a tiny two-task store (task 0 stranded, task 1 unstranded, with controls) and an
untrained tiny BPNet saved in a model directory.

Expected values are computed independently of the pipeline: sequences read with pyfaidx and one-hot encoded
here, control and signal windows read with pyBigWig, the Keras model called directly, and the joint softmax ×
exp(log count) written out in numpy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pyBigWig  # noqa: E402
import pyfaidx  # noqa: E402
import pytest  # noqa: E402

from bpnetz.errors import InputError  # noqa: E402
from bpnetz.model.options import TrainOptions  # noqa: E402
from bpnetz.predict.options import PredictOptions  # noqa: E402
from bpnetz.store.schema import KIND_PEAK  # noqa: E402
from tests.store.tiny_store import CHROM_SIZES, INPUT_LEN, OUTPUT_LEN, make_tiny_store  # noqa: E402
from tests.tiny_model import save_model_dir  # noqa: E402

TRACKS = ["a_plus", "a_minus", "b"]
CONTROLS = ["ctl_a_plus", "ctl_a_minus", "ctl_b"]
GROUPS = [[0, 1], [2]]  # joint softmax: task 0 over both strands, task 1 alone
SWAP = [1, 0, 2]  # + <-> - of task 0; the unstranded track maps to itself
SPLIT = {"val": ["chr2"], "test": ["chr3"]}  # train: chr1, chr4
PARAMS = {"input_len": INPUT_LEN, "output_profile_len": OUTPUT_LEN,
          "motif_module_params": {"filters": [8], "kernel_sizes": [5]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 8, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 5}}
ONE_HOT = {"A": [1, 0, 0, 0], "C": [0, 1, 0, 0], "G": [0, 0, 1, 0], "T": [0, 0, 0, 1]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    tiny = make_tiny_store(root)
    sizes = root / "chrom.sizes"
    sizes.write_text("".join(f"{c}\t{n}\n" for c, n in CHROM_SIZES.items()))
    model = save_model_dir(root / "models" / "model_split000", tiny.path, tiny.layout, PARAMS, SPLIT)
    return {"root": root, "tiny": tiny, "sizes": sizes, "model": model, "model_dir": root / "models" / "model_split000"}


# ------------------------------------------------------------------------------------------ independent reference


def onehot(seq: str) -> np.ndarray:
    return np.array([ONE_HOT.get(b, [0, 0, 0, 0]) for b in seq.upper()], dtype=np.float32)


def read_window(path: Path, chrom: str, start: int, length: int) -> np.ndarray:
    """pyBigWig values of [start, start + length), 0 outside the chromosome or where there is no value."""
    bw = pyBigWig.open(str(path))
    size = bw.chroms()[chrom]
    out = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, size)
    if hi > lo:
        out[lo - start:hi - start] = np.nan_to_num(np.array(bw.values(chrom, lo, hi)))
    bw.close()
    return out


def model_inputs(tiny, chrom: str, summits: list[int]) -> dict[str, np.ndarray]:
    """Model inputs of windows centred on summits, read from the FASTA and control bigWigs directly."""
    fasta = pyfaidx.Fasta(str(tiny.fasta))
    seqs, bias = [], []
    for s in summits:
        lo = s - INPUT_LEN // 2
        seq = str(fasta[chrom][max(lo, 0):lo + INPUT_LEN])
        seq = "N" * (max(lo, 0) - lo) + seq
        seqs.append(onehot(seq + "N" * (INPUT_LEN - len(seq))))
        bias.append(np.stack([read_window(tiny.bigwigs[n], chrom, s - OUTPUT_LEN // 2, OUTPUT_LEN)
                              for n in CONTROLS], axis=1))
    profile_bias = np.array(bias, dtype=np.float32)
    return {"sequence": np.array(seqs), "profile_bias": profile_bias,
            "counts_bias": np.log(1 + profile_bias.sum(axis=1))}


def run_model(model, inputs) -> tuple[np.ndarray, np.ndarray]:
    out = model({k: v.astype(np.float32) for k, v in inputs.items()}, training=False)
    return np.asarray(out["profile"], dtype=np.float64), np.asarray(out["logcounts"], dtype=np.float64)


def counts_from(logits: np.ndarray, logcounts: np.ndarray) -> np.ndarray:
    """Joint softmax per task over positions × its tracks, times exp(the task's log count)."""
    out = np.zeros_like(logits)
    for task, tracks in enumerate(GROUPS):
        z = logits[:, :, tracks]
        e = np.exp(z - z.max(axis=(1, 2), keepdims=True))
        out[:, :, tracks] = e / e.sum(axis=(1, 2), keepdims=True) * np.exp(logcounts[:, task])[:, None, None]
    return out


def peak_summits(tiny, chroms) -> list[tuple[str, int]]:
    return sorted({(x["chrom"], x["summit"]) for x in tiny.loci if x["chrom"] in chroms and x["kind"] == KIND_PEAK})


# ------------------------------------------------------------------------------------------ peaks


@pytest.fixture(scope="module")
def test_run(setup):
    from bpnetz.predict.predict import predict

    out = setup["root"] / "out_test"
    summary = predict(setup["model_dir"], out,
                      PredictOptions(store=setup["tiny"].path, split="test", batch_size=5, generate_bigwigs=True,
                                     chrom_sizes=setup["sizes"], progress=False))
    return summary, out


def test_h5_has_the_reference_keys_and_independently_computed_values(setup, test_run):
    summary, out = test_run
    tiny = setup["tiny"]
    expected_loci = peak_summits(tiny, SPLIT["test"])
    with h5py.File(out / "model_split000_predictions.h5", "r") as h5:
        assert set(h5) == {"coords", "predictions"}
        assert set(h5["coords"]) == {"coords_chrom", "coords_start", "coords_end"}
        assert set(h5["predictions"]) == {"pred_profs", "pred_logcounts", "true_profs", "true_logcounts"}
        chrom = [c.decode() for c in h5["coords/coords_chrom"][:]]
        start, end = h5["coords/coords_start"][:], h5["coords/coords_end"][:]
        pred, pred_lc = h5["predictions/pred_profs"][:], h5["predictions/pred_logcounts"][:]
        true, true_lc = h5["predictions/true_profs"][:], h5["predictions/true_logcounts"][:]
    n = len(expected_loci)
    assert summary.n_examples == n
    assert pred.shape == true.shape == (n, OUTPUT_LEN, 3) and pred_lc.shape == true_lc.shape == (n, 3)
    assert (end - start == OUTPUT_LEN).all()
    summits = start + OUTPUT_LEN // 2
    assert sorted(zip(chrom, summits.tolist())) == expected_loci  # every test peak once, nothing else
    logits, logcounts = run_model(setup["model"], model_inputs(tiny, "chr3", summits.tolist()))
    expected = counts_from(logits, logcounts)
    np.testing.assert_allclose(pred, expected, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(pred_lc, np.log(expected.sum(axis=1)), rtol=1e-4, atol=1e-5)
    observed = np.stack([[read_window(tiny.bigwigs[t], "chr3", s - OUTPUT_LEN // 2, OUTPUT_LEN) for t in TRACKS]
                         for s in summits]).transpose(0, 2, 1)
    np.testing.assert_array_equal(true, observed)
    np.testing.assert_allclose(true_lc, np.log1p(observed.sum(axis=1)), rtol=1e-6)


def test_bigwigs_hold_the_predicted_counts_at_the_loci(setup, test_run):
    summary, out = test_run
    tiny = setup["tiny"]
    summits = [s for _, s in peak_summits(tiny, SPLIT["test"])]
    # loci whose window overlaps no other predicted window are written whole
    alone = [s for s in summits if all(abs(s - t) >= OUTPUT_LEN for t in summits if t != s)]
    assert len(alone) >= 3
    expected = counts_from(*run_model(setup["model"], model_inputs(tiny, "chr3", alone)))
    paths = [out / f"model_split000_predictions_track_{i}.bw" for i in range(3)]
    assert all(p in summary.files for p in paths)
    covered = np.zeros(CHROM_SIZES["chr3"], bool)
    for s in summits:
        covered[s - OUTPUT_LEN // 2:s + OUTPUT_LEN // 2] = True
    for t, path in enumerate(paths):
        bw = pyBigWig.open(str(path))
        assert bw.chroms() == CHROM_SIZES
        for k, s in enumerate(alone):
            got = np.array(bw.values("chr3", s - OUTPUT_LEN // 2, s + OUTPUT_LEN // 2))
            np.testing.assert_allclose(got, expected[k, :, t], rtol=2e-4, atol=1e-6)
        values = np.array(bw.values("chr3", 0, CHROM_SIZES["chr3"]))
        np.testing.assert_array_equal(np.isfinite(values), covered)  # written exactly over the loci
        assert bw.intervals("chr1") is None  # nothing predicted on other chromosomes
        bw.close()


def test_metric_files_and_the_table_show_model_baseline_and_upper_bound(setup, test_run):
    summary, out = test_run
    tiny = setup["tiny"]
    for name in ("pearson.txt", "spearman.txt", "jsd.txt", "mnll.npz", "jsd.npz", "cross_entropy.npz", "mse.npz",
                 "pearson.npz", "spearman.npz", "counts_pearson.npz", "metrics_per_example.npz",
                 "model_split000_logcounts.png", "model_split000_top_profiles.png"):
        assert (out / name).is_file(), name
    assert (out / "model_split000_logcounts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"model", "baseline", "upper_bound"}
    assert metrics["chroms"] == ["chr3"] and metrics["split"] == "test"
    assert metrics["baseline"]["source"].startswith("training split")
    header = summary.table.splitlines()[0]
    assert header.split()[-4:] == ["model", "baseline", "upper", "bound"]
    assert "task 0" in summary.table and "track b" in summary.table
    # the baseline predicts every example with the mean observed task log count of the TRAINING peaks
    train = peak_summits(tiny, ["chr1", "chr4"])
    totals = np.array([[read_window(tiny.bigwigs[t], c, s - OUTPUT_LEN // 2, OUTPUT_LEN).sum() for t in TRACKS]
                       for c, s in train])
    expected = [np.mean(np.log(2 + totals[:, 0] + totals[:, 1])), np.mean(np.log1p(totals[:, 2]))]
    baseline = summary.results["baseline"].task.pred_logcounts
    np.testing.assert_allclose(baseline, np.broadcast_to(expected, baseline.shape), rtol=1e-6)


def rc_inputs(inputs):
    """Reverse complement written out: positions reversed, A<->T and C<->G, bias strands swapped."""
    return {"sequence": inputs["sequence"][:, ::-1][:, :, [3, 2, 1, 0]],
            "profile_bias": inputs["profile_bias"][:, ::-1][:, :, SWAP],
            "counts_bias": inputs["counts_bias"][:, SWAP]}


def test_rc_average_is_strand_symmetric_on_the_keras_model(setup):
    from bpnetz.predict.inference import model_predict_fn, predict_batch

    tiny = setup["tiny"]
    inputs = model_inputs(tiny, "chr1", [100, 357, 800, 1201])
    fn = model_predict_fn(setup["model"])
    options = {"reverse_complement_average": True, "set_bias_as_zero": False}
    forward = predict_batch(fn, inputs, tiny.layout, **options)
    backward = predict_batch(fn, rc_inputs(inputs), tiny.layout, **options)
    np.testing.assert_allclose(forward[0], backward[0][:, ::-1][:, :, SWAP], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(forward[1], backward[1], rtol=1e-5, atol=1e-6)
    plain = predict_batch(fn, inputs, tiny.layout, reverse_complement_average=False, set_bias_as_zero=False)
    plain_rc = predict_batch(fn, rc_inputs(inputs), tiny.layout, reverse_complement_average=False,
                             set_bias_as_zero=False)
    assert not np.allclose(plain[0], plain_rc[0][:, ::-1][:, :, SWAP], atol=1e-3)  # the model alone is not


def test_rc_average_window_and_zero_bias_through_the_pipeline(setup):
    from bpnetz.predict.predict import predict

    tiny, out = setup["tiny"], setup["root"] / "out_rc"
    predict(setup["model_dir"], out,
            PredictOptions(store=tiny.path, chroms=["chr2"], reverse_complement_average=True, output_window_size=10,
                           set_bias_as_zero=True, progress=False))
    with h5py.File(out / "model_split000_predictions.h5", "r") as h5:
        start, pred = h5["coords/coords_start"][:], h5["predictions/pred_profs"][:]
        true = h5["predictions/true_profs"][:]
    summits = (start + OUTPUT_LEN // 2).tolist()
    assert sorted(summits) == [s for _, s in peak_summits(tiny, ["chr2"])]
    inputs = model_inputs(tiny, "chr2", summits)
    inputs = {**inputs, "profile_bias": 0 * inputs["profile_bias"], "counts_bias": 0 * inputs["counts_bias"]}
    logits, logcounts = run_model(setup["model"], inputs)
    rc_logits, rc_logcounts = run_model(setup["model"], rc_inputs(inputs))
    full = counts_from((logits + rc_logits[:, ::-1][:, :, SWAP]) / 2, (logcounts + rc_logcounts) / 2)
    np.testing.assert_allclose(pred, full[:, 5:15], rtol=2e-4, atol=1e-6)  # centre 10 of 20
    assert true.shape == (len(summits), 10, 3)


def test_test_indices_pick_positions_among_the_evaluated_loci(setup, test_run, tmp_path):
    from bpnetz.predict.predict import predict

    (tmp_path / "indices.txt").write_text("3\n1\n\n")
    predict(setup["model_dir"], tmp_path / "out",
            PredictOptions(store=setup["tiny"].path, test_indices=tmp_path / "indices.txt", progress=False))
    with h5py.File(tmp_path / "out" / "model_split000_predictions.h5", "r") as picked, \
            h5py.File(test_run[1] / "model_split000_predictions.h5", "r") as every:
        np.testing.assert_array_equal(picked["coords/coords_start"][:], every["coords/coords_start"][[1, 3]])
        np.testing.assert_allclose(picked["predictions/pred_profs"][:], every["predictions/pred_profs"][[1, 3]])
    with pytest.raises(InputError, match="0-based positions among the 8"):
        predict(setup["model_dir"], tmp_path / "out",
                PredictOptions(store=setup["tiny"].path, test_indices=[8], progress=False))


def test_per_track_log_counts_are_read_from_the_model(setup, tmp_path):
    """orig_multi_loss models (one log count per track): one softmax per track, its own count."""
    from bpnetz.predict.predict import predict

    tiny = setup["tiny"]
    model = save_model_dir(tmp_path / "multi_split000", tiny.path, tiny.layout, PARAMS, SPLIT, orig_multi_loss=True)
    predict(tmp_path / "multi_split000", tmp_path / "out", PredictOptions(store=tiny.path, split="val", progress=False))
    with h5py.File(tmp_path / "out" / "multi_split000_predictions.h5", "r") as h5:
        summits = (h5["coords/coords_start"][:] + OUTPUT_LEN // 2).tolist()
        pred, pred_lc = h5["predictions/pred_profs"][:], h5["predictions/pred_logcounts"][:]
    logits, logcounts = run_model(model, model_inputs(tiny, "chr2", summits))
    assert logcounts.shape == (len(summits), 3)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # per track, over positions
    np.testing.assert_allclose(pred, softmax * np.exp(logcounts)[:, None, :], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(pred_lc, logcounts, rtol=1e-4, atol=1e-5)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["orig_multi_loss"] is True
    assert set(metrics["results"]["model"]["task"]) == set(TRACKS)  # one softmax group per track


def test_a_model_directory_written_by_train(setup, tmp_path):
    """One epoch of 'bpnetz train'; predict finds the store, the fold and the names in the model directory."""
    train_module = pytest.importorskip("bpnetz.model.train")
    from bpnetz.config import BpnetParams, Split, Splits
    from bpnetz.predict.predict import predict

    tiny = setup["tiny"]
    [model_dir] = train_module.train(tiny.path, BpnetParams(**PARAMS), Splits(folds={"0": Split(**SPLIT)}),
                                     tmp_path / "models", TrainOptions(epochs=1, batch_size=8, verbose=0))
    summary = predict(model_dir, tmp_path / "out", PredictOptions(progress=False))  # no store: its store.json
    assert summary.model_name == "model_split000" and summary.n_examples == len(peak_summits(tiny, ["chr3"]))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert Path(metrics["store"]).resolve() == tiny.path.resolve() and metrics["chroms"] == ["chr3"]
    assert metrics["baseline"]["source"].startswith("training split")


# ------------------------------------------------------------------------------------------ regions


def test_regions_bigwig_covers_the_region_with_tiles_centred_on_it(setup):
    from bpnetz.predict.predict import predict

    tiny, out = setup["tiny"], setup["root"] / "out_regions"
    bed = setup["root"] / "regions.bed"
    bed.write_text("chr1\t100\t175\tr1\n")
    summary = predict(setup["model_dir"], out,
                      PredictOptions(regions=bed, reference_genome=tiny.fasta, chrom_sizes=setup["sizes"],
                                     progress=False))
    assert summary.n_examples == 4 and summary.table is None
    # 75 bases -> 4 tiles of 20 overhanging by 5 (2 left, 3 right): tiles at 98, 118, 138, 158
    tiles = np.array([98, 118, 138, 158])
    expected = counts_from(*run_model(setup["model"], model_inputs(tiny, "chr1", (tiles + 10).tolist())))
    for t in range(3):
        bw = pyBigWig.open(str(out / f"model_split000_predictions_track_{t}.bw"))
        got = np.array(bw.values("chr1", 98, 178))
        np.testing.assert_allclose(got, expected[:, :, t].ravel(), rtol=2e-4, atol=1e-6)
        assert np.isnan(bw.values("chr1", 97, 98)[0]) and np.isnan(bw.values("chr1", 178, 179)[0])
        bw.close()
    assert not list(out.glob("*.h5"))  # nothing observed: no metrics, no h5


def test_tile_covers_a_whole_chromosome(setup):
    from bpnetz.predict.predict import predict

    tiny, out = setup["tiny"], setup["root"] / "out_tile"
    predict(setup["model_dir"], out,
            PredictOptions(tile="chr4", reference_genome=tiny.fasta, chrom_sizes=setup["sizes"], batch_size=16,
                           progress=False))
    bw = pyBigWig.open(str(out / "model_split000_predictions_track_2.bw"))
    values = np.array(bw.values("chr4", 0, CHROM_SIZES["chr4"]))
    assert np.isfinite(values).all() and (values > 0).all()
    assert bw.intervals("chr3") is None
    # 900 bases = 45 tiles exactly: the tile at 440 is the window centred on 450
    expected = counts_from(*run_model(setup["model"], model_inputs(tiny, "chr4", [450])))
    np.testing.assert_allclose(values[440:460], expected[0, :, 2], rtol=2e-4, atol=1e-6)
    bw.close()


def test_regions_without_controls_use_zero_bias_with_a_notice(setup, tmp_path, capsys):
    """No store at hand: the layout comes from store.json; its control bigWigs are gone, so bias inputs are 0."""
    import shutil

    from bpnetz.predict.predict import predict

    tiny = setup["tiny"]
    model_dir = tmp_path / "moved_split000"
    model_dir.mkdir()
    shutil.copy(setup["model_dir"] / "model.keras", model_dir / "model.keras")
    layout = tiny.layout.to_dict()
    for track in layout["bias_tracks"]:
        track["source"] = str(tmp_path / "gone" / Path(track["source"]).name)
    (model_dir / "store.json").write_text(json.dumps({"path": str(tmp_path / "gone.zarr"), "layout": layout}))
    predict(model_dir, tmp_path / "out",
            PredictOptions(tile=["chr2"], reference_genome=tiny.fasta, chrom_sizes=setup["sizes"], progress=False))
    assert "bias inputs of the regions are zero" in capsys.readouterr().err
    inputs = model_inputs(tiny, "chr2", [30])
    inputs = {**inputs, "profile_bias": 0 * inputs["profile_bias"], "counts_bias": 0 * inputs["counts_bias"]}
    expected = counts_from(*run_model(setup["model"], inputs))
    bw = pyBigWig.open(str(tmp_path / "out" / "moved_split000_predictions_track_0.bw"))
    np.testing.assert_allclose(bw.values("chr2", 20, 40), expected[0, :, 0], rtol=2e-4, atol=1e-6)
    bw.close()


# ------------------------------------------------------------------------------------------ errors


def test_input_errors(setup, tmp_path):
    from bpnetz.predict.predict import predict

    tiny = setup["tiny"]
    with pytest.raises(InputError, match="model.keras"):
        (tmp_path / "empty").mkdir()
        predict(tmp_path / "empty", tmp_path / "o", PredictOptions(store=tiny.path, progress=False))
    with pytest.raises(InputError, match="chrZ"):
        predict(setup["model_dir"], tmp_path / "o", PredictOptions(store=tiny.path, chroms=["chrZ"], progress=False))
    with pytest.raises(InputError, match="output-window-size"):
        predict(setup["model_dir"], tmp_path / "o",
                PredictOptions(store=tiny.path, output_window_size=30, progress=False))
    with pytest.raises(InputError, match="chrom-sizes"):
        predict(setup["model_dir"], tmp_path / "o",
                PredictOptions(store=tiny.path, generate_bigwigs=True, progress=False))
