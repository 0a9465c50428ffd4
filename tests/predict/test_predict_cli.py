"""``bpnetz predict`` and ``bpnet-predict`` on the command line: the seed README's command, the printed table,
and one-paragraph errors with exit status 2."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pyBigWig  # noqa: E402
import pytest  # noqa: E402

from bpnetz.cli import main as bpnetz_main  # noqa: E402
from bpnetz.cli import run_guarded  # noqa: E402
from bpnetz.cli.predict import bpnet_predict_main  # noqa: E402
from tests.build.tiny_inputs import write_tiny_experiment  # noqa: E402
from tests.tiny_model import save_model_dir  # noqa: E402

IN_LEN, OUT_LEN = 200, 100
PARAMS = {"input_len": IN_LEN, "output_profile_len": OUT_LEN,
          "motif_module_params": {"filters": [4], "kernel_sizes": [21]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 4, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 69}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The tiny build experiment (stranded task with controls) and a model directory for it, no store yet."""
    from bpnetz.build.builder import make_layout
    from bpnetz.config import InputData

    root = tmp_path_factory.mktemp("cli")
    exp = write_tiny_experiment(root / "exp", n_peaks=24)
    layout = make_layout(InputData.load(exp.input_data), IN_LEN, OUT_LEN, 0)
    model_dir = root / "models" / "model_split000"
    # the user's splits.json, copied as it is (folds keyed "0"); no store.json: predict finds or builds the store
    save_model_dir(model_dir, root / "unused.zarr", layout, PARAMS, split={"0": {"val": ["chr1"], "test": ["chr2"]}})
    (model_dir / "store.json").unlink()
    return {"root": root, "exp": exp, "model_dir": model_dir}


def test_seed_readme_command_runs_unchanged(experiment, monkeypatch, capsys):
    exp, root = experiment["exp"], experiment["root"]
    monkeypatch.delenv("BPNETZ_STORE_CACHE", raising=False)
    out = root / "predictions_and_metrics"
    argv = ["--model", str(experiment["model_dir"]), "--chrom-sizes", str(exp.chrom_sizes), "--chroms", "chr2",
            "--test-indices-file", "None", "--reference-genome", str(exp.fasta), "--output-dir", str(out),
            "--input-data", str(exp.input_data), "--sequence-generator-name", "BPNet", "--input-seq-len",
            str(IN_LEN), "--output-len", str(OUT_LEN), "--output-window-size", str(OUT_LEN), "--batch-size", "64",
            "--reverse-complement-average", "--threads", "2", "--generate-predicted-profile-bigWigs", "--quiet"]
    assert run_guarded(bpnet_predict_main, argv) == 0
    printed = capsys.readouterr().out
    assert "model" in printed and "baseline" in printed and "upper bound" in printed
    stores = list((root / "models" / ".bpnetz-stores").glob("store-*.zarr"))
    assert len(stores) == 1  # built once from the raw inputs, beside the model directory
    peaks = [line.split("\t") for line in exp.peaks.read_text().splitlines()[1:]]
    chr2_summits = {int(f[1]) + int(f[9]) for f in peaks if f[0] == "chr2"}
    with h5py.File(out / "model_split000_predictions.h5", "r") as h5:
        chroms = {c.decode() for c in h5["coords/coords_chrom"][:]}
        summits = set((h5["coords/coords_start"][:] + OUT_LEN // 2).tolist())
        assert h5["predictions/pred_profs"].shape == (len(summits), OUT_LEN, 2)
    assert chroms == {"chr2"} and summits <= chr2_summits and len(summits) >= len(chr2_summits) - 3
    for i in range(2):
        bw = pyBigWig.open(str(out / f"model_split000_predictions_track_{i}.bw"))
        assert "chr2" in bw.chroms() and bw.intervals("chr2")
        bw.close()
    for name in ("pearson.txt", "spearman.txt", "jsd.txt", "metrics.json"):
        assert (out / name).is_file()


def test_bpnetz_predict_prints_the_table(experiment, capsys):
    stores = list((experiment["root"] / "models" / ".bpnetz-stores").glob("store-*.zarr"))
    if not stores:
        pytest.skip("needs the store built by the previous test")
    out = experiment["root"] / "out_cli"
    code = bpnetz_main(["predict", "--model", str(experiment["model_dir"]), "--store", str(stores[0]),
                        "--output-dir", str(out), "--quiet", "--include-background"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("n examples"))
    assert header.split()[-4:] == ["model", "baseline", "upper", "bound"]
    assert any(line.strip().startswith("counts pearson") for line in lines)
    assert lines[-1].startswith("predicted ") and str(out) in lines[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["chroms"] == ["chr2"] and not metrics["peaks_only"]
    # val chr1 and test chr2 leave no training chromosome with loci: the baseline falls back to the predicted set
    assert metrics["baseline"]["source"].startswith(f"predicted set: {metrics['n_examples']} loci")


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_model_dir_exits_2_with_one_paragraph(tmp_path, capsys):
    assert bpnetz_main(["predict", "--model", str(tmp_path / "nope"), "--store", str(tmp_path / "s.zarr"),
                        "--output-dir", str(tmp_path / "o")]) == 2
    assert "model directory does not exist" in _error(capsys)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "bpnet_params.json").write_text("{}")
    assert bpnetz_main(["predict", "--model", str(tmp_path / "half"), "--store", str(tmp_path / "s.zarr"),
                        "--output-dir", str(tmp_path / "o")]) == 2
    assert "no model.keras (it holds bpnet_params.json)" in _error(capsys)


def test_length_mismatches_exit_2(experiment, tmp_path, capsys):
    from tests.store.tiny_store import make_tiny_store

    argv = ["--model", str(experiment["model_dir"]), "--output-dir", str(tmp_path / "o"),
            "--output-window-size", "1000", "--input-data", str(experiment["exp"].input_data)]
    assert run_guarded(bpnet_predict_main, argv) == 2  # reference defaults 2114 / 1000
    assert "--input-seq-len 2114 and --output-len 1000 do not match" in _error(capsys)
    tiny = make_tiny_store(tmp_path)  # windows of 40 / 20
    assert bpnetz_main(["predict", "--model", str(experiment["model_dir"]), "--store", str(tiny.path),
                        "--output-dir", str(tmp_path / "o")]) == 2
    assert f"the model takes {IN_LEN} bases and predicts {OUT_LEN} positions" in _error(capsys)
    assert not np.any([p.suffix == ".h5" for p in (tmp_path / "o").glob("*")])
