"""Training end to end on a built store of the simulated tiny experiment: one model per fold, best weights kept,
every output file, the CLI, and clear errors for mismatched lengths."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from bpnetz.cli import run_guarded
from bpnetz.cli import train as train_cli
from bpnetz.config import BpnetParams, Splits
from bpnetz.errors import InputError
from bpnetz.model.data import stream_dataset
from bpnetz.model.options import TrainOptions
from bpnetz.model.train import train
from bpnetz.store import schema
from bpnetz.store.stream import LocusStream

INPUT_LEN, OUTPUT_LEN = 400, 200
SPLITS = Splits.model_validate({"folds": {"0": {"val": ["chr2"], "test": ["chr3"]},
                                          "1": {"val": ["chr3"], "test": ["chr2"]}}})


def tiny_params(**overrides) -> BpnetParams:
    return BpnetParams.model_validate({
        "input_len": INPUT_LEN, "output_profile_len": OUTPUT_LEN,
        "motif_module_params": dict(filters=[8], kernel_sizes=[21]),
        "syntax_module_params": dict(num_dilation_layers=2, filters=8), **overrides})


@pytest.fixture(scope="module")
def store(tiny_experiment, tmp_path_factory):
    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions

    path = tmp_path_factory.mktemp("train") / "store.zarr"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_experiment)
        build_store("input_data.json", "genome.fa", "chrom.sizes", path,
                    BuildOptions(input_len=INPUT_LEN, output_len=OUTPUT_LEN, max_jitter=16, progress=False))
    return path


class ScrambleBeforeLastEpoch(keras.callbacks.Callback):
    """Replace the weights by noise before the last epoch, so the last epoch cannot be the best one."""

    def __init__(self, last_epoch: int):
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.last_epoch:
            rng = np.random.default_rng(0)
            for weight in self.model.trainable_weights:  # running statistics stay valid
                weight.assign(rng.normal(0, 3, weight.shape).astype(weight.dtype))


def test_one_model_per_fold_with_the_best_weights_and_all_files(store, tmp_path):
    import bpnetz.model.registry  # noqa: F401  (registers our objects for plain keras.models.load_model)

    epochs = 3
    dirs = train(store, tiny_params(), SPLITS, tmp_path,
                 TrainOptions(model_name="m", epochs=epochs, batch_size=16, early_stopping_patience=10, seed=5,
                              verbose=0, refit_counts_head=False), callbacks=[ScrambleBeforeLastEpoch(epochs - 1)])
    assert [d.name for d in dirs] == ["m_split000", "m_split001"]
    checksum = schema.metadata(schema.open_group(store))["checksum"]
    for key, directory in zip(("0", "1"), dirs):
        for name in ("model.keras", "bpnet_params.json", "splits.json", "history.csv", "history.json",
                     "learning_curves.png", "store.json", "training.json"):
            assert (directory / name).is_file(), name
        assert list((directory / "logs" / "train").glob("events.out.tfevents.*"))
        assert list((directory / "logs" / "validation").glob("events.out.tfevents.*"))
        assert (directory / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
        assert json.loads((directory / "store.json").read_text())["checksum"] == checksum
        fold = Splits.load(directory / "splits.json").folds[key]
        assert fold.val == SPLITS.folds[key].val and sorted(fold.train) == ["chr1"]
        assert BpnetParams.load(directory / "bpnet_params.json") == tiny_params()

        history = json.loads((directory / "history.json").read_text())
        csv_rows = (directory / "history.csv").read_text().strip().splitlines()
        assert len(history["val_loss"]) == epochs and len(csv_rows) == epochs + 1
        best = int(np.argmin(history["val_loss"]))
        assert best < epochs - 1  # the scrambled last epoch is worse
        # the saved model is the best epoch's: its validation loss is the minimum of the history
        model = keras.models.load_model(directory / "model.keras")
        val = stream_dataset(LocusStream(store, SPLITS.folds[key], "val", batch_size=16, seed=5))
        loss = model.evaluate(val, verbose=0, return_dict=True)["loss"]
        np.testing.assert_allclose(loss, history["val_loss"][best], rtol=1e-4)
        summary = json.loads((directory / "training.json").read_text())["summary"]
        assert summary["best_epoch"] == best + 1 and summary["epochs_run"] == epochs


def test_the_counts_head_record_matches_the_saved_model_on_validation_peaks(store, tmp_path, capsys):
    """The saved model's validation-peak log-count MSE (numpy, over the validation stream's peaks) is the record's;
    so is the constant predictor's (the training peaks' mean log count, read here from the training stream), and
    a warning is printed exactly when the model does not beat it (on this tiny experiment, 2 epochs and 18
    validation peaks, it does not); the profile output is the best epoch's (validation loss as in the history)."""
    import bpnetz.model.registry  # noqa: F401

    directory = train(store, tiny_params(), SPLITS, tmp_path,
                      TrainOptions(epochs=2, batch_size=16, seed=5, verbose=1, folds=["0"]))[0]
    record = json.loads((directory / "training.json").read_text())["summary"]["counts_refit"]
    assert record["refit"] and record["chosen"] in record["candidate_scores"]
    model = keras.models.load_model(directory / "model.keras")
    reader = LocusStream(store, SPLITS.folds["0"], "val", batch_size=16, seed=5)
    is_peak = reader.reader.loci["kind"].to_numpy() == schema.KIND_PEAK
    errors, peaks = [], []
    for x, y, _, index in stream_dataset(reader, with_index=True):
        errors.append(np.asarray(model(x, training=False)["logcounts"]) - np.asarray(y["logcounts"]))
        peaks.append(is_peak[np.asarray(index["row"])])
    errors, peaks = np.concatenate(errors).astype(np.float64), np.concatenate(peaks)
    np.testing.assert_allclose(np.mean(errors[peaks] ** 2), record["val_peaks_mse"], rtol=1e-4)
    train_stream = LocusStream(store, SPLITS.folds["0"], "train", batch_size=16, seed=5, shuffle=False, jitter=False,
                               reverse_complement="none")
    train_peaks = [np.asarray(y["logcounts"])[is_peak[np.asarray(i["row"])]]
                   for _, y, _, i in stream_dataset(train_stream, with_index=True)]
    val_targets = np.concatenate([np.asarray(y["logcounts"]) for _, y, _ in stream_dataset(reader)])[peaks]
    constant = np.concatenate(train_peaks).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(np.mean((val_targets - constant) ** 2), record["val_peaks_mse_constant"], rtol=0.05)
    beats = record["val_peaks_mse"] < record["val_peaks_mse_constant"]
    assert record["beats_constant"] == beats
    err = capsys.readouterr().err
    assert "constant predictor" in err and ("no better than their training mean" in err) == (not beats)
    history = json.loads((directory / "history.json").read_text())
    best = int(np.argmin(history["val_loss"]))
    profile_loss = model.evaluate(stream_dataset(reader), verbose=0, return_dict=True)["profile_loss"]
    np.testing.assert_allclose(profile_loss, history["val_profile_loss"][best], rtol=1e-4)


def test_cli_trains_the_selected_fold(store, tmp_path):
    params = tmp_path / "bpnet_params.json"
    params.write_text(tiny_params().to_json())
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({k: v.model_dump() for k, v in SPLITS.folds.items()}))
    argv = ["--store", str(store), "--params", str(params), "--splits", str(splits), "-d", str(tmp_path / "out"),
            "--folds", "1", "--epochs", "1", "-b", "32", "--reverse-complement-augmentation", "--cache", "disk",
            "--mixed-precision", "--quiet"]
    assert run_guarded(train_cli.main, argv) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model_split001"]
    options = json.loads((tmp_path / "out" / "model_split001" / "training.json").read_text())["options"]
    assert options["reverse_complement"] == "double" and options["cache"] == "disk" and options["batch_size"] == 32
    assert options["mixed_precision"] and keras.config.dtype_policy().name == "float32"  # policy restored
    from bpnetz.model.registry import load_model

    model = load_model(tmp_path / "out" / "model_split001")  # saved as a float32 twin
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert run_guarded(train_cli.main, [*argv, "--output-len", "100"]) == 2  # disagrees with params and store


def test_lengths_that_disagree_with_the_store_are_an_input_error(store, tmp_path):
    with pytest.raises(InputError, match="input length 500.*400"):
        train(store, tiny_params(input_len=500), SPLITS, tmp_path, TrainOptions(epochs=1, verbose=0))



def test_a_damaged_shard_met_while_streaming_is_one_error_naming_the_file(store, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(store, damaged)
    shard = damaged / "signal" / "c" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the shard's chunk index, covered by its CRC32C
    shard.write_bytes(bytes(raw))
    params = tmp_path / "bpnet_params.json"
    params.write_text(tiny_params().to_json())
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({k: v.model_dump() for k, v in SPLITS.folds.items()}))
    argv = ["--store", str(damaged), "--params", str(params), "--splits", str(splits), "-d", str(tmp_path / "out"),
            "--folds", "0", "--epochs", "1", "--cache", "disk", "--quiet"]
    assert run_guarded(train_cli.main, argv) == 2  # raised on a reader thread, inside tf.data
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(shard) in err and "CRC32C" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- names and one writer at a time


@pytest.mark.parametrize("key", ["/../../x", ".."])
def test_a_fold_key_that_would_leave_the_output_directory_is_refused(store, tmp_path, capsys, key):
    work = tmp_path / "work"
    work.mkdir()
    (work / "bpnet_params.json").write_text(tiny_params().to_json())
    splits = work / "splits.json"
    splits.write_text(json.dumps({key: {"val": ["chr2"], "test": ["chr3"]}}))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("keep")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    argv = ["--store", str(store), "--params", str(work / "bpnet_params.json"), "--splits", str(splits), "-d",
            str(work / "models"), "--epochs", "1", "--quiet"]
    assert run_guarded(train_cli.main, argv) == 2
    err = capsys.readouterr().err
    assert f"{splits}: the fold key {key!r}" in err and "Traceback" not in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, nothing removed


PAUSED_TRAINING = """
import sys, time
from pathlib import Path
import keras
from bpnetz.config import BpnetParams, Splits
from bpnetz.model.options import TrainOptions
from bpnetz.model.train import train
store, out, started, go, params, splits = sys.argv[1:]

class Pause(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        Path(started).touch()
        t0 = time.time()
        while not Path(go).exists() and time.time() - t0 < 300:
            time.sleep(0.1)

train(store, BpnetParams.load(params), Splits.load(splits), out,
      TrainOptions(epochs=1, batch_size=32, folds=["0"], verbose=0), callbacks=[Pause()])
"""


def test_a_second_training_into_one_model_directory_fails_and_the_first_is_kept(store, tmp_path):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    params, splits = tmp_path / "bpnet_params.json", tmp_path / "splits.json"
    params.write_text(tiny_params().to_json())
    splits.write_text(json.dumps({k: v.model_dump() for k, v in SPLITS.folds.items()}))
    out, started, go = tmp_path / "models", tmp_path / "started", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = subprocess.Popen([sys.executable, "-c", PAUSED_TRAINING, str(store), str(out), str(started), str(go),
                              str(params), str(splits)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not started.exists():
            assert first.poll() is None, first.stderr.read()
            assert time.time() - t0 < 300
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "bpnetz", "train", "--store", str(store), "--params",
                                 str(params), "--splits", str(splits), "-d", str(out), "--folds", "0", "--epochs",
                                 "1", "--quiet"], env=env, capture_output=True, text=True, check=False)
        assert second.returncode == 2, second.stderr
        assert "another bpnetz process is writing this model directory" in second.stderr
        assert f"pid {first.pid}" in second.stderr and str(out / "model_split000") in second.stderr
    finally:
        go.touch()
        first.wait(300)
    assert first.returncode == 0, first.stderr.read()
    from bpnetz.model.registry import load_model

    model_dir = out / "model_split000"
    assert load_model(model_dir) is not None
    assert json.loads((model_dir / "training.json").read_text())["summary"]["fold"] == "0"
    assert (model_dir / ".bpnetz-output.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["model_split000"]
