"""Misclassification detectors behind one interface.

Every detector maps the examples a classifier has labelled to a confidence score,
*higher = the classifier's prediction is more likely to be correct*:

- :class:`SoftmaxBaseline` -- maximum softmax probability (Hendrycks & Gimpel, 2017),
  computed from the logits.
- :class:`TrustScore` -- ratio of the distance to the nearest other class and the
  distance to the predicted class, over density-filtered training data (Jiang, Kim,
  Guan & Gupta, NeurIPS 2018; reference implementation ``google/TrustScore``).
- :class:`IntrospectionNet` -- the paper's regression network on the logits
  (Aigrain & Detyniecki, 2019).

Beyond the paper:

- :class:`MaxLogit` -- maximum logit (Hendrycks et al., ICML 2022).
- :class:`EnergyScore` -- negative free energy ``T * logsumexp(logits / T)`` (Liu,
  Wang, Owens & Li, NeurIPS 2020).
- :class:`Mahalanobis` -- closest-class Mahalanobis distance with a tied covariance in
  a feature space (Lee, Lee, Lee & Shin, NeurIPS 2018), and
  :class:`MahalanobisPreprocessed`, the same with the paper's input pre-processing.
- :class:`ODIN` -- temperature scaling and input pre-processing (Liang, Li & Srikant,
  ICLR 2018).

Importing this module loads only NumPy, SciPy and scikit-learn; Keras/TensorFlow are
loaded by Introspection-Net, ODIN and MahalanobisPreprocessed when they are used.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod

import numpy as np
from scipy.special import softmax as _scipy_softmax
from sklearn.neighbors import KDTree

__all__ = [
    "Detector",
    "EnergyScore",
    "IntrospectionNet",
    "Mahalanobis",
    "MahalanobisPreprocessed",
    "MaxLogit",
    "ODIN",
    "SoftmaxBaseline",
    "TrustScore",
    "softmax",
]


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _check_2d_finite(X, name="X"):
    """Return ``X`` as a finite float64 array of shape (N, D), or raise ValueError."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got shape {X.shape}."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty; got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers; got dtype {X.dtype}.")
    X = X.astype(np.float64, copy=False)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return X


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


# ---------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------


class Detector(ABC):
    """Base class of the misclassification detectors.

    A detector is fitted once (possibly a no-op) and then scores examples. The score
    is a float64 array of shape (N,); **higher means more confident that the
    classifier's prediction is correct**, so it can be fed directly to
    :func:`introspection.metrics.evaluate` with "correct" as the positive class.

    Attributes
    ----------
    name : str
        Short identifier of the method, used as the ``method`` column of the
        evaluation tables (e.g. ``"softmax_baseline"``, ``"trust_score"``).
    reads : {"logits", "features", "images", "pixels"}
        What :meth:`score` takes for each example: the classifier's logits, its
        penultimate features, the images, or the images flattened (``pixels``).
    """

    name: str = "detector"
    reads: str = "logits"

    def fit(self, X, y=None) -> Detector:
        """Fit the detector (the base implementation does nothing).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs of the detector.
        y : array-like of shape (n_samples,), optional
            Training labels, for detectors that need them.

        Returns
        -------
        self : Detector
            The fitted detector.
        """
        return self

    @abstractmethod
    def score(self, X, y_pred=None) -> np.ndarray:
        """Confidence that the classifier's prediction is correct.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs of the detector for the examples to score.
        y_pred : array-like of shape (n_samples,), optional
            The classifier's predicted labels, for detectors that need them.

        Returns
        -------
        score : ndarray of shape (n_samples,), dtype float64
            Higher = more confident the prediction is correct.
        """

    def score_tensor(self, z):
        """The score as a differentiable TensorFlow function of the logits.

        Only detectors that read logits have one (the adaptive attacks of chapter 11
        follow its gradient); it gives the values of :meth:`score` up to float32
        round-off.

        Parameters
        ----------
        z : tf.Tensor of shape (n_samples, n_classes), float32

        Returns
        -------
        tf.Tensor of shape (n_samples,)
        """
        raise NotImplementedError(f"{type(self).__name__} has no differentiable score.")

    def __repr__(self):
        params = inspect.signature(type(self).__init__).parameters
        shown = [f"{p}={getattr(self, p)!r}" for p in params if p != "self" and hasattr(self, p)]
        return f"{type(self).__name__}({', '.join(shown)})"


# ---------------------------------------------------------------------------
# Softmax Baseline
# ---------------------------------------------------------------------------


def softmax(logits, axis=-1):
    """Numerically stable softmax.

    Parameters
    ----------
    logits : array-like
        Unnormalised log-probabilities.
    axis : int, default=-1
        Axis along which the probabilities sum to one.

    Returns
    -------
    probabilities : ndarray of float64, same shape as ``logits``
        ``exp(logits - max) / sum(exp(logits - max))``; never overflows.

    Example
    -------
    >>> softmax([[1000.0, 1000.0]])
    array([[0.5, 0.5]])
    """
    return _scipy_softmax(np.asarray(logits, dtype=np.float64), axis=axis)


class SoftmaxBaseline(Detector):
    """Maximum softmax probability (Hendrycks & Gimpel, 2017).

    The score of an example is ``max_k softmax(logits)_k``, computed from the logits
    as ``1 / sum_j exp(l_j - max_k l_k)`` (no overflow for large logits). There is
    nothing to fit.

    Parameters
    ----------
    dtype : {"float64", "float32"}, default "float64"
        The arithmetic. In float32, as a Keras softmax layer computes it, every
        example whose top logit leads the others by more than about 17 scores
        exactly 1.0, so confident examples tie.

    Example
    -------
    >>> SoftmaxBaseline().fit(None).score([[2.0, 0.0], [0.0, 0.0]]).round(4)
    array([0.8808, 0.5   ])
    """

    name = "softmax_baseline"

    def __init__(self, dtype="float64"):
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}.")
        self.dtype = dtype

    def score(self, X, y_pred=None) -> np.ndarray:
        """Maximum softmax probability of each row of logits ``X``, in ``[1/K, 1]``."""
        logits = _check_2d_finite(X, "logits").astype(self.dtype)
        shifted = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(shifted)
        return (p.max(axis=1) / p.sum(axis=1)).astype(np.float64)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf

        return tf.reduce_max(tf.nn.softmax(z, axis=1), axis=1)


# ---------------------------------------------------------------------------
# Trust Score
# ---------------------------------------------------------------------------


#: From this many features on, ``TrustScore(algorithm="auto")`` searches by brute force.
BRUTE_FROM_DIM = 256


def _density_filter(Xc, k, alpha, leaf_size):
    """Return the sorted indices of the rows of ``Xc`` that survive density filtering.

    The kNN radius of a point is its distance to its ``k``-th nearest neighbour
    within ``Xc``, the point itself counting as the first; ``k`` is capped at
    ``len(Xc)``. As the reference implementation (google/TrustScore,
    ``filter_by_density``), the points whose radius is at most the ``1 - alpha``
    percentile of the radii (numpy's linear interpolation) are kept.
    """
    n = Xc.shape[0]
    if alpha <= 0:
        return np.arange(n)
    radii = KDTree(Xc, leaf_size=leaf_size).query(Xc, k=min(k, n))[0][:, -1]
    return np.flatnonzero(radii <= np.percentile(radii, (1 - alpha) * 100))


class TrustScore(Detector):
    """Trust Score (Jiang, Kim, Guan & Gupta, NeurIPS 2018).

    For each class ``c`` the training points of class ``c`` (true labels) are
    optionally density-filtered, giving the set ``H(c)``. The score of an example
    ``x`` whose predicted label is ``p`` is::

        d(x, H(c)) = distance from x to its ``score_k``-th nearest point of H(c)
        score(x)  = min_{c != p} d(x, H(c)) / (d(x, H(p)) + min_dist)

    i.e. the distance to the nearest *other* class over the distance to the
    *predicted* class; higher = more trustworthy. Distances are Euclidean.

    The feature space is the caller's choice: ``fit`` and ``score`` receive
    whatever representation is passed (flattened raw pixels, penultimate-layer
    activations, logits, ...). Fit and score must use the same space, which
    ``reads`` names.

    Parameters
    ----------
    k : int, default=10
        Neighbour rank of the kNN radius used by density filtering (the point itself
        counts as its first neighbour, as in the reference implementation; capped at
        the class size).
    alpha : float in [0, 1), default=0.0
        Density filtering, as the reference implementation: a class keeps the points
        whose kNN radius is ``<= np.percentile(radii, 100 * (1 - alpha))``, about
        ``n - alpha * (n - 1)`` of its ``n`` points (at least one; all those tied at
        the cut).
    filtering : {"density", "none"}, default="density"
        ``"none"`` uses every training point; then ``alpha`` must be 0.
    min_dist : float, default=1e-12
        Added to the distance to the predicted class to avoid a division by zero.
    leaf_size : int, default=40
        Leaf size of the :class:`sklearn.neighbors.KDTree` of each class.
    n_jobs : int or None, default=None
        Number of threads used to query the per-class trees (``None`` = 1, ``-1`` =
        all cores), via :mod:`joblib`.
    algorithm : {"auto", "kd_tree", "brute"}, default="auto"
        Nearest-neighbour search: per-class KD-trees, or exact brute force
        (:class:`sklearn.neighbors.NearestNeighbors`, BLAS distance matrices). A
        KD-tree degenerates to a slow brute force in high dimension; ``"auto"``
        uses brute force from :data:`BRUTE_FROM_DIM` features on (raw pixels) and
        KD-trees below (penultimate features, logits). Both are exact: they give the
        same distances up to float round-off.
    reads : {"features", "logits", "pixels"}, default="features"
        The space it is fitted and scores in (:attr:`Detector.reads`).
    score_k : int, default=1
        Neighbour rank defining the distance from a point to a class. ``1`` (the
        nearest point) is the definition of the paper. The reference implementation's
        ``get_score`` uses the 2nd nearest point (``query(X, k=2)[0][:, -1]``), as does
        alibi's default; pass ``score_k=2`` to reproduce it.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    n_samples_per_class_ : ndarray of int, shape (n_classes,)
        Training points per class before filtering.
    n_kept_per_class_ : ndarray of int, shape (n_classes,)
        Training points per class kept after filtering.
    kept_indices_ : list of ndarray
        For each class, the (sorted) row indices of ``X`` kept after filtering.
    kdtrees_ : list
        One search index per class over the kept points
        (:class:`sklearn.neighbors.KDTree`, or :class:`sklearn.neighbors.NearestNeighbors`
        for brute force).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (50, 2)), rng.normal(5, 1, (50, 2))]
    >>> y = np.r_[np.zeros(50, int), np.ones(50, int)]
    >>> ts = TrustScore(k=10, alpha=0.1).fit(X, y)
    >>> ts.n_kept_per_class_
    array([45, 45])
    >>> s = ts.score([[0.0, 0.0], [0.0, 0.0]], y_pred=[0, 1])
    >>> bool(s[0] > 1 > s[1])
    True
    """

    name = "trust_score"

    def __init__(
        self,
        k=10,
        alpha=0.0,
        filtering="density",
        min_dist=1e-12,
        leaf_size=40,
        n_jobs=None,
        score_k=1,
        algorithm="auto",
        reads="features",
    ):
        self.reads = reads
        self.algorithm = algorithm
        self.k = k
        self.alpha = alpha
        self.filtering = filtering
        self.min_dist = min_dist
        self.leaf_size = leaf_size
        self.n_jobs = n_jobs
        self.score_k = score_k

    def _check_params(self):
        if self.reads not in ("features", "logits", "pixels"):
            raise ValueError(
                f"reads must be 'features', 'logits' or 'pixels'; got {self.reads!r}."
            )
        if self.algorithm not in ("auto", "kd_tree", "brute"):
            raise ValueError(
                f"algorithm must be 'auto', 'kd_tree' or 'brute'; got {self.algorithm!r}."
            )
        if self.filtering not in ("density", "none"):
            raise ValueError(f"filtering must be 'density' or 'none'; got {self.filtering!r}.")
        alpha = float(self.alpha)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1); got {self.alpha!r}.")
        if self.filtering == "none" and alpha != 0.0:
            raise ValueError(
                "alpha > 0 has no effect with filtering='none'; use filtering='density'."
            )
        for name in ("k", "leaf_size", "score_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not (np.isfinite(self.min_dist) and self.min_dist >= 0):
            raise ValueError(f"min_dist must be a finite number >= 0; got {self.min_dist!r}.")

    def fit(self, X, y) -> TrustScore:
        """Build one KD-tree per class on the (filtered) training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features, in the feature space chosen by the caller.
        y : array-like of shape (n_samples,)
            TRUE labels of the training points (not the classifier's predictions).
            At least two classes are required.

        Returns
        -------
        self : TrustScore
            The fitted detector.
        """
        self._check_params()
        X = _check_2d_finite(X, "X")
        y = _check_labels(y, X.shape[0], "y")
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(
                "TrustScore needs training points of at least two classes; "
                f"got only {classes.tolist()}."
            )
        brute = self.algorithm == "brute" or (
            self.algorithm == "auto" and X.shape[1] >= BRUTE_FROM_DIM
        )
        kept, trees = [], []
        for c in classes:
            idx = np.flatnonzero(y == c)
            if self.filtering == "density":
                idx = idx[_density_filter(X[idx], self.k, float(self.alpha), self.leaf_size)]
            if idx.size < self.score_k:
                raise ValueError(
                    f"class {c!r} keeps {idx.size} training point(s) after "
                    f"filtering, fewer than score_k={self.score_k}."
                )
            kept.append(idx)
            if brute:
                from sklearn.neighbors import NearestNeighbors

                trees.append(NearestNeighbors(algorithm="brute").fit(X[idx]))
            else:
                trees.append(KDTree(X[idx], leaf_size=self.leaf_size))
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.n_samples_per_class_ = np.array([np.sum(y == c) for c in classes])
        self.n_kept_per_class_ = np.array([idx.size for idx in kept])
        self.kept_indices_ = kept
        self.kdtrees_ = trees
        return self

    def _class_distances(self, X):
        """Distance of each row of ``X`` to each class, shape (n_samples, n_classes)."""

        def query(tree):
            if isinstance(tree, KDTree):
                return tree.query(X, k=self.score_k)[0][:, -1]
            return tree.kneighbors(X, n_neighbors=self.score_k)[0][:, -1]

        if self.n_jobs is None or self.n_jobs == 1:
            columns = [query(tree) for tree in self.kdtrees_]
        else:
            from joblib import Parallel, delayed

            columns = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(query)(tree) for tree in self.kdtrees_
            )
        return np.column_stack(columns)

    def class_distances(self, X) -> np.ndarray:
        """Distance from each example to each class's kept training points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features in the space used by ``fit``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes)
            Column ``j`` is the distance to the ``score_k``-th nearest kept training
            point of class ``classes_[j]``.
        """
        self._check_fitted()
        X = self._check_X(X)
        return self._class_distances(X)

    def _check_fitted(self):
        if not hasattr(self, "kdtrees_"):
            raise ValueError("This TrustScore is not fitted yet; call fit(X, y) first.")

    def _check_X(self, X):
        X = _check_2d_finite(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features but TrustScore was fitted with {self.n_features_in_}."
            )
        return X

    def score(self, X, y_pred=None) -> np.ndarray:
        """Trust score of each example for the classifier's predicted label.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features in the space used by ``fit``.
        y_pred : array-like of shape (n_samples,)
            The classifier's predicted labels (required). Every label must have been
            seen in ``fit``.

        Returns
        -------
        score : ndarray of shape (n_samples,), dtype float64
            ``d(nearest other class) / (d(predicted class) + min_dist)``; higher =
            more trustworthy.
        """
        self._check_fitted()
        X = self._check_X(X)
        if y_pred is None:
            raise ValueError("TrustScore.score needs y_pred, the classifier's predicted labels.")
        y_pred = _check_labels(y_pred, X.shape[0], "y_pred")
        pos = np.searchsorted(self.classes_, y_pred)
        pos = np.clip(pos, 0, self.classes_.size - 1)
        unknown = self.classes_[pos] != y_pred
        if np.any(unknown):
            missing = np.unique(y_pred[unknown]).tolist()
            raise ValueError(
                f"predicted label(s) {missing} have no training points "
                f"(classes seen in fit: {self.classes_.tolist()})."
            )
        d = self._class_distances(X)
        rows = np.arange(X.shape[0])
        d_pred = d[rows, pos].copy()
        d[rows, pos] = np.inf
        d_other = d.min(axis=1)
        return d_other / (d_pred + self.min_dist)


# ---------------------------------------------------------------------------
# Introspection-Net
# ---------------------------------------------------------------------------


class IntrospectionNet(Detector):
    """Introspection-Net (Aigrain & Detyniecki, 2019, Section 3.1) as a detector.

    A small regression network on the classifier's logits, trained with the mean
    squared error to output 1 when the classifier's prediction is correct and 0
    otherwise (see :func:`introspection.models.introspection_net` and
    :func:`introspection.training.train_introspection_net`). Keras is imported only
    when the detector is fitted or used.

    Parameters
    ----------
    epochs : int, default=60
        Training epochs (paper: 60).
    batch_size : int, default=32
        Minibatch size (not given in the paper; Keras' default).
    learning_rate : float, default=1e-3
        RMSprop learning rate.
    validation_split : float, default=0.1
        Fraction held out for validation when ``fit`` gets no ``validation_data``.
    seed : int, default=0
        Seeds the weights, dropout and data order.
    model : keras.Model, optional
        An already trained network (e.g. loaded from an artifact); ``fit`` is then
        not needed.

    Attributes
    ----------
    model_ : keras.Model
        The trained network.
    history_ : dict
        Per-epoch training and validation loss and accuracy.
    """

    name = "introspection_net"

    def __init__(
        self, epochs=60, batch_size=32, learning_rate=1e-3, validation_split=0.1, seed=0, model=None
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_split = validation_split
        self.seed = seed
        self.model = model
        if model is not None:
            self.model_ = model

    def fit(self, X, y=None, validation_data=None, verbose=0) -> IntrospectionNet:
        """Train the network on logits and correctness labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_classes)
            Logits of the training examples.
        y : array-like of shape (n_samples,)
            1 where the classifier's prediction is correct, 0 otherwise.
        validation_data : tuple, optional
            ``(logits_val, labels_val)``; otherwise ``validation_split`` is held out.
        verbose : int, default=0
            Keras' verbosity.

        Returns
        -------
        self : IntrospectionNet
        """
        import keras

        from .models import introspection_net
        from .training import train_introspection_net

        X = _check_2d_finite(X)
        y = _check_labels(y, X.shape[0], "y")
        keras.utils.set_random_seed(self.seed)
        self.model_ = introspection_net(num_inputs=X.shape[1])
        self.history_ = train_introspection_net(
            self.model_,
            X.astype(np.float32),
            y,
            validation_data=validation_data,
            validation_split=self.validation_split,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            seed=self.seed,
            verbose=verbose,
        )
        return self

    def score(self, X, y_pred=None) -> np.ndarray:
        """Predicted confidence in [0, 1] that the classifier is correct.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_classes)
            Logits.
        y_pred : ignored
            Present for the common interface.

        Returns
        -------
        score : ndarray of shape (n_samples,), dtype float64
        """
        if not hasattr(self, "model_"):
            raise ValueError("IntrospectionNet is not fitted yet: call fit(logits, labels) first.")
        X = _check_2d_finite(X).astype(np.float32)
        n_in = self.model_.input_shape[-1]
        if X.shape[1] != n_in:
            raise ValueError(f"X has {X.shape[1]} columns but the network takes {n_in} logits.")
        out = [
            np.asarray(self.model_(X[i : i + 4096], training=False)).reshape(-1)
            for i in range(0, len(X), 4096)
        ]
        return np.concatenate(out).astype(np.float64)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf

        if not hasattr(self, "model_"):
            raise ValueError("IntrospectionNet is not fitted yet: call fit(logits, labels) first.")
        return tf.reshape(self.model_(z, training=False), (-1,))


# ---------------------------------------------------------------------------
# Logit-based scores beyond the paper: Max Logit and Energy
# ---------------------------------------------------------------------------


def _check_positive_finite(value, name):
    """Return ``value`` as a float, or raise ValueError unless it is finite and > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not (np.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
    return float(value)


class MaxLogit(Detector):
    """Maximum logit (Hendrycks et al., ICML 2022).

    Reference: Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt & Song,
    "Scaling out-of-distribution detection for real-world settings", ICML 2022.

    The score of an example is ``max_k l_k``, the largest unnormalised logit. Unlike the
    maximum softmax probability it keeps the logits' scale, which the softmax
    normalises away. There is nothing to fit.

    Example
    -------
    >>> MaxLogit().fit(None).score([[2.0, 0.0], [-1.0, 0.5]])
    array([2. , 0.5])
    """

    name = "max_logit"

    def score(self, X, y_pred=None) -> np.ndarray:
        """Largest logit of each row of logits ``X``."""
        return _check_2d_finite(X, "logits").max(axis=1)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf

        return tf.reduce_max(z, axis=1)


class EnergyScore(Detector):
    """Negative free energy of the logits (Liu et al., NeurIPS 2020).

    Reference: Liu, Wang, Owens & Li, "Energy-based out-of-distribution detection",
    NeurIPS 2020.

    The energy of an example is ``E(x; T) = -T * log sum_k exp(l_k / T)``; the score is
    its negative, ``T * logsumexp(logits / T)``, so that higher = more in-distribution
    (more likely correct). It is computed with :func:`scipy.special.logsumexp`, which
    never overflows. Bounds: ``max_k l_k <= score <= max_k l_k + T * log(n_classes)``,
    so the score tends to the max logit as ``T -> 0``. There is nothing to fit (the
    paper's energy-bounded fine-tuning is not implemented).

    Parameters
    ----------
    temperature : float, default=1.0
        Temperature ``T > 0``; the paper uses ``T = 1``.

    Example
    -------
    >>> float(EnergyScore().score([[0.0, 0.0]])[0]) == float(np.log(2.0))
    True
    """

    name = "energy"

    def __init__(self, temperature=1.0):
        self.temperature = temperature

    def fit(self, X=None, y=None) -> EnergyScore:
        """Check the temperature; there is nothing to fit."""
        _check_positive_finite(self.temperature, "temperature")
        return self

    def score(self, X, y_pred=None) -> np.ndarray:
        """Negative energy ``T * logsumexp(X / T)`` of each row of logits ``X``."""
        from scipy.special import logsumexp

        t = _check_positive_finite(self.temperature, "temperature")
        logits = _check_2d_finite(X, "logits")
        return t * logsumexp(logits / t, axis=1)

    def score_tensor(self, z):  # noqa: D102 - Detector.score_tensor
        import tensorflow as tf

        t = _check_positive_finite(self.temperature, "temperature")
        return t * tf.reduce_logsumexp(z / t, axis=1)


# ---------------------------------------------------------------------------
# Mahalanobis distance with a tied covariance
# ---------------------------------------------------------------------------


class Mahalanobis(Detector):
    """Mahalanobis confidence score with a tied covariance (Lee et al., NeurIPS 2018).

    Reference: Lee, Lee, Lee & Shin, "A simple unified framework for detecting
    out-of-distribution samples and adversarial attacks", NeurIPS 2018 (reference code
    ``pokaxpoka/deep_Mahalanobis_detector``).

    ``fit`` estimates one Gaussian per class with a shared ("tied") covariance in a
    feature space (typically the classifier's penultimate layer): the class means
    ``mu_c`` of the training features and the pooled within-class covariance::

        Sigma = 1/N sum_c sum_{i: y_i = c} (f_i - mu_c)(f_i - mu_c)^T

    (the maximum-likelihood estimate, dividing by ``N`` as the reference code does
    with ``sklearn.covariance.EmpiricalCovariance`` on the class-centred features).
    The score of a feature vector ``f`` is::

        M(f) = max_c -(f - mu_c)^T Sigma^+ (f - mu_c)

    higher = closer to some class = more in-distribution. ``Sigma^+`` is the
    pseudo-inverse of ``Sigma`` (the reference code uses ``EmpiricalCovariance``'s
    ``precision_``, i.e. :func:`scipy.linalg.pinvh`): eigenvalues at most
    ``n_features * eps * max_eigenvalue`` are treated as zero, so a singular
    covariance (e.g. dead ReLU units) is handled. Distances are computed in the
    whitened space ``z = f W`` with ``W W^T = Sigma^+``, which avoids forming the
    ``(n_samples, n_classes, n_features)`` differences and stays accurate.

    Only the single-layer score of the paper is implemented (no feature ensemble over
    layers, no logistic regression on top); :class:`MahalanobisPreprocessed` adds the
    input pre-processing. The score ignores the classifier's prediction.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    means_ : ndarray of shape (n_classes, n_features), dtype float64
        Class means, in the order of ``classes_``.
    covariance_ : ndarray of shape (n_features, n_features), dtype float64
        Pooled within-class covariance ``Sigma``.
    precision_ : ndarray of shape (n_features, n_features), dtype float64
        Its pseudo-inverse ``Sigma^+``.
    whitening_ : ndarray of shape (n_features, rank), dtype float64
        ``W`` with ``W W^T = precision_`` (``rank`` = retained eigenvalues).

    Example
    -------
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 1.0], [12.0, -1.0]])
    >>> det = Mahalanobis().fit(X, [0, 0, 1, 1])
    >>> det.means_
    array([[ 1.,  0.],
           [11.,  0.]])
    >>> bool(det.score([[1.0, 0.0]])[0] > det.score([[6.0, 0.0]])[0])
    True
    """

    name = "mahalanobis"
    reads = "features"

    def __init__(self):
        pass

    def fit(self, X, y) -> Mahalanobis:
        """Estimate the class means and the tied covariance.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            TRUE labels of the training points.

        Returns
        -------
        self : Mahalanobis
            The fitted detector.
        """
        X = _check_2d_finite(X, "X")
        y = _check_labels(y, X.shape[0], "y")
        classes, inverse = np.unique(y, return_inverse=True)
        counts = np.bincount(inverse, minlength=classes.size)
        means = np.zeros((classes.size, X.shape[1]))
        np.add.at(means, inverse, X)
        means /= counts[:, None]
        centred = X - means[inverse]
        covariance = centred.T @ centred / X.shape[0]
        covariance = (covariance + covariance.T) / 2.0
        eigval, eigvec = np.linalg.eigh(covariance)
        # The cut-off of scipy.linalg.pinvh (and so of EmpiricalCovariance.precision_).
        cutoff = X.shape[1] * np.finfo(np.float64).eps * float(np.abs(eigval).max())
        keep = eigval > cutoff
        if not np.any(keep):
            raise ValueError(
                "The within-class covariance is zero: every training point equals its "
                "class mean, so Mahalanobis distances are undefined."
            )
        whitening = eigvec[:, keep] / np.sqrt(eigval[keep])
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.means_ = means
        self.covariance_ = covariance
        self.whitening_ = whitening
        self.precision_ = whitening @ whitening.T
        return self

    def _check_fitted(self):
        if not hasattr(self, "whitening_"):
            raise ValueError(f"This {type(self).__name__} is not fitted yet; call fit first.")

    def class_distances(self, X) -> np.ndarray:
        """Squared Mahalanobis distance of each example to each class mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features in the space used by ``fit``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes), dtype float64
            Column ``j`` is ``(f - mu_j)^T Sigma^+ (f - mu_j)`` for ``classes_[j]``.
        """
        self._check_fitted()
        X = _check_2d_finite(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}."
            )
        z = X @ self.whitening_
        m = self.means_ @ self.whitening_
        return np.column_stack([((z - mc) ** 2).sum(axis=1) for mc in m])

    def score(self, X, y_pred=None) -> np.ndarray:
        """Mahalanobis confidence score ``max_c -(f - mu_c)^T Sigma^+ (f - mu_c)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features in the space used by ``fit``.
        y_pred : ignored
            The score uses the closest class, not the prediction.

        Returns
        -------
        score : ndarray of shape (n_samples,), dtype float64
            Values ``<= 0``; higher = closer to a class mean.
        """
        return -self.class_distances(X).min(axis=1)


# ---------------------------------------------------------------------------
# Detectors with input pre-processing (gradient step on the input)
# ---------------------------------------------------------------------------

# Tolerance when checking that the inputs lie inside [clip_min, clip_max]
# (the same as introspection.attacks).
_RANGE_TOL = 1e-5


def _check_images(x, name="x"):
    """Return ``x`` as a finite float32 batch of shape (N, ...), or raise ValueError."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must be a batch of inputs, shape (N, ...); got {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers; got dtype {x.dtype}.")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return x


def _sign_nonneg(g):
    """``+1`` where ``g >= 0`` and ``-1`` elsewhere (a zero component counts as positive).

    This is the sign used by the ODIN and Mahalanobis reference implementations
    (``(torch.ge(grad, 0).float() - 0.5) * 2``), so every input component moves by
    exactly ``epsilon``.
    """
    return np.where(np.asarray(g) >= 0, 1.0, -1.0)


class _InputPreprocessing(Detector):
    """Shared machinery: one signed-gradient step on the input, then clipping.

    Subclasses implement ``_loss_gradient(x_batch)``, the gradient with respect to the
    input of a per-example loss whose DEcrease raises the confidence score, and
    ``_score_batch(x_batch)``.
    """

    def _check_params(self):
        eps = self.epsilon
        if (
            isinstance(eps, bool)
            or not isinstance(eps, (int, float, np.integer, np.floating))
            or not (np.isfinite(eps) and eps >= 0)
        ):
            raise ValueError(f"epsilon must be a finite number >= 0; got {eps!r}.")
        self._epsilon = float(eps)
        bs = self.batch_size
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
            raise ValueError(f"batch_size must be a positive integer; got {bs!r}.")
        try:
            lo = -np.inf if self.clip_min is None else float(self.clip_min)
            hi = np.inf if self.clip_max is None else float(self.clip_max)
        except (TypeError, ValueError):
            lo = hi = np.nan
        if np.isnan(lo) or np.isnan(hi) or not lo < hi:
            raise ValueError(
                f"clip_min must be < clip_max (None = unbounded); got {self.clip_min!r} "
                f">= {self.clip_max!r}."
            )
        self._clip = (lo, hi)

    def _check_inputs(self, x):
        self._check_params()
        x = _check_images(x, "x")
        lo, hi = self._clip
        x_lo, x_hi = float(x.min()), float(x.max())
        if x_lo < lo - _RANGE_TOL or x_hi > hi + _RANGE_TOL:
            raise ValueError(
                f"x values lie in [{x_lo:g}, {x_hi:g}], outside [clip_min, clip_max] = "
                f"[{lo:g}, {hi:g}] (wrong pixel scale? pass clip_min=None / clip_max=None "
                "to disable clipping)."
            )
        return x

    def _batches(self, n):
        return [slice(i, i + self.batch_size) for i in range(0, n, self.batch_size)]

    def _perturb_batch(self, xb):
        lo, hi = self._clip
        if self._epsilon == 0.0:
            return np.clip(xb, lo, hi).astype(np.float32)
        step = self._epsilon * _sign_nonneg(self._loss_gradient(xb))
        return np.clip(xb.astype(np.float64) - step, lo, hi).astype(np.float32)

    def input_gradient(self, x) -> np.ndarray:
        """Gradient, with respect to the input, of the loss the perturbation decreases.

        Parameters
        ----------
        x : array-like of shape (n_samples, ...)
            Inputs in the model's pixel scale.

        Returns
        -------
        gradient : ndarray of float32, same shape as ``x``
            See the class docstring for the loss.
        """
        x = self._check_inputs(x)
        return np.concatenate([self._loss_gradient(x[s]) for s in self._batches(len(x))])

    def perturb(self, x) -> np.ndarray:
        """Pre-processed inputs ``clip(x - epsilon * sign(input_gradient(x)))``.

        A zero gradient component counts as positive (as in the reference code), so
        before clipping every component moves by exactly ``epsilon``.

        Parameters
        ----------
        x : array-like of shape (n_samples, ...)
            Inputs in the model's pixel scale, within ``[clip_min, clip_max]``.

        Returns
        -------
        x_tilde : ndarray of float32, same shape as ``x``
            Clipped to ``[clip_min, clip_max]``; equal to ``x`` when ``epsilon == 0``.
        """
        x = self._check_inputs(x)
        return np.concatenate([self._perturb_batch(x[s]) for s in self._batches(len(x))])

    def score(self, X, y_pred=None) -> np.ndarray:
        """Confidence score of the pre-processed inputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs (images) in the model's pixel scale, within ``[clip_min, clip_max]``.
        y_pred : ignored
            Present for the common interface.

        Returns
        -------
        score : ndarray of shape (n_samples,), dtype float64
            Higher = more confident the prediction is correct.
        """
        self._check_ready()
        x = self._check_inputs(X)
        out = [self._score_batch(self._perturb_batch(x[s])) for s in self._batches(len(x))]
        return np.concatenate(out).astype(np.float64)

    def _check_ready(self):
        """Raise ValueError if the detector cannot score yet (default: always ready)."""


class ODIN(_InputPreprocessing):
    """ODIN: temperature scaling and input pre-processing (Liang et al., ICLR 2018).

    Reference: Liang, Li & Srikant, "Enhancing the reliability of out-of-distribution
    image detection in neural networks", ICLR 2018 (reference code
    ``facebookresearch/odin``).

    With ``S(x; T) = softmax(logits(x) / T)`` and ``y_hat`` the classifier's prediction
    (arg-max of the logits of the unperturbed input), each input is pre-processed by
    one signed-gradient step that increases the tempered softmax of the prediction::

        x_tilde = clip(x - epsilon * sign(-grad_x log S_yhat(x; T)), clip_min, clip_max)

    and the score is ``max_k S_k(x_tilde; T)``. The gradient is computed in batches
    with ``tf.GradientTape`` through the model called with ``training=False``;
    ``input_gradient`` returns ``grad_x (-log S_yhat(x; T))``, the tempered
    cross-entropy with the predicted label, as in the reference implementation.

    ``epsilon`` is in the units of the model's input (pixels in ``[0, 1]`` here, the
    normalisation being inside the model). The reference code perturbs the
    normalised image by ``epsilon / std`` per channel, which is the same step in
    ``[0, 1]`` pixel units.

    Parameters
    ----------
    model : keras.Model
        Classifier returning LOGITS.
    temperature : float, default=1000.0
        Softmax temperature ``T > 0``. The paper tunes ``T`` in
        ``{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}`` on validation OOD data and
        finds ``T = 1000`` best; we fix it to that value.
    epsilon : float, default=0.0014
        Perturbation magnitude ``>= 0`` (``0`` disables pre-processing). The paper tunes
        it over 21 evenly spaced values in ``[0, 0.004]``; ``0.0014`` is the value of the
        reference code for CIFAR-10 DenseNet. Callers should state the value they use.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Range the perturbed input is clipped to; ``None`` = unbounded. Inputs outside
        the range raise ValueError (a wrong pixel scale).
    batch_size : int, default=256
        Inputs per gradient / forward pass.

    Notes
    -----
    ``fit`` does nothing: ``T`` and ``epsilon`` are constructor parameters rather than
    being tuned on OOD validation data, as in the paper. With ``epsilon = 0`` and
    ``T = 1`` the score is the Softmax Baseline's.
    """

    name = "odin"
    reads = "images"

    def __init__(
        self, model, temperature=1000.0, epsilon=0.0014, clip_min=0.0, clip_max=1.0, batch_size=256
    ):
        self.model = model
        self.temperature = temperature
        self.epsilon = epsilon
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.batch_size = batch_size

    def _check_params(self):
        super()._check_params()
        self._temperature = _check_positive_finite(self.temperature, "temperature")

    def fit(self, X=None, y=None) -> ODIN:
        """Check the parameters; there is nothing to fit.

        Parameters
        ----------
        X, y : ignored
            Present for API consistency.

        Returns
        -------
        self : ODIN
        """
        self._check_params()
        return self

    def _loss_gradient(self, xb):
        import tensorflow as tf

        x = tf.convert_to_tensor(xb, dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.cast(self.model(x, training=False), tf.float32)
            y_hat = tf.argmax(logits, axis=1)
            log_p = tf.nn.log_softmax(logits / self._temperature, axis=1)
            # Sum over the batch: the examples are independent in inference mode.
            loss = -tf.reduce_sum(tf.gather(log_p, y_hat, axis=1, batch_dims=1))
        return tape.gradient(loss, x).numpy()

    def _score_batch(self, xb):
        logits = np.asarray(self.model(xb, training=False), dtype=np.float64)
        return softmax(logits / self._temperature, axis=1).max(axis=1)


class MahalanobisPreprocessed(_InputPreprocessing):
    """Mahalanobis score with input pre-processing (Lee et al., NeurIPS 2018).

    Reference: Lee, Lee, Lee & Shin, "A simple unified framework for detecting
    out-of-distribution samples and adversarial attacks", NeurIPS 2018, Section 2.2
    ("input pre-processing").

    ``fit(x, y)`` computes the class means and tied covariance of :class:`Mahalanobis`
    from the model's features (the flattened output of layer ``layer``) of the
    training images. To score, each input is first moved by one signed-gradient step
    that DEcreases ``D(x)``, the squared Mahalanobis distance of its features to the
    closest class mean (i.e. increases the confidence score)::

        x_tilde = clip(x - epsilon * sign(grad_x D(x)), clip_min, clip_max)
        D(x)    = min_c (f(x) - mu_c)^T Sigma^+ (f(x) - mu_c)

    and the score is the Mahalanobis score of ``f(x_tilde)``. The gradient flows
    through the closest class only (as in the reference code, which picks the
    closest class and then differentiates). It is computed in batches with
    ``tf.GradientTape`` through the sub-model ``keras.Model(model.input,
    model.get_layer(layer).output)`` called with ``training=False``; ``input_gradient``
    returns ``grad_x D(x)``. ``epsilon`` is in the units of the model's input
    (``[0, 1]`` pixels here; the reference code's division of the gradient by the
    normalisation std makes its step the same in pixel units).

    Parameters
    ----------
    model : keras.Model
        Classifier with a layer named ``layer``.
    layer : str, default="features"
        Name of the feature layer (the penultimate layer of the models built here).
    epsilon : float, default=0.0014
        Perturbation magnitude ``>= 0`` (``0`` = the plain Mahalanobis score of the
        features). The paper tunes it over ``{0, 0.0005, 0.001, 0.0014, 0.002, 0.005,
        0.01}`` (reference code's list) on validation data; ``0.0014`` is one of these
        grid values, not a universal choice. Callers (the book) should state the value
        they use.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Range the perturbed input is clipped to; ``None`` = unbounded. Inputs outside
        the range raise ValueError (a wrong pixel scale).
    batch_size : int, default=256
        Inputs per gradient / forward pass.

    Attributes
    ----------
    mahalanobis_ : Mahalanobis
        The detector fitted on the training features; its ``classes_``, ``means_``,
        ``covariance_`` and ``precision_`` are also exposed here.
    """

    name = "mahalanobis_preprocessed"
    reads = "images"

    def __init__(
        self, model, layer="features", epsilon=0.0014, clip_min=0.0, clip_max=1.0, batch_size=256
    ):
        self.model = model
        self.layer = layer
        self.epsilon = epsilon
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.batch_size = batch_size

    def _feature_model(self):
        if getattr(self, "_feature_model_for", None) is not self.model or (
            getattr(self, "_feature_layer", None) != self.layer
        ):
            import keras

            try:
                out = self.model.get_layer(self.layer).output
            except ValueError as err:
                raise ValueError(
                    f"Model {self.model.name!r} has no layer named {self.layer!r}."
                ) from err
            self._feature_sub_model = keras.Model(self.model.input, out)
            self._feature_model_for = self.model
            self._feature_layer = self.layer
        return self._feature_sub_model

    def _features_batch(self, xb):
        f = np.asarray(self._feature_model()(xb, training=False))
        return f.reshape(len(xb), -1)

    def features(self, x) -> np.ndarray:
        """Flattened features of the (unperturbed) inputs.

        Parameters
        ----------
        x : array-like of shape (n_samples, ...)
            Inputs in the model's pixel scale.

        Returns
        -------
        features : ndarray of float32, shape (n_samples, n_features)
        """
        self._check_params()
        x = _check_images(x, "x")
        return np.concatenate([self._features_batch(x[s]) for s in self._batches(len(x))])

    def fit(self, X, y) -> MahalanobisPreprocessed:
        """Estimate class means and tied covariance from the features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training images, in the model's pixel scale.
        y : array-like of shape (n_samples,)
            TRUE labels of the training images.

        Returns
        -------
        self : MahalanobisPreprocessed
            The fitted detector.
        """
        feats = self.features(X)
        self.mahalanobis_ = Mahalanobis().fit(feats, y)
        for attr in ("classes_", "n_features_in_", "means_", "covariance_", "precision_"):
            setattr(self, attr, getattr(self.mahalanobis_, attr))
        return self

    def _check_ready(self):
        if not hasattr(self, "mahalanobis_"):
            raise ValueError(
                "This MahalanobisPreprocessed is not fitted yet; call fit(x, y) first."
            )

    def _loss_gradient(self, xb):
        import tensorflow as tf

        self._check_ready()
        w = tf.constant(self.mahalanobis_.whitening_, dtype=tf.float32)
        m = tf.constant(self.mahalanobis_.means_ @ self.mahalanobis_.whitening_, tf.float32)
        x = tf.convert_to_tensor(xb, dtype=tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            f = tf.cast(self._feature_model()(x, training=False), tf.float32)
            z = tf.matmul(tf.reshape(f, (tf.shape(f)[0], -1)), w)
            d = tf.reduce_sum(tf.square(z[:, None, :] - m[None, :, :]), axis=-1)
            loss = tf.reduce_sum(tf.reduce_min(d, axis=1))
        return tape.gradient(loss, x).numpy()

    def _score_batch(self, xb):
        return self.mahalanobis_.score(self._features_batch(xb))
