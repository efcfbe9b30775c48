"""Figures of the book: one message each, the same colours in every chapter.

Colours go by a dataset's role in an experiment (:data:`ROLE_COLORS`), not its name:
CIFAR-10 is in-distribution in one experiment, cross-dataset OOD in the other. Figure
functions build a pyplot Figure in the module's style (global rcParams untouched), show
nothing and return it; :func:`save_figure` writes it. Metrics follow
:mod:`introspection.metrics`: "correct" is positive, tables hold percent.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from scipy.special import softmax as _softmax
from sklearn.metrics import roc_curve

from introspection.metrics import (
    METRICS,
    auroc,
    check_correct_mask,
    check_in_scores,
    check_ood_scores,
    fpr_at_tpr,
)

__all__ = [
    "DATASET_LABELS", "EXPERIMENTS", "METHOD_COLORS", "METHOD_LABELS", "METRIC_LABELS",
    "OKABE_ITO", "ROLES", "ROLE_COLORS", "adaptive_curves", "auroc_grid", "dataset_color",
    "dataset_label", "dataset_role", "heatmap", "image_grid", "learning_curves",
    "logit_distributions", "method_label", "metric_comparison", "min_max_scatter",
    "protocol_moves", "roc_grid", "save_figure", "seed_spread", "subsample_indices",
]

# Names, roles and colours
#: Okabe & Ito (2008) colour-blind-safe palette (plus a grey).
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}
_GREY = "#999999"

# Datasets that play the same role, under the same name, in both experiments.
_SHARED = ("errors", "fgsm", "bim", "deepfool", "gaussian", "uniform")

#: Datasets of each experiment; the first one is the in-distribution dataset.
EXPERIMENTS = {
    "mnist": ("mnist", *_SHARED, "cifar10", "fashion_mnist"),
    "cifar10": ("cifar10", *_SHARED, "mnist", "fashion_mnist"),
}

#: The roles a dataset can play in an experiment, in the book's legend order.
ROLES = ("in_distribution", *_SHARED, "cross_dataset", "fashion_mnist")

#: Role -> hex colour (fixed for the whole book).
ROLE_COLORS = {
    "in_distribution": OKABE_ITO["blue"], "errors": OKABE_ITO["orange"],
    "fgsm": OKABE_ITO["vermillion"], "bim": OKABE_ITO["reddish_purple"],
    "deepfool": OKABE_ITO["sky_blue"], "gaussian": _GREY, "uniform": OKABE_ITO["black"],
    "cross_dataset": OKABE_ITO["bluish_green"], "fashion_mnist": OKABE_ITO["yellow"],
}

#: Dataset name -> display name.
DATASET_LABELS = {
    "mnist": "MNIST", "cifar10": "CIFAR-10", "errors": "Errors (black patches)", "fgsm": "FGSM",
    "bim": "BIM", "deepfool": "DeepFool", "gaussian": "Gaussian noise",
    "uniform": "Uniform noise", "fashion_mnist": "Fashion-MNIST",
    "cw_l2": "CW-L2 (never trained on)", "pgd": "PGD (never trained on)",
}

# Attacks generated beyond the paper's datasets (same images in both experiments).
_EXTRA_DATASETS = ("cw_l2", "pgd")

#: Detector name -> display name.
METHOD_LABELS = {
    "softmax_baseline": "Softmax Baseline", "trust_score": "Trust Score",
    "introspection_net": "Introspection-Net", "max_logit": "MaxLogit", "energy": "Energy",
    "odin": "ODIN", "mahalanobis": "Mahalanobis",
    "mahalanobis_preprocessed": "Mahalanobis + pre-proc.",
}

#: Detector name -> hex colour (Okabe-Ito; the paper's three first).
METHOD_COLORS = {
    "softmax_baseline": OKABE_ITO["orange"], "trust_score": OKABE_ITO["reddish_purple"],
    "introspection_net": OKABE_ITO["blue"], "max_logit": OKABE_ITO["bluish_green"],
    "energy": OKABE_ITO["vermillion"], "odin": OKABE_ITO["sky_blue"],
    "mahalanobis": OKABE_ITO["black"], "mahalanobis_preprocessed": _GREY,
}

# Colours given, in order, to detectors not in METHOD_COLORS (e.g. ablation variants):
# those of the detectors after the paper's three.
_EXTRA_METHOD_COLORS = tuple(METHOD_COLORS.values())[3:]

#: Metric column (:data:`introspection.metrics.METRICS`) -> axis label (percent).
METRIC_LABELS = {
    "fpr_at_95tpr": "FPR at 95 % TPR (%, lower is better)", "auroc": "AUROC (%)",
    "aupr_in": "AUPR-In (%)", "aupr_out": "AUPR-Out (%)",
}

_PAPER_MARKER = {"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"}

# Applied with plt.style.context while a figure is built (never globally).
_STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "legend.frameon": False, "figure.dpi": 100, "figure.constrained_layout.use": True,
    "image.interpolation": "nearest",
}


def _styled(func):
    """Build the figure inside the module's style context."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with plt.style.context(_STYLE):
            result = func(*args, **kwargs)
            # A session's first figure loads the backend, which turns interactive mode on;
            # leaving the context would turn it off (no more inline figures): keep it.
            interactive = matplotlib.is_interactive()
        matplotlib.interactive(interactive)
        return result

    return wrapper


def _check_experiment(experiment: str) -> tuple[str, ...]:
    if experiment not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {experiment!r}; "
                         f"expected one of {sorted(EXPERIMENTS)}.")
    return EXPERIMENTS[experiment]


def dataset_role(name: str, experiment: str) -> str:
    """Role of a dataset in an experiment (:data:`ROLES`); ValueError if not part of it.

    ``"in_distribution"`` for the experiment's own dataset, ``"cross_dataset"`` for the
    other experiment's, otherwise the dataset's name.

    Examples
    --------
    >>> dataset_role("cifar10", "mnist"), dataset_role("cifar10", "cifar10")
    ('cross_dataset', 'in_distribution')
    """
    datasets = _check_experiment(experiment)
    if name not in datasets:
        raise ValueError(f"Unknown dataset {name!r} for experiment {experiment!r}; "
                         f"expected one of {list(datasets)}.")
    if name == experiment:
        return "in_distribution"
    if name in EXPERIMENTS:
        return "cross_dataset"
    return name


def dataset_color(name: str, experiment: str) -> str:
    """Hex colour ``"#RRGGBB"`` of a dataset, fixed by its role (:data:`ROLE_COLORS`)."""
    return ROLE_COLORS[dataset_role(name, experiment)]


def dataset_label(name: str, experiment: str) -> str:
    """Display name of a dataset (:data:`DATASET_LABELS`), checked against the experiment."""
    if name in _EXTRA_DATASETS:
        _check_experiment(experiment)
    else:
        dataset_role(name, experiment)
    return DATASET_LABELS[name]


def method_label(name: str) -> str:
    """Display name of a detector (:data:`METHOD_LABELS`); unknown names unchanged."""
    return METHOD_LABELS.get(name, name)


def _method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Fixed colours for known detectors, further palette colours for the others."""
    extra = iter(_EXTRA_METHOD_COLORS)
    return {m: METHOD_COLORS[m] if m in METHOD_COLORS else next(extra, _GREY) for m in methods}


# Input helpers
def _ordered(values) -> list:
    """The distinct values, in order of first appearance."""
    return list(dict.fromkeys(values))


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


def _finite_array(values, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_datasets(values: Mapping, experiment: str, what: str) -> None:
    if not values:
        raise ValueError(f"{what} is empty.")
    for name in values:
        dataset_role(name, experiment)


def _grid(n: int, ncols: int, panel_size: tuple[float, float], **kwargs):
    """A figure with ``n`` panels on a grid; unused grid cells are removed."""
    ncols = min(_check_count(ncols, "ncols"), n)
    nrows = math.ceil(n / ncols)
    figsize = (panel_size[0] * ncols, panel_size[1] * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def _dataset_rows(ax, datasets: Sequence[str], experiment: str) -> None:
    """Name the y positions 0, 1, ... after the datasets, the first at the top."""
    ax.set_yticks(range(len(datasets)), [dataset_label(d, experiment) for d in datasets])
    ax.invert_yaxis()


def subsample_indices(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """Sorted int64 indices of a seeded subsample without replacement; all if n >= n_total."""
    if n_total < 0 or n < 1:
        raise ValueError(f"need n_total >= 0 and n >= 1; got n_total={n_total}, n={n}.")
    if n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n, replace=False)).astype(np.int64)


# Training
_METRIC_AXIS_LABELS = {
    "loss": "loss (training objective)", "mse": "mean squared error", "mae": "mean absolute error",
    **dict.fromkeys(("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy"),
                    "accuracy (fraction correct)"),
}


def _plot_history(ax, hist: Mapping, metric: str, n_epochs: int | None) -> int:
    """Plot ``metric``'s train and validation series; return the (common) number of epochs."""
    series = ((metric, "train", "-", OKABE_ITO["blue"]),
              (f"val_{metric}", "validation", "--", OKABE_ITO["vermillion"]))
    series = [s for s in series if s[0] in hist]
    if not series:
        raise ValueError(f"history has neither {metric!r} nor 'val_{metric}'.")
    for key, label, ls, color in series:
        y = _finite_array(np.asarray(hist[key], dtype=np.float64), f"history[{key!r}]", 1)
        if n_epochs is None:
            n_epochs = y.shape[0]
        elif y.shape[0] != n_epochs:
            raise ValueError(f"history[{key!r}] has {y.shape[0]} epochs; expected {n_epochs}.")
        ax.plot(np.arange(1, n_epochs + 1), y, ls, color=color, marker="o", ms=3, label=label)
    return n_epochs


@_styled
def learning_curves(history, *, metrics: Sequence[str] = ("loss", "accuracy"),
                    title: str | None = None, reference: Mapping[str, float] | None = None):
    """Training and validation curves, one panel per metric, x = epoch (1-based).

    Panel ``m`` plots ``history[m]`` and/or ``history["val_" + m]``, Keras-style per-epoch
    values (a mapping, or a ``keras.callbacks.History``). ``reference`` holds paper values,
    e.g. ``{"val_accuracy": 0.9965}``, each drawn as a dashed line in its key's panel.
    """
    hist = getattr(history, "history", history)
    if not isinstance(hist, Mapping):
        raise ValueError("history must be a mapping (or have a .history mapping).")
    metrics = list(metrics)
    if not metrics:
        raise ValueError("metrics is empty.")
    reference = dict(reference or {})
    for key in reference:
        if key.removeprefix("val_") not in metrics:
            raise ValueError(f"reference key {key!r} has no panel; metrics are {metrics}.")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics), 3.0), squeeze=False)
    n_epochs = None
    for ax, metric in zip(axes[0], metrics, strict=True):
        n_epochs = _plot_history(ax, hist, metric, n_epochs)
        for key, value in reference.items():
            if key.removeprefix("val_") == metric:
                ax.axhline(float(value), color="black", ls=(0, (5, 3)), lw=1.0, label="paper")
        ax.set(xlabel="epoch", ylabel=_METRIC_AXIS_LABELS.get(metric, metric))
        if n_epochs <= 12:
            ax.set_xticks(np.arange(1, n_epochs + 1))
            ax.set_xlim(0.5, n_epochs + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    if title is not None:
        fig.suptitle(title)
    return fig


# Images
@_styled
def image_grid(images, *, titles: Sequence[str] | None = None, ncols: int = 8,
               cmap: str = "gray", suptitle: str | None = None):
    """A grid of images without ticks, optionally titled one by one (``"pred 3 (0.99)"``).

    Parameters
    ----------
    images : array-like, shape (N, H, W), (N, H, W, 1) or (N, H, W, 3)
        Floats in [0, 1]; values outside are clipped.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise ValueError("images must have shape (N, H, W), (N, H, W, 1) or (N, H, W, 3); "
                         f"got {x.shape}.")
    n = x.shape[0]
    if n == 0:
        raise ValueError("images is empty.")
    if titles is not None:
        titles = list(titles)
        if len(titles) != n:
            raise ValueError(f"got {len(titles)} titles for {n} images.")
    x = np.clip(np.nan_to_num(x), 0.0, 1.0)
    gray = {"cmap": cmap, "vmin": 0.0, "vmax": 1.0} if x.ndim == 3 else {}
    fig, axes = _grid(n, ncols, (1.2, 1.35 if titles is not None else 1.2))
    for i, ax in enumerate(axes):
        ax.imshow(x[i], **gray)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


# Section 2: logit statistics (Figures 1 and 2)
def _draw_reference(ax, reference: Mapping[str, tuple[float, float]], experiment: str) -> None:
    """The paper's (mean, std) per dataset as diamonds with ± std bars above the histograms."""
    top = ax.get_ylim()[1]
    step = 0.07 * top
    for i, (d, (mean, std)) in enumerate(reference.items()):
        ax.errorbar([float(mean)], [top * 1.08 + i * step], xerr=[float(std)], fmt="D",
                    color=dataset_color(d, experiment), markerfacecolor="white",
                    markeredgecolor="black", markersize=5, capsize=3, elinewidth=1.4)
    ax.set_ylim(0, top * 1.08 + len(reference) * step + 0.02 * top)
    ax.plot([], [], color="black", ls="-", label="paper (mean ± std)", **_PAPER_MARKER)


@_styled
def logit_distributions(values: Mapping[str, np.ndarray], experiment: str, *,
                        xlabel: str = "mean logit", bins: int = 50,
                        reference: Mapping[str, tuple[float, float]] | None = None,
                        title: str | None = None):
    """Distribution of a per-example logit statistic per dataset (the paper's Figure 1).

    Density-normalised step histograms on ``bins`` common equal-width bins, coloured by role;
    the x axis reads ``"<xlabel> (logit units)"``.

    Parameters
    ----------
    values : mapping of str -> array-like of shape (n_d,)
        Dataset name -> the statistic per example (e.g. max logit); order = legend order.
    reference : mapping of str -> (float, float), optional
        Dataset -> the paper's (mean, std), drawn as a diamond with a ± std bar, e.g.
        :data:`introspection.paper.MAX_LOGIT` with ``xlabel="max logit"``.
    """
    _check_datasets(values, experiment, "values")
    bins = _check_count(bins, "bins")
    arrays = {d: _finite_array(v, f"values[{d!r}]", 1) for d, v in values.items()}
    reference = dict(reference or {})
    for d in reference:
        dataset_role(d, experiment)
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=bins)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for d, v in arrays.items():
        label = f"{dataset_label(d, experiment)} (n = {v.shape[0]})"
        ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.6,
                color=dataset_color(d, experiment), label=label)
    if reference:
        _draw_reference(ax, reference, experiment)
    ax.legend()
    ax.set(xlabel=f"{xlabel} (logit units)", title=title,
           ylabel="density (fraction of examples per logit unit)")
    return fig


@_styled
def min_max_scatter(logits: Mapping[str, np.ndarray], experiment: str, *, n: int = 300,
                    seed: int = 0, title: str | None = None):
    """Min vs max of the logits (left) and of the softmax (right): the paper's Figure 2.

    ``logits`` maps each dataset, in drawing and legend order, to its logits of shape
    (n_d, n_classes); at most ``n`` rows of each are drawn: ``subsample_indices(n_d, n, seed)``.
    """
    _check_datasets(logits, experiment, "logits")
    n = _check_count(n, "n")
    arrays = {}
    for d, z in logits.items():
        z = _finite_array(z, f"logits[{d!r}]", 2)
        if z.shape[1] < 2:
            raise ValueError(f"logits[{d!r}] needs at least 2 classes; got shape {z.shape}.")
        arrays[d] = z[subsample_indices(z.shape[0], n, seed)]
    fig, (ax_l, ax_s) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    for d, z in arrays.items():
        p = _softmax(z, axis=1)
        style = {"s": 9, "alpha": 0.45, "linewidths": 0, "color": dataset_color(d, experiment),
                 "label": dataset_label(d, experiment)}
        ax_l.scatter(z.min(axis=1), z.max(axis=1), **style)
        ax_s.scatter(p.min(axis=1), p.max(axis=1), **style)
    for ax, name, what in ((ax_l, "logit", "logits"), (ax_s, "softmax probability", "softmax")):
        ax.set(xlabel=f"min {name}", ylabel=f"max {name}", title=what)
    leg = ax_l.legend(markerscale=2, loc="best")
    for handle in leg.legend_handles:
        handle.set_alpha(1.0)
    if title is not None:
        fig.suptitle(title)
    return fig


# Section 3: detectors
def _roc_panel(ax, y, scores: Mapping[str, np.ndarray], colors) -> None:
    """ROC curves with their AUROC, the chance diagonal and the TPR = 0.95 markers on ``ax``."""
    ax.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=0.8, label="chance")
    ax.axhline(0.95, color="black", ls=":", lw=0.8, label="TPR = 0.95")
    for i, (m, s) in enumerate(scores.items()):
        area = auroc(y, s)  # validates the inputs first
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, color=colors[m], lw=1.3, label=method_label(m))
        ax.vlines(fpr_at_tpr(y, s, 0.95), 0, 0.95, colors=colors[m], linestyles=":", lw=0.9)
        ax.text(0.97, 0.05 + 0.09 * (len(scores) - 1 - i), f"AUROC {100 * area:.1f}",
                color=colors[m], ha="right", va="bottom", fontsize=7, transform=ax.transAxes,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")


@_styled
def roc_grid(in_correct, in_scores: Mapping[str, np.ndarray],
             ood_scores: Mapping[str, Mapping[str, np.ndarray]], experiment: str, *,
             ncols: int = 4, title: str | None = None):
    """One ROC panel per misclassification dataset, detectors overlaid, AUROC written in.

    Panel ``d`` is the sample of :func:`introspection.metrics.evaluation_table`:
    ``in_scores[m]`` (positive where ``in_correct``) against ``ood_scores[d][m]`` (negative).

    Parameters
    ----------
    in_correct : array-like of bool, shape (n_in,)
        True where the classifier is right on the in-distribution test example.
    in_scores : mapping of str -> array-like of shape (n_in,)
        Detector name -> scores; order = legend order.
    ood_scores : mapping of str -> mapping of str -> array-like
        Dataset name -> {detector -> scores}, same detectors as ``in_scores``; panel order.
    """
    correct = check_correct_mask(in_correct)
    if not in_scores:
        raise ValueError("in_scores is empty.")
    _check_datasets(ood_scores, experiment, "ood_scores")
    methods = list(in_scores)
    in_arrays = check_in_scores(correct, in_scores)
    check_ood_scores(ood_scores, methods)
    colors = _method_colors(methods)
    y_in = correct.astype(np.int8)
    fig, axes = _grid(len(ood_scores), ncols, (2.7, 2.9), sharex=True, sharey=True)
    for ax, (d, per_method) in zip(axes, ood_scores.items(), strict=True):
        ood = {m: np.asarray(per_method[m], dtype=np.float64) for m in methods}
        y = np.concatenate([y_in, np.zeros(len(ood[methods[0]]), dtype=np.int8)])
        _roc_panel(ax, y, {m: np.concatenate([in_arrays[m], ood[m]]) for m in methods}, colors)
        ax.set_title(dataset_label(d, experiment))
        ax.set_xlabel("FPR (incorrect accepted)", fontsize=8)
        ax.set_ylabel("TPR (correct accepted)", fontsize=8)
        ax.tick_params(labelleft=True, labelbottom=True)
    handles = [Line2D([], [], color=colors[m], lw=1.6, label=method_label(m)) for m in methods]
    handles += [Line2D([], [], color=_GREY, ls="--", lw=0.8, label="chance"),
                Line2D([], [], color="black", ls=":", lw=0.8, label="TPR = 0.95 / FPR there")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    if title is not None:
        fig.suptitle(title)
    return fig


def _comparison_rows(table, paper, metric, experiment) -> tuple[pd.DataFrame, str]:
    """Check the inputs of :func:`metric_comparison`; return the joined rows and experiment."""
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {list(METRICS)}.")
    needed = ["dataset", "method", metric, f"{metric}_lo", f"{metric}_hi"]
    for name, frame, columns in (("table", table, needed),
                                 ("paper", paper, ["experiment", "dataset", "method", metric])):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}.")
    ours = table
    if experiment is None:
        if "experiment" not in table.columns:
            raise ValueError("pass experiment=..., or give table an 'experiment' column.")
        found = table["experiment"].unique()
        if len(found) != 1:
            raise ValueError(f"table holds several experiments {list(found)}; pass experiment.")
        experiment = str(found[0])
    elif "experiment" in table.columns:
        ours = table[table["experiment"] == experiment]
    _check_experiment(experiment)
    ref = paper.loc[paper["experiment"] == experiment, ["dataset", "method", metric]]
    ref = ref.rename(columns={metric: "_paper"})
    merged = ours[needed].merge(ref, on=["dataset", "method"], how="inner", validate="1:1")
    if merged.empty:
        raise ValueError("no (dataset, method) row of table is in the paper's "
                         f"{experiment!r} rows.")
    return merged, experiment


def _comparison_bars(ax, merged: pd.DataFrame, metric: str, datasets, methods):
    """Draw a bar (and CI) per row; return the x and y of the paper's finite values."""
    colors = _method_colors(methods)
    height = 0.8 / len(methods)
    px, py = [], []
    for j, m in enumerate(methods):
        rows = merged[merged["method"] == m]
        pos = np.array([datasets.index(d) for d in rows["dataset"]], dtype=float)
        y = pos - 0.4 + height * (j + 0.5)
        val = rows[metric].to_numpy(dtype=float)
        lo = rows[f"{metric}_lo"].to_numpy(dtype=float)
        hi = rows[f"{metric}_hi"].to_numpy(dtype=float)
        ax.barh(y, val, height=height * 0.9, color=colors[m], label=method_label(m))
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            err = np.vstack([val[ok] - lo[ok], hi[ok] - val[ok]]).clip(min=0)
            ax.errorbar(val[ok], y[ok], xerr=err, fmt="none", ecolor="black", elinewidth=0.9,
                        capsize=2)
        pv = rows["_paper"].to_numpy(dtype=float)
        px.extend(pv[np.isfinite(pv)])
        py.extend(y[np.isfinite(pv)])
    return px, py


@_styled
def metric_comparison(table: pd.DataFrame, paper: pd.DataFrame, metric: str = "auroc", *,
                      experiment: str | None = None, title: str | None = None):
    """Our metric with its CI next to the paper's, per dataset and detector.

    Horizontal grouped bars (our value, CI error bar where not NaN), one group per dataset
    in table order; the paper's value is a white diamond. Only rows in both tables are drawn.

    Parameters
    ----------
    table : pandas.DataFrame
        E.g. :func:`introspection.metrics.evaluation_table`: ``dataset``, ``method``,
        ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` (%), and ``experiment``, whose single
        value is the default ``experiment``.
    paper : pandas.DataFrame
        The paper's Table 2 (:func:`introspection.paper.table2`).
    """
    merged, experiment = _comparison_rows(table, paper, metric, experiment)
    datasets = _ordered(merged["dataset"])
    methods = _ordered(merged["method"])
    fig, ax = plt.subplots(figsize=(6.0, 0.2 * len(datasets) * len(methods) + 1.4))
    px, py = _comparison_bars(ax, merged, metric, datasets, methods)
    ax.scatter(px, py, marker="D", s=22, facecolor="white", edgecolor="black", linewidths=1.0,
               zorder=3, label="paper")
    ax.set_yticks(np.arange(len(datasets)), [dataset_label(d, experiment) for d in datasets])
    ax.set_ylim(len(datasets) - 0.5, -0.5)
    ax.set(xlim=(-1.5, 101.5), xlabel=METRIC_LABELS[metric],
           ylabel="misclassification dataset", title=title)
    ax.grid(axis="y", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "paper")
    fig.legend([handles[i] for i in order], [labels[i] for i in order],
               loc="outside upper center", ncols=len(labels))
    return fig


# Beyond the paper (chapters 8 to 12)
def auroc_grid(table: pd.DataFrame, experiment: str, index: str = "dataset",
               columns: str = "method") -> pd.DataFrame:
    """AUROC of a long table as an ``index`` x ``columns`` grid for :func:`heatmap`.

    Rows and columns keep the table's order and get display names.
    """
    grid = table.pivot(index=index, columns=columns, values="auroc")
    grid = grid.loc[_ordered(table[index]), _ordered(table[columns])]

    def label(name, role):
        if role == "method":
            return method_label(name)
        return dataset_label(name, experiment) if name in DATASET_LABELS else name

    grid.index = [label(n, index) for n in grid.index]
    grid.columns = [label(n, columns) for n in grid.columns]
    return grid


def heatmap(values: pd.DataFrame, *, title: str | None = None,
            colorbar_label: str = "AUROC (%)", vmin: float = 50.0, vmax: float = 100.0,
            cmap: str = "cividis", xlabel: str | None = None, ylabel: str | None = None):
    """A table of percentages as an annotated heatmap (one decimal; NaN cells blank).

    The default ``cmap="cividis"`` is readable with every colour-vision deficiency.
    """
    if not isinstance(values, pd.DataFrame) or values.empty:
        raise ValueError("values must be a non-empty DataFrame.")
    data = values.to_numpy(dtype=np.float64)
    n_rows, n_cols = data.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.95 * n_cols, 0.9 + 0.42 * n_rows))
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(n_cols), [str(c) for c in values.columns], rotation=35, ha="right")
    ax.set_yticks(range(n_rows), [str(i) for i in values.index])
    mid = (vmin + vmax) / 2
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                    color="black" if v > mid else "white")
    fig.colorbar(im, ax=ax, label=colorbar_label, fraction=0.04, pad=0.02)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)  # None leaves one empty
    return fig


@_styled
def seed_spread(seeds: pd.DataFrame, table2: pd.DataFrame, experiment: str, metric="auroc"):
    """Introspection-Net's metric per dataset: a dot per seed, mean ± std, bootstrap CI.

    ``seeds`` has rows ``seed, dataset, <metric>`` (:func:`introspection.seeds.seed_table`);
    ``table2`` is the run's Table 2, whose bootstrap 95 % CI (first seed) is drawn under
    each row.
    """
    datasets = _ordered(seeds.dataset)
    ours = table2[table2.method == "introspection_net"].set_index("dataset")
    color = METHOD_COLORS["introspection_net"]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(datasets)))
    for i, d in enumerate(datasets):
        v = seeds.loc[seeds.dataset == d, metric].to_numpy(dtype=np.float64)
        ax.plot(v, np.full(len(v), i), "o", color=color, ms=4, alpha=0.8)
        ax.errorbar(v.mean(), i, xerr=v.std(ddof=1), color=color, capsize=3, lw=1.5)
        if d in ours.index:
            r = ours.loc[d]
            ax.plot([r[f"{metric}_lo"], r[f"{metric}_hi"]], [i + 0.28, i + 0.28], color=_GREY)
    _dataset_rows(ax, datasets, experiment)
    ax.set_xlabel(METRIC_LABELS.get(metric, metric))
    handles = [Line2D([], [], color=color, marker="o", ls="", ms=4, label="one seed"),
               Line2D([], [], color=color, lw=1.5, label="mean ± std over seeds"),
               Line2D([], [], color=_GREY, lw=1.5, label="bootstrap 95 % CI (seed 0)")]
    ax.legend(handles=handles, loc="best", fontsize=7)
    return fig


@_styled
def adaptive_curves(table: pd.DataFrame, paper_eps: float, *, title: str | None = None):
    """Evasion rate (%) against the L-inf radius per detector, from ``adaptive.csv`` rows.

    Solid: best adaptive attack; dashed: plain PGD (detector ignored). ``epsilon`` NaN
    (unbounded) is drawn at the right end; ``paper_eps`` (Table 2's budget) is marked.
    """
    finite = sorted(table.epsilon.dropna().unique())
    unbounded_x = finite[-1] * 2 if finite else 1.0
    attacks = (("adaptive (best)", "-", "adaptive (best)"), ("pgd", "--", "plain PGD"))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for m in _ordered(table.detector):
        for attack, ls, name in attacks:
            g = table[(table.detector == m) & (table.attack == attack)]
            xs = g.epsilon.fillna(unbounded_x).to_numpy(dtype=float)
            ax.plot(xs, g.evasion_rate, ls, marker="o", ms=3.5, color=METHOD_COLORS.get(m, _GREY),
                    label=f"{method_label(m)}: {name}")
    ax.axvline(paper_eps, color=_GREY, lw=0.8, ls=":")
    ax.text(paper_eps, 102, "Table 2's ε", ha="center", va="bottom", fontsize=7, color=_GREY)
    ax.set_xscale("log")
    ax.set_xticks([*finite, unbounded_x], [f"{t:.3g}" for t in finite] + ["unbounded"])
    ax.minorticks_off()
    ax.set(ylim=(-2, 108), xlabel="L-inf radius ε (pixels in [0, 1])",
           ylabel="misclassified and accepted (%)", title=title)
    ax.legend(fontsize=7, loc="lower right")
    return fig


@_styled
def protocol_moves(cells: pd.DataFrame, choice: str, experiment: str, metric: str = "auroc"):
    """How one open choice moves a metric of every Table 2 cell (chapter 12).

    One panel per method, a row per dataset: a marker per reading of ``choice``, the
    paper's value as a white diamond. ``cells``: :func:`introspection.protocol.protocol_study`.
    """
    rows = cells[cells.choice == choice]
    readings, methods, datasets = (_ordered(rows[c]) for c in ("reading", "method", "dataset"))
    colors = list(OKABE_ITO.values())
    figsize = (3.2 * len(methods), 0.9 + 0.42 * len(datasets))
    fig, axes = plt.subplots(1, len(methods), figsize=figsize, sharey=True, squeeze=False)
    for ax, m in zip(axes[0], methods, strict=True):
        per = rows[rows.method == m]
        for j, r in enumerate(readings):
            v = per[per.reading == r].set_index("dataset")[metric].reindex(datasets)
            y = np.arange(len(datasets)) + (j - (len(readings) - 1) / 2) * 0.12
            ax.plot(v.to_numpy(float), y, "o", ms=4, color=colors[j % len(colors)], label=r)
        paper = per[per.reading == readings[0]].set_index("dataset")[f"paper_{metric}"]
        ax.plot(paper.reindex(datasets).to_numpy(float), np.arange(len(datasets)), ls="", ms=6,
                label="paper", **_PAPER_MARKER)
        ax.set_title(method_label(m), fontsize=9)
        ax.set_xlabel(METRIC_LABELS.get(metric, metric))
    _dataset_rows(axes[0, 0], datasets, experiment)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7,
               bbox_to_anchor=(0.5, 1.0))
    return fig


# Output
def save_figure(fig, path, dpi: int = 120) -> Path:
    """Write a figure to ``path`` (must end in ``.png``) atomically; return the path.

    The PNG goes to a temporary file in the destination folder, then :func:`os.replace`
    moves it into place, so no reader sees a half-written file. Parents are created.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; got {path}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
