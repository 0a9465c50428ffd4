"""Ordinary input faults end as one paragraph naming the file and the line or key, with exit status 2.

Found by a hostile-but-realistic user: zero or negative sizes and weights in bpnet_params.json, zero or negative
numeric flags, splits.json chromosomes the store does not hold, every locus rejected (was an IndexError), and
peak files with non-integer coordinates or summits outside their peak. Commands run in-process through
``bpnetz.cli.main`` (the same entry point as the console script); expectations are computed independently (the
number of loci counted from the input files, the chromosomes from the splits and the store).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from bpnetz.cli import main as bpnetz_main
from bpnetz.config import Split, check_split_chroms
from bpnetz.errors import InputError
from tests.build.tiny_inputs import INPUT_LEN, MAX_JITTER, OUTPUT_LEN, write_tiny_experiment

PARAMS = {"input_len": INPUT_LEN, "output_profile_len": OUTPUT_LEN,
          "motif_module_params": {"filters": [4], "kernel_sizes": [21]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 4, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 69}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from bpnetz.build.builder import build_store
    from bpnetz.store.reader import StoreReader
    from tests.tiny_model import save_model_dir

    root = tmp_path_factory.mktemp("input_faults")
    exp = write_tiny_experiment(root / "exp", n_peaks=24)
    store = root / "store.zarr"
    build_store(**exp.build_args(store))
    model = root / "models" / "model_split000"
    save_model_dir(model, store, StoreReader(store).layout, PARAMS, {"val": ["chr1"], "test": ["chr2"]})
    return {"root": root, "exp": exp, "store": store, "model": model}


def _error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _build_args(exp, output: Path, *extra: str, input_len: int = INPUT_LEN) -> list[str]:
    return ["build", "--input-data", str(exp.input_data), "--reference-genome", str(exp.fasta), "--chrom-sizes",
            str(exp.chrom_sizes), "--input-seq-len", str(input_len), "--output-len", str(OUTPUT_LEN),
            "--max-jitter", str(MAX_JITTER), "--output", str(output), "--quiet", *extra]


# ------------------------------------------------------------------------------------------ bpnet_params.json

@pytest.mark.parametrize("key, change", [
    ("motif_module_params.filters[0]", {"motif_module_params": {"filters": [0], "kernel_sizes": [21]}}),
    ("motif_module_params.kernel_sizes[0]", {"motif_module_params": {"filters": [4], "kernel_sizes": [-3]}}),
    ("syntax_module_params.filters", {"syntax_module_params": {"filters": 0}}),
    ("syntax_module_params.kernel_size", {"syntax_module_params": {"kernel_size": 0}}),
    ("syntax_module_params.num_dilation_layers", {"syntax_module_params": {"num_dilation_layers": -1}}),
    ("profile_head_params.kernel_size", {"profile_head_params": {"kernel_size": 0}}),
    ("counts_head_params.units[0]", {"counts_head_params": {"units": [0]}}),
    ("loss_weights[1]", {"loss_weights": [1, -42]}),
    ("attribution_prior_params.counts_grad_loss_weight", {"attribution_prior_params": {"counts_grad_loss_weight": -1}}),
    ("input_len", {"input_len": 0}),
])
def test_params_out_of_range_exit_2_naming_file_and_key(experiment, tmp_path, capsys, key, change):
    params = tmp_path / "bpnet_params.json"
    params.write_text(json.dumps({**PARAMS, **change}))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"0": {"val": ["chr1"], "test": ["chr2"]}}))
    rc = bpnetz_main(["train", "--store", str(experiment["store"]), "--params", str(params), "--splits",
                      str(splits), "--output-dir", str(tmp_path / "models")])
    assert rc == 2
    message = _error(capsys)
    assert str(params) in message and f"key '{key}'" in message
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("argv, flag", [
    (["train", "--store", "s", "--params", "p", "--splits", "s", "--batch-size", "0"], "--batch-size"),
    (["train", "--store", "s", "--params", "p", "--splits", "s", "--epochs", "-1"], "--epochs"),
    (["train", "--store", "s", "--params", "p", "--splits", "s", "--learning-rate", "0"], "--learning-rate"),
    (["train", "--store", "s", "--params", "p", "--splits", "s", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--store", "s", "--params", "p", "--splits", "s", "--mnll-loss-sample-weight", "-1"],
     "--mnll-loss-sample-weight"),
    (["predict", "--model", "m", "--store", "s", "--output-dir", "o", "--batch-size", "0"], "--batch-size"),
    (["shap", "--model", "m", "--output-dir", "o", "--batch-size", "-2"], "--batch-size"),
    (["build", "--input-data", "i", "--reference-genome", "g", "--chrom-sizes", "c", "--output", "o",
      "--max-jitter", "-1"], "--max-jitter"),
    (["build", "--input-data", "i", "--reference-genome", "g", "--chrom-sizes", "c", "--output", "o",
      "--input-seq-len", "0"], "--input-seq-len"),
])
def test_numeric_flags_out_of_range_exit_2_naming_the_flag(capsys, argv, flag):
    with pytest.raises(SystemExit) as stop:
        bpnetz_main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "expected" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ splits.json

def test_split_chromosomes_partly_absent_warn_naming_them():
    fold = Split(val=["chr1", "chrX"], test=["chr2", "chrY"], train=["chr1", "chr2"])
    with pytest.warns(UserWarning) as caught:
        check_split_chroms({"3": fold}, ["chr1", "chr2"], path="splits.json")
    messages = [str(w.message) for w in caught]
    assert any('fold "3"' in m and "val" in m and "chrX" in m for m in messages), messages
    assert any("test" in m and "chrY" in m for m in messages), messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_split_chroms({"0": Split(val=["chr1"], test=["chr2"])}, ["chr1", "chr2", "chr3"], path="splits.json")
    with pytest.raises(InputError, match='fold "0": the train set'):  # store minus val and test leaves nothing
        check_split_chroms({"0": Split(val=["chr1"], test=["chr2"])}, ["chr1", "chr2"], path="splits.json")


def test_split_whose_val_set_has_no_locus_exits_2(experiment, tmp_path, capsys):
    params = tmp_path / "bpnet_params.json"
    params.write_text(json.dumps(PARAMS))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"0": {"val": ["1", "X"], "test": ["chr2"], "train": ["chr1"]}}))
    rc = bpnetz_main(["train", "--store", str(experiment["store"]), "--params", str(params), "--splits",
                      str(splits), "--output-dir", str(tmp_path / "models")])
    assert rc == 2
    message = _error(capsys)
    assert str(splits) in message and 'fold "0"' in message and "val set (1, X)" in message
    assert not (tmp_path / "models").exists()


def test_predict_split_absent_from_the_store_exits_2(experiment, tmp_path, capsys):
    model = tmp_path / "model_split000"
    shutil.copytree(experiment["model"], model)
    (model / "splits.json").write_text(json.dumps({"val": ["chr1"], "test": ["chrUn_9"]}))
    rc = bpnetz_main(["predict", "--model", str(model), "--store", str(experiment["store"]), "--output-dir",
                      str(tmp_path / "pred"), "--quiet"])
    assert rc == 2
    message = _error(capsys)
    assert str(model / "splits.json") in message and "model_split000" in message and "chrUn_9" in message


# ------------------------------------------------------------------------------------------------- the build

def _count_loci(exp) -> int:
    peaks = [line for line in exp.peaks.read_text().splitlines() if line and not line.startswith("#")]
    background = [line for line in exp.background.read_text().splitlines() if line]
    return len(peaks) + len(background)


def test_every_locus_rejected_is_one_paragraph_with_the_rejected_bed(tmp_path, capsys):
    exp = write_tiny_experiment(tmp_path / "exp")
    output = tmp_path / "store.zarr"
    rc = bpnetz_main(_build_args(exp, output, input_len=20_000))  # wider than every chromosome
    assert rc == 2
    message = _error(capsys)
    n = _count_loci(exp)
    bed = Path(f"{output}.rejected_loci.bed")
    assert f"all {n} loci were rejected" in message and "window_past_chrom_end" in message and str(bed) in message
    rows = [line.split("\t") for line in bed.read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == n
    assert not output.exists() and not Path(f"{output}.partial").exists()


def test_no_locus_on_the_chroms_filter_names_it(tmp_path, capsys):
    exp = write_tiny_experiment(tmp_path / "exp")
    rc = bpnetz_main(_build_args(exp, tmp_path / "store.zarr", "--chroms", "chrM"))
    assert rc == 2
    message = _error(capsys)
    assert "--chroms chrM left out" in message and "'chr1'" in message


@pytest.mark.parametrize("fault", ["coordinate", "summit"])
def test_bad_peak_lines_name_file_and_line(tmp_path, capsys, fault):
    exp = write_tiny_experiment(tmp_path / "exp")
    lines = exp.peaks.read_text().splitlines()
    fields = lines[3].split("\t")  # line 4 of the file (line 1 is a comment)
    if fault == "coordinate":
        fields[1] = f"{int(fields[1]) // 1000}_{int(fields[1]) % 1000:03d}"
    else:
        fields[9] = str(int(fields[2]) - int(fields[1]) + 5)
    lines[3] = "\t".join(fields)
    exp.peaks.write_text("\n".join(lines) + "\n")
    rc = bpnetz_main(_build_args(exp, tmp_path / "store.zarr"))
    assert rc == 2
    message = _error(capsys)
    assert str(exp.peaks) in message and "line 4" in message
    assert ("column 2" in message) if fault == "coordinate" else ("summit" in message)

