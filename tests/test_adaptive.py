"""Adaptive attacks on classifier + detector, on a tiny CNN trained here."""

import keras
import numpy as np
import pytest

from introspection import adaptive, detectors, models

from .test_attacks import C, H, K, W, make_squares


@pytest.fixture(scope="module")
def system():
    keras.utils.set_random_seed(0)
    inp = keras.Input((H, W, C))
    h = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu", name="features")(h)
    model = keras.Model(inp, keras.layers.Dense(K)(h))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x_tr, y_tr = make_squares(3000, seed=1)
    model.fit(x_tr, y_tr, epochs=3, batch_size=64, verbose=0)
    x, y = make_squares(200, seed=2)
    fm = models.feature_model(model, "features")
    _, z = fm(x, training=False)
    z = np.asarray(z)
    keep = z.argmax(1) == y
    assert keep.mean() > 0.9
    x, y, z = x[keep], y[keep], z[keep]
    soft = detectors.SoftmaxBaseline()
    tau = adaptive.threshold_at_tpr(soft.score(z))
    return fm, x, y, z, tau


def test_threshold_accepts_the_asked_fraction():
    s = np.random.default_rng(0).normal(size=1000)
    tau = adaptive.threshold_at_tpr(s, 0.95)
    assert 0.95 <= np.mean(s >= tau) <= 0.951
    with pytest.raises(ValueError):
        adaptive.threshold_at_tpr([], 0.95)
    with pytest.raises(ValueError):
        adaptive.threshold_at_tpr([1.0], 1.5)


def test_differentiable_scores_match_the_detectors():
    import tensorflow as tf

    z = np.random.default_rng(1).normal(scale=4, size=(50, 10)).astype(np.float32)
    net = detectors.IntrospectionNet(epochs=1, seed=0).fit(z, (z.argmax(1) % 2 == 0).astype(int))
    pairs = {
        "softmax_baseline": detectors.SoftmaxBaseline(),
        "max_logit": detectors.MaxLogit(),
        "energy": detectors.EnergyScore(),
        "introspection_net": net,
    }
    pairs["energy, T = 2"] = detectors.EnergyScore(temperature=2.0)
    for det in pairs.values():
        # TensorFlow float32 vs the detectors' NumPy: float32 tolerances.
        f = det.score_tensor(tf.constant(z)).numpy()
        np.testing.assert_allclose(f, det.score(z), rtol=1e-4, atol=1e-5)
    with pytest.raises(NotImplementedError):
        detectors.TrustScore().score_tensor(tf.constant(z))


def test_spsa_estimates_a_linear_gradient():
    w = np.random.default_rng(2).normal(size=(3, 4, 4, 1)).astype(np.float32)
    x = np.zeros((3, 4, 4, 1), np.float32)

    def loss(v):
        return (v * w).reshape(3, -1).sum(1)

    g = adaptive.spsa_gradient(loss, x, samples=400, delta=0.01, rng=np.random.default_rng(3))
    cos = (g * w).reshape(3, -1).sum(1) / (
        np.linalg.norm(g.reshape(3, -1), axis=1) * np.linalg.norm(w.reshape(3, -1), axis=1)
    )
    assert np.all(cos > 0.95)


def test_joint_pgd_evades_more_with_eps_and_stays_in_the_ball(system):
    fm, x, y, z, tau = system
    soft = detectors.SoftmaxBaseline()
    score = detectors.SoftmaxBaseline().score_tensor

    def accept(f, logits):
        return soft.score(logits) >= tau

    rates = []
    for eps in (0.1, 0.3, 1.0):
        x_adv, ok = adaptive.joint_pgd(
            fm,
            x,
            y,
            score=score,
            tau=tau,
            scale=0.001,
            accept=accept,
            eps=eps,
            steps=50,
            lam=1.0,
            kappa=10.0,
        )
        assert np.abs(x_adv - x).max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        np.testing.assert_array_equal(ok, adaptive.evades(fm, x_adv, y, accept))
        rates.append(ok.mean())
    assert rates[0] <= rates[1] <= rates[2] and rates[2] > 0.95 and rates[0] < 0.5


def test_detector_term_makes_the_attack_adaptive(system):
    """Plain PGD stops at the boundary, where the detector rejects; the joint loss does not."""
    fm, x, y, z, tau = system
    soft = detectors.SoftmaxBaseline()
    score = detectors.SoftmaxBaseline().score_tensor

    def accept(f, logits):
        return soft.score(logits) >= tau

    kw = dict(score=score, tau=tau, scale=0.001, accept=accept, eps=1.0, steps=50)
    _, plain = adaptive.joint_pgd(fm, x, y, lam=0.0, **kw)
    _, joint = adaptive.joint_pgd(fm, x, y, lam=1.0, **kw)
    assert plain.mean() < 0.2 and joint.mean() > 0.9


def test_spsa_attack_runs_and_does_not_beat_exact_gradients(system):
    fm, x, y, z, tau = system
    soft = detectors.SoftmaxBaseline()
    score = detectors.SoftmaxBaseline().score_tensor

    def accept(f, logits):
        return soft.score(logits) >= tau

    kw = dict(score=score, tau=tau, scale=0.001, accept=accept, eps=1.0, steps=15, kappa=10.0)
    _, exact = adaptive.joint_pgd(fm, x[:40], y[:40], **kw)
    _, spsa = adaptive.joint_pgd(fm, x[:40], y[:40], gradient="spsa", spsa_samples=16, **kw)
    # Exact gradients break most images here; the gradient-free attack cannot do
    # better than them (it would, were the gradients obfuscated), but does something.
    assert exact.mean() > 0.5 and 0 < spsa.mean() <= exact.mean() + 0.1


def test_representation_matching_moves_logits_to_the_target(system):
    fm, x, y, z, tau = system
    soft = detectors.SoftmaxBaseline()
    idx = adaptive.pick_targets(z, y, y, soft.score(z) >= tau, seed=0)
    assert (y[idx] != y).all() and (soft.score(z[idx]) >= tau).all()
    zz = z.copy()
    zz[np.arange(len(z)), y] = -np.inf
    assert (y[idx] == zz.argmax(1)).mean() > 0.8  # mostly the runner-up class
    targets = x[idx]

    def accept(f, logits):
        return soft.score(logits) >= tau

    x_adv, ok = adaptive.representation_matching(
        fm, x, y, targets, layer="logits", accept=accept, eps=0.5, steps=30
    )
    assert np.abs(x_adv - x).max() <= 0.5 + 1e-6 and ok.mean() > 0.5
    with pytest.raises(ValueError):
        adaptive.representation_matching(fm, x, y, targets, layer="pixels", accept=accept, eps=0.1)
