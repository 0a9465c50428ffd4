"""input_data.json / bpnet_params.json / splits.json parsing: accepted as the reference accepts them."""

import json
import warnings
from pathlib import Path

import pytest

from bpnetz.config import BpnetParams, InputData, Splits
from bpnetz.errors import InputError

SEED_INPUT = {
    "0": {
        "signal": {"source": ["data/plus.bw", "data/minus.bw"]},
        "loci": {"source": ["data/peaks.bed"]},
        "background_loci": {"source": ["data/gc_negatives.bed"], "ratio": [0.25]},
        "bias": {"source": ["data/control_plus.bw", "data/control_minus.bw"], "smoothing": [None, [7.0, 81]]},
    }
}


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


@pytest.fixture()
def experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("plus.bw", "minus.bw", "peaks.bed", "gc_negatives.bed", "control_plus.bw", "control_minus.bw"):
        (tmp_path / "data" / name).write_bytes(b"")
    return tmp_path


def test_seed_input_data_parses(experiment):
    data = InputData.load(_write(experiment / "input_data.json", SEED_INPUT))
    task = data.tasks["0"]
    assert task.stranded
    assert task.background_loci.ratio == 0.25
    assert task.bias.smoothings == [None, (7.0, 81)]
    assert len(list(data.files())) == 6


def test_bias_is_optional(experiment):
    spec = {"0": {k: v for k, v in SEED_INPUT["0"].items() if k != "bias"}}
    data = InputData.load(_write(experiment / "input_data.json", spec))
    assert data.tasks["0"].bias is None


def test_missing_file_names_key_and_file(experiment):
    (experiment / "data" / "minus.bw").unlink()
    with pytest.raises(InputError) as err:
        InputData.load(_write(experiment / "input_data.json", SEED_INPUT))
    message = str(err.value)
    assert "input_data.json" in message and "signal.source[1]" in message and "data/minus.bw" in message


def test_bad_key_is_named(experiment):
    spec = json.loads(json.dumps(SEED_INPUT))
    spec["0"]["signals"] = spec["0"].pop("signal")
    with pytest.raises(InputError) as err:
        InputData.load(_write(experiment / "input_data.json", spec))
    assert "signals" in str(err.value) and "input_data.json" in str(err.value)


def test_task_keys_must_be_sequential(experiment):
    with pytest.raises(InputError, match="task keys"):
        InputData.load(_write(experiment / "input_data.json", {"1": SEED_INPUT["0"]}))


def test_json_syntax_error_names_line(experiment):
    with pytest.raises(InputError, match="line 2"):
        InputData.load(_write(experiment / "input_data.json", '{\n  "0": {,}\n}'))


def test_smoothing_needs_one_entry_per_source(experiment):
    spec = json.loads(json.dumps(SEED_INPUT))
    spec["0"]["bias"]["smoothing"] = [None]
    with pytest.raises(InputError, match="smoothing"):
        InputData.load(_write(experiment / "input_data.json", spec))


SEED_PARAMS = {
    "input_len": 2114, "output_profile_len": 1000,
    "motif_module_params": {"filters": [64], "kernel_sizes": [21], "padding": "valid"},
    "syntax_module_params": {"num_dilation_layers": 8, "filters": 64, "kernel_size": 3, "padding": "valid",
                             "pre_activation_residual_unit": True},
    "profile_head_params": {"filters": 1, "kernel_size": 75, "padding": "valid"},
    "counts_head_params": {"units": [1], "dropouts": [0.0], "activations": ["linear"]},
    "profile_bias_module_params": {"kernel_sizes": [1]},
    "counts_bias_module_params": {},
    "use_attribution_prior": False,
    "attribution_prior_params": {"frequency_limit": 150, "limit_softness": 0.2, "grad_smooth_sigma": 3,
                                 "profile_grad_loss_weight": 200, "counts_grad_loss_weight": 100},
    "loss_weights": [1, 42], "counts_loss": "MSE",
}


def test_seed_params_parse(tmp_path):
    params = BpnetParams.load(_write(tmp_path / "bpnet_params.json", SEED_PARAMS))
    assert params.loss_weights == (1.0, 42.0)
    assert params.syntax_module_params.num_dilation_layers == 8
    assert params.attribution_prior_params.frequency_limit == 150


def test_params_bad_value_is_named(tmp_path):
    bad = dict(SEED_PARAMS, counts_loss="L1")
    with pytest.raises(InputError, match="counts_loss"):
        BpnetParams.load(_write(tmp_path / "bpnet_params.json", bad))


SEED_SPLITS = {"0": {"test": ["chr7", "chr13", "chr21"], "val": ["chr10", "chr18"],
                     "train": ["chr1", "chr2", "chr21", "chr22"]}}


def test_overlapping_splits_warn_with_chromosomes(tmp_path):
    with pytest.warns(UserWarning, match="chr21"):
        splits = Splits.load(_write(tmp_path / "splits.json", SEED_SPLITS))
    assert splits.folds["0"].chroms("train") == ["chr1", "chr2", "chr21", "chr22"]


def test_train_defaults_to_chroms_minus_heldout(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = Splits.load(_write(tmp_path / "splits.json", {"0": {"val": ["chr2"], "test": ["chr1"]}}))
    fold = splits.folds["0"]
    assert fold.train_chroms(["chr1", "chr2", "chr3", "chr4"]) == ["chr3", "chr4"]
    with pytest.raises(InputError, match="--chroms"):
        fold.train_chroms(None)


def test_empty_bias_means_no_controls(experiment):
    spec = json.loads(json.dumps(SEED_INPUT))
    spec["0"]["bias"] = {"source": [], "smoothing": []}
    assert InputData.load(_write(experiment / "input_data.json", spec)).tasks["0"].bias is None
