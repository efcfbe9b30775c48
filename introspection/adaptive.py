"""Adaptive white-box attacks on classifier + detector (chapter 11 of the book).

An input *evades* when misclassified **and** accepted (score >= the threshold accepting 95 %
of correct clean images, :func:`threshold_at_tpr`); Carlini & Wagner 2017, Tramèr et al. 2020.
Entry points: :func:`joint_pgd` (L-inf PGD on margin + gated detector term),
:func:`representation_matching` (feature adversaries, Sabour et al., 2016) and
:func:`spsa_gradient` (gradient-free check for obfuscation, Uesato et al., 2018).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "pick_targets",
    "threshold_at_tpr",
    "joint_pgd",
    "representation_matching",
    "spsa_gradient",
    "evades",
]


def threshold_at_tpr(scores_correct, tpr: float = 0.95) -> float:
    """Threshold ``tau`` with ``mean(scores_correct >= tau) >= tpr`` (the ``1 - tpr`` quantile)."""
    s = np.asarray(scores_correct, dtype=np.float64).ravel()
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("scores_correct must be a non-empty array of finite numbers.")
    if not 0.0 < tpr < 1.0:
        raise ValueError(f"tpr must lie in (0, 1); got {tpr!r}.")
    return float(np.quantile(s, 1.0 - tpr, method="lower"))


def pick_targets(source_logits, source_y, pool_y, pool_ok, seed: int = 0) -> np.ndarray:
    """Pool index, per source, of a random allowed image of its runner-up class.

    Allowed (``pool_ok``): correctly classified and accepted; any other class if the runner-up
    has none.
    """
    z = np.array(source_logits, dtype=np.float64)
    y = np.asarray(source_y)
    z[np.arange(len(z)), y] = -np.inf
    runner = z.argmax(1)
    rng = np.random.default_rng(seed)
    pool_y, pool_ok = np.asarray(pool_y), np.asarray(pool_ok, bool)
    out = np.empty(len(y), np.int64)
    for i, (c, own) in enumerate(zip(runner, y, strict=True)):
        cand = np.flatnonzero(pool_ok & (pool_y == c))
        if len(cand) == 0:
            cand = np.flatnonzero(pool_ok & (pool_y != own))
        if len(cand) == 0:
            raise ValueError("No allowed target image of another class.")
        out[i] = rng.choice(cand)
    return out


def spsa_gradient(loss_fn, x, *, samples: int = 32, delta: float = 0.01, rng=None):
    """SPSA gradient estimate of a per-example loss, without backpropagation.

    ``mean_i (L(x + delta v_i) - L(x - delta v_i)) / (2 delta) * v_i`` over ``samples``
    Rademacher ``v_i``; ``loss_fn`` maps a NumPy batch to one loss per example.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    x = np.asarray(x, dtype=np.float32)
    g = np.zeros_like(x, dtype=np.float64)
    for _ in range(samples):
        v = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=x.shape)
        diff = loss_fn(x + delta * v) - loss_fn(x - delta * v)
        g += (diff / (2 * delta)).reshape(-1, *([1] * (x.ndim - 1))) * v
    return (g / samples).astype(np.float32)


_GRAD_FNS: dict = {}


def _grad_fn(fm, score):
    """Traced, cached gradient of the summed joint loss; tensor hyper-parameters avoid retracing."""
    import tensorflow as tf

    key = (fm, score)
    if key not in _GRAD_FNS:
        if len(_GRAD_FNS) > 64:
            _GRAD_FNS.clear()

        @tf.function(reduce_retracing=True)
        def grad(xb, yb, tau, scale, lam, kappa):
            with tf.GradientTape() as tape:
                tape.watch(xb)
                loss = tf.reduce_sum(_losses(fm, score, xb, yb, tau, scale, lam, kappa))
            return tape.gradient(loss, xb)

        _GRAD_FNS[key] = grad
    return _GRAD_FNS[key]


def _matching_grad_fn(fm, k: int):
    """Traced gradient of ``||r(x) - goal||^2`` (r: output ``k`` of ``fm``), cached."""
    import tensorflow as tf

    key = (fm, "matching", k)
    if key not in _GRAD_FNS:

        @tf.function(reduce_retracing=True)
        def grad(xb, goal):
            with tf.GradientTape() as tape:
                tape.watch(xb)
                rep = fm(xb, training=False)[k]
                rep = tf.reshape(tf.cast(rep, tf.float32), (tf.shape(xb)[0], -1))
                loss = tf.reduce_sum(tf.square(rep - goal))
            return tape.gradient(loss, xb)

        _GRAD_FNS[key] = grad
    return _GRAD_FNS[key]


def _losses(fm, score, x, y, tau, scale, lam, kappa):
    import tensorflow as tf

    _, z = fm(x, training=False)
    z = tf.cast(z, tf.float32)
    true = tf.gather(z, y, axis=1, batch_dims=1)
    other = tf.reduce_max(z - 1e9 * tf.one_hot(y, tf.shape(z)[1]), axis=1)
    mis = tf.nn.relu(true - other + kappa)
    if score is None:
        return mis
    # Gate the detector term on misclassification: before, raising a confidence score
    # would raise the TRUE class and undo the attack.
    gate = tf.stop_gradient(tf.cast(other > true, tf.float32))
    return mis + lam * gate * tf.nn.relu(tau - score(z)) / scale


def evades(fm, x, y, accept: Callable) -> np.ndarray:
    """Which inputs are misclassified and accepted by the detector.

    ``fm`` returns ``(features, logits)``; ``accept(features, logits)`` returns a bool array.
    """
    out = []
    for i in range(0, len(x), 256):
        f, z = fm(x[i : i + 256], training=False)
        f, z = np.asarray(f).reshape(len(z), -1), np.asarray(z)
        out.append((z.argmax(1) != y[i : i + 256]) & accept(f, z))
    return np.concatenate(out) if out else np.zeros(0, bool)


def joint_pgd(
    fm,
    x,
    y,
    *,
    score: Callable | None,
    tau: float,
    scale: float,
    accept: Callable,
    eps: float,
    steps: int = 40,
    step_size: float | None = None,
    lam: float = 1.0,
    kappa: float = 0.0,
    restarts: int = 1,
    gradient: str = "exact",
    spsa_samples: int = 32,
    spsa_delta: float = 0.01,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    seed: int = 0,
):
    """L-inf PGD on the joint loss: misclassify *and* get accepted by the detector.

    Minimises ``max(z_y - max_{k != y} z_k + kappa, 0) + lam * m * max(tau - s, 0) / scale``,
    ``m = 1`` once misclassified, from clean, correctly classified ``x`` (``fm`` gives
    ``(features, logits)``). Each example keeps its first iterate that evades per ``accept``
    (the real detector); restarts after the first begin at a random point of the eps-ball.

    Parameters
    ----------
    score : callable or None
        ``Detector.score_tensor``; ``None`` or ``lam = 0``: plain PGD on the margin.
    step_size : float, optional
        Default ``2.5 * eps / steps`` (Madry et al.).
    gradient : {"exact", "spsa"}
        ``"spsa"`` uses :func:`spsa_gradient` with ``spsa_samples`` and ``spsa_delta``.

    Returns
    -------
    x_adv, success : ndarray of float32, ndarray of bool
        The evading iterate where one was found (else the last one), and whether it evades.
    """
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    alpha = 2.5 * eps / steps if step_size is None else step_size
    rng = np.random.default_rng(seed)
    yt_all = tf.constant(y, dtype=tf.int64)

    grad_fn = _grad_fn(fm, None if lam == 0.0 else score)
    consts = [tf.constant(v, tf.float32) for v in (tau, scale, lam, kappa)]

    def grad(xb, yb):
        return grad_fn(xb, yb, *consts)

    def loss_np(xb, yb):
        return _losses(fm, score, tf.constant(xb), tf.constant(yb), tau, scale, lam, kappa).numpy()

    best = x.copy()
    success = np.zeros(len(x), bool)
    for r in range(restarts):
        todo = np.flatnonzero(~success)
        if len(todo) == 0:
            break
        x0 = x[todo]
        xa = x0.copy()
        if r > 0:
            xa = np.clip(
                x0 + rng.uniform(-eps, eps, x0.shape).astype(np.float32), clip_min, clip_max
            )
        active = np.arange(len(todo))
        for _ in range(steps):
            if len(active) == 0:
                break
            xb, yb = xa[active], y[todo[active]]
            if gradient == "exact":
                g = grad(tf.constant(xb), tf.gather(yt_all, todo[active])).numpy()
            else:
                g = spsa_gradient(
                    lambda v, yb=yb: loss_np(v, yb),
                    xb,
                    samples=spsa_samples,
                    delta=spsa_delta,
                    rng=rng,
                )
            xb = xb - alpha * np.sign(g)
            xb = np.clip(np.clip(xb, x0[active] - eps, x0[active] + eps), clip_min, clip_max)
            xa[active] = xb
            ok = evades(fm, xb, yb, accept)
            if ok.any():
                idx = todo[active[ok]]
                best[idx] = xb[ok]
                success[idx] = True
                active = active[~ok]
        left = ~success[todo]
        best[todo[left]] = xa[left]
    return best.astype(np.float32), success


def representation_matching(
    fm,
    x,
    y,
    targets,
    *,
    layer: str,
    accept: Callable,
    eps: float,
    steps: int = 40,
    step_size: float | None = None,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
):
    """L-inf PGD toward the logits (``layer="logits"``) or features of natural ``targets``.

    Minimises ``||r(x') - r(t)||^2``; ``targets`` (same shape as ``x``) are correctly classified,
    accepted images of another class. Parameters and returns as in :func:`joint_pgd`.
    """
    import tensorflow as tf

    if layer not in ("logits", "features"):
        raise ValueError(f"layer must be 'logits' or 'features'; got {layer!r}.")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    k = 1 if layer == "logits" else 0
    goal_all = []
    for i in range(0, len(targets), 256):
        out = fm(targets[i : i + 256], training=False)[k]
        goal_all.append(np.asarray(out).reshape(len(out), -1))
    goal_all = np.concatenate(goal_all).astype(np.float32)
    alpha = 2.5 * eps / steps if step_size is None else step_size

    grad = _matching_grad_fn(fm, k)

    xa = x.copy()
    best = x.copy()
    success = np.zeros(len(x), bool)
    active = np.arange(len(x))
    for _ in range(steps):
        if len(active) == 0:
            break
        xb = xa[active]
        g = grad(tf.constant(xb), tf.constant(goal_all[active])).numpy()
        xb = np.clip(
            np.clip(xb - alpha * np.sign(g), x[active] - eps, x[active] + eps), clip_min, clip_max
        )
        xa[active] = xb
        ok = evades(fm, xb, y[active], accept)
        best[active[ok]] = xb[ok]
        success[active[ok]] = True
        active = active[~ok]
    best[~success] = xa[~success]
    return best, success
