"""scripts/bench_shap.py's bpnetz side on a tiny model: the control inputs it derives sit on the profile window,
and its completeness check (f(x) − mean f(refs) over the shuffles it redraws) agrees with the attributions that
``explain`` returns, which only holds when the references, the bias handling and the targets all match."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_shap  # noqa: E402


def tiny_params():
    from bpnetz.config import BpnetParams

    return BpnetParams.model_validate({"input_len": 160, "output_profile_len": 40,
                                       "motif_module_params": {"filters": [4], "kernel_sizes": [9]},
                                       "syntax_module_params": {"num_dilation_layers": 2, "filters": 4}})


def test_control_inputs_are_the_profile_window():
    inputs = bench_shap.make_inputs(3, 1, 160, 40)
    bias = inputs.bias(slice(0, 3))
    for i in range(3):
        for strand in range(2):
            window = inputs.control[i, strand, 60:100]  # (160 - 40) // 2 = 60
            np.testing.assert_array_equal(bias["profile_bias"][i, :, strand], window)
            assert bias["counts_bias"][i, strand] == np.float32(np.log1p(window.sum()))


def test_completeness_check_matches_explain():
    explainer, params = bench_shap.build_explainer(params=tiny_params())
    inputs = bench_shap.make_inputs(4, 2, params.input_len, params.output_profile_len)
    args = argparse.Namespace(num_shuffles=3, batch_size=2)
    timing = bench_shap.time_bpnetz(explainer, inputs, ("counts", "profile"), args)
    refs = bench_shap.references(inputs, args.num_shuffles)
    deltas = bench_shap.bpnetz_deltas(explainer.model, inputs, refs)
    for target in ("counts", "profile"):
        assert np.abs(deltas[target]).mean() > 1e-4  # the check has something to check
        absolute, relative = bench_shap.completeness(timing["sums"][target], deltas[target])
        assert relative < 1e-3, (target, absolute, relative)
    from bpnetz.shap.shuffle import reference_shuffles

    other = reference_shuffles(inputs.codes[:inputs.n], args.num_shuffles, 12345, range(inputs.n))
    wrong = bench_shap.bpnetz_deltas(explainer.model, inputs, other)  # other shuffles than explain drew
    assert bench_shap.completeness(timing["sums"]["counts"], wrong["counts"])[1] > 1e-3
