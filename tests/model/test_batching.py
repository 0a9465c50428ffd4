"""Cache-sized model calls without a GPU, and TensorFlow's pooled host memory set up by ``import bpnetz``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bpnetz.model import batching
from bpnetz.predict.inference import model_predict_fn
from tests.store.tiny_store import INPUT_LEN, make_tiny_store
from tests.tiny_model import save_model_dir

FILTERS, KERNEL = 8, 5
PARAMS = {"input_len": INPUT_LEN, "output_profile_len": 20,
          "motif_module_params": {"filters": [FILTERS], "kernel_sizes": [KERNEL]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": FILTERS, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 5}}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("batching")
    tiny = make_tiny_store(root)
    return save_model_dir(root / "model", tiny.path, tiny.layout, PARAMS, None)


def test_calls_hold_the_budget_of_the_largest_layer_output(model, monkeypatch):
    """The largest output is the motif convolution's: (input_len − kernel + 1) positions × filters float32."""
    largest = (INPUT_LEN - KERNEL + 1) * FILTERS * 4
    assert batching.largest_output_bytes(model) == largest
    monkeypatch.setattr(batching, "has_gpu", lambda: False)
    assert batching.examples_per_call(model, budget=10 * largest) == 10
    assert batching.examples_per_call(model, budget=largest // 3) == 1
    monkeypatch.setattr(batching, "has_gpu", lambda: True)
    assert batching.examples_per_call(model) is None  # a GPU takes the whole batch


def test_a_batch_in_several_calls_predicts_what_one_call_does(model):
    rng = np.random.default_rng(0)
    n = 11
    inputs = {"sequence": np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, INPUT_LEN))]}
    for name in model.input:
        if name != "sequence":
            inputs[name] = rng.poisson(2.0, (n, *model.input[name].shape[1:])).astype(np.float32)
    whole = model_predict_fn(model, per_call=n)(inputs)
    for per_call in (1, 4):
        parts = model_predict_fn(model, per_call=per_call)(inputs)
        assert parts.keys() == whole.keys()
        for key in whole:
            assert parts[key].shape == whole[key].shape
            np.testing.assert_allclose(parts[key], whole[key], rtol=1e-5, atol=1e-6)
    empty = model_predict_fn(model, per_call=4)({k: v[:0] for k, v in inputs.items()})
    assert all(len(v) == 0 for v in empty.values())


@pytest.mark.parametrize("preset", [None, "false"])
def test_import_bpnetz_pools_tensor_memory_unless_told_otherwise(preset):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if preset is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = preset
    out = subprocess.run([sys.executable, "-c", "import os, bpnetz; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == (preset or "true")
