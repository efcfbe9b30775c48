import subprocess
import sys

import numpy as np
import pytest

from introspection.detectors import Detector, SoftmaxBaseline, TrustScore, softmax

# ---------------------------------------------------------------------------
# Brute-force Trust Score (pure NumPy, all pairwise distances)
# ---------------------------------------------------------------------------


def _pairwise(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _brute_kept(Xc, k, alpha):
    """Indices kept by google/TrustScore's filter_by_density, written out by brute force.

    ``eps = np.percentile(knn_radii, (1 - alpha) * 100); keep knn_radii <= eps``.
    """
    n = len(Xc)
    radii = np.sort(_pairwise(Xc, Xc), axis=1)[:, min(k, n) - 1]  # the point itself is 1st
    return np.flatnonzero(radii <= np.percentile(radii, (1 - alpha) * 100))


def _brute_trust_score(X_train, y_train, X, y_pred, k, alpha, min_dist=1e-12, score_k=1):
    classes = np.unique(y_train)
    d = np.empty((len(X), len(classes)))
    for j, c in enumerate(classes):
        Xc = X_train[y_train == c]
        Xc = Xc[_brute_kept(Xc, k, alpha)]
        d[:, j] = np.sort(_pairwise(X, Xc), axis=1)[:, score_k - 1]
    out = np.empty(len(X))
    for i, p in enumerate(y_pred):
        j = int(np.flatnonzero(classes == p)[0])
        other = min(d[i, jj] for jj in range(len(classes)) if jj != j)
        out[i] = other / (d[i, j] + min_dist)
    return out


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    sizes = [40, 23, 11]
    X = np.concatenate([rng.normal(3 * c, 1.5, size=(n, 4)) for c, n in enumerate(sizes)])
    y = np.repeat(np.arange(3), sizes)
    X_test = rng.normal(3, 3, size=(60, 4))
    y_pred = rng.integers(0, 3, size=60)
    return X, y, X_test, y_pred


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.25, 0.5])
@pytest.mark.parametrize("score_k", [1, 2])
def test_trust_score_matches_brute_force(blobs, alpha, score_k):
    X, y, X_test, y_pred = blobs
    ts = TrustScore(k=5, alpha=alpha, score_k=score_k).fit(X, y)
    expected = _brute_trust_score(X, y, X_test, y_pred, k=5, alpha=alpha, score_k=score_k)
    got = ts.score(X_test, y_pred)
    assert got.dtype == np.float64 and got.shape == (60,)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    for j, c in enumerate(ts.classes_):
        Xc_idx = np.flatnonzero(y == c)
        np.testing.assert_array_equal(ts.kept_indices_[j], Xc_idx[_brute_kept(X[Xc_idx], 5, alpha)])


def test_trust_score_k_larger_than_class_is_capped(blobs):
    X, y, X_test, y_pred = blobs  # the smallest class has 11 points
    ts = TrustScore(k=50, alpha=0.2).fit(X, y)
    expected = _brute_trust_score(X, y, X_test, y_pred, k=50, alpha=0.2)
    np.testing.assert_allclose(ts.score(X_test, y_pred), expected, rtol=1e-9, atol=1e-9)


def test_alpha_filtering_keeps_the_reference_percentile(blobs):
    X, y, _, _ = blobs  # class sizes 40, 23, 11
    ts = TrustScore(k=5, alpha=0.1).fit(X, y)
    # Distinct radii: floor((1 - alpha) * (n - 1)) + 1 kept, the percentile's position
    # 0.9 * 39 = 35.1 -> 36, 0.9 * 22 = 19.8 -> 20, 0.9 * 10 = 9 -> 10
    np.testing.assert_array_equal(ts.n_samples_per_class_, [40, 23, 11])
    np.testing.assert_array_equal(ts.n_kept_per_class_, [36, 20, 10])
    ts = TrustScore(k=5, alpha=0.05).fit(X, y)
    # 0.95 * 39 = 37.05 -> 38, 0.95 * 22 = 20.9 -> 21, 0.95 * 10 = 9.5 -> 10
    np.testing.assert_array_equal(ts.n_kept_per_class_, [38, 21, 10])


@pytest.mark.parametrize(
    ("n", "alpha", "kept"),
    [
        (10, 0.3, 7),  # position 0.7 * 9 = 6.3
        (100, 0.29, 71),  # position 0.71 * 99 = 70.29
        (10, 0.99, (2, 1)),  # at least one kept; two points of class 0 tie at the cut
        (7, 0.0, 7),
    ],
)
def test_alpha_rounding_is_robust_to_float_error(n, alpha, kept):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2 * n, 3))
    y = np.repeat([0, 1], n)
    ts = TrustScore(k=3, alpha=alpha).fit(X, y)
    np.testing.assert_array_equal(ts.n_kept_per_class_, np.broadcast_to(kept, 2))


def test_filtering_drops_the_low_density_outlier():
    rng = np.random.default_rng(2)
    X0 = np.r_[rng.normal(0, 0.1, size=(19, 2)), [[50.0, 50.0]]]
    X1 = rng.normal(5, 0.1, size=(20, 2))
    X = np.r_[X0, X1]
    y = np.repeat([0, 1], 20)
    ts = TrustScore(k=3, alpha=0.05).fit(X, y)
    assert 19 not in ts.kept_indices_[0]
    np.testing.assert_array_equal(ts.n_kept_per_class_, [19, 19])


def test_filtering_none_keeps_everything(blobs):
    X, y, X_test, y_pred = blobs
    ts = TrustScore(filtering="none").fit(X, y)
    np.testing.assert_array_equal(ts.n_kept_per_class_, [40, 23, 11])
    np.testing.assert_allclose(
        ts.score(X_test, y_pred),
        _brute_trust_score(X, y, X_test, y_pred, k=10, alpha=0.0),
        rtol=1e-9,
        atol=1e-9,
    )


def test_trust_score_orders_sensible_predictions():
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(0, 1, size=(50, 2)), rng.normal(6, 1, size=(50, 2))]
    y = np.repeat([0, 1], 50)
    ts = TrustScore().fit(X, y)
    s = ts.score([[0.0, 0.0], [0.0, 0.0]], y_pred=[0, 1])
    assert s[0] > 1.0 > s[1]


def test_trust_score_non_contiguous_labels_and_threads(blobs):
    X, y, X_test, y_pred = blobs
    labels = np.array([3, 7, 12])
    ts1 = TrustScore(k=4, alpha=0.1).fit(X, labels[y])
    ts2 = TrustScore(k=4, alpha=0.1, n_jobs=2).fit(X, labels[y])
    np.testing.assert_array_equal(ts1.classes_, labels)
    s1 = ts1.score(X_test, labels[y_pred])
    np.testing.assert_allclose(s1, ts2.score(X_test, labels[y_pred]))
    np.testing.assert_allclose(
        s1, _brute_trust_score(X, y, X_test, y_pred, k=4, alpha=0.1), rtol=1e-9, atol=1e-9
    )
    assert ts1.class_distances(X_test).shape == (60, 3)


def test_trust_score_exact_match_uses_min_dist():
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1])
    ts = TrustScore(k=2, min_dist=1e-3).fit(X, y)
    # the query equals a training point of the predicted class: 10 / (0 + 1e-3)
    np.testing.assert_allclose(ts.score([[0.0]], [0]), [10.0 / 1e-3])


def test_trust_score_errors(blobs):
    X, y, X_test, y_pred = blobs
    ts = TrustScore().fit(X, y)
    with pytest.raises(ValueError, match="y_pred"):
        ts.score(X_test)
    with pytest.raises(ValueError, match="no training points"):
        ts.score(X_test, np.full(60, 5))
    with pytest.raises(ValueError, match="features"):
        ts.score(X_test[:, :2], y_pred)
    with pytest.raises(ValueError, match="60 rows|labels but X"):
        ts.score(X_test, y_pred[:10])
    with pytest.raises(ValueError, match="NaN"):
        ts.score(np.full((2, 4), np.nan), [0, 1])
    with pytest.raises(ValueError, match="not fitted"):
        TrustScore().score(X_test, y_pred)
    for alpha in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            TrustScore(alpha=alpha).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        TrustScore(alpha=0.1, filtering="none").fit(X, y)
    with pytest.raises(ValueError, match="filtering"):
        TrustScore(filtering="uncertainty").fit(X, y)
    with pytest.raises(ValueError, match="k must"):
        TrustScore(k=0).fit(X, y)
    with pytest.raises(ValueError, match="two classes"):
        TrustScore().fit(X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="2-D"):
        TrustScore().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="score_k"):
        TrustScore(score_k=2).fit(np.array([[0.0], [1.0], [2.0]]), [0, 0, 1])


# ---------------------------------------------------------------------------
# Softmax Baseline
# ---------------------------------------------------------------------------


def test_softmax_matches_hand_computation():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = np.exp(logits)
    np.testing.assert_allclose(softmax(logits), e / e.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(softmax(logits, axis=0).sum(0), 1.0)


def test_softmax_baseline_matches_hand_computation():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, -1.0, 2.0]])
    e = np.exp(logits)
    expected = (e / e.sum(1, keepdims=True)).max(1)
    det = SoftmaxBaseline().fit(logits)
    got = det.score(logits)
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got[1], 1 / 3)


def test_softmax_baseline_large_logits_do_not_overflow():
    logits = np.array([[1000.0, 999.0, 0.0], [-1000.0, -1000.0, 5e3]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = SoftmaxBaseline().score(logits)
        p = softmax(logits)
    # exp(-1000) underflows harmlessly to 0: max prob = 1 / (1 + e^-1)
    np.testing.assert_allclose(s, [1 / (1 + np.exp(-1.0)), 1.0], rtol=1e-12)
    np.testing.assert_allclose(p.max(1), s, rtol=1e-12)
    assert np.all(np.isfinite(p))


def test_softmax_baseline_errors():
    with pytest.raises(ValueError, match="2-D"):
        SoftmaxBaseline().score(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxBaseline().score([[0.0, np.nan]])


# ---------------------------------------------------------------------------
# Interface
# ---------------------------------------------------------------------------


def test_detector_interface():
    with pytest.raises(TypeError):
        Detector()

    class Constant(Detector):
        name = "constant"

        def score(self, X, y_pred=None):
            return np.ones(len(X))

    det = Constant()
    assert det.fit(np.zeros((2, 1))) is det
    np.testing.assert_array_equal(det.score(np.zeros((2, 1))), [1.0, 1.0])
    assert SoftmaxBaseline.name == "softmax_baseline"
    assert TrustScore.name == "trust_score"
    assert "alpha=0.1" in repr(TrustScore(alpha=0.1))


def test_modules_do_not_import_tensorflow():
    code = (
        "import sys, introspection.detectors, introspection.metrics; "
        "bad = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_introspection_net_detector_separates_high_and_low_logits():
    from introspection.detectors import IntrospectionNet

    rng = np.random.default_rng(0)
    correct = rng.normal(8, 2, (1500, 10)).astype(np.float32)
    wrong = rng.normal(1, 2, (1500, 10)).astype(np.float32)
    X = np.concatenate([correct, wrong])
    y = np.r_[np.ones(1500), np.zeros(1500)]
    det = IntrospectionNet(epochs=5, seed=0).fit(X, y)
    s = det.score(X)
    assert s.shape == (3000,) and s.dtype == np.float64 and 0 <= s.min() and s.max() <= 1
    assert s[:1500].mean() > 0.9 and s[1500:].mean() < 0.1
    assert len(det.history_["loss"]) == 5
    # The same seed gives the same network.
    s2 = IntrospectionNet(epochs=5, seed=0).fit(X, y).score(X)
    np.testing.assert_allclose(s, s2, atol=1e-5)
    # A trained network can be wrapped directly (e.g. loaded from an artifact).
    np.testing.assert_allclose(IntrospectionNet(model=det.model_).score(X), s)
    with pytest.raises(ValueError, match="not fitted"):
        IntrospectionNet().score(X)
    with pytest.raises(ValueError, match="logits"):
        det.score(X[:, :5])


def test_trust_score_brute_force_equals_kd_tree():
    from introspection.detectors import TrustScore

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 20))
    y = rng.integers(0, 3, 300)
    q = rng.normal(size=(50, 20))
    p = rng.integers(0, 3, 50)
    for kw in ({}, {"alpha": 0.1}, {"score_k": 2}):
        kd = TrustScore(algorithm="kd_tree", **kw).fit(X, y)
        br = TrustScore(algorithm="brute", **kw).fit(X, y)
        np.testing.assert_allclose(br.score(q, p), kd.score(q, p), rtol=1e-9)
    wide = TrustScore().fit(rng.normal(size=(60, 300)), rng.integers(0, 2, 60))
    assert not isinstance(wide.kdtrees_[0], type(kd.kdtrees_[0]))  # auto: brute
    with pytest.raises(ValueError, match="algorithm"):
        TrustScore(algorithm="ball").fit(X, y)


def test_softmax_baseline_float32_ties_confident_examples():
    logits = np.array([[30.0, 0.0, -1.0], [18.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    f64 = SoftmaxBaseline().score(logits)
    f32 = SoftmaxBaseline(dtype="float32").score(logits)
    # float64 still tells the two confident examples apart; float32 rounds both to 1.0
    assert f64[0] > f64[1] > f64[2] and f64[0] < 1.0
    np.testing.assert_array_equal(f32[:2], [1.0, 1.0])
    np.testing.assert_allclose(f32, f64, atol=1e-7)
    assert f32.dtype == np.float64
    with pytest.raises(ValueError, match="dtype"):
        SoftmaxBaseline(dtype="float16")


def test_every_detector_says_what_it_reads():
    from introspection import detectors as D

    reads = {
        D.SoftmaxBaseline: "logits",
        D.IntrospectionNet: "logits",
        D.MaxLogit: "logits",
        D.EnergyScore: "logits",
        D.Mahalanobis: "features",
        D.ODIN: "images",
        D.MahalanobisPreprocessed: "images",
    }
    for cls, what in reads.items():
        assert cls.reads == what
    assert D.TrustScore().reads == "features"
    assert D.TrustScore(reads="pixels").reads == "pixels"
    with pytest.raises(ValueError, match="reads"):
        D.TrustScore(reads="images").fit(np.zeros((4, 2)), np.array([0, 0, 1, 1]))


def test_score_with_hands_each_detector_what_it_reads():
    from introspection import detectors as D
    from introspection.generation import DataSet
    from introspection.pipeline import score_with

    rng = np.random.default_rng(0)
    x = rng.random((6, 2, 2, 1)).astype(np.float32)
    logits, feats = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    ds = DataSet("d", x, np.arange(6), "p", np.zeros(6, int), logits, feats, np.zeros(6, bool))
    assert ds.read("pixels").shape == (6, 4) and ds.read("images") is x
    rows = np.array([4, 1])
    np.testing.assert_array_equal(score_with(D.MaxLogit(), ds, rows), logits[rows].max(1))
    trust = D.TrustScore(reads="features").fit(feats, logits.argmax(1))
    np.testing.assert_array_equal(
        score_with(trust, ds, rows), trust.score(feats[rows], logits[rows].argmax(1))
    )
