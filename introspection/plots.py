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

from introspection import artifacts, config, metrics

__all__ = [
    "DATASET_LABELS", "METHOD_COLORS", "METHOD_LABELS", "METRIC_LABELS",
    "OKABE_ITO", "ROLES", "ROLE_COLORS", "adaptive_curves", "auroc_grid", "dataset_color",
    "dataset_label", "dataset_role", "heatmap", "image_grid", "learning_curves",
    "logit_distributions", "method_label", "metric_comparison", "min_max_scatter",
    "protocol_moves", "roc_grid", "save_figure", "seed_spread", "subsample_indices",
]  # fmt: skip

#: Okabe & Ito (2008) colour-blind-safe palette (plus a grey).
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}  # fmt: skip
_GREY = "#999999"

#: Role -> hex colour (fixed for the whole book), in the book's legend order.
ROLE_COLORS = {
    "in_distribution": OKABE_ITO["blue"], "errors": OKABE_ITO["orange"],
    "fgsm": OKABE_ITO["vermillion"], "bim": OKABE_ITO["reddish_purple"],
    "deepfool": OKABE_ITO["sky_blue"], "gaussian": _GREY, "uniform": OKABE_ITO["black"],
    "cross_dataset": OKABE_ITO["bluish_green"], "fashion_mnist": OKABE_ITO["yellow"],
}  # fmt: skip
ROLES = tuple(ROLE_COLORS)  #: The roles a dataset can play in an experiment.

#: Dataset name -> display name.
DATASET_LABELS = {
    "mnist": "MNIST", "cifar10": "CIFAR-10", "errors": "Errors (black patches)", "fgsm": "FGSM",
    "bim": "BIM", "deepfool": "DeepFool", "gaussian": "Gaussian noise",
    "uniform": "Uniform noise", "fashion_mnist": "Fashion-MNIST",
    "cw_l2": "CW-L2 (never trained on)", "pgd": "PGD (never trained on)",
}  # fmt: skip

#: Detector name -> display name.
METHOD_LABELS = {
    "softmax_baseline": "Softmax Baseline", "trust_score": "Trust Score",
    "introspection_net": "Introspection-Net", "max_logit": "MaxLogit", "energy": "Energy",
    "odin": "ODIN", "mahalanobis": "Mahalanobis",
    "mahalanobis_preprocessed": "Mahalanobis + pre-proc.",
}  # fmt: skip

#: Detector name -> hex colour (Okabe-Ito; the paper's three first).
METHOD_COLORS = {
    "softmax_baseline": OKABE_ITO["orange"], "trust_score": OKABE_ITO["reddish_purple"],
    "introspection_net": OKABE_ITO["blue"], "max_logit": OKABE_ITO["bluish_green"],
    "energy": OKABE_ITO["vermillion"], "odin": OKABE_ITO["sky_blue"],
    "mahalanobis": OKABE_ITO["black"], "mahalanobis_preprocessed": _GREY,
}  # fmt: skip

#: Metric column (:data:`introspection.metrics.METRICS`) -> axis label (percent).
METRIC_LABELS = {
    "fpr_at_95tpr": "FPR at 95 % TPR (%, lower is better)", "auroc": "AUROC (%)",
    "aupr_in": "AUPR-In (%)", "aupr_out": "AUPR-Out (%)",
}  # fmt: skip

_PAPER_MARKER = {"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"}

_STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
    "legend.frameon": False, "figure.dpi": 100, "figure.constrained_layout.use": True,
    "image.interpolation": "nearest",
}  # fmt: skip


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


def dataset_role(name: str, experiment: str) -> str:
    """Role of a dataset in an experiment (:data:`ROLES`); ValueError if not part of it.

    ``"in_distribution"`` for the experiment's own dataset, ``"cross_dataset"`` for the
    other experiment's, otherwise the dataset's name.

    Examples
    --------
    >>> dataset_role("cifar10", "mnist"), dataset_role("cifar10", "cifar10")
    ('cross_dataset', 'in_distribution')
    """
    if experiment not in config.EXPERIMENTS:
        raise ValueError(f"Unknown experiment {experiment!r}; "
                         f"expected one of {sorted(config.EXPERIMENTS)}.")  # fmt: skip
    datasets = config.EXPERIMENTS[experiment]["datasets"]
    if name not in datasets:
        raise ValueError(f"Unknown dataset {name!r} for experiment {experiment!r}; "
                         f"expected one of {list(datasets)}.")  # fmt: skip
    if name == experiment:
        return "in_distribution"
    return "cross_dataset" if name in config.EXPERIMENTS else name


def dataset_color(name: str, experiment: str) -> str:
    """Hex colour ``"#RRGGBB"`` of a dataset, fixed by its role (:data:`ROLE_COLORS`)."""
    return ROLE_COLORS[dataset_role(name, experiment)]


def dataset_label(name: str, experiment: str) -> str:
    """Display name of a dataset (:data:`DATASET_LABELS`), checked against the experiment."""
    # CW-L2 and PGD, beyond the paper, are the same images in both experiments.
    dataset_role(experiment if name in ("cw_l2", "pgd") else name, experiment)
    return DATASET_LABELS[name]


def method_label(name: str) -> str:
    """Display name of a detector (:data:`METHOD_LABELS`); unknown names unchanged."""
    return METHOD_LABELS.get(name, name)


def _method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Fixed colours for known detectors; the others (ablations) get those after the paper's."""
    extra = iter(tuple(METHOD_COLORS.values())[3:])
    return {m: METHOD_COLORS[m] if m in METHOD_COLORS else next(extra, _GREY) for m in methods}


def _finite_array(values, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    return metrics._finite(arr, name)


def _check_datasets(values: Mapping, experiment: str, what: str) -> None:
    if not values:
        raise ValueError(f"{what} is empty.")
    for name in values:
        dataset_role(name, experiment)


def _grid(n: int, ncols: int, panel_size: tuple[float, float], **kwargs):
    """A figure with ``n`` panels on a grid; unused grid cells are removed."""
    ncols = min(metrics._check_int(ncols, "ncols"), n)
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


_METRIC_AXIS_LABELS = {
    "loss": "loss (training objective)", "mse": "mean squared error", "mae": "mean absolute error",
    **dict.fromkeys(("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy"),
                    "accuracy (fraction correct)"),
}  # fmt: skip


@_styled
def learning_curves(history, *, metrics: Sequence[str] = ("loss", "accuracy"),
                    title: str | None = None,
                    reference: Mapping[str, float] | None = None):  # fmt: skip
    """Train and validation curves of a Keras-style ``history`` (or ``History``) per metric.

    ``reference`` holds paper values, e.g. ``{"val_accuracy": 0.9965}``, drawn dashed.
    """
    hist = getattr(history, "history", history)
    if not isinstance(hist, Mapping):
        raise ValueError("history must be a mapping (or have a .history mapping).")
    metrics, reference = list(metrics), dict(reference or {})
    if not metrics:
        raise ValueError("metrics is empty.")
    for key in reference:
        if key.removeprefix("val_") not in metrics:
            raise ValueError(f"reference key {key!r} has no panel; metrics are {metrics}.")
    fig, axes = _grid(len(metrics), len(metrics), (4.0, 3.0))
    n_epochs = None
    for ax, metric in zip(axes, metrics, strict=True):
        series = ((metric, "train", "-", OKABE_ITO["blue"]),
                  (f"val_{metric}", "validation", "--", OKABE_ITO["vermillion"]))  # fmt: skip
        series = [s for s in series if s[0] in hist]
        if not series:
            raise ValueError(f"history has neither {metric!r} nor 'val_{metric}'.")
        for key, label, ls, color in series:
            y = _finite_array(np.asarray(hist[key], dtype=np.float64), f"history[{key!r}]", 1)
            n_epochs = y.shape[0] if n_epochs is None else n_epochs
            if y.shape[0] != n_epochs:
                raise ValueError(f"history[{key!r}] has {y.shape[0]} epochs; expected {n_epochs}.")
            ax.plot(np.arange(1, n_epochs + 1), y, ls, color=color, marker="o", ms=3, label=label)
        for value in (v for k, v in reference.items() if k.removeprefix("val_") == metric):
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


@_styled
def image_grid(images, *, titles: Sequence[str] | None = None, ncols: int = 8,
               cmap: str = "gray", suptitle: str | None = None):  # fmt: skip
    """Images (N, H, W[, 1 or 3]) in [0, 1] (clipped) on a grid without ticks, titled or not."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise ValueError("images must have shape (N, H, W), (N, H, W, 1) or (N, H, W, 3); "
                         f"got {x.shape}.")  # fmt: skip
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
@_styled
def logit_distributions(values: Mapping[str, np.ndarray], experiment: str, *,
                        xlabel: str = "mean logit", bins: int = 50,
                        reference: Mapping[str, tuple[float, float]] | None = None,
                        title: str | None = None):  # fmt: skip
    """Density histograms (common bins) of a statistic per example: the paper's Figure 1.

    Parameters
    ----------
    values : mapping of str -> array-like of shape (n_d,)
        Dataset name -> the statistic per example (e.g. max logit); order = legend order.
    reference : mapping of str -> (float, float), optional
        Dataset -> the paper's (mean, std), drawn as a diamond with a ± std bar, e.g.
        :data:`introspection.paper.MAX_LOGIT` with ``xlabel="max logit"``.
    """
    _check_datasets(values, experiment, "values")
    bins = metrics._check_int(bins, "bins")
    arrays = {d: _finite_array(v, f"values[{d!r}]", 1) for d, v in values.items()}
    reference = dict(reference or {})
    for d in reference:
        dataset_role(d, experiment)
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=bins)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for d, v in arrays.items():
        ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.6,
                color=dataset_color(d, experiment),
                label=f"{dataset_label(d, experiment)} (n = {v.shape[0]})")  # fmt: skip
    if reference:
        top = ax.get_ylim()[1]
        step = 0.07 * top
        for i, (d, (mean, std)) in enumerate(reference.items()):
            ax.errorbar([float(mean)], [top * 1.08 + i * step], xerr=[float(std)], fmt="D",
                        color=dataset_color(d, experiment), markerfacecolor="white",
                        markeredgecolor="black", markersize=5, capsize=3,
                        elinewidth=1.4)  # fmt: skip
        ax.set_ylim(0, top * 1.08 + len(reference) * step + 0.02 * top)
        ax.plot([], [], color="black", ls="-", label="paper (mean ± std)", **_PAPER_MARKER)
    ax.legend()
    ax.set(xlabel=f"{xlabel} (logit units)", title=title,
           ylabel="density (fraction of examples per logit unit)")  # fmt: skip
    return fig


@_styled
def min_max_scatter(logits: Mapping[str, np.ndarray], experiment: str, *, n: int = 300,
                    seed: int = 0, title: str | None = None):  # fmt: skip
    """Min vs max of the logits (left) and of the softmax (right): the paper's Figure 2.

    At most ``n`` rows of each dataset's logits are drawn: ``subsample_indices(n_d, n, seed)``.
    """
    _check_datasets(logits, experiment, "logits")
    n = metrics._check_int(n, "n")
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
                 "label": dataset_label(d, experiment)}  # fmt: skip
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
@_styled
def roc_grid(in_correct, in_scores: Mapping[str, np.ndarray],
             ood_scores: Mapping[str, Mapping[str, np.ndarray]], experiment: str, *,
             ncols: int = 4, title: str | None = None):  # fmt: skip
    """One ROC panel per misclassification dataset, detectors overlaid, AUROC written in.

    Panel ``d`` is the sample of :func:`introspection.metrics.evaluation_table` (same
    arguments): ``in_scores[m]`` (positive where ``in_correct``) against ``ood_scores[d][m]``.
    """
    correct, in_arrays, _ = metrics.check_scores(in_correct, in_scores, ood_scores)
    _check_datasets(ood_scores, experiment, "ood_scores")
    methods = list(in_scores)
    colors = _method_colors(methods)
    y_in = correct.astype(np.int8)
    fig, axes = _grid(len(ood_scores), ncols, (2.7, 2.9), sharex=True, sharey=True)
    for ax, (d, per_method) in zip(axes, ood_scores.items(), strict=True):
        y = np.concatenate([y_in, np.zeros(len(per_method[methods[0]]), dtype=np.int8)])
        ax.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=0.8, label="chance")
        ax.axhline(0.95, color="black", ls=":", lw=0.8, label="TPR = 0.95")
        for i, m in enumerate(methods):
            s = np.concatenate([in_arrays[m], np.asarray(per_method[m], dtype=np.float64)])
            area = metrics.auroc(y, s)  # validates the inputs first
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, color=colors[m], lw=1.3, label=method_label(m))
            ax.vlines(metrics.fpr_at_tpr(y, s, 0.95), 0, 0.95, colors=colors[m], linestyles=":",
                      lw=0.9)  # fmt: skip
            ax.text(0.97, 0.05 + 0.09 * (len(methods) - 1 - i), f"AUROC {100 * area:.1f}",
                    color=colors[m], ha="right", va="bottom", fontsize=7, transform=ax.transAxes,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8,
                          "pad": 1.0})  # fmt: skip
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal",
               title=dataset_label(d, experiment))  # fmt: skip
        ax.set_xlabel("FPR (incorrect accepted)", fontsize=8)
        ax.set_ylabel("TPR (correct accepted)", fontsize=8)
        ax.tick_params(labelleft=True, labelbottom=True)
    handles = [Line2D([], [], color=colors[m], lw=1.6, label=method_label(m)) for m in methods]
    handles += [Line2D([], [], color=_GREY, ls="--", lw=0.8, label="chance"),
                Line2D([], [], color="black", ls=":", lw=0.8,
                       label="TPR = 0.95 / FPR there")]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    if title is not None:
        fig.suptitle(title)
    return fig


def _comparison_rows(table, paper, metric, experiment) -> tuple[pd.DataFrame, str]:
    """Check the inputs of :func:`metric_comparison`; return the joined rows and experiment."""
    if metric not in metrics.METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {list(metrics.METRICS)}.")
    needed = ["dataset", "method", metric, f"{metric}_lo", f"{metric}_hi"]
    for name, df, cols in (("table", table, needed), ("paper", paper, ["experiment", *needed[:3]])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}.")
    if experiment is None:
        if "experiment" not in table.columns:
            raise ValueError("pass experiment=..., or give table an 'experiment' column.")
        found = table["experiment"].unique()
        if len(found) != 1:
            raise ValueError(f"table holds several experiments {list(found)}; pass experiment.")
        experiment = str(found[0])
    dataset_role(experiment, experiment)  # a known experiment
    ours = table[table["experiment"] == experiment] if "experiment" in table.columns else table
    ref = paper.loc[paper.experiment == experiment, needed[:3]].rename(columns={metric: "_paper"})
    merged = ours[needed].merge(ref, on=["dataset", "method"], how="inner", validate="1:1")
    if merged.empty:
        raise ValueError("no (dataset, method) row of table is in the paper's "
                         f"{experiment!r} rows.")  # fmt: skip
    return merged, experiment


@_styled
def metric_comparison(table: pd.DataFrame, paper: pd.DataFrame, metric: str = "auroc", *,
                      experiment: str | None = None, title: str | None = None):  # fmt: skip
    """Our metric with its CI (bars) next to the paper's (diamonds), per dataset and detector.

    ``table`` has ``dataset, method, <metric>, <metric>_lo, <metric>_hi`` (e.g.
    :func:`introspection.metrics.evaluation_table`; its single ``experiment`` is the default),
    ``paper`` is :func:`introspection.paper.table2`; only rows in both are drawn.
    """
    merged, experiment = _comparison_rows(table, paper, metric, experiment)
    datasets, methods = (list(merged[c].unique()) for c in ("dataset", "method"))
    colors = _method_colors(methods)
    height = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(6.0, 0.2 * len(datasets) * len(methods) + 1.4))
    px, py = [], []
    for j, m in enumerate(methods):
        rows = merged[merged["method"] == m]
        pos = np.array([datasets.index(d) for d in rows["dataset"]], dtype=float)
        y = pos - 0.4 + height * (j + 0.5)
        val, lo, hi, pv = (rows[c].to_numpy(dtype=float)
                           for c in (metric, f"{metric}_lo", f"{metric}_hi", "_paper"))  # fmt: skip
        ax.barh(y, val, height=height * 0.9, color=colors[m], label=method_label(m))
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            err = np.vstack([val[ok] - lo[ok], hi[ok] - val[ok]]).clip(min=0)
            ax.errorbar(val[ok], y[ok], xerr=err, fmt="none", ecolor="black", elinewidth=0.9,
                        capsize=2)  # fmt: skip
        px.extend(pv[np.isfinite(pv)])
        py.extend(y[np.isfinite(pv)])
    ax.scatter(px, py, marker="D", s=22, facecolor="white", edgecolor="black", linewidths=1.0,
               zorder=3, label="paper")  # fmt: skip
    ax.set_yticks(np.arange(len(datasets)), [dataset_label(d, experiment) for d in datasets])
    ax.set_ylim(len(datasets) - 0.5, -0.5)
    ax.set(xlim=(-1.5, 101.5), xlabel=METRIC_LABELS[metric],
           ylabel="misclassification dataset", title=title)  # fmt: skip
    ax.grid(axis="y", visible=False)
    pairs = sorted(zip(*ax.get_legend_handles_labels(), strict=True), key=lambda p: p[1] == "paper")
    fig.legend(*zip(*pairs, strict=True), loc="outside upper center", ncols=len(pairs))
    return fig


# Beyond the paper (chapters 8 to 12)
def auroc_grid(table: pd.DataFrame, experiment: str, index: str = "dataset",
               columns: str = "method") -> pd.DataFrame:  # fmt: skip
    """AUROC of a long table as an ``index`` x ``columns`` grid of display names, in order."""
    grid = table.pivot(index=index, columns=columns, values="auroc")
    grid = grid.loc[list(table[index].unique()), list(table[columns].unique())]

    def label(name, role):
        if role == "method":
            return method_label(name)
        return dataset_label(name, experiment) if name in DATASET_LABELS else name

    grid.index = [label(n, index) for n in grid.index]
    grid.columns = [label(n, columns) for n in grid.columns]
    return grid


def heatmap(values: pd.DataFrame, *, title: str | None = None, colorbar_label: str = "AUROC (%)",
            vmin: float = 50.0, vmax: float = 100.0, cmap: str = "cividis",
            xlabel: str | None = None, ylabel: str | None = None):  # fmt: skip
    """A table of percentages as an annotated heatmap (NaN blank; cividis: colour-blind safe)."""
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
                    color="black" if v > mid else "white")  # fmt: skip
    fig.colorbar(im, ax=ax, label=colorbar_label, fraction=0.04, pad=0.02)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)  # None leaves one empty
    return fig


@_styled
def seed_spread(seeds: pd.DataFrame, table2: pd.DataFrame, experiment: str, metric="auroc"):
    """Introspection-Net's metric per dataset: a dot per seed, mean ± std, Table 2's CI.

    ``seeds``: :func:`introspection.seeds.seed_table`; ``table2``: the run's Table 2.
    """
    datasets = list(seeds.dataset.unique())
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
               Line2D([], [], color=_GREY, lw=1.5, label="bootstrap 95 % CI (seed 0)")]  # fmt: skip
    ax.legend(handles=handles, loc="best", fontsize=7)
    return fig


@_styled
def adaptive_curves(table: pd.DataFrame, paper_eps: float, *, title: str | None = None):
    """Evasion rate (%) against the L-inf radius per detector, from ``adaptive.csv`` rows.

    Solid: best adaptive attack; dashed: plain PGD. NaN ``epsilon`` (unbounded) is drawn
    at the right end; ``paper_eps`` (Table 2's budget) is marked.
    """
    finite = sorted(table.epsilon.dropna().unique())
    unbounded_x = finite[-1] * 2 if finite else 1.0
    attacks = (("adaptive (best)", "-", "adaptive (best)"), ("pgd", "--", "plain PGD"))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for m in table.detector.unique():
        for attack, ls, name in attacks:
            g = table[(table.detector == m) & (table.attack == attack)]
            xs = g.epsilon.fillna(unbounded_x).to_numpy(dtype=float)
            ax.plot(xs, g.evasion_rate, ls, marker="o", ms=3.5, color=METHOD_COLORS.get(m, _GREY),
                    label=f"{method_label(m)}: {name}")  # fmt: skip
    ax.axvline(paper_eps, color=_GREY, lw=0.8, ls=":")
    ax.text(paper_eps, 102, "Table 2's ε", ha="center", va="bottom", fontsize=7, color=_GREY)
    ax.set_xscale("log")
    ax.set_xticks([*finite, unbounded_x], [f"{t:.3g}" for t in finite] + ["unbounded"])
    ax.minorticks_off()
    ax.set(ylim=(-2, 108), xlabel="L-inf radius ε (pixels in [0, 1])",
           ylabel="misclassified and accepted (%)", title=title)  # fmt: skip
    ax.legend(fontsize=7, loc="lower right")
    return fig


@_styled
def protocol_moves(cells: pd.DataFrame, choice: str, experiment: str, metric: str = "auroc"):
    """A marker per reading of ``choice`` and the paper's diamond, per method and dataset.

    ``cells``: :func:`introspection.protocol.protocol_study`.
    """
    rows = cells[cells.choice == choice]
    readings, methods, datasets = (list(rows[c].unique()) for c in ("reading", "method", "dataset"))
    colors = list(OKABE_ITO.values())
    fig, axes = _grid(len(methods), len(methods), (3.2, 0.9 + 0.42 * len(datasets)), sharey=True)
    for ax, m in zip(axes, methods, strict=True):
        per = rows[rows.method == m]
        for j, r in enumerate(readings):
            v = per[per.reading == r].set_index("dataset")[metric].reindex(datasets)
            y = np.arange(len(datasets)) + (j - (len(readings) - 1) / 2) * 0.12
            ax.plot(v.to_numpy(float), y, "o", ms=4, color=colors[j % len(colors)], label=r)
        paper = per[per.reading == readings[0]].set_index("dataset")[f"paper_{metric}"]
        ax.plot(paper.reindex(datasets).to_numpy(float), np.arange(len(datasets)), ls="", ms=6,
                label="paper", **_PAPER_MARKER)  # fmt: skip
        ax.set_title(method_label(m), fontsize=9)
        ax.set_xlabel(METRIC_LABELS.get(metric, metric))
    _dataset_rows(axes[0], datasets, experiment)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7,
               bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    return fig


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Write a figure atomically to ``path`` (``.png``; parents created); return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; got {path}.")

    artifacts.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi,
                                                         bbox_inches="tight"))  # fmt: skip
    path.chmod(0o644)
    return path
