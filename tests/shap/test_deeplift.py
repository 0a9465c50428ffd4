"""DeepLIFT-SHAP: summation to delta, the linear case, agreement with in-silico mutagenesis, batching.

Targets are recomputed here from the plain model's outputs with numpy/scipy (never through the explainer), and the
linear model's gradient is read off from evaluations at basis vectors, without autodiff.
"""

import keras
import numpy as np
import pytest
from keras import layers
from scipy import special, stats

from bpnetz.config import BpnetParams
from bpnetz.genome.sequence import onehot_to_codes
from bpnetz.model.bpnet import build_model
from bpnetz.model.registry import load_model
from bpnetz.shap.deeplift import DeepLiftExplainer, deepshap
from bpnetz.shap.shuffle import reference_shuffles
from bpnetz.store.schema import StoreLayout, Track

L_IN, L_OUT = 64, 20
TWO_TASKS = [Track("a+", 0, "+", "a+.bw"), Track("a-", 0, "-", "a-.bw"), Track("b", 1, ".", "b.bw")]
TWO_TASK_BIAS = [Track("ca+", 0, "+", "ca+.bw"), Track("ca-", 0, "-", "ca-.bw"), Track("cb", 1, ".", "cb.bw")]


def bpnet_like(n_tracks=2, n_counts=1, n_bias=2, filters=8, seed=0, dtype="float32", activation="relu"):
    """A small BPNet-shaped functional model: dilated residual convs, cropped profile head, pooled counts head."""
    keras.utils.set_random_seed(seed)
    kw = {"dtype": dtype}
    seq = keras.Input((L_IN, 4), name="sequence", dtype=dtype)
    x = layers.Conv1D(filters, 7, **kw)(seq)
    for i in (1, 2, 3):
        if activation == "relu":
            h = layers.ReLU(**kw)(x)
        elif activation == "prelu":  # a nonlinearity with its own weights
            h = layers.PReLU(alpha_initializer=keras.initializers.Constant(0.2), **kw)(x)
        else:
            h = layers.Activation(activation, **kw)(x)
        h = layers.Conv1D(filters, 3, dilation_rate=2 ** i, **kw)(h)
        x = layers.Add(**kw)([layers.Cropping1D((x.shape[1] - h.shape[1]) // 2, **kw)(x), h])
    x = layers.ReLU(**kw)(x)
    profile = layers.Conv1D(n_tracks, 9, **kw)(x)
    profile = layers.Cropping1D((profile.shape[1] - L_OUT) // 2, **kw)(profile)
    pooled = layers.GlobalAveragePooling1D(**kw)(x)
    inputs = {"sequence": seq}
    if n_bias:
        profile_bias = keras.Input((L_OUT, n_bias), name="profile_bias", dtype=dtype)
        counts_bias = keras.Input((n_bias,), name="counts_bias", dtype=dtype)
        profile = layers.Conv1D(n_tracks, 1, **kw)(layers.Concatenate(**kw)([profile, profile_bias]))
        pooled = layers.Concatenate(**kw)([pooled, counts_bias])
        inputs.update(profile_bias=profile_bias, counts_bias=counts_bias)
    counts = layers.Dense(n_counts, **kw)(pooled)
    return keras.Model(inputs, {"profile": profile, "logcounts": counts})


def random_inputs(n, n_bias=2, seed=1, with_n=True):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, L_IN))
    if with_n:
        codes[:, 5:9] = 4  # a run of N (all-zero rows)
    onehot = np.vstack([np.eye(4), np.zeros((1, 4))])[codes].astype(np.float32)
    bias = {"profile_bias": rng.gamma(1.0, 1.0, (n, L_OUT, n_bias)).astype(np.float32)}
    bias["counts_bias"] = np.log1p(bias["profile_bias"].sum(axis=1))
    return onehot, (bias if n_bias else {})


def target_values(model, inputs, target, profile_tracks, counts_columns, weights_from=None):
    """counts: sum of the chosen log-count columns; profile: Σ (z − mean z)·w, w = softmax(z of weights_from)."""
    out = {k: np.asarray(v, dtype=np.float64) for k, v in model(inputs).items()}
    if target == "counts":
        return out["logcounts"][:, counts_columns].sum(axis=1)
    z = out["profile"][:, :, profile_tracks].reshape(len(out["profile"]), -1)
    z_w = z if weights_from is None else np.asarray(model(weights_from)["profile"], dtype=np.float64)[
        :, :, profile_tracks].reshape(len(z), -1)
    return ((z - z.mean(axis=1, keepdims=True)) * special.softmax(z_w, axis=1)).sum(axis=1)


def paired_references(onehot, bias, num_shuffles, seed):
    """Inputs repeated per reference, their shuffled references, and zero bias references."""
    codes = reference_shuffles(onehot_to_codes(onehot), num_shuffles, seed, range(len(onehot)))
    refs = np.vstack([np.eye(4), np.zeros((1, 4))])[codes].reshape(-1, L_IN, 4).astype(onehot.dtype)
    x = np.repeat(onehot, num_shuffles, axis=0)
    b = {k: np.repeat(v, num_shuffles, axis=0) for k, v in bias.items()}
    return x, refs, b, {k: np.zeros_like(v) for k, v in b.items()}


def check_completeness(model, explainer, onehot, bias, profile_tracks, counts_columns, rtol):
    x, refs, b, b_ref = paired_references(onehot, bias, 5, seed=7)
    multipliers = explainer.multipliers(x, refs, b)
    for target in ("counts", "profile"):
        m = multipliers[target]
        contribution = ((x - refs) * m["sequence"]).sum(axis=(1, 2))
        contribution += sum((b[k] * m[k]).reshape(len(x), -1).sum(axis=1) for k in b)
        f_x = target_values(model, {"sequence": x, **b}, target, profile_tracks, counts_columns)
        f_r = target_values(model, {"sequence": refs, **b_ref}, target, profile_tracks, counts_columns,
                            weights_from={"sequence": x, **b})
        # averaged over the references of each example, as the acceptance states it
        mean_contribution = contribution.reshape(len(onehot), 5).mean(axis=1)
        delta = f_x.reshape(len(onehot), 5)[:, 0] - f_r.reshape(len(onehot), 5).mean(axis=1)
        scale = np.abs(delta).max()
        np.testing.assert_allclose(mean_contribution, delta, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(contribution, f_x - f_r, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("seed", [0, 1])
def test_contributions_sum_to_the_difference_from_the_references(seed):
    model = bpnet_like(seed=seed)
    onehot, bias = random_inputs(4, seed=seed)
    explainer = DeepLiftExplainer(model, task=0)
    check_completeness(model, explainer, onehot, bias, [0, 1], [0], rtol=1e-3)


def test_completeness_in_float64_and_with_other_nonlinearities():
    for activation in ("relu", "tanh", "prelu"):
        model = bpnet_like(dtype="float64", activation=activation, seed=3)
        onehot, bias = random_inputs(3, seed=3)
        explainer = DeepLiftExplainer(model, task=0)
        check_completeness(model, explainer, onehot.astype(np.float64),
                           {k: v.astype(np.float64) for k, v in bias.items()}, [0, 1], [0], rtol=1e-9)


@pytest.mark.parametrize("orig_multi_loss, task", [(False, 1), (True, 0)])
def test_targets_pick_the_tasks_tracks(orig_multi_loss, task):
    """Two tasks: a stranded one (tracks 0, 1) and an unstranded one (track 2)."""
    layout = StoreLayout(input_len=L_IN, output_len=L_OUT, max_jitter=0, tasks=["a", "b"], tracks=TWO_TASKS)
    model = bpnet_like(n_tracks=3, n_counts=3 if orig_multi_loss else 2, n_bias=0, seed=5)
    onehot, _ = random_inputs(3, n_bias=0, seed=5)
    profile_tracks = [[0, 1], [2]][task]
    counts_columns = profile_tracks if orig_multi_loss else [task]
    explainer = DeepLiftExplainer(model, task, store_layout=layout, orig_multi_loss=orig_multi_loss)
    check_completeness(model, explainer, onehot, {}, profile_tracks, counts_columns, rtol=1e-3)


@pytest.mark.parametrize("orig_multi_loss, task, pre_activation", [(False, 0, True), (True, 1, False)])
def test_completeness_on_the_real_bpnet_with_bias_inputs(orig_multi_loss, task, pre_activation, tmp_path):
    """build_model's BPNet (two tasks, control tracks, a hidden ReLU layer in the counts head), saved and loaded."""
    layout = StoreLayout(L_IN, L_OUT, 0, ["a", "b"], TWO_TASKS, TWO_TASK_BIAS)
    params = BpnetParams.model_validate(dict(
        input_len=L_IN, output_profile_len=L_OUT, motif_module_params=dict(filters=[8], kernel_sizes=[5]),
        syntax_module_params=dict(num_dilation_layers=2, filters=8, kernel_size=3,
                                  pre_activation_residual_unit=pre_activation),
        profile_head_params=dict(kernel_size=9),
        counts_head_params=dict(units=[6, -1], dropouts=[0.2, 0.0], activations=["relu", "linear"])))
    keras.utils.set_random_seed(task)
    build_model(params, layout, orig_multi_loss=orig_multi_loss).save(tmp_path / "model.keras")
    model = load_model(tmp_path, compile=False)
    onehot, bias = random_inputs(3, n_bias=3, seed=task)
    profile_tracks = [[0, 1], [2]][task]
    counts_columns = profile_tracks if orig_multi_loss else [task]
    explainer = DeepLiftExplainer(model, task, store_layout=layout, orig_multi_loss=orig_multi_loss)
    check_completeness(model, explainer, onehot, bias, profile_tracks, counts_columns, rtol=1e-3)


def test_explain_projected_scores_add_up_and_do_not_depend_on_batching():
    model = bpnet_like(seed=4)
    onehot, bias = random_inputs(5, seed=4, with_n=False)
    explainer = DeepLiftExplainer(model, task=0)
    scores = explainer.explain(onehot, bias, num_shuffles=6, seed=11, batch_size=2, progress=False)
    again = explainer.explain(onehot, bias, num_shuffles=6, seed=11, batch_size=5, progress=False)
    tail = explainer.explain(onehot[3:], {k: v[3:] for k, v in bias.items()}, num_shuffles=6, seed=11,
                             first_index=3, progress=False)
    x, refs, b, b_ref = paired_references(onehot, bias, 6, seed=11)
    multipliers = explainer.multipliers(x, refs, b)
    for target in ("counts", "profile"):
        hyp, projected = scores[target]
        assert hyp.shape == projected.shape == onehot.shape and hyp.dtype == np.float32
        np.testing.assert_allclose(hyp, again[target][0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(hyp[3:], tail[target][0], rtol=1e-5, atol=1e-7)  # chunks score alike
        np.testing.assert_array_equal(projected, hyp * onehot)
        bias_part = sum((b[k] * multipliers[target][k]).reshape(len(x), -1).sum(axis=1) for k in b)
        f_x = target_values(model, {"sequence": x, **b}, target, [0, 1], [0])
        f_r = target_values(model, {"sequence": refs, **b_ref}, target, [0, 1], [0],
                            weights_from={"sequence": x, **b})
        expected = ((f_x - f_r) - bias_part).reshape(5, 6).mean(axis=1)
        np.testing.assert_allclose(projected.sum(axis=(1, 2)), expected, rtol=1e-3,
                                   atol=1e-3 * np.abs(expected).max())
    other_seed = explainer.explain(onehot, bias, num_shuffles=6, seed=12, progress=False)
    assert not np.allclose(other_seed["counts"][0], scores["counts"][0])


def linear_model(seed=0):
    """Conv + crop + concat + pooling + dense, no nonlinearity: DeepLIFT must reduce to the gradient."""
    keras.utils.set_random_seed(seed)
    seq = keras.Input((L_IN, 4), name="sequence")
    x = layers.Conv1D(6, 5, dilation_rate=2)(seq)
    x = layers.Conv1D(6, 3, dilation_rate=4)(x)
    profile = layers.Cropping1D((x.shape[1] - L_OUT) // 2)(layers.Conv1D(2, 7)(x))
    counts = layers.Dense(1)(layers.GlobalAveragePooling1D()(x))
    return keras.Model({"sequence": seq}, {"profile": profile, "logcounts": counts})


def test_linear_model_gives_gradient_times_difference():
    model = linear_model()
    onehot, _ = random_inputs(3, n_bias=0, seed=8)
    x, refs, _, _ = paired_references(onehot, {}, 2, seed=3)
    multipliers = DeepLiftExplainer(model).multipliers(x, refs)
    # the model is affine: its Jacobian is the response to each basis vector minus the response to zero
    basis = np.vstack([np.zeros((1, L_IN * 4)), np.eye(L_IN * 4)]).reshape(-1, L_IN, 4).astype(np.float32)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in model.predict({"sequence": basis}, verbose=0).items()}
    counts_gradient = (out["logcounts"][1:, 0] - out["logcounts"][0, 0]).reshape(L_IN, 4)
    z_jacobian = (out["profile"][1:] - out["profile"][:1]).reshape(L_IN, 4, -1)
    z_x = np.asarray(model({"sequence": x})["profile"], dtype=np.float64).reshape(len(x), -1)
    weights = special.softmax(z_x, axis=1)
    # d/dz of Σ (z − mean z)·w with w constant is w − mean(w) = w − 1/n
    profile_gradient = np.einsum("lcj,nj->nlc", z_jacobian, weights - 1.0 / z_x.shape[1])
    np.testing.assert_allclose(multipliers["counts"]["sequence"], np.broadcast_to(counts_gradient, x.shape),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(multipliers["profile"]["sequence"], profile_gradient, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(((x - refs) * multipliers["counts"]["sequence"]).sum(axis=(1, 2)),
                               ((x - refs) * counts_gradient).sum(axis=(1, 2)), rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # the untrained profile head
def test_agrees_with_in_silico_mutagenesis_at_planted_sites():
    """Train on log(1 + number of planted GATAAG); DeepSHAP and ISM must agree at the planted bases."""
    rng = np.random.default_rng(0)
    motif = np.array([2, 0, 3, 0, 0, 2])  # GATAAG
    n = 1500
    codes = rng.integers(0, 4, size=(n, L_IN))
    n_sites = rng.integers(0, 4, size=n)
    sites = []
    for i in range(n):
        for start in rng.choice(np.arange(2, L_IN - 8, 8), size=n_sites[i], replace=False):
            codes[i, start:start + 6] = motif
            sites.append((i, start))
    onehot = np.eye(4, dtype=np.float32)[codes]
    model = bpnet_like(n_tracks=1, n_bias=0, filters=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss={"logcounts": "mse"})
    model.fit({"sequence": onehot}, {"logcounts": np.log1p(n_sites).astype(np.float32)[:, None]},
              epochs=6, batch_size=64, verbose=0)

    test = [i for i in range(n - 40, n) if n_sites[i] > 0]
    scores = deepshap(model, onehot[test], task=0, target="counts", num_shuffles=10, progress=False)
    importance = scores["counts"][1].sum(axis=-1)  # projected, per position
    # ISM: prediction drop when a base is replaced, averaged over the three alternatives
    variants = np.repeat(onehot[test][:, None, None], 3, axis=2).repeat(L_IN, axis=1)  # (T, L, 3, L, 4)
    for p in range(L_IN):
        for k in range(3):
            alternative = (codes[test, p] + 1 + k) % 4
            variants[:, p, k, p] = np.eye(4, dtype=np.float32)[alternative]
    reference = np.asarray(model.predict({"sequence": onehot[test]}, verbose=0)["logcounts"])[:, 0]
    mutated = np.asarray(model.predict({"sequence": variants.reshape(-1, L_IN, 4)}, verbose=0,
                                       batch_size=512)["logcounts"]).reshape(len(test), L_IN, 3)
    ism = reference[:, None] - mutated.mean(axis=2)
    planted = np.zeros((len(test), L_IN), dtype=bool)
    for row, i in enumerate(test):
        for j, start in sites:
            if j == i:
                planted[row, start:start + 6] = True
    rho = stats.spearmanr(importance[planted], ism[planted]).statistic
    sign_agreement = np.mean(np.sign(importance[planted]) == np.sign(ism[planted]))
    rho_all = stats.spearmanr(importance.ravel(), ism.ravel()).statistic
    print(f"\nDeepSHAP vs ISM at {planted.sum()} planted bases: Spearman {rho:.3f}, sign agreement "
          f"{sign_agreement:.3f}; all positions: Spearman {rho_all:.3f}")
    assert rho > 0.5 and sign_agreement > 0.8
    assert importance[planted].mean() > 5 * np.abs(importance[~planted]).mean()
    assert set(scores) == {"counts"} and scores["counts"][0].shape == (len(test), L_IN, 4)


def test_rejects_models_deeplift_cannot_handle():
    seq = keras.Input((L_IN, 4), name="sequence")
    hidden = layers.Conv1D(4, 3, activation="relu")(seq)
    model = keras.Model({"sequence": seq}, {"profile": hidden[:, :, :1],
                                             "logcounts": layers.Dense(1)(layers.GlobalAveragePooling1D()(hidden))})
    with pytest.raises(ValueError, match="separate layers"):
        DeepLiftExplainer(model)
    model = bpnet_like(n_bias=2)
    explainer = DeepLiftExplainer(model)
    onehot, bias = random_inputs(2)
    with pytest.raises(ValueError, match="bias inputs"):
        explainer.explain(onehot, {"profile_bias": bias["profile_bias"]}, progress=False)
    with pytest.raises(ValueError, match="targets"):
        explainer.explain(onehot, bias, targets=["logits"], progress=False)
    with pytest.raises(ValueError, match="several tasks"):
        DeepLiftExplainer(bpnet_like(n_counts=2, n_bias=0))
