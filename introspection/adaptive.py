"""Adaptive white-box attacks on classifier + detector (chapter 11 of the book).

An input *evades* when misclassified **and** accepted (score >= the threshold accepting 95 %
of correct clean images, :func:`threshold_at_tpr`); Carlini & Wagner 2017, Tramèr et al. 2020.
Entry points: :func:`joint_pgd` (L-inf PGD on margin + gated detector term),
:func:`representation_matching` (feature adversaries, Sabour et al., 2016) and
:func:`spsa_gradient` (gradient-free check for obfuscation, Uesato et al., 2018).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import models, splits
from .classifier import keras_model
from .config import Config
from .generation import Generation, load_in_distribution
from .pipeline import Fitted
from .runner import progress_bar, run_stage, write_table

__all__ = [
    "ADAPTIVE_EPS_FACTORS", "ADAPTIVE_DETECTORS", "adaptive_attacks", "pick_targets",
    "threshold_at_tpr", "joint_pgd", "representation_matching", "spsa_gradient", "evades",
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


def _traced_grad(key, loss):
    """Traced gradient of ``loss(xb, *args)`` with respect to ``xb``, cached under ``key``."""
    import tensorflow as tf

    if key not in _GRAD_FNS:
        if len(_GRAD_FNS) > 64:
            _GRAD_FNS.clear()

        @tf.function(reduce_retracing=True)
        def grad(xb, *args):
            with tf.GradientTape() as tape:
                tape.watch(xb)
                value = loss(xb, *args)
            return tape.gradient(value, xb)

        _GRAD_FNS[key] = grad
    return _GRAD_FNS[key]


def _grad_fn(fm, score):
    """Gradient of the summed joint loss; tensor hyper-parameters avoid retracing."""
    import tensorflow as tf

    def loss(xb, yb, tau, scale, lam, kappa):
        return tf.reduce_sum(_losses(fm, score, xb, yb, tau, scale, lam, kappa))

    return _traced_grad((fm, score), loss)


def _matching_grad_fn(fm, k: int):
    """Gradient of ``||r(x) - goal||^2`` (r: output ``k`` of ``fm``)."""
    import tensorflow as tf

    def loss(xb, goal):
        rep = tf.cast(fm(xb, training=False)[k], tf.float32)
        return tf.reduce_sum(tf.square(tf.reshape(rep, (tf.shape(xb)[0], -1)) - goal))

    return _traced_grad((fm, "matching", k), loss)


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
    fm, x, y, *, score: Callable | None, tau: float, scale: float, accept: Callable, eps: float,
    steps: int = 40, step_size: float | None = None, lam: float = 1.0, kappa: float = 0.0,
    restarts: int = 1, gradient: str = "exact", spsa_samples: int = 32, spsa_delta: float = 0.01,
    clip_min: float = 0.0, clip_max: float = 1.0, seed: int = 0,
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
    rng = np.random.default_rng(seed)
    yt_all = tf.constant(y, dtype=tf.int64)
    grad_fn = _grad_fn(fm, None if lam == 0.0 else score)
    consts = [tf.constant(v, tf.float32) for v in (tau, scale, lam, kappa)]

    def grad(xb, todo):
        if gradient == "exact":
            return grad_fn(tf.constant(xb), tf.gather(yt_all, todo), *consts).numpy()

        def loss_np(v, yb=y[todo]):
            return _losses(fm, score, tf.constant(v), tf.constant(yb), tau, scale, lam,
                           kappa).numpy()

        return spsa_gradient(loss_np, xb, samples=spsa_samples, delta=spsa_delta, rng=rng)

    best, success = x.copy(), np.zeros(len(x), bool)
    box = dict(eps=eps, alpha=2.5 * eps / steps if step_size is None else step_size,
               clip=(clip_min, clip_max))
    for r in range(restarts):
        todo = np.flatnonzero(~success)
        if len(todo) == 0:
            break
        x0 = x[todo]
        start = x0.copy()
        if r > 0:
            start = np.clip(
                x0 + rng.uniform(-eps, eps, x0.shape).astype(np.float32), clip_min, clip_max
            )
        _descend(fm, x0, start, y[todo], todo, grad, accept, steps, box, best, success)
    return best.astype(np.float32), success


def _descend(fm, x0, xa, y, todo, grad, accept, steps, box, best, success) -> None:
    """Signed-gradient steps from ``xa``; ``best``/``success`` (rows ``todo``) updated in place."""
    eps, alpha, (lo, hi) = box["eps"], box["alpha"], box["clip"]
    active = np.arange(len(todo))
    for _ in range(steps):
        if len(active) == 0:
            break
        xb = xa[active] - alpha * np.sign(grad(xa[active], todo[active]))
        xb = np.clip(np.clip(xb, x0[active] - eps, x0[active] + eps), lo, hi)
        xa[active] = xb
        ok = evades(fm, xb, y[active], accept)
        if ok.any():
            best[todo[active[ok]]] = xb[ok]
            success[todo[active[ok]]] = True
            active = active[~ok]
    left = ~success[todo]
    best[todo[left]] = xa[left]


def representation_matching(
    fm, x, y, targets, *, layer: str, accept: Callable, eps: float, steps: int = 40,
    step_size: float | None = None, clip_min: float = 0.0, clip_max: float = 1.0,
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
    matching = _matching_grad_fn(fm, k)

    def grad(xb, rows):
        return matching(tf.constant(xb), tf.constant(goal_all[rows])).numpy()

    box = dict(eps=eps, alpha=2.5 * eps / steps if step_size is None else step_size,
               clip=(clip_min, clip_max))
    best, success = x.copy(), np.zeros(len(x), bool)
    _descend(fm, x, x.copy(), y, np.arange(len(x)), grad, accept, steps, box, best, success)
    return best, success


# The stage: every attack at every radius against the paper's three detectors

#: L-inf radii of the adaptive attacks, as multiples of the paper's BIM/FGSM budget;
#: ``None`` is the unbounded attack (the whole pixel range).
ADAPTIVE_EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, None)

#: The paper's three detectors, each attacked in turn.
ADAPTIVE_DETECTORS = ("softmax_baseline", "trust_score", "introspection_net")


def _acceptors(cfg: Config, fitted: Fitted, taus: dict) -> dict:
    space = cfg["trust_feature"]
    if space == "pixels":
        raise ValueError(
            "The adaptive attacks need the Trust Score on features or logits, not pixels."
        )
    dets = fitted.detectors

    def make(m):
        det, tau = dets[m], taus[m]
        if m == "trust_score":
            return lambda f, z: det.score(f if space == "features" else z, z.argmax(1)) >= tau
        return lambda f, z: det.score(z) >= tau

    return {m: make(m) for m in ADAPTIVE_DETECTORS}


def _accept_all(f, z):
    return np.ones(len(z), bool)


def _evasion(a: _Attacked, attack, todo, evaded: dict, key: str) -> None:
    """Run ``attack(indices) -> x_adv`` on ``todo``; mark in ``evaded[(m, key)]`` who evades."""
    if len(todo) == 0:
        return
    x_adv = attack(todo)
    for m in ADAPTIVE_DETECTORS:
        evaded[(m, key)][todo] |= evades(a.fm, x_adv, a.y[todo], a.accept[m])


def adaptive_attacks(
    cfg: Config, gen: Generation, sets: splits.Splits, fitted: Fitted, paper_scores: dict,
    model=None, progress: bool = True,
):
    """Evasion rate of adaptive white-box attacks against each of the paper's detectors.

    An input *evades* when misclassified and scored at least the threshold accepting 95 %
    of correct clean test images. The first ``adaptive_n`` correct test-side sources are
    attacked at each radius ``factor * bim_eps`` (:data:`ADAPTIVE_EPS_FACTORS`) by ``pgd``
    (detector ignored), ``joint_pgd`` (``lam`` in {1, 10} x ``kappa`` in {0, median margin};
    not the Trust Score, which has no gradient), ``logit_matching`` and ``feature_matching``
    (toward an accepted image of the runner-up class); ``adaptive (best)``: any of them. An
    evasion counts at every larger radius; SPSA joint PGD on ``spsa_n`` images checks for
    obfuscated gradients. Cached as ``adaptive_results``.

    Returns
    -------
    tuple of (pandas.DataFrame, StageRun)
        Columns ``epsilon`` (empty = unbounded), ``eps_factor``, ``detector``, ``attack``,
        ``evasion_rate`` (%), ``n``; written to ``adaptive.csv``.
    """
    import pandas as pd

    def compute():
        model_ = keras_model(cfg, model)
        rows = _adaptive_rows(cfg, gen, sets, fitted, paper_scores, model_, progress)
        return pd.DataFrame(rows).to_dict(orient="list")

    stored, run = run_stage(cfg, "adaptive", "adaptive_results", compute)
    table = pd.DataFrame(stored)
    table = table[["epsilon", "eps_factor", "detector", "attack", "evasion_rate", "n"]]
    write_table(cfg, table, "adaptive.csv", index=False)
    return table, run


@dataclass
class _Attacked:
    """What the adaptive attacks of one run share: sources, targets and thresholds."""

    fm: object
    x: np.ndarray
    y: np.ndarray
    targets: np.ndarray
    taus: dict
    scales: dict
    accept: dict
    kappa: float


def _adaptive_setup(cfg, gen, sets, fitted, paper_scores, model) -> _Attacked:
    """The correctly classified test-side sources, their targets and the thresholds."""
    fm = models.feature_model(model)
    in_name = cfg.info["in_distribution"]
    label = paper_scores[in_name]["label"].astype(bool)
    taus = {m: threshold_at_tpr(paper_scores[in_name][m][label]) for m in ADAPTIVE_DETECTORS}
    scales = {m: float(np.std(paper_scores[in_name][m][label])) or 1.0 for m in taus}
    accept = _acceptors(cfg, fitted, taus)

    # Sources: correctly classified test-side images.
    ds_in = gen[in_name]
    x_pool, y_pool = load_in_distribution(cfg)
    test_src = np.sort(gen.partition[ds_in.pool][1])
    _, z_src = models.predict_features(model, x_pool[test_src])
    ok = z_src.argmax(1) == y_pool[test_src]
    src = test_src[ok][: cfg["adaptive_n"]]
    x, y, z = x_pool[src], y_pool[src], z_src[ok][: cfg["adaptive_n"]]
    margins = np.sort(z, axis=1)
    kappa = float(np.median(margins[:, -1] - margins[:, -2]))

    # Targets: natural test images accepted by every detector.
    rows = sets.test.of(in_name)
    cand = rows.index[rows.label == 1]
    f_c, z_c = ds_in.features[cand], ds_in.logits[cand]
    allowed = np.all([accept[m](f_c, z_c) for m in ADAPTIVE_DETECTORS], axis=0)
    pick = pick_targets(z, y, ds_in.y[cand], allowed, seed=cfg.stream("adaptive_targets"))
    return _Attacked(fm, x, y, ds_in.x[cand][pick], taus, scales, accept, kappa)


def _attack_at(cfg, a: _Attacked, fitted, eps: float, evaded: dict) -> None:
    """Every attack at one radius; ``evaded`` gathers who evades which detector."""
    steps, restarts = cfg["adaptive_steps"], cfg["adaptive_restarts"]
    seed = cfg.stream("adaptive_restarts")

    def pgd(t):
        return joint_pgd(
            a.fm, a.x[t], a.y[t], score=None, tau=0.0, scale=1.0, accept=_accept_all,
            eps=eps, steps=steps, restarts=restarts, seed=seed,
        )[0]  # fmt: skip

    _evasion(a, pgd, np.arange(len(a.x)), evaded, "pgd")

    def accept_all_three(f, zz):
        return np.all([a.accept[m](f, zz) for m in ADAPTIVE_DETECTORS], axis=0)

    for layer, key in (("logits", "logit_matching"), ("features", "feature_matching")):
        todo = np.flatnonzero(~np.all([evaded[(m, key)] for m in ADAPTIVE_DETECTORS], axis=0))

        def match(t, layer=layer):
            return representation_matching(
                a.fm, a.x[t], a.y[t], a.targets[t], layer=layer, accept=accept_all_three,
                eps=eps, steps=steps,
            )[0]  # fmt: skip

        _evasion(a, match, todo, evaded, key)
    configs = [(lam, kap) for lam in (1.0, 10.0) for kap in (0.0, a.kappa)]
    for m in ("softmax_baseline", "introspection_net"):
        for lam, kap in configs:
            todo = np.flatnonzero(~evaded[(m, "joint_pgd")])
            if len(todo) == 0:
                break
            _, ok_m = joint_pgd(
                a.fm, a.x[todo], a.y[todo], score=fitted.detectors[m].score_tensor,
                tau=a.taus[m], scale=a.scales[m], accept=a.accept[m], eps=eps, steps=steps,
                lam=lam, kappa=kap, restarts=restarts, seed=seed,
            )  # fmt: skip
            evaded[(m, "joint_pgd")][todo[ok_m]] = True


def _row(eps, factor, detector, attack, evaded) -> dict:
    return {"epsilon": eps, "eps_factor": factor, "detector": detector, "attack": attack,
            "evasion_rate": 100 * float(evaded.mean()), "n": len(evaded)}


def _adaptive_rows(cfg, gen, sets, fitted, paper_scores, model, progress) -> list[dict]:
    """The rows of :func:`adaptive_attacks`, computed."""
    a = _adaptive_setup(cfg, gen, sets, fitted, paper_scores, model)
    base_eps = cfg["bim_eps"]
    names = ("pgd", "joint_pgd", "logit_matching", "feature_matching")
    evaded = {(m, n): np.zeros(len(a.x), bool) for m in ADAPTIVE_DETECTORS for n in names}
    rows_out = []
    for factor in progress_bar(list(ADAPTIVE_EPS_FACTORS), "adaptive attacks (radii)", progress):
        eps = 1.0 if factor is None else factor * base_eps
        _attack_at(cfg, a, fitted, eps, evaded)
        for m in ADAPTIVE_DETECTORS:
            # the Trust Score has no gradient: no joint PGD
            own = [n for n in names if not (m == "trust_score" and n == "joint_pgd")]
            best = np.any([evaded[(m, n)] for n in own], axis=0)
            for n, v in [*[(n, evaded[(m, n)]) for n in own], ("adaptive (best)", best)]:
                rows_out.append(_row(None if factor is None else eps, factor, m, n, v))
    return rows_out + _spsa_rows(cfg, a, fitted, base_eps)


def _spsa_rows(cfg, a: _Attacked, fitted, eps: float) -> list[dict]:
    """Gradient-free check at the paper's radius: SPSA joint PGD on Introspection-Net."""
    n_s = min(cfg["spsa_n"], len(a.x))
    m = "introspection_net"
    kw = dict(score=fitted.detectors[m].score_tensor, tau=a.taus[m], scale=a.scales[m],
              accept=a.accept[m], eps=eps, steps=cfg["adaptive_steps"], lam=1.0,
              kappa=a.kappa, restarts=1, seed=cfg.stream("adaptive_restarts"))
    _, exact = joint_pgd(a.fm, a.x[:n_s], a.y[:n_s], **kw)
    _, spsa = joint_pgd(
        a.fm, a.x[:n_s], a.y[:n_s], gradient="spsa", spsa_samples=cfg["spsa_samples"], **kw
    )
    return [_row(eps, 1.0, m, "joint_pgd (exact, SPSA subset)", exact),
            _row(eps, 1.0, m, "joint_pgd (SPSA)", spsa)]
