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

Importing this module loads only NumPy, SciPy and scikit-learn; Keras is loaded by
Introspection-Net when it is used.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod

import numpy as np
from scipy.special import softmax as _scipy_softmax
from sklearn.neighbors import KDTree

__all__ = ["Detector", "IntrospectionNet", "SoftmaxBaseline", "TrustScore", "softmax"]


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
    """

    name: str = "detector"

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

    Example
    -------
    >>> SoftmaxBaseline().fit(None).score([[2.0, 0.0], [0.0, 0.0]]).round(4)
    array([0.8808, 0.5   ])
    """

    name = "softmax_baseline"

    def __init__(self):
        pass

    def fit(self, X=None, y=None) -> SoftmaxBaseline:
        """Do nothing; the Softmax Baseline has no parameters.

        Parameters
        ----------
        X, y : ignored
            Present for API consistency.

        Returns
        -------
        self : SoftmaxBaseline
        """
        return self

    def score(self, X, y_pred=None) -> np.ndarray:
        """Maximum softmax probability of each row of logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_classes)
            The classifier's logits (pre-softmax activations), not probabilities.
        y_pred : ignored
            The prediction is the arg-max of the logits; present for API consistency.

        Returns
        -------
        score : ndarray of shape (n_samples,), dtype float64
            Values in ``[1 / n_classes, 1]``.
        """
        logits = _check_2d_finite(X, "logits")
        shifted = logits - logits.max(axis=1, keepdims=True)
        return 1.0 / np.exp(shifted).sum(axis=1)


# ---------------------------------------------------------------------------
# Trust Score
# ---------------------------------------------------------------------------


def _density_filter(Xc, k, alpha, leaf_size):
    """Return the sorted indices of the rows of ``Xc`` that survive density filtering.

    The kNN radius of a point is its distance to its ``k``-th nearest neighbour
    within ``Xc``, the point itself counting as the first (as in the reference
    implementation: ``KDTree(X).query(X, k=k)[0][:, -1]``); ``k`` is capped at
    ``len(Xc)``. The ``floor(alpha * n)`` points with the largest radii (lowest
    density) are dropped; ties at the cut are broken by keeping the lower index.
    """
    n = Xc.shape[0]
    n_drop = int(np.floor(alpha * n + 1e-9))
    if n_drop == 0:
        return np.arange(n)
    radii = KDTree(Xc, leaf_size=leaf_size).query(Xc, k=min(k, n))[0][:, -1]
    order = np.argsort(radii, kind="stable")
    return np.sort(order[: n - n_drop])


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
    activations, logits, ...). Fit and score must use the same space.

    Parameters
    ----------
    k : int, default=10
        Neighbour rank of the kNN radius used by density filtering (the point itself
        counts as its first neighbour, as in the reference implementation; capped at
        the class size).
    alpha : float in [0, 1), default=0.0
        Fraction of each class dropped by density filtering: in a class of ``n``
        points the ``floor(alpha * n)`` points with the largest kNN radius are
        removed, so ``n - floor(alpha * n)`` are kept (at least one). Ties at the cut
        keep the lower training index. (The reference implementation instead keeps the
        points whose radius is ``<= np.percentile(radii, 100 * (1 - alpha))``, which
        keeps ``n - ceil(alpha * (n - 1))`` points without ties.)
    filtering : {"density", "none"}, default="density"
        ``"none"`` uses every training point; then ``alpha`` must be 0.
    min_dist : float, default=1e-12
        Added to the distance to the predicted class to avoid a division by zero.
    leaf_size : int, default=40
        Leaf size of the :class:`sklearn.neighbors.KDTree` of each class.
    n_jobs : int or None, default=None
        Number of threads used to query the per-class trees (``None`` = 1, ``-1`` =
        all cores), via :mod:`joblib`.
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
    kdtrees_ : list of sklearn.neighbors.KDTree
        One tree per class over the kept points.

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
    ):
        self.k = k
        self.alpha = alpha
        self.filtering = filtering
        self.min_dist = min_dist
        self.leaf_size = leaf_size
        self.n_jobs = n_jobs
        self.score_k = score_k

    def _check_params(self):
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
            return tree.query(X, k=self.score_k)[0][:, -1]

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
