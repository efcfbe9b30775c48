"""Tests of the detectors beyond the paper: Max Logit, Energy, Mahalanobis, ODIN.

Each is checked against a direct NumPy (or closed-form) computation.
"""

import numpy as np
import pytest

from introspection.detectors import (
    ODIN,
    EnergyScore,
    Mahalanobis,
    MahalanobisPreprocessed,
    MaxLogit,
    SoftmaxBaseline,
    softmax,
)

# ---------------------------------------------------------------------------
# Max Logit and Energy
# ---------------------------------------------------------------------------


def _lse(a):
    """Log-sum-exp along the last axis, the textbook stable way."""
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]


def test_max_logit_matches_numpy():
    logits = np.random.default_rng(0).normal(0, 5, (20, 7)).astype(np.float32)
    det = MaxLogit().fit(logits)
    got = det.score(logits)
    assert got.dtype == np.float64 and got.shape == (20,)
    np.testing.assert_array_equal(got, logits.astype(np.float64).max(1))
    assert MaxLogit.name == "max_logit"
    np.testing.assert_array_equal(MaxLogit().score([[1e30, -1e30]]), [1e30])
    with pytest.raises(ValueError, match="2-D"):
        MaxLogit().score(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        MaxLogit().score([[0.0, np.inf]])


@pytest.mark.parametrize("T", [1.0, 2.5, 0.3])
def test_energy_matches_numpy(T):
    logits = np.random.default_rng(1).normal(0, 4, (30, 5))
    got = EnergyScore(temperature=T).fit(logits).score(logits)
    expected = T * np.log(np.exp(logits / T).sum(1))  # small logits: the naive formula is fine
    assert got.dtype == np.float64 and got.shape == (30,)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the negative energy lies in [max logit, max logit + T log C]
    top = logits.max(1)
    assert np.all(got >= top - 1e-12) and np.all(got <= top + T * np.log(5) + 1e-12)


def test_energy_large_logits_do_not_overflow():
    logits = np.array([[1000.0, 999.0, 0.0], [-1000.0, -1000.0, 5e3]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = EnergyScore().score(logits)
        got_t = EnergyScore(temperature=0.5).score(logits)
    np.testing.assert_allclose(got, [1000.0 + np.log1p(np.exp(-1.0)), 5e3], rtol=1e-15)
    np.testing.assert_allclose(got_t, 0.5 * _lse(logits.astype(np.float64) / 0.5), rtol=1e-15)
    np.testing.assert_allclose(got_t[0], 1000.0 + 0.5 * np.log1p(np.exp(-2.0)), rtol=1e-15)


def test_energy_small_temperature_tends_to_max_logit():
    logits = np.random.default_rng(2).normal(0, 3, (25, 4))
    gaps = []
    for T in (1.0, 1e-1, 1e-3):
        gap = EnergyScore(temperature=T).score(logits) - logits.max(1)
        assert np.all(gap >= -1e-12) and np.all(gap <= T * np.log(4) + 1e-12)
        gaps.append(gap.max())
    assert gaps[0] > gaps[1] > gaps[2]
    np.testing.assert_allclose(
        EnergyScore(temperature=1e-6).score(logits), MaxLogit().score(logits), atol=1e-5
    )


def test_energy_errors():
    for T in (0.0, -1.0, np.nan, np.inf, "1", True):
        with pytest.raises(ValueError, match="temperature"):
            EnergyScore(temperature=T).score([[0.0, 1.0]])
        with pytest.raises(ValueError, match="temperature"):
            EnergyScore(temperature=T).fit(None)
    assert EnergyScore.name == "energy"
    assert "temperature=2.0" in repr(EnergyScore(2.0))


# ---------------------------------------------------------------------------
# Mahalanobis (features)
# ---------------------------------------------------------------------------


def _brute_mahalanobis(X_train, y_train, X, inverse=np.linalg.inv):
    classes = np.unique(y_train)
    means = np.array([X_train[y_train == c].mean(0) for c in classes])
    centred = np.concatenate([X_train[y_train == c] - means[j] for j, c in enumerate(classes)])
    cov = centred.T @ centred / len(X_train)
    prec = inverse(cov)
    d = np.empty((len(X), len(classes)))
    for i, f in enumerate(X):
        for j in range(len(classes)):
            diff = f - means[j]
            d[i, j] = diff @ prec @ diff
    return means, cov, d, -d.min(1)


@pytest.fixture
def gaussians():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))  # a non-diagonal shared covariance
    sizes = [50, 31, 17]
    X = np.concatenate([rng.normal(size=(n, 4)) @ A + 4 * c for c, n in enumerate(sizes)])
    y = np.repeat(np.arange(3), sizes)
    X_test = rng.normal(4, 5, size=(40, 4))
    return X, y, X_test


def test_mahalanobis_matches_brute_force(gaussians):
    X, y, X_test = gaussians
    det = Mahalanobis().fit(X, y)
    means, cov, d, expected = _brute_mahalanobis(X, y, X_test)
    np.testing.assert_allclose(det.means_, means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(det.means_[1], X[y == 1].mean(0), rtol=1e-12)
    np.testing.assert_allclose(det.covariance_, cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(det.precision_, np.linalg.inv(cov), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(det.class_distances(X_test), d, rtol=1e-8, atol=1e-8)
    got = det.score(X_test)
    assert got.dtype == np.float64 and got.shape == (40,) and np.all(got <= 0)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)
    # the tied covariance is the within-class (pooled) one, not the total covariance
    assert not np.allclose(det.covariance_, np.cov(X.T, bias=True))


def test_mahalanobis_near_mean_scores_higher(gaussians):
    X, y, _ = gaussians
    det = Mahalanobis().fit(X, y)
    near = det.means_ + 0.01
    far = det.means_ + 30.0
    s_near, s_far = det.score(near), det.score(far)
    assert np.all(s_near > s_far)
    np.testing.assert_allclose(det.score(det.means_), 0.0, atol=1e-10)


def test_mahalanobis_non_contiguous_labels_and_singular_covariance(gaussians):
    X, y, X_test = gaussians
    labels = np.array([5, 9, 42])
    # a duplicated column and a constant one: the covariance is singular (rank 4 of 6)
    X6 = np.c_[X, X[:, 0], np.ones(len(X))]
    X6_test = np.c_[X_test, X_test[:, 0], np.ones(len(X_test))]
    det = Mahalanobis().fit(X6, labels[y])
    np.testing.assert_array_equal(det.classes_, labels)
    _, _, _, expected = _brute_mahalanobis(X6, y, X6_test, inverse=np.linalg.pinv)
    np.testing.assert_allclose(det.score(X6_test), expected, rtol=1e-7, atol=1e-7)
    assert det.whitening_.shape == (6, 4)
    # on this subspace the score is the 4-feature score
    np.testing.assert_allclose(
        det.score(X6_test), Mahalanobis().fit(X, y).score(X_test), rtol=1e-7, atol=1e-7
    )


def test_mahalanobis_errors(gaussians):
    X, y, X_test = gaussians
    with pytest.raises(ValueError, match="not fitted"):
        Mahalanobis().score(X_test)
    det = Mahalanobis().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        det.score(X_test[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        det.score(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="labels but X"):
        Mahalanobis().fit(X, y[:5])
    with pytest.raises(ValueError, match="covariance is zero"):
        Mahalanobis().fit([[0.0, 1.0], [0.0, 1.0], [2.0, 2.0]], [0, 0, 1])
    assert Mahalanobis.name == "mahalanobis"


# ---------------------------------------------------------------------------
# Tiny Keras models
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def relu_model(keras):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu", name="features")(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(48, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=48)
    return x, y


def _linear_model(keras, n_features=None, seed=0):
    """Flatten + Dense layers with set weights; returns the model and the float64 weights."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input(shape=(6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    weights = []
    if n_features is not None:
        layer = keras.layers.Dense(n_features, name="features")
        x = layer(x)
        A, a = rng.normal(0, 0.3, (36, n_features)), rng.normal(0, 0.1, n_features)
        layer.set_weights([A.astype(np.float32), a.astype(np.float32)])
        weights += [A.astype(np.float32).astype(np.float64), a.astype(np.float32).astype(float)]
    head = keras.layers.Dense(3, name="logits")
    out = head(x)
    W, b = rng.normal(0, 0.5, (x.shape[-1], 3)), rng.normal(0, 0.1, 3)
    head.set_weights([W.astype(np.float32), b.astype(np.float32)])
    weights += [W.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)]
    return keras.Model(inputs, out), weights


def _logits_np(model, x):
    return np.asarray(model(x, training=False), dtype=np.float64)


# ---------------------------------------------------------------------------
# Mahalanobis with input pre-processing
# ---------------------------------------------------------------------------


def test_mahalanobis_preprocessed_epsilon_zero_is_mahalanobis(relu_model, images):
    from introspection.models import predict_features

    x, y = images
    det = MahalanobisPreprocessed(relu_model, epsilon=0.0, batch_size=20).fit(x, y)
    feats, _ = predict_features(relu_model, x)
    ref = Mahalanobis().fit(feats, y)
    # Features of the float32 model in batches of 20 vs one batch of 48: oneDNN's
    # kernels, chosen per ISA and batch size, may round differently, so float32
    # tolerances (relative 1e-5, absolute 1e-5 of the values' magnitude).
    scale = np.abs(ref.means_).max()
    np.testing.assert_allclose(det.means_, ref.means_, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_array_equal(det.classes_, [0, 1, 2])
    np.testing.assert_array_equal(det.perturb(x), x)
    expected = ref.score(feats)
    np.testing.assert_allclose(
        det.score(x), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )
    assert det.score(x).dtype == np.float64


def test_mahalanobis_preprocessed_step_is_signed_epsilon(relu_model, images):
    x, y = images
    eps = 0.01
    det = MahalanobisPreprocessed(relu_model, epsilon=eps, clip_min=None, clip_max=None)
    det.fit(x, y)
    grad = det.input_gradient(x)
    x_t = det.perturb(x)
    delta = x_t.astype(np.float64) - x
    np.testing.assert_allclose(np.abs(delta), eps, atol=1e-6)
    np.testing.assert_array_equal(np.sign(delta), -np.where(grad >= 0, 1.0, -1.0))
    # the step moves towards the closest class: the score does not decrease (to first order)
    s0 = det.mahalanobis_.score(det.features(x))
    s1 = det.score(x)
    np.testing.assert_allclose(s1, det.mahalanobis_.score(det.features(x_t)))
    assert np.mean(s1 >= s0) >= 0.9 and np.mean(s1) > np.mean(s0)
    # with clipping: within [0, 1] and equal to the clipped step
    det_c = MahalanobisPreprocessed(relu_model, epsilon=eps).fit(x, y)
    x_c = det_c.perturb(x)
    assert x_c.min() >= 0.0 and x_c.max() <= 1.0
    np.testing.assert_allclose(x_c, np.clip(x_t, 0.0, 1.0), atol=1e-7)
    # batching does not change anything, beyond float32 round-off (kernels per batch size)
    det_b = MahalanobisPreprocessed(relu_model, epsilon=eps, batch_size=5).fit(x, y)
    np.testing.assert_allclose(det_b.score(x), det_c.score(x), rtol=1e-5, atol=1e-6)


def test_mahalanobis_preprocessed_gradient_closed_form(keras, images):
    """Linear features f = x A + a: grad D(x) = 2 A P (f - mu_c*) for the closest class."""
    x, y = images
    model, (A, a, _, _) = _linear_model(keras, n_features=4)
    det = MahalanobisPreprocessed(model, epsilon=0.002).fit(x, y)
    flat = x.reshape(len(x), -1).astype(np.float64)
    f = flat @ A + a
    P, mu = det.precision_, det.means_
    d = np.stack([np.einsum("ij,jk,ik->i", f - m, P, f - m) for m in mu], axis=1)
    closest = d.argmin(1)
    expected = 2 * ((f - mu[closest]) @ P) @ A.T
    got = det.input_gradient(x).reshape(len(x), -1)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale)

    # and the closed form agrees with central finite differences of D in float64
    def D(v):
        fv = v @ A + a
        return min((fv - m) @ P @ (fv - m) for m in mu)

    h = 1e-6
    for i in range(3):
        for j in (0, 7, 35):
            e = np.zeros(36)
            e[j] = h
            fd = (D(flat[i] + e) - D(flat[i] - e)) / (2 * h)
            np.testing.assert_allclose(fd, expected[i, j], rtol=1e-5, atol=1e-7 * scale)
    # the perturbation is -epsilon * sign(gradient)
    sign = np.where(got >= 0, 1.0, -1.0)
    x_t = det.perturb(x).reshape(len(x), -1)
    np.testing.assert_allclose(x_t, np.clip(flat - 0.002 * sign, 0, 1), atol=1e-7)


def test_mahalanobis_preprocessed_errors(relu_model, images):
    x, y = images
    with pytest.raises(ValueError, match="not fitted"):
        MahalanobisPreprocessed(relu_model).score(x)
    with pytest.raises(ValueError, match="no layer named"):
        MahalanobisPreprocessed(relu_model, layer="penultimate").fit(x, y)
    det = MahalanobisPreprocessed(relu_model).fit(x, y)
    with pytest.raises(ValueError, match="outside"):
        det.score(x * 2.0)
    with pytest.raises(ValueError, match="epsilon"):
        MahalanobisPreprocessed(relu_model, epsilon=-0.1).fit(x, y)
    with pytest.raises(ValueError, match="clip_min"):
        MahalanobisPreprocessed(relu_model, clip_min=1.0, clip_max=0.0).fit(x, y)
    with pytest.raises(ValueError, match="batch_size"):
        MahalanobisPreprocessed(relu_model, batch_size=0).fit(x, y)
    assert MahalanobisPreprocessed.name == "mahalanobis_preprocessed"


# ---------------------------------------------------------------------------
# ODIN
# ---------------------------------------------------------------------------


def test_odin_without_perturbation_is_softmax_baseline(relu_model, images):
    from introspection.models import predict_logits

    x, _ = images
    logits = predict_logits(relu_model, x)
    det = ODIN(relu_model, temperature=1.0, epsilon=0.0)
    assert det.fit(x) is det
    got = det.score(x)
    assert got.dtype == np.float64 and got.shape == (48,)
    # Both run the model on the same single batch of 48 (default batch sizes 256): the
    # same float32 logits, then float64 arithmetic, hence the float64 tolerance.
    np.testing.assert_allclose(got, SoftmaxBaseline().score(logits), rtol=1e-12)
    np.testing.assert_array_equal(det.perturb(x), x)


@pytest.mark.parametrize("T", [10.0, 1000.0])
def test_odin_temperature_matches_numpy(relu_model, images, T):
    x, _ = images
    logits = _logits_np(relu_model, x)
    e = np.exp(logits / T)
    expected = (e / e.sum(1, keepdims=True)).max(1)
    got = ODIN(relu_model, temperature=T, epsilon=0.0, batch_size=7).score(x)
    # The logits come from a float32 model run at two batch sizes (7 and 48): oneDNN's
    # kernels, chosen per ISA and batch, may sum in another order, so they agree to
    # float32 round-off only (|dz| <= ~1e-5 |z|, generous). The tempered softmax then
    # moves by |dp / p| <= 2 max|dz| / T: that, not float64, bounds the difference.
    rtol = 2 * 1e-5 * np.abs(logits).max() / T
    np.testing.assert_allclose(got, expected, rtol=rtol)


def test_odin_step_is_signed_epsilon_and_increases_tempered_softmax(relu_model, images):
    x, _ = images
    eps, T = 0.005, 1000.0
    det = ODIN(relu_model, temperature=T, epsilon=eps, clip_min=None, clip_max=None)
    x_t = det.perturb(x)
    delta = x_t.astype(np.float64) - x
    np.testing.assert_allclose(np.abs(delta).max(axis=(1, 2, 3)), eps, atol=1e-6)
    np.testing.assert_allclose(np.abs(delta), eps, atol=1e-6)  # every pixel moves by eps
    s0 = softmax(_logits_np(relu_model, x) / T).max(1)
    s1 = det.score(x)
    # The same batch of 48 perturbed inputs through the same model: the same float32
    # logits, so a float64 tolerance.
    np.testing.assert_allclose(s1, softmax(_logits_np(relu_model, x_t) / T).max(1), rtol=1e-12)
    assert np.mean(s1 >= s0) >= 0.9 and np.mean(s1) > np.mean(s0)
    # with clipping (default [0, 1])
    x_c = ODIN(relu_model, temperature=T, epsilon=eps).perturb(x)
    assert x_c.min() >= 0.0 and x_c.max() <= 1.0
    np.testing.assert_allclose(x_c, np.clip(x_t, 0.0, 1.0), atol=1e-7)


@pytest.mark.parametrize("T", [1.0, 10.0, 1000.0])
def test_odin_gradient_matches_closed_form_on_linear_model(keras, images, T):
    """logits = x W + b: grad_x(-log S_yhat(x; T)) = -(W[:, yhat] - W p) / T, p = S(x; T)."""
    x, _ = images
    model, (W, b) = _linear_model(keras)
    flat = x.reshape(len(x), -1).astype(np.float64)
    z = flat @ W + b
    y_hat = z.argmax(1)
    p = softmax(z / T)
    expected = -(W[:, y_hat].T - p @ W.T) / T
    det = ODIN(model, temperature=T, epsilon=0.001)
    got = det.input_gradient(x).reshape(len(x), -1)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale)

    def loss(v, k):
        zv = (v @ W + b) / T
        return -(zv[k] - _lse(zv))

    h = 1e-5
    for i in range(3):
        for j in (0, 11, 35):
            e = np.zeros(36)
            e[j] = h
            fd = (loss(flat[i] + e, y_hat[i]) - loss(flat[i] - e, y_hat[i])) / (2 * h)
            np.testing.assert_allclose(fd, expected[i, j], rtol=1e-5, atol=1e-7 * scale)
    # the perturbation steps against the loss gradient: x - eps * sign(expected)
    x_t = det.perturb(x).reshape(len(x), -1)
    agree = np.abs(expected) > 1e-3 * scale  # float32 may flip the sign of ~0 components
    np.testing.assert_allclose(
        x_t[agree], np.clip(flat - 0.001 * np.sign(expected), 0, 1)[agree], atol=1e-7
    )
    # and the tempered probability of the prediction does not decrease
    p_t = softmax((x_t.astype(np.float64) @ W + b) / T)[np.arange(len(x)), y_hat]
    assert np.all(p_t >= p[np.arange(len(x)), y_hat] - 1e-12)


def test_odin_errors(relu_model, images):
    x, _ = images
    for T in (0.0, -5.0, np.nan):
        with pytest.raises(ValueError, match="temperature"):
            ODIN(relu_model, temperature=T).score(x)
    for eps in (-0.001, np.inf, None):
        with pytest.raises(ValueError, match="epsilon"):
            ODIN(relu_model, epsilon=eps).fit()
    with pytest.raises(ValueError, match="clip_min"):
        ODIN(relu_model, clip_min=0.5, clip_max=0.5).score(x)
    with pytest.raises(ValueError, match="batch_size"):
        ODIN(relu_model, batch_size=1.5).score(x)
    with pytest.raises(ValueError, match="outside"):
        ODIN(relu_model).score(x - 0.5)
    with pytest.raises(ValueError, match="batch of inputs"):
        ODIN(relu_model).score(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        ODIN(relu_model, clip_min=None).score(np.full((2, 6, 6, 1), np.nan))
    # unbounded clipping accepts any pixel scale
    assert ODIN(relu_model, clip_min=None, clip_max=None).score(x - 0.5).shape == (48,)
    assert ODIN.name == "odin"
    assert "temperature=1000.0" in repr(ODIN(relu_model))
