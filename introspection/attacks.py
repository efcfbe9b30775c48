"""Misclassified-example generators of Section 2.2: patch errors, FGSM, BIM, CW-L2, DeepFool.

Each takes a ``model`` that outputs logits, float32 images ``x`` (N, H, W, C) in its pixel
scale and integer labels ``y``. Only the images the model gets right are attacked (so each
kept error is the generator's doing), and only misclassified results are kept, in a
:class:`Generated`. :func:`patch_errors` (DeVries & Taylor, 2018); :func:`fgsm`, :func:`bim`
and :func:`carlini_wagner_l2` via cleverhans 4 (CW-L2 adapted in
:mod:`introspection._cleverhans`); :func:`deepfool`, written here (cleverhans 4 has none).
"""

from __future__ import annotations

import math
import weakref
from typing import Any, NamedTuple

import numpy as np

from . import _cleverhans
from .hardware import import_tensorflow

tf = import_tensorflow()  # before cleverhans imports it, without the start-up lines
# These cleverhans submodules do not import tensorflow-probability (broken by Keras 3).
from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method  # noqa: E402
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method  # noqa: E402
from cleverhans.tf2.utils import clip_eta  # noqa: E402
from tqdm import tqdm  # noqa: E402

__all__ = [
    "DEEPFOOL_STEP_EPS", "Generated", "bim", "carlini_wagner_l2", "deepfool", "deepfool_perturb",
    "fgsm", "patch_errors", "predict_labels",
]

#: Added to DeepFool's step as in the reference (LTS4/DeepFool), so that it lands just
#: past the linearised boundary: ``r_i = (pert + 1e-4) * w / ||w||``.
DEEPFOOL_STEP_EPS = 1e-4

# Tolerance when checking that the input images lie inside [clip_min, clip_max].
_RANGE_TOL = 1e-5


class Generated(NamedTuple):
    """Output of every generator: kept (misclassified) examples and their provenance.

    Attributes
    ----------
    x : np.ndarray
        float32, shape ``(kept, H, W, C)``.
    source_index : np.ndarray
        int64, shape ``(kept,)``: row of each example's source image in the input ``x``.
    stats : dict
        JSON-serialisable: ``n_input``, ``n_clean_correct`` (= ``attempted``), ``kept``,
        ``success_rate`` (kept / attempted), ``mean_linf``, ``max_linf``, ``mean_l2``,
        ``max_l2``, ``mean_rel_l2`` (``None`` over an empty set), plus the generator's.
    """

    x: np.ndarray
    source_index: np.ndarray
    stats: dict


# Validation


def _as_images(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, H, W, C); got an array of shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"x must be numeric; got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    return x


def _as_labels(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(
            f"y must be a 1-D array of integer class ids, shape (N,); got shape {y.shape}"
        )
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels but x has {n} images")
    if np.issubdtype(y.dtype, np.floating):
        if y.size and not np.all(y == np.round(y)):
            raise ValueError("y must hold integer class ids (got non-integer floats)")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer class ids; got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError("y must hold non-negative class ids")
    return y


def _check_clip(x: np.ndarray, clip_min: float, clip_max: float) -> tuple[float, float]:
    """Validate the pixel range and check that ``x`` lies inside it."""
    clip_min, clip_max = float(clip_min), float(clip_max)
    if not (math.isfinite(clip_min) and math.isfinite(clip_max)):
        raise ValueError("clip_min and clip_max must be finite")
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max; got {clip_min} >= {clip_max}")
    if x.size:
        lo, hi = float(x.min()), float(x.max())
        if lo < clip_min - _RANGE_TOL or hi > clip_max + _RANGE_TOL:
            raise ValueError(
                f"x values lie in [{lo:g}, {hi:g}], outside [clip_min, clip_max] = "
                f"[{clip_min:g}, {clip_max:g}] (wrong pixel scale?)"
            )
    return clip_min, clip_max


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_nonneg_float(value: Any, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value}")
    return value


# Inference


# Traced logits per (model, sample shape), so TensorFlow does not retrace every batch.
_LOGITS_FNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _logits_fn(model: Any, sample_shape: tuple[int, ...]):
    """Return a traced ``x -> model(x, training=False)`` for any batch size (cached)."""
    per_model = _LOGITS_FNS.setdefault(model, {})
    key = tuple(int(d) for d in sample_shape)
    if key not in per_model:

        @tf.function(input_signature=[tf.TensorSpec((None, *key), tf.float32)])
        def logits(x):
            return model(x, training=False)

        per_model[key] = logits
    return per_model[key]


def _predict_with(fn, x: np.ndarray, batch_size: int) -> np.ndarray:
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), batch_size):
        logits = fn(tf.constant(x[start : start + batch_size]))
        out[start : start + batch_size] = np.argmax(logits.numpy(), axis=1)
    return out


def predict_labels(model: Any, x: Any, batch_size: int = 256) -> np.ndarray:
    """Predicted int64 class ids (argmax of the logits, ``training=False``), in batches."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2:
        raise ValueError(f"x must have a batch dimension; got shape {x.shape}")
    batch_size = _check_positive_int(batch_size, "batch_size")
    return _predict_with(_logits_fn(model, x.shape[1:]), x, batch_size)


def _clean_correct(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int):
    """Return the indices of the inputs classified correctly, and the traced logits fn."""
    fn = _logits_fn(model, x.shape[1:])
    if len(x) == 0:
        return np.empty(0, dtype=np.int64), fn
    n_out = int(fn(tf.constant(x[:1])).shape[-1])
    if y.max() >= n_out:
        raise ValueError(f"y holds class id {int(y.max())} but the model has {n_out} outputs")
    pred = _predict_with(fn, x, batch_size)
    return np.flatnonzero(pred == y).astype(np.int64), fn


def _prepare_attack(model: Any, x: Any, y: Any, clip_min: float, clip_max: float, batch_size: int):
    """Validate the inputs; return them with the correctly classified indices and logits fn."""
    x = _as_images(x)
    y = _as_labels(y, len(x))
    clip_min, clip_max = _check_clip(x, clip_min, clip_max)
    batch_size = _check_positive_int(batch_size, "batch_size")
    correct, fn = _clean_correct(model, x, y, batch_size)
    return x, y, clip_min, clip_max, batch_size, correct, fn


# Statistics


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _max_or_none(values: np.ndarray) -> float | None:
    return float(np.max(values)) if len(values) else None


def _perturbation_stats(x_adv: np.ndarray, x_src: np.ndarray) -> dict:
    """Mean/max L-inf and L2 norms of ``x_adv - x_src`` (per example, then averaged)."""
    n, d = len(x_adv), int(np.prod(x_adv.shape[1:]))
    delta = (x_adv.astype(np.float64) - x_src.astype(np.float64)).reshape(n, d)
    linf = np.abs(delta).max(axis=1) if n else np.empty(0)
    l2 = np.linalg.norm(delta, axis=1)
    src_norm = np.linalg.norm(x_src.astype(np.float64).reshape(n, d), axis=1)
    rel = l2[src_norm > 0] / src_norm[src_norm > 0]
    return {
        "mean_linf": _mean_or_none(linf), "max_linf": _max_or_none(linf),
        "mean_l2": _mean_or_none(l2), "max_l2": _max_or_none(l2), "mean_rel_l2": _mean_or_none(rel),
    }


def _base_stats(generator: str, x: np.ndarray, correct: np.ndarray, **settings) -> dict:
    """The statistics every generator starts with, then its ``settings``."""
    n_input, n_clean_correct = int(len(x)), int(len(correct))
    return dict(generator=generator, n_input=n_input, n_clean_correct=n_clean_correct, **settings)


def _finish(x, kept_x, kept_src, base, attempted, n_success=None, **extra) -> Generated:
    """The kept examples as a :class:`Generated`, with the statistics common to all.

    ``success_rate`` is ``n_success`` (default: the number kept) over ``attempted``.
    """
    kept_x, kept_src = np.ascontiguousarray(kept_x, dtype=np.float32), kept_src.astype(np.int64)
    n_success = len(kept_src) if n_success is None else n_success
    stats = {**base, "attempted": int(attempted), "kept": int(len(kept_src)),
             "success_rate": (n_success / attempted) if attempted else None, **extra}
    stats.update(_perturbation_stats(kept_x, x[kept_src]))
    return Generated(x=kept_x, source_index=kept_src, stats=stats)


def _attack_batches(x, y, correct, fn, batch_size, attack, base) -> Generated:
    """Run ``attack(idx)`` (a tensor of adversarial images) on ``correct`` in batches."""
    x_adv = np.empty((len(correct), *x.shape[1:]), dtype=np.float32)
    pred = np.empty(len(correct), dtype=np.int64)
    for start in range(0, len(correct), batch_size):
        idx = correct[start : start + batch_size]
        adv = attack(idx)
        x_adv[start : start + len(idx)] = adv.numpy()
        pred[start : start + len(idx)] = np.argmax(fn(adv).numpy(), axis=1)
    keep = pred != y[correct]
    return _finish(x, x_adv[keep], correct[keep], base, len(correct))


# Patch errors


def _apply_patches(
    images: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch_size: int, fill=0.0
) -> np.ndarray:
    """Copy of images with a ``patch_size`` square of ``fill`` (scalar or per channel)."""
    _, h, w, _ = images.shape
    r = np.arange(h)[None, :]
    c = np.arange(w)[None, :]
    in_r = (r >= rows[:, None]) & (r < rows[:, None] + patch_size)  # (n, H)
    in_c = (c >= cols[:, None]) & (c < cols[:, None] + patch_size)  # (n, W)
    mask = in_r[:, :, None] & in_c[:, None, :]  # (n, H, W)
    fill = np.asarray(fill, dtype=np.float32).reshape(1, 1, 1, -1)
    return np.where(mask[..., None], fill, images).astype(np.float32)


def _position_orders(rng: np.random.Generator, n: int, n_positions: int, n_tries: int):
    """Per image, ``n_tries`` distinct positions of ``range(n_positions)`` in random order."""
    out = np.empty((n, n_tries), dtype=np.int64)
    chunk = max(1, 2**22 // max(1, n_positions))
    for start in range(0, n, chunk):
        keys = rng.random((min(chunk, n - start), n_positions))
        if n_tries < n_positions:
            part = np.argpartition(keys, n_tries - 1, axis=1)[:, :n_tries]
            part_keys = np.take_along_axis(keys, part, axis=1)
            order = np.take_along_axis(part, np.argsort(part_keys, axis=1), axis=1)
        else:
            order = np.argsort(keys, axis=1)
        out[start : start + len(keys)] = order
    return out


def _patch_result(x, correct, base, n_examples, kept, counts, tries, rounds_run) -> Generated:
    """The errors :func:`_patch_rounds` kept, as a :class:`Generated` with its statistics."""
    if kept:
        gx, glocal, gpos = (np.concatenate(parts) for parts in zip(*kept, strict=True))
    else:
        gx = np.empty((0, *x.shape[1:]), dtype=np.float32)
        glocal, gpos = np.empty(0, dtype=np.int64), np.empty((0, 2), dtype=np.int64)
    n_kept, n_src = int(counts.sum()), len(correct)
    has_error = counts[counts > 0]
    gen = _finish(
        x, gx, correct[glocal], base, n_src, len(has_error), tries=int(tries),
        **{"yield": (n_kept / tries) if tries else None},
        tries_per_error=(tries / n_kept) if n_kept else None,
        mean_tries_per_source=(tries / n_src) if n_src else None, rounds=int(rounds_run),
        target_reached=bool(n_examples is not None and n_kept >= n_examples),
        n_sources_with_error=int(len(has_error)), errors_per_source_mean=_mean_or_none(has_error),
        errors_per_source_max=int(has_error.max()) if len(has_error) else 0,
    )
    gen.stats["patch_positions"] = gpos.astype(int).tolist()
    return gen


def _patch_rounds(try_patches, n_src, n_rounds, batch_size, n_examples, max_per_source, progress):
    """Run :func:`patch_errors`' rounds: every open source at its next position, in order.

    Returns the kept ``(images, local source ids, positions)`` per batch, the errors per
    source, the tries and the rounds run.
    """
    counts = np.zeros(n_src, dtype=np.int64)  # errors per attacked image
    kept = []
    n_kept = tries = rounds_run = 0
    for rnd in tqdm(range(n_rounds), desc="patch rounds", disable=not progress):
        open_idx = np.arange(n_src)
        if max_per_source is not None:
            open_idx = open_idx[counts < max_per_source]
        if len(open_idx) == 0:
            break
        rounds_run += 1
        for start in range(0, len(open_idx), batch_size):
            local = open_idx[start : start + batch_size]
            xb, pos, wrong = try_patches(local, rnd)
            n_eval, done = len(local), False
            if n_examples is not None and n_kept + len(wrong) >= n_examples:
                wrong = wrong[: n_examples - n_kept]
                n_eval, done = int(wrong[-1]) + 1, True
            tries += n_eval
            if len(wrong):
                kept.append((xb[wrong], local[wrong], pos[wrong]))
                counts[local[wrong]] += 1
                n_kept += len(wrong)
            if done:
                return kept, counts, tries, rounds_run
    return kept, counts, tries, rounds_run


def patch_errors(
    model: Any, x: Any, y: Any, *, n_examples: int | None = None, patch_size: int = 7,
    max_tries: int = 20, max_per_source: int | None = None, fill=0.0, batch_size: int = 256,
    seed: int = 0, progress: bool = False,
) -> Generated:
    """Errors made by black square patches (the paper's "errors", Section 2.2).

    Each correctly classified image gets a ``patch_size`` square of ``fill`` (one value or
    one per channel; DeVries & Taylor, 2018) at up to ``max_tries`` distinct random
    positions, in rounds over all images, so stopping at ``n_examples`` (``None``: run all
    rounds) spreads the errors over as many images as possible. Deterministic by ``seed``.

    Parameters
    ----------
    max_per_source : int or None
        Most errors kept per source image (``None``: up to ``max_tries``).

    Returns
    -------
    Generated
        ``stats`` adds ``tries``, ``yield`` (kept / tries), ``patch_positions`` (top-left
        corners) and per-source counts; ``success_rate``: sources with >= 1 error.
    """
    x = _as_images(x)
    y = _as_labels(y, len(x))
    _, h, w, _ = x.shape
    patch_size = _check_positive_int(patch_size, "patch_size")
    if patch_size > min(h, w):
        raise ValueError(f"patch_size={patch_size} does not fit in {h}x{w} images")
    max_tries = _check_positive_int(max_tries, "max_tries")
    if n_examples is not None:
        n_examples = _check_positive_int(n_examples, "n_examples")
    if max_per_source is not None:
        max_per_source = _check_positive_int(max_per_source, "max_per_source")
    batch_size = _check_positive_int(batch_size, "batch_size")
    seed = _check_positive_int(seed, "seed", minimum=0)
    fill = np.asarray(fill, dtype=np.float32).ravel()
    if fill.size not in (1, x.shape[-1]) or not np.all(np.isfinite(fill)):
        raise ValueError(f"fill must be one finite value or one per channel; got {fill!r}")

    n_pos_c = w - patch_size + 1
    n_positions = (h - patch_size + 1) * n_pos_c
    n_rounds = min(max_tries, n_positions)
    correct, fn = _clean_correct(model, x, y, batch_size)
    base = _base_stats(
        "patch_errors", x, correct, patch_size=patch_size, n_positions=int(n_positions),
        max_tries=int(n_rounds), max_per_source=max_per_source, n_examples=n_examples, seed=seed,
    )
    orders = _position_orders(np.random.default_rng(seed), len(correct), n_positions, n_rounds)

    def try_patches(local, rnd):
        """Patch the sources ``local`` at their ``rnd``-th position; the patched and wrong."""
        pos = orders[local, rnd]
        rows, cols = pos // n_pos_c, pos % n_pos_c
        xb = _apply_patches(x[correct[local]], rows, cols, patch_size, fill)
        pred = np.argmax(fn(tf.constant(xb)).numpy(), axis=1)
        return xb, np.stack([rows, cols], axis=1), np.flatnonzero(pred != y[correct[local]])

    found = _patch_rounds(
        try_patches, len(correct), n_rounds, batch_size, n_examples, max_per_source, progress
    )
    return _patch_result(x, correct, base, n_examples, *found)


# FGSM and BIM (cleverhans 4, TF2)


def _loss_model(model: Any, loss_on: str):
    """What cleverhans differentiates: the logits, or the probabilities taken as logits."""
    if loss_on == "logits":
        return model
    if loss_on == "probabilities":
        return lambda x: tf.nn.softmax(model(x))
    raise ValueError(f"loss_on must be 'logits' or 'probabilities'; got {loss_on!r}")


def fgsm(
    model: Any, x: Any, y: Any, *, eps: float, clip_min: float = 0.0, clip_max: float = 1.0,
    loss_on: str = "logits", batch_size: int = 256,
) -> Generated:
    """Untargeted L-inf FGSM (Goodfellow et al., 2015) with cleverhans 4.

    ``x_adv = clip(x + eps * sign(grad_x CE(logits(x), y)), clip_min, clip_max)``.

    Parameters
    ----------
    eps : float
        L-inf size of the perturbation, ``>= 0``.
    clip_min, clip_max : float
        Valid pixel range; ``x`` must lie inside it.
    loss_on : {"logits", "probabilities"}
        ``"probabilities"`` feeds the softmax to the cross-entropy as logits (a
        cleverhans-v3 wrapper of a softmax model): a much weaker gradient.

    Examples
    --------
    >>> gen = fgsm(model, x_test, y_test, eps=0.3)   # doctest: +SKIP
    >>> gen.stats["success_rate"]                     # doctest: +SKIP
    """
    eps = _check_nonneg_float(eps, "eps")
    loss_model = _loss_model(model, loss_on)
    x, y, clip_min, clip_max, batch_size, correct, fn = _prepare_attack(
        model, x, y, clip_min, clip_max, batch_size
    )
    base = _base_stats(
        "fgsm", x, correct, eps=eps, loss_on=loss_on, clip_min=clip_min, clip_max=clip_max
    )

    def attack(idx):
        return fast_gradient_method(
            loss_model, tf.constant(x[idx]), eps, np.inf, clip_min=clip_min, clip_max=clip_max,
            y=tf.constant(y[idx], dtype=tf.int64), targeted=False,
        )

    return _attack_batches(x, y, correct, fn, batch_size, attack, base)


def _bim_steps(loss_model, fn, xb, yb, eta, eps, eps_iter, nb_iter, clip_min, clip_max, early_stop):
    """BIM's loop written out, from ``xb + eta`` if given; ``early_stop`` freezes flipped ones."""
    adv = xb if eta is None else tf.clip_by_value(xb + eta, clip_min, clip_max)
    active = tf.ones(len(xb), dtype=tf.bool)
    for _ in range(nb_iter):
        step = fast_gradient_method(
            loss_model, adv, eps_iter, np.inf, clip_min=clip_min, clip_max=clip_max, y=yb
        )
        step = tf.clip_by_value(xb + clip_eta(step - xb, np.inf, eps), clip_min, clip_max)
        adv = tf.where(active[:, None, None, None], step, adv) if early_stop else step
        if early_stop:
            active &= tf.argmax(fn(adv), axis=1) == yb
    return adv


def bim(
    model: Any, x: Any, y: Any, *, eps: float, eps_iter: float | None = None, nb_iter: int = 20,
    clip_min: float = 0.0, clip_max: float = 1.0, rand_init: bool = False,
    early_stop: bool = False, loss_on: str = "logits", seed: int = 0, batch_size: int = 256,
) -> Generated:
    """Untargeted L-inf Basic Iterative Method (Kurakin et al., 2016) with cleverhans 4.

    ``nb_iter`` FGSM steps of ``eps_iter``, each projected onto the L-inf ``eps``-ball
    around ``x`` and clipped (cleverhans' ``basic_iterative_method`` with
    ``sanity_checks=False``: its asserts break under numpy 2).

    Parameters
    ----------
    eps_iter : float or None
        Step size, ``<= eps``; ``None`` means ``eps / 10``.
    rand_init, early_stop : bool
        Start from a uniform point of the eps-ball seeded by ``seed`` (Madry et al.'s PGD);
        freeze an image once misclassified. Both run the loop here: cleverhans has neither.
    loss_on : {"logits", "probabilities"}
        As for :func:`fgsm`.
    """
    eps = _check_nonneg_float(eps, "eps")
    eps_iter = eps / 10.0 if eps_iter is None else _check_nonneg_float(eps_iter, "eps_iter")
    if eps_iter > eps:
        raise ValueError(f"eps_iter must be <= eps; got eps_iter={eps_iter} > eps={eps}")
    nb_iter = _check_positive_int(nb_iter, "nb_iter")
    loss_model = _loss_model(model, loss_on)
    x, y, clip_min, clip_max, batch_size, correct, fn = _prepare_attack(
        model, x, y, clip_min, clip_max, batch_size
    )
    rand_init, early_stop = bool(rand_init), bool(early_stop)
    base = _base_stats(
        "bim", x, correct, eps=eps, eps_iter=eps_iter, nb_iter=nb_iter, rand_init=rand_init,
        early_stop=early_stop, loss_on=loss_on, clip_min=clip_min, clip_max=clip_max,
    )
    rng = np.random.default_rng(seed) if rand_init else None

    def attack(idx):
        xb, yb = tf.constant(x[idx]), tf.constant(y[idx], dtype=tf.int64)
        if not (rand_init or early_stop):
            return basic_iterative_method(
                loss_model, xb, eps, eps_iter, nb_iter, np.inf, clip_min=clip_min,
                clip_max=clip_max, y=yb, targeted=False, sanity_checks=False,
            )
        eta = rng.uniform(-eps, eps, size=xb.shape).astype(np.float32) if rand_init else None
        return _bim_steps(
            loss_model, fn, xb, yb, eta, eps, eps_iter, nb_iter, clip_min, clip_max, early_stop
        )

    return _attack_batches(x, y, correct, fn, batch_size, attack, base)


# Carlini-Wagner L2 (cleverhans 4, adapted in introspection._cleverhans)


def carlini_wagner_l2(
    model: Any, x: Any, y: Any, *, binary_search_steps: int = 5, max_iterations: int = 100,
    learning_rate: float = 0.01, initial_const: float = 1.0, confidence: float = 0.0,
    clip_min: float = 0.0, clip_max: float = 1.0, batch_size: int = 256,
    lr_schedule: str = "constant",
) -> Generated:
    """Untargeted Carlini-Wagner L2 attack (Carlini & Wagner, S&P 2017), cleverhans 4.

    Minimises ``||x' - x||_2^2 + c * max(z_y - max_{k != y} z_k, -confidence)`` over
    ``x' = (tanh(w) + 1) / 2`` (rescaled to the clip range) with Adam, bisecting ``c``
    from ``initial_const``; keeps the smallest successful perturbation.

    Parameters
    ----------
    max_iterations : int
        Adam steps per bisection step (reference: 10,000; fewer give larger
        perturbations, never false successes).
    confidence : float
        Logit margin ``kappa`` required of a success.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"`` decays the step to zero within each bisection step, removing the
        noise floor of a constant step: with few iterations, much smaller perturbations
        when the minimal one is small (CIFAR-10), larger when it is large (MNIST).
    """
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}.")
    binary_search_steps = _check_positive_int(binary_search_steps, "binary_search_steps")
    max_iterations = _check_positive_int(max_iterations, "max_iterations")
    learning_rate = _check_nonneg_float(learning_rate, "learning_rate")
    initial_const = _check_nonneg_float(initial_const, "initial_const")
    confidence = _check_nonneg_float(confidence, "confidence")
    x, y, clip_min, clip_max, batch_size, correct, fn = _prepare_attack(
        model, x, y, clip_min, clip_max, batch_size
    )
    settings = dict(
        binary_search_steps=binary_search_steps, max_iterations=max_iterations,
        learning_rate=learning_rate, initial_const=initial_const, lr_schedule=lr_schedule,
        confidence=confidence, clip_min=clip_min, clip_max=clip_max,
    )

    def attack(idx):
        # No ``y``: given one, cleverhans 4 attacks *targeted*. Untargeted, it uses the
        # predictions, which are the true labels here (only correct inputs are attacked).
        cw = _cleverhans.CarliniWagnerL2(model, batch_size=len(idx), **settings)
        return tf.constant(cw.attack(x[idx]))

    base = _base_stats("carlini_wagner_l2", x, correct, **settings)
    return _attack_batches(x, y, correct, fn, batch_size, attack, base)


# DeepFool


def _deepfool_grads_fn(model: Any, sample_shape: tuple[int, ...], n_cand: int):
    """Traced ``(x, k0, cand) -> (f, w)``: ``f[b, j] = z[cand[b, j]] - z[k0[b]]``, w = grad f."""
    spec_x = tf.TensorSpec((None, *sample_shape), tf.float32)
    spec_k = tf.TensorSpec((None,), tf.int64)
    spec_c = tf.TensorSpec((None, n_cand), tf.int64)

    # One forward, n_cand backward passes on one tape: examples do not interact in inference
    # mode. Faster on CPU than batch_jacobian or a tiled batch (0.29 s vs 0.40 s, 0.48 s).
    @tf.function(input_signature=[spec_x, spec_k, spec_c])
    def grads(x, k0, cand):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            logits = model(x, training=False)
            f0 = tf.gather(logits, k0, batch_dims=1)
            diffs = [tf.gather(logits, cand[:, j], batch_dims=1) - f0 for j in range(n_cand)]
            totals = [tf.reduce_sum(d) for d in diffs]
        ws = [tape.gradient(t, x) for t in totals]
        del tape
        return tf.stack(diffs, axis=1), tf.stack(ws, axis=1)

    return grads


def _validate_deepfool_args(overshoot, max_iter, num_classes, batch_size):
    overshoot = _check_nonneg_float(overshoot, "overshoot")
    max_iter = _check_positive_int(max_iter, "max_iter")
    num_classes = _check_positive_int(num_classes, "num_classes", minimum=2)
    batch_size = _check_positive_int(batch_size, "batch_size")
    return overshoot, max_iter, num_classes, batch_size


def _deepfool_step(f: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(|f_l| / ||w_l|| + eps) * w_l / ||w_l||`` toward each row's nearest boundary ``l``."""
    w_norm = np.linalg.norm(w, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pert = np.where(w_norm > 0, np.abs(f) / w_norm, np.inf)
    best = np.argmin(pert, axis=1)
    rows = np.arange(len(f))
    pert_l, w_l, wn_l = pert[rows, best], w[rows, best], w_norm[rows, best]
    ok = np.isfinite(pert_l)  # all-zero gradients: no step possible
    step = np.zeros_like(w_l)
    step[ok] = ((pert_l[ok] + DEEPFOOL_STEP_EPS) / wn_l[ok])[:, None] * w_l[ok]
    return step


def _deepfool_batch(fn_logits, grads_fn, x0, m, scale, max_iter, clip_min, clip_max):
    """DeepFool on one batch; returns (x_adv, n_iter). Flipped examples drop out."""
    b, shape = len(x0), x0.shape[1:]
    x0_flat = x0.reshape(b, -1)
    order = np.argsort(-fn_logits(tf.constant(x0)).numpy(), axis=1, kind="stable")[:, :m]
    k0, cand = order[:, 0].astype(np.int64), order[:, 1:].astype(np.int64)
    r_tot = np.zeros(x0_flat.shape, dtype=np.float32)
    xb = x0_flat.copy()
    iters = np.zeros(b, dtype=np.int64)
    active = np.ones(b, dtype=bool)  # clean prediction == k0 by construction
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        x_i = tf.constant(xb[idx].reshape(len(idx), *shape))
        f, w = grads_fn(x_i, tf.constant(k0[idx]), tf.constant(cand[idx]))
        r_tot[idx] += _deepfool_step(f.numpy(), w.numpy().reshape(len(idx), m - 1, -1))
        xb[idx] = np.clip(x0_flat[idx] + scale * r_tot[idx], clip_min, clip_max)
        iters[idx] += 1
        logits = fn_logits(tf.constant(xb[idx].reshape(len(idx), *shape))).numpy()
        active[idx[np.argmax(logits, axis=1) != k0[idx]]] = False
    return xb.reshape(x0.shape), iters


def deepfool_perturb(
    model: Any, x: Any, *, overshoot: float = 0.02, max_iter: int = 50, num_classes: int = 10,
    clip_min: float = 0.0, clip_max: float = 1.0, batch_size: int = 128, progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-class L2 DeepFool (Moosavi-Dezfooli et al., 2016, Algorithm 2), batched.

    From ``x_0 = x0``, with clean prediction ``k0`` and candidates ``C`` (the top
    ``num_classes`` clean classes but ``k0``), iterate on the logits ``f``::

        w_j = grad f_j(x_i) - grad f_k0(x_i),   f'_j = f_j(x_i) - f_k0(x_i)   (j in C)
        l   = argmin_j |f'_j| / ||w_j||_2
        r_i = (|f'_l| / ||w_l|| + 1e-4) * w_l / ||w_l||
        r_tot += r_i
        x_{i+1} = clip(x0 + (1 + overshoot) * r_tot, clip_min, clip_max)

    until ``argmax f(x_{i+1}) != k0`` or ``max_iter`` iterations, as in the reference
    implementation (the ``1e-4`` is :data:`DEEPFOOL_STEP_EPS`). Flipped examples are
    frozen and dropped from later passes; examples of a batch must not interact.

    Returns
    -------
    x_adv, n_iter : np.ndarray
        The final iterate of **every** input, flipped or not; the iterations run on each.
    """
    x = _as_images(x)
    clip_min, clip_max = _check_clip(x, clip_min, clip_max)
    overshoot, max_iter, num_classes, batch_size = _validate_deepfool_args(
        overshoot, max_iter, num_classes, batch_size
    )
    fn_logits = _logits_fn(model, x.shape[1:])
    x_adv, n_iter = x.copy(), np.zeros(len(x), dtype=np.int64)
    if len(x) == 0:
        return x_adv, n_iter
    n_out = int(fn_logits(tf.constant(x[:1])).shape[-1])
    m = min(num_classes, n_out)  # candidate set: top-m clean classes (incl. k0)
    if m < 2:
        raise ValueError(f"the model has {n_out} output(s); DeepFool needs >= 2 classes")
    grads_fn = _deepfool_grads_fn(model, x.shape[1:], m - 1)
    scale = np.float32(1.0 + overshoot)
    for start in tqdm(range(0, len(x), batch_size), desc="deepfool", disable=not progress):
        sl = slice(start, start + batch_size)
        x_adv[sl], n_iter[sl] = _deepfool_batch(
            fn_logits, grads_fn, x[sl], m, scale, max_iter, clip_min, clip_max
        )
    return x_adv, n_iter


def deepfool(
    model: Any, x: Any, y: Any, *, overshoot: float = 0.02, max_iter: int = 50,
    num_classes: int = 10, clip_min: float = 0.0, clip_max: float = 1.0, batch_size: int = 128,
    progress: bool = False,
) -> Generated:
    """DeepFool adversarial examples (see :func:`deepfool_perturb`), kept if misclassified.

    Returns
    -------
    Generated
        ``stats`` adds ``mean_iter`` (over attempted), ``mean_iter_kept``, ``max_iter_run``,
        ``n_hit_max_iter`` and the settings.
    """
    overshoot, max_iter, num_classes, batch_size = _validate_deepfool_args(
        overshoot, max_iter, num_classes, batch_size
    )
    x, y, clip_min, clip_max, batch_size, correct, fn = _prepare_attack(
        model, x, y, clip_min, clip_max, batch_size
    )
    x_adv, n_iter = deepfool_perturb(
        model, x[correct], overshoot=overshoot, max_iter=max_iter, num_classes=num_classes,
        clip_min=clip_min, clip_max=clip_max, batch_size=batch_size, progress=progress,
    )
    keep = _predict_with(fn, x_adv, batch_size) != y[correct]
    base = _base_stats(
        "deepfool", x, correct, overshoot=overshoot, max_iter=max_iter, num_classes=num_classes,
        clip_min=clip_min, clip_max=clip_max, mean_iter=_mean_or_none(n_iter),
        mean_iter_kept=_mean_or_none(n_iter[keep]),
        max_iter_run=int(n_iter.max()) if len(n_iter) else 0,
        n_hit_max_iter=int(np.sum(n_iter >= max_iter)),
    )
    return _finish(x, x_adv[keep], correct[keep], base, len(correct))
