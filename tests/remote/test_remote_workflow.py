"""Train, predict and score from a shared store in the bucket with a read-only identity: the same results as
from the local copy of the store (tiny model, one epoch, deterministic TensorFlow ops, one thread), and no
credential in any file written or message printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from bpnetz.build.builder import build_store
from bpnetz.build.options import BuildOptions
from tests.remote.conftest import READER, WRITER, _use

REPO = Path(__file__).resolve().parents[2]
PARAMS = {"input_len": 400, "output_profile_len": 200, "motif_module_params": {"filters": [8], "kernel_sizes": [21]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 8}}
SPLITS = {"0": {"val": ["chr2"], "test": ["chr3"]}}

#: one process per store: train (1 epoch), predict the test fold, score chr1 (TensorFlow imported once)
WORKFLOW = """
import sys
from pathlib import Path
import bpnetz
from bpnetz import PredictOptions, ShapOptions, TrainOptions
from bpnetz.config import BpnetParams, Splits
store, out, params, splits = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
[model] = bpnetz.train(store, BpnetParams.model_validate_json(Path(params).read_text()),
                       Splits.model_validate({"folds": __import__("json").loads(Path(splits).read_text())}),
                       out / "models", TrainOptions(epochs=1, batch_size=32, folds=["0"], verbose=0, threads=1))
bpnetz.predict(model, out / "predictions", PredictOptions(store=store, progress=False))
bpnetz.contribution_scores(model, out / "shap", ShapOptions(store=store, chroms=["chr1"], num_shuffles=2,
                                                               progress=False))
print("done")
"""


def _h5_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path) as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                          else None)
    return arrays


def test_read_only_identity_trains_predicts_and_scores_like_the_local_copy(tiny_experiment, s3_server, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tiny_experiment)  # input_data.json names its files relative to the experiment
    local = tmp_path / "store.zarr"
    options = BuildOptions(input_len=400, output_len=200, max_jitter=16, progress=False, workers=1)
    files = {"input_data": tiny_experiment / "input_data.json", "reference_genome": tiny_experiment / "genome.fa",
             "chrom_sizes": tiny_experiment / "chrom.sizes", "options": options}
    build_store(output=local, **files)
    remote = f"s3://{s3_server.bucket}/shared-{tmp_path.name}.zarr"
    with pytest.MonkeyPatch.context() as mp:
        _use(s3_server, WRITER, mp)
        mp.setenv("BPNETZ_STAGING", str(tmp_path / "staging"))
        build_store(output=remote, **files)
    params, splits = tmp_path / "params.json", tmp_path / "splits.json"
    params.write_text(json.dumps(PARAMS))
    splits.write_text(json.dumps(SPLITS))
    env = {**s3_server.env(READER), "PYTHONPATH": str(REPO), "TF_DETERMINISTIC_OPS": "1", "PYTHONHASHSEED": "0"}
    runs = {}
    for name, store in (("local", str(local)), ("remote", remote)):
        out = tmp_path / name
        result = subprocess.run([sys.executable, "-c", WORKFLOW, store, str(out), str(params), str(splits)],
                                env=env, capture_output=True, text=True, check=False, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = (out, result.stdout + result.stderr)
    (a, _), (b, _) = runs["local"], runs["remote"]
    model = Path("models") / "model_split000"
    history = [json.loads((root / model / "history.json").read_text()) for root in (a, b)]
    assert history[0].keys() == history[1].keys()
    for key in history[0]:
        np.testing.assert_allclose(history[0][key], history[1][key], rtol=1e-5, err_msg=key)
    assert json.loads((b / model / "store.json").read_text())["path"] == remote
    compared = 0
    for file in sorted((a / "predictions").rglob("*.h5")) + sorted((a / "shap").rglob("*.h5")):
        mine, theirs = _h5_arrays(file), _h5_arrays(b / file.relative_to(a))
        assert mine.keys() == theirs.keys()
        for key, value in mine.items():
            if value.dtype.kind in "fiu":
                np.testing.assert_allclose(value, theirs[key], rtol=1e-5, atol=1e-6, err_msg=f"{file.name}:{key}")
                compared += 1
    assert compared >= 4
    for secret in (*WRITER, *READER):
        assert all(secret not in text for _, text in runs.values())
        for file in (f for f in tmp_path.rglob("*") if f.is_file()):
            assert secret.encode() not in file.read_bytes(), file
