"""The public API: ``import bpnetz`` is lazy, and the README's "Python API" snippet runs as written.

The snippet runs in a fresh Python process in an empty directory (it changes the working directory); its outputs
are then checked against independent reads: the store's arrays with zarr, the peak file, the h5 outputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from bpnetz.store.schema import KIND_PEAK

README = Path(__file__).resolve().parents[1] / "README.md"
PUBLIC = ["open_dataset", "build_store", "simulate", "train", "predict", "contribution_scores", "run_modisco",
          "call_hits", "average_predictions", "verify_store", "BuildOptions", "TrainOptions", "PredictOptions",
          "ShapOptions", "InputError"]


def readme_snippet() -> str:
    """The first Python code block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the Python API section has no python code block"
    return blocks[0]


def test_import_is_lazy_and_names_the_public_api():
    """A fresh process: no heavy import; every public name resolves; importing the same-named subpackages
    leaves ``bpnetz.predict``/``bpnetz.simulate`` the functions (and their submodules reachable)."""
    code = ("import json, sys, bpnetz\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'zarr', 'xarray') if m in sys.modules]\n"
            "import bpnetz.predict.metrics as M, bpnetz.simulate.genome\n"
            f"missing = [n for n in {PUBLIC!r} if not hasattr(bpnetz, n)]\n"
            "print(json.dumps([heavy, missing, bpnetz.predict.__qualname__, bpnetz.simulate.__qualname__,\n"
            "                  M.__name__, bpnetz.predict.metrics is M, 'tensorflow' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [[], [], "predict", "simulate", "bpnetz.predict.metrics", True, False]


def test_a_missing_name_is_an_attribute_error():
    import bpnetz

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        bpnetz.nonexistent  # noqa: B018


def test_the_readme_python_api_snippet_runs(tmp_path):
    subprocess.run([sys.executable, "-c", readme_snippet()], cwd=tmp_path, check=True, timeout=280)
    exp = tmp_path / "exp"
    group = zarr.open_group(str(exp / "store.zarr"), mode="r")
    [model_dir] = list((exp / "models").iterdir())
    assert (model_dir / "model.keras").is_file() and (model_dir / "training.json").is_file()
    # predict's default: the peaks (kind 0) of the fold's test chromosome, every one of them
    test_chroms = json.loads((exp / "splits.json").read_text())["0"]["test"]
    chrom, kind = np.array(group["chrom"][:].tolist()), np.asarray(group["kind"][:])
    expected = int(np.sum(np.isin(chrom, test_chroms) & (kind == KIND_PEAK)))
    with h5py.File(exp / "predictions" / f"{model_dir.name}_predictions.h5", "r") as h5:
        assert h5["predictions/pred_profs"].shape[0] == expected > 0
        assert set(h5["coords/coords_chrom"][:].astype(str)) == set(test_chroms)
    with h5py.File(exp / "shap" / "counts_scores.h5", "r") as h5:
        assert h5["hyp_scores"].shape[0] == 10 and np.isfinite(h5["hyp_scores"][:]).all()
