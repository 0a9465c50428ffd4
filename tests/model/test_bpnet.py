"""BPNet architecture: shapes, lengths and receptive field computed by hand, bias wiring, errors, saving,
compiled losses against scipy, and the attribution prior."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import softmax
from scipy.stats import multinomial

from bpnetz.config import BpnetParams
from bpnetz.errors import InputError
from bpnetz.model import attribution_prior
from bpnetz.model.bpnet import build_model, compile_model, model_lengths
from bpnetz.model.contract import TrackGroups
from bpnetz.model.registry import CUSTOM_OBJECTS, load_model
from bpnetz.store.schema import StoreLayout, Track

IN, OUT, MOTIF_K, DIL, DIL_K, HEAD_K = 200, 100, 5, 2, 3, 25
STRANDED = [Track("a+", 0, "+", "a_plus.bw"), Track("a-", 0, "-", "a_minus.bw")]
TWO_TASKS = STRANDED + [Track("b", 1, ".", "b.bw")]
TWO_TASK_BIAS = [Track("ca+", 0, "+", "c_plus.bw"), Track("ca-", 0, "-", "c_minus.bw"), Track("cb", 1, ".", "cb.bw")]


def tiny_params(**overrides) -> BpnetParams:
    base = dict(input_len=IN, output_profile_len=OUT,
                motif_module_params=dict(filters=[8], kernel_sizes=[MOTIF_K]),
                syntax_module_params=dict(num_dilation_layers=DIL, filters=8, kernel_size=DIL_K),
                profile_head_params=dict(kernel_size=HEAD_K))
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return BpnetParams.model_validate(base)


def layout(tracks=STRANDED, bias=(), tasks=("0",)) -> StoreLayout:
    return StoreLayout(IN, OUT, 4, list(tasks), list(tracks), list(bias))


def inputs(model: keras.Model, batch: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = {"sequence": np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch, IN))]}
    names = {t.name for t in model.inputs}
    if "profile_bias" in names:
        n_bias = model.get_layer("profile_bias").output.shape[-1]
        x["profile_bias"] = rng.poisson(2, (batch, OUT, n_bias)).astype(np.float32)
        x["counts_bias"] = np.log1p(x["profile_bias"].sum(axis=1))
    return x


def output_shapes(model: keras.Model) -> dict[str, tuple]:
    preds = model(inputs(model), training=False)
    return {k: tuple(v.shape) for k, v in preds.items()}


def test_default_params_map_2114_to_1000_without_crop():
    model = build_model(BpnetParams(), StoreLayout(2114, 1000, 0, ["0"], STRANDED))
    assert [t.name for t in model.inputs] == ["sequence"]
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {"profile": (None, 1000, 2),
                                                                     "logcounts": (None, 1)}
    # 2114 - 20 (motif kernel 21) - Σ_{i=1..8} 2·2^i (dilated kernel 3) = 1074; head kernel 75 gives 1000
    assert model.get_layer("syntax_conv_8").output.shape[1] == 2114 - 20 - sum(2 * 2**i for i in range(1, 9))
    assert model.get_layer("syntax_conv_8").output.shape[1] == 1074
    assert model.get_layer("profile_head_conv").output.shape[1] == 1000
    assert "profile_head_crop" not in [layer.name for layer in model.layers]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.dilation_rate[0] for c in convs if c.name.startswith("syntax")] == [2**i for i in range(1, 9)]
    assert model.get_layer("motif_conv_0").filters == 64 and model.get_layer("motif_conv_0").kernel_size == (21,)


def test_lengths_and_crop_for_tiny_model():
    lengths = model_lengths(tiny_params())
    assert lengths.motif == IN - (MOTIF_K - 1)
    assert lengths.syntax == IN - (MOTIF_K - 1) - (DIL_K - 1) * (2 + 4)
    assert lengths.profile_head == lengths.syntax - (HEAD_K - 1)
    model = build_model(tiny_params(), layout())
    assert output_shapes(model) == {"profile": (3, OUT, 2), "logcounts": (3, 1)}
    crop = model.get_layer("profile_head_crop")
    assert sum(crop.cropping) == lengths.profile_head - OUT


def test_receptive_field_matches_hand_computation():
    model = build_model(tiny_params(), layout())
    # positive weights and a one-hot input keep every ReLU open, so the gradient is positive exactly on the
    # receptive field of the chosen output position
    model.set_weights([np.abs(w) + 0.01 for w in model.get_weights()])
    x = tf.constant(inputs(model, batch=1)["sequence"])
    j = 37
    with tf.GradientTape() as tape:
        tape.watch(x)
        target = tf.reduce_sum(model({"sequence": x})["profile"][0, j])
    support = np.flatnonzero(np.abs(tape.gradient(target, x).numpy()[0]).sum(axis=1) > 0)
    field = 1 + (MOTIF_K - 1) + sum((DIL_K - 1) * 2**i for i in range(1, DIL + 1)) + (HEAD_K - 1)
    centre = j + (IN - OUT) // 2
    assert support.tolist() == list(range(centre - field // 2, centre + field // 2 + 1))


def test_activations_are_separate_layers():
    params = tiny_params(counts_head_params=dict(units=[16, 8, 1], dropouts=[0.1, 0.0, 0.0],
                                                 activations=["relu", "tanh", "linear"]),
                         motif_module_params=dict(filters=[8, 8], kernel_sizes=[5, 3]))
    model = build_model(params, layout(TWO_TASKS, TWO_TASK_BIAS, ("0", "1")))
    weighted = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv1D, keras.layers.Dense))]
    assert weighted and all(layer.activation is keras.activations.linear for layer in weighted)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"ReLU", "Activation", "Dropout"} <= kinds
    assert model.get_layer("counts_activation_1").get_config()["activation"] == "tanh"
    assert model.get_layer("motif_relu_0")  # a ReLU between the two motif convolutions


def test_post_activation_variant():
    model = build_model(tiny_params(syntax_module_params=dict(pre_activation_residual_unit=False)), layout())
    assert output_shapes(model) == {"profile": (3, OUT, 2), "logcounts": (3, 1)}
    # post-activation: every residual sum is followed by a ReLU, and the stack starts from an activated input
    for i in range(1, DIL + 1):
        add = model.get_layer(f"syntax_add_{i}")
        relu = model.get_layer(f"syntax_relu_{i}")
        assert relu.input is add.output
    assert model.get_layer("syntax_relu_0").input is model.get_layer("motif_conv_0").output
    pre = build_model(tiny_params(), layout())
    assert pre.get_layer("syntax_relu_1").input is pre.get_layer("motif_conv_0").output


def test_same_padding_keeps_lengths():
    params = tiny_params(motif_module_params=dict(padding="same"), syntax_module_params=dict(padding="same"),
                         profile_head_params=dict(padding="same"))
    model = build_model(params, layout())
    assert model.get_layer("syntax_conv_2").output.shape[1] == IN
    assert model.get_layer("profile_head_conv").output.shape[1] == IN
    assert output_shapes(model) == {"profile": (3, OUT, 2), "logcounts": (3, 1)}


def test_multi_task_with_bias_and_orig_multi_loss():
    lay = layout(TWO_TASKS, TWO_TASK_BIAS, ("0", "1"))
    joint = build_model(tiny_params(profile_bias_module_params=dict(kernel_sizes=[1, 5])), lay)
    assert sorted(t.name for t in joint.inputs) == ["counts_bias", "profile_bias", "sequence"]
    assert output_shapes(joint) == {"profile": (3, OUT, 3), "logcounts": (3, 2)}
    assert joint.get_layer("profile_bias_conv_1").kernel_size == (5,)
    per_track = build_model(tiny_params(), lay, orig_multi_loss=True)
    assert output_shapes(per_track) == {"profile": (3, OUT, 3), "logcounts": (3, 3)}


def test_no_bias_means_sequence_input_only():
    model = build_model(tiny_params(), layout(TWO_TASKS, (), ("0", "1")))
    assert [t.name for t in model.inputs] == ["sequence"]
    assert output_shapes(model) == {"profile": (3, OUT, 3), "logcounts": (3, 2)}


def test_units_minus_one_means_one_per_task():
    params = tiny_params(counts_head_params=dict(units=[-1, -1], dropouts=[0.0, 0.0],
                                                 activations=["relu", "linear"]))
    model = build_model(params, layout(TWO_TASKS, (), ("0", "1")))
    assert model.get_layer("counts_dense_0").units == 2
    assert output_shapes(model)["logcounts"] == (3, 2)
    per_track = build_model(params, layout(TWO_TASKS, (), ("0", "1")), orig_multi_loss=True)
    assert output_shapes(per_track)["logcounts"] == (3, 3)


def test_bias_reaches_only_its_own_task():
    lay = layout(TWO_TASKS, TWO_TASK_BIAS[:2], ("0", "1"))  # only task 0 has controls
    model = build_model(tiny_params(), lay)
    x = {k: tf.constant(v) for k, v in inputs(model).items()}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x["profile_bias"])
        tape.watch(x["counts_bias"])
        out = model(x)
        task0_profile = tf.reduce_sum(out["profile"][..., :2])
        task1_profile = tf.reduce_sum(out["profile"][..., 2])
        task0_counts = tf.reduce_sum(out["logcounts"][:, 0])
    assert np.abs(tape.gradient(task0_profile, x["profile_bias"]).numpy()).sum() > 0
    assert np.abs(tape.gradient(task0_counts, x["counts_bias"]).numpy()).sum() > 0
    assert tape.gradient(task1_profile, x["profile_bias"]) is None or \
        np.abs(tape.gradient(task1_profile, x["profile_bias"]).numpy()).sum() == 0
    changed = dict(x, profile_bias=x["profile_bias"] + 5.0)
    after = model(changed)
    assert not np.allclose(after["profile"][..., :2], out["profile"][..., :2])
    np.testing.assert_array_equal(after["profile"][..., 2], out["profile"][..., 2])


def test_errors_name_the_params_key():
    with pytest.raises(InputError, match="input_len.*too short"):
        build_model(tiny_params(input_len=120), StoreLayout(120, OUT, 0, ["0"], STRANDED))
    with pytest.raises(InputError, match="output_profile_len 100.*output_profile_len 80"):
        build_model(tiny_params(), StoreLayout(IN, 80, 0, ["0"], STRANDED))
    with pytest.raises(InputError, match="kernel_sizes"):
        build_model(tiny_params(profile_bias_module_params=dict(kernel_sizes=[1, 1, 1])),
                    layout(TWO_TASKS, TWO_TASK_BIAS, ("0", "1")))
    with pytest.raises(InputError, match="unknown activation"):
        build_model(tiny_params(counts_head_params=dict(units=[4, 1], dropouts=[0, 0],
                                                        activations=["sparkle", "linear"])), layout())


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # compiled, never trained
def test_keras_round_trip_gives_identical_predictions(tmp_path):
    lay = layout(TWO_TASKS, TWO_TASK_BIAS, ("0", "1"))
    params = tiny_params(counts_loss="POISSON")
    model = build_model(params, lay)
    compile_model(model, params, learning_rate=1e-3, task_tracks=TrackGroups.of(lay).task_lists())
    model.save(tmp_path / "model.keras")
    plain = keras.models.load_model(tmp_path / "model.keras")
    explicit = keras.models.load_model(tmp_path / "model.keras", custom_objects=CUSTOM_OBJECTS)
    ours = load_model(tmp_path)
    x = inputs(model, batch=4, seed=3)
    expected = model.predict(x, verbose=0)
    for revived in (plain, explicit, ours):
        got = revived.predict(x, verbose=0)
        for key in ("profile", "logcounts"):
            np.testing.assert_array_equal(got[key], expected[key])
    assert type(plain.loss["logcounts"]).__name__ == "CountsPoissonLoss"
    with pytest.raises(InputError, match="no saved model"):
        load_model(tmp_path / "missing")


def test_compiled_loss_weights_backgrounds_out_of_the_profile_loss():
    lay = layout()
    params = tiny_params(loss_weights=[1.0, 7.0])
    model = compile_model(build_model(params, lay), params, learning_rate=1e-3,
                          task_tracks=TrackGroups.of(lay).task_lists())
    rng = np.random.default_rng(5)
    x = inputs(model, batch=4)
    counts = rng.poisson(1.0, (4, OUT, 2)).astype(np.float32)
    y = {"profile": counts, "logcounts": np.log(2 + counts.sum(axis=(1, 2)))[:, None].astype(np.float32)}
    weights = {"profile": np.array([1, 1, 0, 0], np.float32), "logcounts": np.ones(4, np.float32)}
    pred = model.predict(x, verbose=0)
    nll = [-multinomial.logpmf(counts[b].ravel().astype(int), counts[b].sum(),
                               softmax(pred["profile"][b].ravel().astype(np.float64))) for b in range(4)]
    expected = np.dot(weights["profile"], nll) / 4 + 7.0 * np.mean((pred["logcounts"] - y["logcounts"]) ** 2)
    result = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(expected, rel=1e-4)


def test_fourier_prior_prefers_smooth_attributions():
    length = 400
    positions = np.arange(length)
    smooth = np.exp(-0.5 * ((positions - 200) / 15.0) ** 2)  # one broad bump
    noise = np.random.default_rng(2).normal(0, 1, length)  # white noise
    values = tf.constant(np.stack([smooth, noise]).astype(np.float32))
    low, high = attribution_prior.fourier_penalty(values, frequency_limit=20, limit_softness=0.2,
                                                  grad_smooth_sigma=0).numpy()
    assert 0 <= low < 0.05 < 0.5 < high <= 1


def test_training_step_with_attribution_prior():
    lay = layout(TWO_TASKS, TWO_TASK_BIAS, ("0", "1"))
    params = tiny_params(use_attribution_prior=True,
                         attribution_prior_params=dict(frequency_limit=10, limit_softness=0.2, grad_smooth_sigma=1,
                                                       profile_grad_loss_weight=5, counts_grad_loss_weight=3))
    model = compile_model(build_model(params, lay), params, learning_rate=1e-2,
                          task_tracks=TrackGroups.of(lay).task_lists())
    x = inputs(model, batch=4)
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, (4, OUT, 3)).astype(np.float32)
    y = {"profile": counts, "logcounts": np.log1p(counts.sum(axis=1))[:, [0, 2]]}
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert history["attribution_prior"][0] > 0
    total = history["profile_loss"][0] + params.loss_weights[1] * history["logcounts_loss"][0]
    assert history["loss"][0] == pytest.approx(total + history["attribution_prior"][0], rel=1e-4)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize("bias", [(), TWO_TASK_BIAS])
def test_calibration_starts_each_task_at_its_mean_target(bias):
    """After calibrate_counts_head, the mean predicted log count of each task over the calibration batches (each
    batch in training mode, as the first steps see them) equals the task's mean target, computed here with numpy."""
    from bpnetz.model.bpnet import calibrate_counts_head

    lay = layout(TWO_TASKS, bias, tasks=("0", "1"))
    model = build_model(tiny_params(), lay)
    batches = []
    for seed in range(3):
        x = inputs(model, batch=8, seed=seed)
        targets = {"logcounts": np.random.default_rng(seed).normal([6.0, 3.0], 0.5, (8, 2)).astype(np.float32)}
        batches.append((x, targets, None))
    seen = []  # the real model runs; the batch sizes it is called with are recorded

    class Recorded(type(model)):
        def __call__(self, inputs, *args, **kwargs):
            seen.append(len(inputs["sequence"]))
            return super().__call__(inputs, *args, **kwargs)

    model.__class__ = Recorded
    calibrate_counts_head(model, lay, iter(batches))
    model.__class__ = Recorded.__mro__[1]
    assert seen == [8, 8, 8]  # batch by batch: one call on 2,048 joined 2114-bp loci peaked at 14 GB
    target_mean = np.concatenate([b[1]["logcounts"] for b in batches]).mean(axis=0)
    predicted = np.concatenate([np.asarray(model(b[0], training=True)["logcounts"]) for b in batches]).mean(axis=0)
    np.testing.assert_allclose(predicted, target_mean, atol=1e-3)
    assert np.all(np.abs(target_mean) > 2)  # so that an uncalibrated start (near 0) would fail


def test_calibration_weights_the_targets_as_the_counts_loss_does():
    """With counts-loss weights (backgrounds 0), the start is the weighted mean target (the peaks'), computed here
    with numpy; the unweighted mean differs by far more than the tolerance."""
    from bpnetz.model.bpnet import calibrate_counts_head

    lay = layout(TWO_TASKS, TWO_TASK_BIAS, tasks=("0", "1"))
    model = build_model(tiny_params(), lay)
    batches = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        peak = np.arange(8) % 2 == 0
        level = np.where(peak[:, None], [6.0, 5.0], [2.0, 1.0])
        targets = {"logcounts": (level + rng.normal(0, 0.3, (8, 2))).astype(np.float32)}
        batches.append((inputs(model, batch=8, seed=seed), targets, {"logcounts": peak.astype(np.float32)}))
    calibrate_counts_head(model, lay, iter(batches))
    peaks = np.concatenate([b[1]["logcounts"][b[2]["logcounts"] > 0] for b in batches]).mean(axis=0)
    predicted = np.concatenate([np.asarray(model(b[0], training=True)["logcounts"])[b[2]["logcounts"] > 0]
                                for b in batches]).mean(axis=0)
    everything = np.concatenate([b[1]["logcounts"] for b in batches]).mean(axis=0)
    assert np.all(np.abs(peaks - everything) > 1)
    np.testing.assert_allclose(predicted, peaks, atol=1e-3)
