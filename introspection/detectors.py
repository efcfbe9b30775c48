"""Misclassification detectors behind one interface, :class:`Detector`.

Each maps examples to a confidence score, higher = the prediction is more likely correct.
The paper's three: :class:`SoftmaxBaseline` (Hendrycks & Gimpel, 2017), :class:`TrustScore`
(Jiang et al., NeurIPS 2018) and :class:`IntrospectionNet` (Section 3.1). Beyond the paper:
:class:`MaxLogit`, :class:`EnergyScore`, :class:`Mahalanobis`, :class:`MahalanobisPreprocessed`
and :class:`ODIN`. Keras/TensorFlow are imported only by the detectors that use them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from joblib import Parallel, delayed
from scipy.special import logsumexp
from scipy.special import softmax as _scipy_softmax
from sklearn.neighbors import KDTree, NearestNeighbors

from .metrics import _check_int, _finite

__all__ = ["Detector", "EnergyScore", "IntrospectionNet", "Mahalanobis", "MahalanobisPreprocessed",
           "MaxLogit", "ODIN", "SoftmaxBaseline", "TrustScore", "softmax"]

#: From this many features on, ``TrustScore(algorithm="auto")`` searches by brute force.
BRUTE_FROM_DIM = 256
#: How far outside [clip_min, clip_max] input images may lie (here and in introspection.attacks).
_RANGE_TOL = 1e-5


def _check_array(x, name, images=False):
    """``x`` as finite float64 rows (N, D), or with ``images`` a float32 batch (N, ...)."""
    x = np.asarray(x)
    if images and x.ndim < 2:
        raise ValueError(f"{name} must be a batch of inputs, shape (N, ...); got {x.shape}.")
    if not images and x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features); "
                         f"got shape {x.shape}.")
    if 0 in x.shape[:2]:
        raise ValueError(f"{name} must be non-empty; got shape {x.shape}.")
    return _finite(x, name, np.float32 if images else np.float64)


def _check_labels(y, n_samples, name):
    """Return ``y`` as a 1-D array of length ``n_samples``, or raise ValueError."""
    if y is None:
        raise ValueError(f"{name} is required.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels; got shape {y.shape}.")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n_samples} rows.")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return y


def _check_rule(value, name, rule):
    """Raise ValueError unless ``value`` obeys ``rule`` (see :class:`Detector`)."""
    if rule == "int":
        _check_int(value, name)
        return
    if isinstance(rule, tuple):
        quoted = [repr(c) for c in rule]
        ok, must = value in rule, f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    else:
        number = isinstance(value, (int, float, np.integer, np.floating))
        ok = number and not isinstance(value, bool) and np.isfinite(value)
        ok = ok and (value > 0 if rule == "> 0" else value >= 0)
        must = f"a finite number {rule}"
    if not ok:
        raise ValueError(f"{name} must be {must}; got {value!r}.")


def _check_range(x, lo, hi, hint=""):
    """Raise ValueError where ``x`` leaves ``[lo, hi]`` by more than :data:`_RANGE_TOL`."""
    x_lo, x_hi = (float(x.min()), float(x.max())) if x.size else (lo, hi)
    if x_lo < lo - _RANGE_TOL or x_hi > hi + _RANGE_TOL:
        raise ValueError(f"x values lie in [{x_lo:g}, {x_hi:g}], outside [clip_min, clip_max] = "
                         f"[{lo:g}, {hi:g}] (wrong pixel scale?{hint}).")


def _batched(f, x, size):
    """``f`` of consecutive batches of ``size`` rows of ``x``, concatenated."""
    return np.concatenate([f(x[i : i + size]) for i in range(0, len(x), size)])


class Detector(ABC):
    """Base class of the misclassification detectors.

    ``score`` returns float64 of shape (N,), higher = more confident the prediction is correct
    (the positive class of :func:`introspection.metrics.evaluate`). ``name`` is the ``method``
    column of the evaluation tables; ``reads`` is what :meth:`score` takes: "logits",
    "features", "images" or "pixels" (flattened images). ``_rules`` maps parameters to a tuple
    of allowed values, "int" (>= 1), "> 0" or ">= 0" (finite); fitted state ends with ``_``.
    """

    name: str = "detector"
    reads: str = "logits"
    _rules: dict = {}

    def _set_params(self, params):
        """Store the arguments of ``__init__`` (its ``locals()``) as attributes."""
        vars(self).update({key: value for key, value in params.items() if key != "self"})

    def _check_params(self):
        """Check the parameters against ``_rules``, in order; raise ValueError on a bad one."""
        for key, rule in self._rules.items():
            _check_rule(getattr(self, key), key, rule)

    def fit(self, X=None, y=None) -> Detector:
        """Check the parameters (there is nothing to fit here) and return ``self``."""
        self._check_params()
        return self

    @abstractmethod
    def score(self, X, y_pred=None) -> np.ndarray:
        """Confidence that each prediction is correct (``y_pred``: predicted labels, if needed)."""

    def score_tensor(self, z):
        """The score as a differentiable TensorFlow function of the logits ``z``.

        For the adaptive attacks of chapter 11; matches :meth:`score` up to float32 round-off.
        """
        raise NotImplementedError(f"{type(self).__name__} has no differentiable score.")

    def __repr__(self):
        shown = [f"{k}={v!r}" for k, v in vars(self).items() if not (k[0] == "_" or k[-1] == "_")]
        return f"{type(self).__name__}({', '.join(shown)})"

    def _check_fitted(self, attr):
        if not hasattr(self, attr):
            raise ValueError(f"This {type(self).__name__} is not fitted yet; call fit first.")

    def _check_features(self, X):
        """``X`` checked, with as many features as in ``fit``; the detector must be fitted."""
        self._check_fitted("n_features_in_")
        X = _check_array(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features but {type(self).__name__} was fitted "
                             f"with {self.n_features_in_}.")
        return X


def softmax(logits, axis=-1):
    """Numerically stable softmax along ``axis``, in float64."""
    return _scipy_softmax(np.asarray(logits, dtype=np.float64), axis=axis)


class SoftmaxBaseline(Detector):
    """Maximum softmax probability (Hendrycks & Gimpel, 2017); nothing to fit.

    ``dtype``: "float64" or "float32"; in float32, as Keras computes it, confident examples
    (lead > ~17) all score 1.0 and tie.
    """

    name = "softmax_baseline"
    _rules = {"dtype": ("float64", "float32")}

    def __init__(self, dtype="float64"):
        self.dtype = dtype
        self._check_params()

    def score(self, X, y_pred=None) -> np.ndarray:
        """Maximum softmax probability of each row of logits ``X``, in ``[1/K, 1]``."""
        logits = _check_array(X, "logits").astype(self.dtype)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (p.max(axis=1) / p.sum(axis=1)).astype(np.float64)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf
        return tf.reduce_max(tf.nn.softmax(z, axis=1), axis=1)


class TrustScore(Detector):
    """Trust Score (Jiang, Kim, Guan & Gupta, NeurIPS 2018).

    With ``H(c)`` the (density-filtered) training points of true class ``c``, ``p`` the
    predicted label and ``d`` the Euclidean distance to the ``score_k``-th nearest point::

        score(x) = min_{c != p} d(x, H(c)) / (d(x, H(p)) + min_dist)

    Fit and score in the same feature space: ``reads`` = "features", "logits" or "pixels".

    Parameters
    ----------
    k, alpha : int, float in [0, 1)
        Density filter: a class keeps the points whose radius to their ``k``-th neighbour (the
        point itself first) is ``<= np.percentile(radii, 100 * (1 - alpha))``.
        ``filtering="none"`` keeps every training point (``alpha`` must be 0).
    n_jobs : int or None
        Threads querying the per-class trees (``None`` = 1, ``-1`` = all cores).
    score_k : int
        1 (nearest point) is the paper's definition; 2 reproduces google/TrustScore and alibi.
    algorithm : {"auto", "kd_tree", "brute"}
        Both exact; ``"auto"`` uses brute force from :data:`BRUTE_FROM_DIM` features on.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (50, 2)), rng.normal(5, 1, (50, 2))]
    >>> ts = TrustScore(k=10, alpha=0.1).fit(X, np.repeat([0, 1], 50))
    >>> ts.n_kept_per_class_
    array([45, 45])
    >>> ts.score([[0.0, 0.0], [0.0, 0.0]], y_pred=[0, 1]) > 1
    array([ True, False])
    """

    name = "trust_score"
    _rules = {"reads": ("features", "logits", "pixels"), "algorithm": ("auto", "kd_tree", "brute"),
              "filtering": ("density", "none"), "k": "int", "leaf_size": "int", "score_k": "int",
              "min_dist": ">= 0"}

    def __init__(self, k=10, alpha=0.0, filtering="density", min_dist=1e-12, leaf_size=40,
                 n_jobs=None, score_k=1, algorithm="auto", reads="features"):
        self._set_params(locals())

    def fit(self, X, y) -> TrustScore:
        """Build one search index per class on the (filtered) data; ``y``: TRUE labels."""
        self._check_params()
        alpha = float(self.alpha)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1); got {self.alpha!r}.")
        if self.filtering == "none" and alpha != 0.0:
            raise ValueError("alpha > 0 has no effect with filtering='none'; "
                             "use filtering='density'.")
        X = _check_array(X, "X")
        y = _check_labels(y, X.shape[0], "y")
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise ValueError("TrustScore needs training points of at least two classes; "
                             f"got only {classes.tolist()}.")
        kept = []
        for c in classes:
            idx = np.flatnonzero(y == c)
            if alpha > 0:  # google/TrustScore's filter_by_density
                tree = KDTree(X[idx], leaf_size=self.leaf_size)
                radii = tree.query(X[idx], k=min(self.k, idx.size))[0][:, -1]
                idx = idx[radii <= np.percentile(radii, (1 - alpha) * 100)]
            if idx.size < self.score_k:
                raise ValueError(f"class {c!r} keeps {idx.size} training point(s) after "
                                 f"filtering, fewer than score_k={self.score_k}.")
            kept.append(idx)
        brute = self.algorithm == "brute" or (self.algorithm == "auto"
                                              and X.shape[1] >= BRUTE_FROM_DIM)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.n_samples_per_class_ = counts
        self.n_kept_per_class_ = np.array([idx.size for idx in kept])
        self.kept_indices_ = kept
        self.kdtrees_ = [NearestNeighbors(algorithm="brute").fit(X[idx]) if brute
                         else KDTree(X[idx], leaf_size=self.leaf_size) for idx in kept]
        return self

    def class_distances(self, X) -> np.ndarray:
        """Distance of each example to each class of ``classes_``, shape (n_samples, n_classes)."""
        X = self._check_features(X)

        def query(tree):
            knn = tree.query if isinstance(tree, KDTree) else tree.kneighbors
            return knn(X, self.score_k)[0][:, -1]

        jobs = (delayed(query)(tree) for tree in self.kdtrees_)
        return np.column_stack(Parallel(n_jobs=self.n_jobs, prefer="threads")(jobs))

    def score(self, X, y_pred=None) -> np.ndarray:
        """Trust score of each example for its predicted label ``y_pred`` (required)."""
        X = self._check_features(X)
        y_pred = _check_labels(y_pred, X.shape[0], "y_pred")
        pos = np.clip(np.searchsorted(self.classes_, y_pred), 0, self.classes_.size - 1)
        if np.any(self.classes_[pos] != y_pred):
            missing, seen = np.setdiff1d(y_pred, self.classes_).tolist(), self.classes_.tolist()
            raise ValueError(f"predicted label(s) {missing} have no training points "
                             f"(classes seen in fit: {seen}).")
        d = self.class_distances(X)
        d_pred = np.take_along_axis(d, pos[:, None], axis=1)[:, 0]
        np.put_along_axis(d, pos[:, None], np.inf, axis=1)
        return d.min(axis=1) / (d_pred + self.min_dist)


class IntrospectionNet(Detector):
    """Introspection-Net (Aigrain & Detyniecki, 2019, Section 3.1) as a detector.

    A small regression network on the logits, trained with the MSE to output 1 when the
    prediction is correct and 0 otherwise (:func:`introspection.models.introspection_net`).
    ``fit`` sets ``model_`` and ``history_`` (per-epoch loss and accuracy). ``epochs``: 60 as
    in the paper; ``batch_size``: Keras' default (the paper gives none); ``learning_rate``:
    RMSprop's; ``validation_split`` is held out when ``fit`` gets no ``validation_data``;
    ``seed`` seeds the weights, dropout and data order; ``model``: a trained network (no fit).
    """

    name = "introspection_net"

    def __init__(self, epochs=60, batch_size=32, learning_rate=1e-3, validation_split=0.1, seed=0,
                 model=None):
        self._set_params(locals())
        if model is not None:
            self.model_ = model

    def fit(self, X, y=None, validation_data=None, verbose=0) -> IntrospectionNet:
        """Train on logits ``X``, labels ``y`` (1 = correct), ``validation_data`` ``(X, y)``."""
        import keras

        from .models import introspection_net
        from .training import train_introspection_net

        X = _check_array(X, "X")
        y = _check_labels(y, X.shape[0], "y")
        keras.utils.set_random_seed(self.seed)
        self.model_ = introspection_net(num_inputs=X.shape[1])
        self.history_ = train_introspection_net(
            self.model_, X.astype(np.float32), y, validation_data=validation_data, verbose=verbose,
            validation_split=self.validation_split, epochs=self.epochs, seed=self.seed,
            batch_size=self.batch_size, learning_rate=self.learning_rate)
        return self

    def score(self, X, y_pred=None) -> np.ndarray:
        """Predicted confidence in [0, 1] that the classifier is correct, from logits ``X``."""
        self._check_fitted("model_")
        X = _check_array(X, "X").astype(np.float32)
        n_in = self.model_.input_shape[-1]
        if X.shape[1] != n_in:
            raise ValueError(f"X has {X.shape[1]} columns but the network takes {n_in} logits.")
        out = _batched(lambda b: np.asarray(self.model_(b, training=False)).reshape(-1), X, 4096)
        return out.astype(np.float64)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf
        self._check_fitted("model_")
        return tf.reshape(self.model_(z, training=False), (-1,))


class MaxLogit(Detector):
    """Maximum logit (Hendrycks, Basart, Mazeika et al., ICML 2022); nothing to fit.

    Unlike the maximum softmax probability it keeps the scale of the logits.
    """

    name = "max_logit"

    def score(self, X, y_pred=None) -> np.ndarray:
        """Largest logit of each row of logits ``X``."""
        return _check_array(X, "logits").max(axis=1)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf
        return tf.reduce_max(z, axis=1)


class EnergyScore(Detector):
    """Negative free energy ``T * logsumexp(logits / T)`` (Liu, Wang, Owens & Li, NeurIPS 2020).

    Higher = more in-distribution; ``max_k l_k <= score <= max_k l_k + T log K``, so it tends to
    the max logit as ``T -> 0``. ``temperature``: ``T > 0``, 1 in the paper. Nothing to fit
    (the paper's energy fine-tuning is not here).
    """

    name = "energy"
    _rules = {"temperature": "> 0"}

    def __init__(self, temperature=1.0):
        self.temperature = temperature

    def score(self, X, y_pred=None) -> np.ndarray:
        """Negative energy ``T * logsumexp(X / T)`` of each row of logits ``X``."""
        self._check_params()
        t = float(self.temperature)
        return t * logsumexp(_check_array(X, "logits") / t, axis=1)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf
        self._check_params()
        t = float(self.temperature)
        return t * tf.reduce_logsumexp(z / t, axis=1)


class Mahalanobis(Detector):
    """Mahalanobis confidence score with a tied covariance (Lee, Lee, Lee & Shin, NeurIPS 2018).

    Class means ``mu_c`` (``means_``), pooled within-class covariance ``Sigma`` (divided by
    ``N`` as the reference code's ``EmpiricalCovariance``) and its pseudo-inverse ``Sigma^+``
    (``precision_``, :func:`scipy.linalg.pinvh`'s cut-off: dead ReLU units are handled)::

        M(f) = max_c -(f - mu_c)^T Sigma^+ (f - mu_c)

    One layer, the prediction ignored; computed in the space ``f W``, ``W W^T = Sigma^+``.
    """

    name = "mahalanobis"
    reads = "features"

    def fit(self, X, y) -> Mahalanobis:
        """Estimate class means and tied covariance from features ``X``, TRUE labels ``y``."""
        X = _check_array(X, "X")
        y = _check_labels(y, X.shape[0], "y")
        classes, inverse = np.unique(y, return_inverse=True)
        means = np.zeros((classes.size, X.shape[1]))
        np.add.at(means, inverse, X)
        means /= np.bincount(inverse, minlength=classes.size)[:, None]
        centred = X - means[inverse]
        covariance = centred.T @ centred / X.shape[0]
        covariance = (covariance + covariance.T) / 2.0
        eigval, eigvec = np.linalg.eigh(covariance)
        # The cut-off of scipy.linalg.pinvh (and so of EmpiricalCovariance.precision_).
        cutoff = X.shape[1] * np.finfo(np.float64).eps * float(np.abs(eigval).max())
        keep = eigval > cutoff
        if not np.any(keep):
            raise ValueError("The within-class covariance is zero: every training point equals "
                             "its class mean, so Mahalanobis distances are undefined.")
        self.whitening_ = eigvec[:, keep] / np.sqrt(eigval[keep])
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.means_ = means
        self.covariance_ = covariance
        self.precision_ = self.whitening_ @ self.whitening_.T
        return self

    def class_distances(self, X) -> np.ndarray:
        """Squared Mahalanobis distance of each example to each class mean (``classes_`` order)."""
        z = self._check_features(X) @ self.whitening_
        m = self.means_ @ self.whitening_
        return np.column_stack([((z - mc) ** 2).sum(axis=1) for mc in m])

    def score(self, X, y_pred=None) -> np.ndarray:
        """Mahalanobis confidence score ``max_c -(f - mu_c)^T Sigma^+ (f - mu_c)`` (``<= 0``)."""
        return -self.class_distances(X).min(axis=1)


class _InputPreprocessing(Detector):
    """One signed-gradient step on the input that decreases ``_loss``, then ``_score_batch``."""

    reads = "images"
    _rules = {"epsilon": ">= 0", "batch_size": "int"}

    def _check_params(self):
        super()._check_params()
        try:
            lo = -np.inf if self.clip_min is None else float(self.clip_min)
            hi = np.inf if self.clip_max is None else float(self.clip_max)
        except (TypeError, ValueError):
            lo = hi = np.nan
        if not lo < hi:
            raise ValueError("clip_min must be < clip_max (None = unbounded); "
                             f"got {self.clip_min!r} >= {self.clip_max!r}.")
        self._clip = (lo, hi)

    def _check_inputs(self, x):
        self._check_params()
        x = _check_array(x, "x", images=True)
        _check_range(x, *self._clip, " pass clip_min=None / clip_max=None to disable clipping")
        return x

    def _loss_gradient(self, xb):
        import tensorflow as tf
        x = tf.convert_to_tensor(xb, dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = self._loss(x)
        return tape.gradient(loss, x).numpy()

    def _perturb_batch(self, xb):
        lo, hi = self._clip
        if float(self.epsilon) == 0.0:
            return np.clip(xb, lo, hi).astype(np.float32)
        # The sign of the ODIN and Mahalanobis reference code: +1 where the gradient is >= 0.
        step = float(self.epsilon) * np.where(self._loss_gradient(xb) >= 0, 1.0, -1.0)
        return np.clip(xb.astype(np.float64) - step, lo, hi).astype(np.float32)

    def input_gradient(self, x) -> np.ndarray:
        """Gradient w.r.t. the input of the loss the pre-processing decreases (see the class)."""
        return _batched(self._loss_gradient, self._check_inputs(x), self.batch_size)

    def perturb(self, x) -> np.ndarray:
        """Pre-processed inputs ``clip(x - epsilon * sign(input_gradient(x)))``, sign(0) = +1."""
        return _batched(self._perturb_batch, self._check_inputs(x), self.batch_size)

    def score(self, X, y_pred=None) -> np.ndarray:
        """Confidence score of the pre-processed images ``X``, within ``[clip_min, clip_max]``."""
        x = self._check_inputs(X)
        out = _batched(lambda xb: self._score_batch(self._perturb_batch(xb)), x, self.batch_size)
        return out.astype(np.float64)


class ODIN(_InputPreprocessing):
    """ODIN: temperature scaling and input pre-processing (Liang, Li & Srikant, ICLR 2018).

    With ``S(x; T) = softmax(logits(x) / T)`` and ``y_hat`` the prediction, the input takes one
    signed-gradient step that raises ``S_yhat`` and the score is ``max_k S_k(x_tilde; T)``::

        x_tilde = clip(x - epsilon * sign(-grad_x log S_yhat(x; T)), clip_min, clip_max)

    ``model`` returns LOGITS; inputs outside ``[clip_min, clip_max]`` (``None`` = unbounded)
    raise ValueError. ``epsilon = 0`` and ``T = 1`` give the Softmax Baseline. Nothing to fit.

    Parameters
    ----------
    temperature : float
        ``T > 0``; the paper finds 1000 best of {1, ..., 1000} on OOD validation data.
    epsilon : float
        ``>= 0`` (0 = no pre-processing) in the model's input units (``[0, 1]`` pixels: the
        reference code's ``epsilon / std``); its CIFAR-10 value, not tuned here.
    """

    name = "odin"
    _rules = {**_InputPreprocessing._rules, "temperature": "> 0"}

    def __init__(self, model, temperature=1000.0, epsilon=0.0014, clip_min=0.0, clip_max=1.0,
                 batch_size=256):
        self._set_params(locals())

    def _loss(self, x):
        import tensorflow as tf
        logits = tf.cast(self.model(x, training=False), tf.float32)
        y_hat = tf.argmax(logits, axis=1)
        log_p = tf.nn.log_softmax(logits / float(self.temperature), axis=1)
        # Sum over the batch: the examples are independent in inference mode.
        return -tf.reduce_sum(tf.gather(log_p, y_hat, axis=1, batch_dims=1))

    def _score_batch(self, xb):
        logits = np.asarray(self.model(xb, training=False), dtype=np.float64)
        return softmax(logits / float(self.temperature), axis=1).max(axis=1)


class MahalanobisPreprocessed(_InputPreprocessing):
    """Mahalanobis score with input pre-processing (Lee et al., NeurIPS 2018, Section 2.2).

    ``fit`` fits ``mahalanobis_``, a :class:`Mahalanobis` (its ``means_``, ``precision_``...
    exposed here too), on the flattened output of layer ``layer`` (the penultimate layer of the
    models built here). The input takes one signed-gradient step that decreases ``D``, the
    distance to the closest class mean, through which alone the gradient flows (as in the
    reference code); ``epsilon`` (``[0, 1]`` pixels) and the clipping are as for :class:`ODIN`::

        x_tilde = clip(x - epsilon * sign(grad_x D(x)), clip_min, clip_max)
        D(x)    = min_c (f(x) - mu_c)^T Sigma^+ (f(x) - mu_c)
    """

    name = "mahalanobis_preprocessed"

    def __init__(self, model, layer="features", epsilon=0.0014, clip_min=0.0, clip_max=1.0,
                 batch_size=256):
        self._set_params(locals())

    def _feature_model(self):
        """The sub-model from the input to ``layer``, rebuilt when ``model`` or ``layer`` change."""
        model, layer, sub_model = getattr(self, "_feature_cache", (None, None, None))
        if model is not self.model or layer != self.layer:
            import keras
            try:
                out = self.model.get_layer(self.layer).output
            except ValueError as err:
                msg = f"Model {self.model.name!r} has no layer named {self.layer!r}."
                raise ValueError(msg) from err
            sub_model = keras.Model(self.model.input, out)
            self._feature_cache = (self.model, self.layer, sub_model)
        return sub_model

    def _features_batch(self, xb):
        return np.asarray(self._feature_model()(xb, training=False)).reshape(len(xb), -1)

    def features(self, x) -> np.ndarray:
        """Flattened features of the unperturbed inputs, shape (n_samples, n_features)."""
        self._check_params()
        return _batched(self._features_batch, _check_array(x, "x", images=True), self.batch_size)

    def fit(self, X, y) -> MahalanobisPreprocessed:
        """Fit the Mahalanobis detector on the features of images ``X`` (TRUE labels ``y``)."""
        self.mahalanobis_ = Mahalanobis().fit(self.features(X), y)
        for attr in ("classes_", "n_features_in_", "means_", "covariance_", "precision_"):
            setattr(self, attr, getattr(self.mahalanobis_, attr))
        return self

    def _loss(self, x):
        import tensorflow as tf
        self._check_fitted("mahalanobis_")
        w = tf.constant(self.mahalanobis_.whitening_, dtype=tf.float32)
        m = tf.constant(self.mahalanobis_.means_ @ self.mahalanobis_.whitening_, tf.float32)
        f = tf.cast(self._feature_model()(x, training=False), tf.float32)
        z = tf.matmul(tf.reshape(f, (tf.shape(f)[0], -1)), w)
        d = tf.reduce_sum(tf.square(z[:, None, :] - m[None, :, :]), axis=-1)
        return tf.reduce_sum(tf.reduce_min(d, axis=1))

    def _score_batch(self, xb):
        self._check_fitted("mahalanobis_")
        return self.mahalanobis_.score(self._features_batch(xb))
