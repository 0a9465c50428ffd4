"""``bpnetz predict`` against other writers (real processes): a store replaced by ``build --overwrite`` while
predicting, and a prediction killed with SIGKILL (the previous output survives, the next run cleans up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from bpnetz.build.builder import build_store
from bpnetz.store import schema
from tests.build.tiny_inputs import write_tiny_experiment
from tests.predict.test_predict_cli import IN_LEN, OUT_LEN, PARAMS
from tests.tiny_model import save_model_dir

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Store A (every chromosome), the inputs of store B (chr1 only), and a model directory for both."""
    root = tmp_path_factory.mktemp("writers")
    exp = write_tiny_experiment(root / "exp", n_peaks=24)
    build_store(**exp.build_args(root / "a.zarr", input_len=IN_LEN, output_len=OUT_LEN, max_jitter=0))
    build_store(**exp.build_args(root / "b.zarr", input_len=IN_LEN, output_len=OUT_LEN, max_jitter=0,
                                 chroms=["chr1"]))
    layout = schema.layout(zarr.open_group(str(root / "a.zarr"), mode="r"))
    model_dir = root / "model_split000"
    save_model_dir(model_dir, root / "a.zarr", layout, PARAMS, split={"0": {"val": ["chr1"], "test": ["chr2"]}})
    return {"root": root, "exp": exp, "model_dir": model_dir}


def _peak_loci(store: Path) -> set[tuple[str, int]]:
    group = zarr.open_group(str(store), mode="r")
    peaks = np.asarray(group["kind"][:]) == schema.KIND_PEAK
    return {(str(c), int(s)) for c, s in zip(group["chrom"][:][peaks], group["summit"][:][peaks], strict=True)}


def _predicted_loci(out: Path) -> set[tuple[str, int]]:
    with h5py.File(out / "model_split000_predictions.h5", "r") as h5:
        chroms = [c.decode() for c in h5["coords/coords_chrom"][:]]
        summits = h5["coords/coords_start"][:] + OUT_LEN // 2
    return set(zip(chroms, summits.tolist(), strict=True))


def _predict_argv(setup, store: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "bpnetz", "predict", "--model", str(setup["model_dir"]), "--store", str(store),
            "--split", "all", "--output-dir", str(out), "--quiet"]


def test_predict_while_the_store_is_replaced_reads_one_store_only(setup, tmp_path):
    root, exp = setup["root"], setup["exp"]
    store = tmp_path / "store.zarr"
    build_store(**exp.build_args(store, input_len=IN_LEN, output_len=OUT_LEN, max_jitter=0))
    build = [sys.executable, "-m", "bpnetz", "build", "--input-data", str(exp.input_data), "--reference-genome",
             str(exp.fasta), "--chrom-sizes", str(exp.chrom_sizes), "--input-seq-len", str(IN_LEN), "--output-len",
             str(OUT_LEN), "--max-jitter", "0", "--chroms", "chr1", "--output", str(store), "--overwrite",
             "--workers", "1", "--quiet"]
    predicting = subprocess.Popen(_predict_argv(setup, store, tmp_path / "out"), env=ENV, stderr=subprocess.PIPE,
                                  text=True)
    rebuilt = subprocess.run(build, env=ENV, capture_output=True, text=True, check=False)
    assert rebuilt.returncode == 0, rebuilt.stderr
    rc, err = predicting.wait(300), predicting.stderr.read()
    assert "Traceback" not in err
    if rc == 2:
        assert str(store) in err, err
        assert not (tmp_path / "out").exists()  # no output of a run that failed
    else:
        assert rc == 0, err
        assert _predicted_loci(tmp_path / "out") in (_peak_loci(root / "a.zarr"), _peak_loci(root / "b.zarr"))


def test_a_killed_prediction_leaves_the_previous_output_and_the_next_run_cleans_up(setup, tmp_path, capsys):
    from bpnetz.predict.options import PredictOptions
    from bpnetz.predict.predict import predict

    store, out = setup["root"] / "a.zarr", tmp_path / "out"
    predict(setup["model_dir"], out, PredictOptions(store=store, split="all", progress=False))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    killed = subprocess.Popen(_predict_argv(setup, store, out), env=ENV, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not list(tmp_path.glob(".out.bpnetz-tmp-*")):
        assert killed.poll() is None and time.time() - t0 < 300
        time.sleep(0.005)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert list(tmp_path.glob(".out.bpnetz-tmp-*"))  # the killed run's temporary is still there
    predict(setup["model_dir"], out, PredictOptions(store=store, split="all", progress=False))
    err = capsys.readouterr().err
    assert "unfinished output of an earlier run" in err and "took over the stale lock" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert _predicted_loci(out) == _peak_loci(store)
