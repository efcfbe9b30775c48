"""Tests of introspection.attacks: patch errors, FGSM, BIM, DeepFool.

Everything runs on tiny models built here: a hand-set linear classifier (closed-form
DeepFool check) and a small CNN trained for a few seconds on synthetic "bright square"
images (10 classes, 14x14x3).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

from introspection.attacks import (
    DEEPFOOL_STEP_EPS,
    Generated,
    bim,
    deepfool,
    deepfool_perturb,
    fgsm,
    patch_errors,
    predict_labels,
)

H = W = 14
C = 3
K = 10
# Top-left corner of each class's bright 4x4 square.
CORNERS = [(r, c) for r in (0, 5, 10) for c in (0, 5, 10)][:9] + [(3, 3)]


def make_squares(n, seed):
    """Noise background in [0, 0.3] plus a bright 4x4 square whose position is the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, size=n)
    x = rng.uniform(0.0, 0.3, size=(n, H, W, C)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = CORNERS[label]
        x[i, r : r + 4, c : c + 4, :] = rng.uniform(0.7, 1.0)
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def cnn_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((H, W, C)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(K),  # logits
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x_train, y_train = make_squares(3000, seed=1)
    model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
    x_test, y_test = make_squares(120, seed=2)
    acc = np.mean(predict_labels(model, x_test) == y_test)
    assert acc > 0.9, f"tiny CNN failed to train (accuracy {acc:.3f})"
    return model, x_test, y_test


def linear_model(d_shape, k, seed):
    rng = np.random.default_rng(seed)
    d = int(np.prod(d_shape))
    model = keras.Sequential([keras.Input(d_shape), keras.layers.Flatten(), keras.layers.Dense(k)])
    weights = rng.normal(size=(d, k)).astype(np.float32)
    bias = rng.normal(size=k).astype(np.float32)
    model.layers[-1].set_weights([weights, bias])
    return model, weights.astype(np.float64), bias.astype(np.float64)


def assert_json(stats):
    json.dumps(stats, allow_nan=False)


# --------------------------------------------------------------------------------------
# predict_labels
# --------------------------------------------------------------------------------------


def test_predict_labels_matches_model(cnn_and_data):
    model, x, _ = cnn_and_data
    expected = np.argmax(model(x, training=False).numpy(), axis=1)
    got = predict_labels(model, x, batch_size=7)
    assert got.dtype == np.int64 and got.shape == (len(x),)
    np.testing.assert_array_equal(got, expected)
    assert predict_labels(model, x[:0]).shape == (0,)


# --------------------------------------------------------------------------------------
# DeepFool
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("overshoot", [0.02, 0.0, 0.5])
def test_deepfool_linear_closed_form(overshoot):
    shape, k = (4, 4, 2), 5
    model, wts, bias = linear_model(shape, k, seed=3)
    rng = np.random.default_rng(4)
    x0 = rng.normal(size=(40, *shape)).astype(np.float32)

    x_adv, n_iter = deepfool_perturb(
        model,
        x0,
        overshoot=overshoot,
        num_classes=k,
        clip_min=-1e3,
        clip_max=1e3,
        batch_size=16,
    )
    assert x_adv.shape == x0.shape and x_adv.dtype == np.float32
    np.testing.assert_array_equal(n_iter, 1)  # affine model: one step suffices

    flat = x0.reshape(len(x0), -1).astype(np.float64)
    f = flat @ wts + bias
    pred = f.argmax(axis=1)
    r_star = np.empty(len(x0))
    for i, kk in enumerate(pred):
        others = [j for j in range(k) if j != kk]
        r_star[i] = min(
            abs(f[i, j] - f[i, kk]) / np.linalg.norm(wts[:, j] - wts[:, kk]) for j in others
        )
    dist = np.linalg.norm((x_adv.astype(np.float64) - x0).reshape(len(x0), -1), axis=1)
    expected = (1 + overshoot) * (r_star + DEEPFOOL_STEP_EPS)
    np.testing.assert_allclose(dist, expected, rtol=1e-4, atol=1e-5)
    assert np.all(dist >= r_star * (1 - 1e-5))
    assert np.all(dist <= (1 + overshoot) * r_star + 2 * DEEPFOOL_STEP_EPS + 1e-5)
    new_pred = predict_labels(model, x_adv)
    assert np.all(new_pred != pred)


def test_deepfool_num_classes_restricts_candidates():
    shape, k = (3, 3, 1), 6
    model, wts, bias = linear_model(shape, k, seed=5)
    x0 = np.random.default_rng(6).normal(size=(20, *shape)).astype(np.float32)
    x_adv, n_iter = deepfool_perturb(
        model, x0, overshoot=0.02, num_classes=2, clip_min=-1e3, clip_max=1e3
    )
    f = x0.reshape(len(x0), -1).astype(np.float64) @ wts + bias
    top2 = np.argsort(-f, axis=1)[:, :2]
    r_top2 = np.array(
        [
            abs(f[i, b] - f[i, a]) / np.linalg.norm(wts[:, b] - wts[:, a])
            for i, (a, b) in enumerate(top2)
        ]
    )
    dist = np.linalg.norm((x_adv - x0).reshape(len(x0), -1), axis=1)
    np.testing.assert_allclose(dist, 1.02 * (r_top2 + DEEPFOOL_STEP_EPS), rtol=1e-4)
    np.testing.assert_array_equal(n_iter, 1)


def test_deepfool_flips_trained_cnn(cnn_and_data):
    model, x, y = cnn_and_data
    gen = deepfool(model, x, y, batch_size=32)
    assert isinstance(gen, Generated)
    stats = gen.stats
    assert_json(stats)
    correct = predict_labels(model, x) == y
    assert stats["n_input"] == len(x)
    assert stats["attempted"] == stats["n_clean_correct"] == int(correct.sum())
    assert stats["kept"] == len(gen.x) == len(gen.source_index)
    assert stats["success_rate"] >= 0.95
    assert stats["kept"] >= 0.95 * correct.sum()
    # kept examples: misclassified, in range, from correctly classified sources
    assert np.all(predict_labels(model, gen.x) != y[gen.source_index])
    assert np.all(correct[gen.source_index])
    assert gen.x.min() >= 0.0 and gen.x.max() <= 1.0
    assert len(np.unique(gen.source_index)) == len(gen.source_index)
    assert stats["mean_iter"] >= 1 and stats["mean_l2"] > 0
    l2 = np.linalg.norm((gen.x - x[gen.source_index]).reshape(len(gen.x), -1), axis=1)
    assert stats["mean_l2"] == pytest.approx(float(l2.mean()), rel=1e-5)
    rel = l2 / np.linalg.norm(x[gen.source_index].reshape(len(gen.x), -1), axis=1)
    assert stats["mean_rel_l2"] == pytest.approx(float(rel.mean()), rel=1e-5)


def test_deepfool_perturb_batching_invariant(cnn_and_data):
    model, x, _ = cnn_and_data
    a, na = deepfool_perturb(model, x[:20], batch_size=20)
    b, nb = deepfool_perturb(model, x[:20], batch_size=6)
    np.testing.assert_array_equal(na, nb)
    # float32 gradients at batch 20 vs 6 (kernels per ISA and batch size): pixels in
    # [0, 1] agree to float32 round-off accumulated over the iterations, not exactly.
    np.testing.assert_allclose(a, b, atol=1e-5)


# --------------------------------------------------------------------------------------
# FGSM / BIM
# --------------------------------------------------------------------------------------


def check_linf_attack(model, x, y, gen, eps, clip_min=0.0, clip_max=1.0):
    assert_json(gen.stats)
    assert gen.x.dtype == np.float32 and gen.source_index.dtype == np.int64
    assert gen.stats["kept"] == len(gen.x) == len(gen.source_index) > 0
    src = x[gen.source_index]
    assert np.max(np.abs(gen.x - src)) <= eps + 1e-6
    assert gen.x.min() >= clip_min and gen.x.max() <= clip_max
    assert np.all(predict_labels(model, gen.x) != y[gen.source_index])
    correct = predict_labels(model, x) == y
    assert np.all(correct[gen.source_index])
    assert gen.stats["attempted"] == int(correct.sum())
    assert gen.stats["success_rate"] == pytest.approx(gen.stats["kept"] / correct.sum())
    assert gen.stats["max_linf"] <= eps + 1e-6


def _redo_in_batches_of(batch_size, model, x, y, source_index, attack):
    """``attack`` redone on the named sources, in the batches the attack itself used.

    The attacks run on the correctly classified sources, ``batch_size`` at a time. The
    float32 gradient of one image can change in its last bits with the batch it is in
    (oneDNN picks kernels per ISA and batch size), and ``sign`` turns a component near
    0 into a step of +-eps either way; in the same batches the computation is the same,
    so the redo must give the very images (to float32 rounding of the clipping).
    """
    correct = np.flatnonzero(predict_labels(model, x, batch_size=batch_size) == y)
    redo = np.concatenate(
        [
            attack(tf.constant(x[idx]), tf.constant(y[idx])).numpy()
            for idx in (correct[i : i + batch_size] for i in range(0, len(correct), batch_size))
        ]
    )
    return redo[np.searchsorted(correct, source_index)]


def test_fgsm(cnn_and_data):
    model, x, y = cnn_and_data
    eps = 0.3
    gen = fgsm(model, x, y, eps=eps, batch_size=50)
    check_linf_attack(model, x, y, gen, eps)
    assert gen.stats["eps"] == eps
    # source_index is right: redoing FGSM on the named sources gives the kept images
    redo = _redo_in_batches_of(
        50,
        model,
        x,
        y,
        gen.source_index,
        lambda xb, yb: fast_gradient_method(
            model, xb, eps, np.inf, clip_min=0.0, clip_max=1.0, y=yb
        ),
    )
    np.testing.assert_allclose(gen.x, redo, atol=1e-6)


def test_fgsm_zero_eps_keeps_nothing(cnn_and_data):
    model, x, y = cnn_and_data
    gen = fgsm(model, x, y, eps=0.0)
    assert gen.stats["kept"] == 0 and gen.x.shape == (0, H, W, C)
    assert gen.stats["mean_l2"] is None
    assert_json(gen.stats)


def test_bim(cnn_and_data):
    model, x, y = cnn_and_data
    eps = 0.2
    gen = bim(model, x, y, eps=eps, nb_iter=10, batch_size=50)
    check_linf_attack(model, x, y, gen, eps)
    assert gen.stats["eps_iter"] == pytest.approx(eps / 10)
    redo = _redo_in_batches_of(
        50,
        model,
        x,
        y,
        gen.source_index,
        lambda xb, yb: basic_iterative_method(
            model,
            xb,
            eps,
            eps / 10,
            10,
            np.inf,
            clip_min=0.0,
            clip_max=1.0,
            y=yb,
            sanity_checks=False,
        ),
    )
    np.testing.assert_allclose(gen.x, redo, atol=1e-6)
    # BIM is at least as strong as FGSM at the same eps here
    assert gen.stats["kept"] >= fgsm(model, x, y, eps=eps).stats["kept"]


def test_bim_rand_init_deterministic(cnn_and_data):
    model, x, y = cnn_and_data
    eps = 0.2
    a = bim(model, x[:40], y[:40], eps=eps, nb_iter=5, rand_init=True, seed=3)
    b = bim(model, x[:40], y[:40], eps=eps, nb_iter=5, rand_init=True, seed=3)
    check_linf_attack(model, x[:40], y[:40], a, eps)
    np.testing.assert_array_equal(a.source_index, b.source_index)
    np.testing.assert_array_equal(a.x, b.x)


def test_attacks_skip_misclassified_sources(cnn_and_data):
    model, x, y = cnn_and_data
    y_bad = y.copy()
    y_bad[:10] = (y_bad[:10] + 1) % K  # these 10 are now "misclassified" on clean input
    gen = fgsm(model, x, y_bad, eps=0.3)
    assert not np.any(gen.source_index < 10)
    assert gen.stats["n_clean_correct"] <= len(x) - 10


# --------------------------------------------------------------------------------------
# Patch errors
# --------------------------------------------------------------------------------------


def test_patch_errors_content(cnn_and_data):
    model, x, y = cnn_and_data
    gen = patch_errors(model, x, y, max_tries=6, seed=0)
    stats = gen.stats
    assert_json(stats)
    assert stats["kept"] == len(gen.x) == len(gen.source_index) > 0
    pos = np.asarray(stats["patch_positions"])
    assert pos.shape == (len(gen.x), 2)
    for xi, src, (r, c) in zip(gen.x, gen.source_index, pos, strict=True):
        assert 0 <= r <= H - 7 and 0 <= c <= W - 7
        square = np.zeros((H, W), dtype=bool)
        square[r : r + 7, c : c + 7] = True
        assert np.all(xi[square] == 0.0)  # all channels zeroed inside
        np.testing.assert_array_equal(xi[~square], x[src][~square])  # untouched outside
    assert np.all(predict_labels(model, gen.x) != y[gen.source_index])
    correct = predict_labels(model, x) == y
    assert np.all(correct[gen.source_index])
    assert stats["attempted"] == int(correct.sum())
    # bounded tries and at most one try per (source, position)
    assert stats["tries"] <= 6 * stats["attempted"]
    assert stats["rounds"] <= 6
    pairs = {(int(s), int(r), int(c)) for s, (r, c) in zip(gen.source_index, pos, strict=True)}
    assert len(pairs) == len(gen.x)
    assert np.bincount(gen.source_index).max() <= 6
    assert stats["yield"] == pytest.approx(stats["kept"] / stats["tries"])
    assert stats["tries"] == 6 * stats["attempted"]  # n_examples=None: all rounds run


def test_patch_errors_deterministic(cnn_and_data):
    model, x, y = cnn_and_data
    a = patch_errors(model, x, y, max_tries=3, seed=7)
    b = patch_errors(model, x, y, max_tries=3, seed=7, batch_size=17)
    c = patch_errors(model, x, y, max_tries=3, seed=8)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.source_index, b.source_index)
    assert a.stats == b.stats
    assert a.stats["patch_positions"] != c.stats["patch_positions"]


def test_patch_errors_target_and_limits(cnn_and_data):
    model, x, y = cnn_and_data
    gen = patch_errors(model, x, y, n_examples=5, max_tries=20, seed=1)
    assert gen.stats["kept"] == 5 and gen.stats["target_reached"]
    assert gen.stats["tries"] < 20 * gen.stats["attempted"]
    # the first 5 of an unlimited run with the same seed are the same examples
    full = patch_errors(model, x, y, max_tries=20, seed=1)
    np.testing.assert_array_equal(full.x[:5], gen.x)
    # a target above the budget is not reached; the budget bounds the tries
    big = patch_errors(model, x, y, n_examples=10**6, max_tries=2, seed=1)
    assert not big.stats["target_reached"]
    assert big.stats["tries"] == 2 * big.stats["attempted"]
    # max_per_source=1: distinct sources
    one = patch_errors(model, x, y, max_tries=10, max_per_source=1, seed=1)
    assert len(np.unique(one.source_index)) == len(one.source_index)
    # max_tries is capped at the number of positions (8 x 8 = 64 for 7x7 on 14x14)
    capped = patch_errors(model, x[:3], y[:3], max_tries=1000, seed=0)
    assert capped.stats["max_tries"] == capped.stats["n_positions"] == 64


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise(cnn_and_data):
    model, x, y = cnn_and_data
    x, y = x[:4], y[:4]
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="clip_min"):
        fgsm(model, x, y, eps=0.1, clip_min=1.0, clip_max=1.0)
    with pytest.raises(ValueError, match="labels"):
        fgsm(model, x, y[:3], eps=0.1)
    with pytest.raises(ValueError, match="1-D"):
        bim(model, x, y[:, None], eps=0.1)
    with pytest.raises(ValueError, match="shape"):
        fgsm(model, x[0], y, eps=0.1)
    with pytest.raises(ValueError, match="outside"):
        fgsm(model, x * 255.0, y, eps=0.1)
    with pytest.raises(ValueError, match="eps_iter"):
        bim(model, x, y, eps=0.1, eps_iter=0.2)
    with pytest.raises(ValueError, match="nb_iter"):
        bim(model, x, y, eps=0.1, nb_iter=0)
    with pytest.raises(ValueError, match="overshoot"):
        deepfool(model, x, y, overshoot=-1.0)
    with pytest.raises(ValueError, match="clip_min"):
        deepfool_perturb(model, x, clip_min=0.5, clip_max=0.1)
    with pytest.raises(ValueError, match="num_classes"):
        deepfool(model, x, y, num_classes=1)
    with pytest.raises(ValueError, match="patch_size"):
        patch_errors(model, x, y, patch_size=15)
    with pytest.raises(ValueError, match="max_tries"):
        patch_errors(model, x, y, max_tries=0)
    with pytest.raises(ValueError, match="n_examples"):
        patch_errors(model, x, y, n_examples=0)
    with pytest.raises(ValueError, match="integer"):
        patch_errors(model, x, y + 0.5)
    with pytest.raises(ValueError, match="outputs"):
        deepfool(model, x, y + K)


# --------------------------------------------------------------------------------------
# Carlini-Wagner L2
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_carlini_wagner_l2_linear_known_answer(schedule):
    """On an affine model, CW-L2 finds the closed-form smallest L2 perturbation."""
    from introspection.attacks import carlini_wagner_l2

    shape, k = (4, 4, 3), 4  # colour images: cleverhans 4 alone fails on these
    model, wts, bias = linear_model(shape, k, seed=5)
    rng = np.random.default_rng(6)
    x0 = rng.uniform(0.3, 0.7, size=(24, *shape)).astype(np.float32)  # far from the box
    flat = x0.reshape(len(x0), -1).astype(np.float64)
    f = flat @ wts + bias
    y = f.argmax(axis=1)
    gen = carlini_wagner_l2(
        model, x0, y, binary_search_steps=8, max_iterations=300, learning_rate=0.01,
        lr_schedule=schedule,
    )
    assert gen.stats["attempted"] == 24 and gen.stats["success_rate"] == 1.0
    assert gen.stats["lr_schedule"] == schedule
    src = gen.source_index
    r_star, inside = [], []
    for i in src:
        d = {
            j: abs(f[i, j] - f[i, y[i]]) / np.linalg.norm(wts[:, j] - wts[:, y[i]])
            for j in range(k)
            if j != y[i]
        }
        j = min(d, key=d.get)
        w = wts[:, j] - wts[:, y[i]]
        step = d[j] * w / np.linalg.norm(w)  # the closed-form minimal perturbation
        r_star.append(d[j])
        inside.append(np.abs(step).max() < 0.29)  # reachable inside the [0, 1] box
    r_star, inside = np.array(r_star), np.array(inside)
    dist = np.linalg.norm((gen.x.astype(np.float64) - x0[src]).reshape(len(src), -1), axis=1)
    assert inside.sum() >= 8
    assert np.all(dist >= r_star * (1 - 1e-3))  # never below the true minimum
    np.testing.assert_allclose(dist[inside], r_star[inside], rtol=0.03)
    assert np.all(predict_labels(model, gen.x) != y[src])
    assert gen.x.min() >= 0.0 and gen.x.max() <= 1.0
    assert_json(gen.stats)


def test_carlini_wagner_shim_keeps_the_learning_rate():
    from introspection._cleverhans import ResettableAdam

    opt = ResettableAdam(0.05)
    v = tf.Variable(tf.ones((3,)))
    opt.apply_gradients([(tf.ones((3,)), v)])
    for var in opt.variables():
        var.assign(tf.zeros(var.shape, dtype=var.dtype))
    assert float(opt._opt.learning_rate) == pytest.approx(0.05)
    assert len(opt.variables()) >= 3  # iteration counter and both Adam moments


def test_carlini_wagner_cosine_step_restarts_with_each_bisection_step():
    from introspection._cleverhans import ResettableAdam

    opt = ResettableAdam(0.05, decay_steps=10)
    v = tf.Variable(tf.ones((3,)))
    for _ in range(10):
        opt.apply_gradients([(tf.ones((3,)), v)])
    assert float(opt._opt.learning_rate) == pytest.approx(0.0, abs=1e-6)
    for var in opt.variables():
        var.assign(tf.zeros(var.shape, dtype=var.dtype))
    assert float(opt._opt.learning_rate) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="lr_schedule"):
        from introspection.attacks import carlini_wagner_l2

        carlini_wagner_l2(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]),
                          np.zeros((1, 2), np.float32), np.zeros(1, int), lr_schedule="linear")


def test_bim_early_stop_stops_at_the_first_misclassification(cnn_and_data):
    model, x, y = cnn_and_data
    eps = 0.2
    n = len(x)  # one batch: the redo below then computes the very same steps
    full = bim(model, x, y, eps=eps, nb_iter=10, batch_size=n)
    early = bim(model, x, y, eps=eps, nb_iter=10, early_stop=True, batch_size=n)
    check_linf_attack(model, x, y, early, eps)
    assert early.stats["early_stop"] and not full.stats["early_stop"]
    # an image stays misclassified once it is: at least as many kept, none moved further
    assert early.stats["kept"] >= full.stats["kept"]
    assert early.stats["mean_linf"] <= full.stats["mean_linf"] + 1e-6
    # early-stopped images sit just past the boundary: lower top logits than the full run
    assert model(early.x).numpy().max(1).mean() < model(full.x).numpy().max(1).mean()
    # redone by hand: FGSM steps, each image frozen after the step that flips it
    correct = np.flatnonzero(predict_labels(model, x, batch_size=n) == y)
    xs, ys = tf.constant(x[correct]), tf.constant(y[correct])
    adv, active = xs, np.ones(len(correct), bool)
    for _ in range(10):
        step = fast_gradient_method(model, adv, eps / 10, np.inf, clip_min=0.0, clip_max=1.0, y=ys)
        step = tf.clip_by_value(xs + tf.clip_by_value(step - xs, -eps, eps), 0.0, 1.0)
        adv = tf.where(active[:, None, None, None], step, adv)
        active &= np.argmax(model(adv).numpy(), axis=1) == y[correct]
    redo = adv.numpy()[np.searchsorted(correct, early.source_index)]
    np.testing.assert_allclose(early.x, redo, atol=1e-6)


def test_loss_on_probabilities_is_the_softmax_taken_as_logits(cnn_and_data):
    model, x, y = cnn_and_data
    eps = 0.3
    gen = fgsm(model, x, y, eps=eps, loss_on="probabilities", batch_size=50)
    assert gen.stats["loss_on"] == "probabilities"
    redo = _redo_in_batches_of(
        50,
        model,
        x,
        y,
        gen.source_index,
        lambda xb, yb: fast_gradient_method(
            lambda v: tf.nn.softmax(model(v)), xb, eps, np.inf, clip_min=0.0, clip_max=1.0, y=yb
        ),
    )
    np.testing.assert_allclose(gen.x, redo, atol=1e-6)
    with pytest.raises(ValueError, match="loss_on"):
        bim(model, x, y, eps=eps, loss_on="softmax")


def test_patch_errors_fill_value(cnn_and_data):
    model, x, y = cnn_and_data
    gen = patch_errors(model, x, y, max_tries=6, fill=[0.25, 0.5, 0.75][:C], seed=0)
    for xi, (r, c) in zip(gen.x, gen.stats["patch_positions"], strict=True):
        patch = xi[r : r + 7, c : c + 7]
        np.testing.assert_array_equal(patch, np.broadcast_to([0.25, 0.5, 0.75][:C], patch.shape))
    with pytest.raises(ValueError, match="fill"):
        patch_errors(model, x, y, fill=[0.1] * (C + 1))
