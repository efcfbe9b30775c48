import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.special import softmax  # noqa: E402

from introspection import plots as P  # noqa: E402
from introspection.config import EXPERIMENTS  # noqa: E402
from introspection.metrics import auroc, evaluation_table  # noqa: E402
from introspection.paper import MAX_LOGIT as PAPER_MAX_LOGIT  # noqa: E402

METHODS = ("softmax_baseline", "trust_score", "introspection_net")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax):
    return bool(ax.get_xlabel().strip()) and bool(ax.get_ylabel().strip())


def _rc_snapshot():
    return {k: v for k, v in plt.rcParams.items() if k != "backend"}


# ---------------------------------------------------------------------------
# Roles, colours, labels
# ---------------------------------------------------------------------------


def test_roles_of_both_experiments():
    assert P.dataset_role("mnist", "mnist") == "in_distribution"
    assert P.dataset_role("cifar10", "cifar10") == "in_distribution"
    assert P.dataset_role("cifar10", "mnist") == "cross_dataset"
    assert P.dataset_role("mnist", "cifar10") == "cross_dataset"
    assert P.dataset_role("fashion_mnist", "mnist") == "fashion_mnist"
    assert P.dataset_role("fgsm", "cifar10") == "fgsm"
    for exp, spec in EXPERIMENTS.items():
        roles = [P.dataset_role(d, exp) for d in spec["datasets"]]
        assert sorted(roles) == sorted(P.ROLES)  # every role exactly once


def test_every_role_has_a_distinct_valid_colour():
    colours = [P.ROLE_COLORS[r] for r in P.ROLES]
    assert len({c.lower() for c in colours}) == len(P.ROLES) == 9
    assert all(mcolors.is_color_like(c) and c.startswith("#") for c in colours)
    for exp, spec in EXPERIMENTS.items():
        colours = {P.dataset_color(d, exp) for d in spec["datasets"]}
        assert len(colours) == len(spec["datasets"])


def test_colour_follows_role_not_name():
    assert P.dataset_color("mnist", "mnist") == P.dataset_color("cifar10", "cifar10")
    assert P.dataset_color("cifar10", "mnist") == P.dataset_color("mnist", "cifar10")
    assert P.dataset_color("cifar10", "mnist") != P.dataset_color("cifar10", "cifar10")
    assert P.dataset_color("fgsm", "mnist") == P.dataset_color("fgsm", "cifar10")


def test_labels():
    assert P.dataset_label("cifar10", "mnist") == "CIFAR-10"
    assert P.dataset_label("mnist", "mnist") == "MNIST"
    assert P.dataset_label("fashion_mnist", "cifar10") == "Fashion-MNIST"
    assert P.dataset_label("deepfool", "mnist") == "DeepFool"
    assert {k: P.METHOD_LABELS[k] for k in list(P.METHOD_LABELS)[:3]} == {
        "softmax_baseline": "Softmax Baseline",
        "trust_score": "Trust Score",
        "introspection_net": "Introspection-Net",
    }
    assert P.method_label("other") == "other"


def test_method_colours_distinct():
    colours = [P.METHOD_COLORS[m] for m in METHODS]
    assert len(set(colours)) == 3
    assert all(mcolors.is_color_like(c) for c in colours)


@pytest.mark.parametrize(
    "name, experiment",
    [("svhn", "mnist"), ("MNIST", "mnist"), ("mnist", "svhn"), ("", "cifar10")],
)
def test_unknown_dataset_or_experiment_raises(name, experiment):
    with pytest.raises(ValueError):
        P.dataset_role(name, experiment)
    with pytest.raises(ValueError):
        P.dataset_color(name, experiment)
    with pytest.raises(ValueError):
        P.dataset_label(name, experiment)


def test_subsample_indices():
    idx = P.subsample_indices(1000, 30, seed=3)
    assert idx.shape == (30,) and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, P.subsample_indices(1000, 30, seed=3))
    assert not np.array_equal(idx, P.subsample_indices(1000, 30, seed=4))
    np.testing.assert_array_equal(P.subsample_indices(5, 30), np.arange(5))


# ---------------------------------------------------------------------------
# learning_curves
# ---------------------------------------------------------------------------


def _history(n):
    t = np.arange(n)
    return {
        "loss": list(1.0 / (t + 1)),
        "val_loss": list(1.2 / (t + 1)),
        "accuracy": list(0.9 + 0.01 * t),
        "val_accuracy": list(0.88 + 0.01 * t),
    }


def test_learning_curves_panels_lines_and_reference():
    fig = P.learning_curves(_history(5), reference={"val_accuracy": 0.9965}, title="CNN")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    ax_loss, ax_acc = fig.axes
    assert all(_labelled(ax) for ax in fig.axes)
    assert ax_loss.get_xlabel() == "epoch"
    labels = [ln.get_label() for ln in ax_loss.lines]
    assert labels == ["train", "validation"]
    np.testing.assert_array_equal(ax_loss.lines[0].get_xdata(), [1, 2, 3, 4, 5])
    ref = [ln for ln in ax_acc.lines if ln.get_label() == "paper"]
    assert len(ref) == 1
    np.testing.assert_allclose(ref[0].get_ydata(), [0.9965, 0.9965])
    assert ref[0].get_linestyle() == "--"
    assert not [ln for ln in ax_loss.lines if ln.get_label() == "paper"]


def test_learning_curves_one_epoch_uses_markers():
    fig = P.learning_curves(_history(1), metrics=("accuracy",))
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    for ln in ax.lines:
        assert ln.get_marker() not in (None, "", "None", " ")
        np.testing.assert_array_equal(ln.get_xdata(), [1])


def test_learning_curves_errors():
    with pytest.raises(ValueError):
        P.learning_curves(_history(3), metrics=("auc",))
    with pytest.raises(ValueError):
        P.learning_curves(_history(3), reference={"val_auc": 0.5})
    bad = _history(3)
    bad["val_loss"] = bad["val_loss"][:2]
    with pytest.raises(ValueError):
        P.learning_curves(bad)


def test_learning_curves_accepts_history_object():
    class History:
        history = _history(2)

    assert len(P.learning_curves(History()).axes) == 2


# ---------------------------------------------------------------------------
# image_grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(10, 8, 8), (10, 8, 8, 1), (10, 8, 8, 3)])
def test_image_grid_shapes(shape):
    rng = np.random.default_rng(0)
    titles = [f"pred {i} (0.99)" for i in range(10)]
    fig = P.image_grid(rng.random(shape), titles=titles, ncols=4, suptitle="examples")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10  # unused grid cells removed
    for ax, t in zip(fig.axes, titles, strict=True):
        assert ax.get_title() == t
        assert len(ax.images) == 1
        assert not ax.axison  # no ticks, no frame
    assert fig.get_suptitle() == "examples"


def test_image_grid_small_n_and_errors():
    assert len(P.image_grid(np.zeros((3, 5, 5))).axes) == 3
    with pytest.raises(ValueError):
        P.image_grid(np.zeros((3, 5, 5, 2)))
    with pytest.raises(ValueError):
        P.image_grid(np.zeros((0, 5, 5)))
    with pytest.raises(ValueError):
        P.image_grid(np.zeros((3, 5, 5)), titles=["a"])
    with pytest.raises(ValueError):
        P.image_grid(np.zeros((3, 5, 5)), ncols=0)


# ---------------------------------------------------------------------------
# logit_distributions (Figure 1)
# ---------------------------------------------------------------------------


def _stats():
    rng = np.random.default_rng(1)
    return {
        "mnist": rng.normal(16.5, 5.0, 400),
        "fgsm": rng.normal(8.8, 2.6, 200),
        "bim": rng.normal(10.8, 5.2, 150),
        "cifar10": rng.normal(2.0, 1.0, 100),
    }


def test_logit_distributions_histograms():
    values = _stats()
    fig = P.logit_distributions(values, "mnist", bins=30)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert _labelled(ax)
    assert "mean logit" in ax.get_xlabel()
    assert len(ax.patches) == len(values)
    for patch, d in zip(ax.patches, values, strict=True):
        assert mcolors.same_color(patch.get_edgecolor(), P.dataset_color(d, "mnist"))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("CIFAR-10") for t in legend)
    assert len(ax.containers) == 0


def test_logit_distributions_density_and_common_bins():
    values = _stats()
    fig = P.logit_distributions(values, "mnist", bins=25)
    ax = fig.axes[0]
    xs = [np.unique(p.get_xy()[:, 0]) for p in ax.patches]
    for x in xs[1:]:
        np.testing.assert_allclose(x, xs[0])  # one set of common bin edges
    assert len(xs[0]) == 26
    edges = xs[0]
    for patch, v in zip(ax.patches, values.values(), strict=True):
        density, _ = np.histogram(v, bins=edges, density=True)
        assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
        ys = patch.get_xy()[:, 1]
        assert ys.max() == pytest.approx(density.max())
        allowed = np.append(density, 0.0)
        assert all(np.isclose(allowed, y).any() for y in ys)


def test_logit_distributions_reference_points():
    fig = P.logit_distributions(_stats(), "mnist", xlabel="max logit", reference=PAPER_MAX_LOGIT)
    ax = fig.axes[0]
    assert "max logit" in ax.get_xlabel()
    assert len(ax.containers) == len(PAPER_MAX_LOGIT)
    for container, (mean, _std) in zip(ax.containers, PAPER_MAX_LOGIT.values(), strict=True):
        assert container.lines[0].get_xdata()[0] == pytest.approx(mean)
    hist_top = max(p.get_xy()[:, 1].max() for p in ax.patches)
    assert ax.get_ylim()[1] > hist_top
    assert "paper (mean ± std)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_logit_distributions_errors():
    with pytest.raises(ValueError):
        P.logit_distributions({}, "mnist")
    with pytest.raises(ValueError):
        P.logit_distributions({"svhn": np.ones(3)}, "mnist")
    with pytest.raises(ValueError):
        P.logit_distributions({"mnist": np.array([1.0, np.nan])}, "mnist")
    with pytest.raises(ValueError):
        P.logit_distributions({"mnist": np.ones((3, 2))}, "mnist")


# ---------------------------------------------------------------------------
# min_max_scatter (Figure 2)
# ---------------------------------------------------------------------------


def _logits():
    rng = np.random.default_rng(2)
    return {
        "cifar10": rng.normal(0, 4, (500, 10)),
        "gaussian": rng.normal(0, 1, (120, 10)),
        "mnist": rng.normal(0, 2, (400, 10)),
    }


def test_min_max_scatter_points_and_offsets():
    logits = _logits()
    n, seed = 100, 7
    fig = P.min_max_scatter(logits, "cifar10", n=n, seed=seed)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    ax_l, ax_s = fig.axes
    assert (ax_l.get_xlabel(), ax_l.get_ylabel()) == ("min logit", "max logit")
    assert (ax_s.get_xlabel(), ax_s.get_ylabel()) == (
        "min softmax probability",
        "max softmax probability",
    )
    assert len(ax_l.collections) == len(ax_s.collections) == len(logits)
    for coll_l, coll_s, (d, z) in zip(
        ax_l.collections, ax_s.collections, logits.items(), strict=True
    ):
        sub = z[P.subsample_indices(z.shape[0], n, seed)]
        assert len(coll_l.get_offsets()) == len(coll_s.get_offsets()) == n
        np.testing.assert_allclose(
            np.asarray(coll_l.get_offsets()), np.column_stack([sub.min(1), sub.max(1)])
        )
        p = softmax(sub, axis=1)
        off_s = np.asarray(coll_s.get_offsets())
        np.testing.assert_allclose(off_s, np.column_stack([p.min(1), p.max(1)]))
        assert np.all((off_s >= 0) & (off_s <= 1))
        assert mcolors.same_color(coll_l.get_facecolor()[0][:3], P.dataset_color(d, "cifar10"))
        assert 0 < coll_l.get_alpha() < 1
    assert ax_l.get_legend() is not None


def test_min_max_scatter_small_dataset_and_seed():
    logits = _logits()
    fig = P.min_max_scatter(logits, "cifar10", n=300, seed=0)
    counts = [len(c.get_offsets()) for c in fig.axes[0].collections]
    assert counts == [300, 120, 300]
    a = np.asarray(
        P.min_max_scatter(logits, "cifar10", seed=1).axes[0].collections[0].get_offsets()
    )
    b = np.asarray(
        P.min_max_scatter(logits, "cifar10", seed=1).axes[0].collections[0].get_offsets()
    )
    np.testing.assert_array_equal(a, b)


def test_min_max_scatter_extreme_logits_stay_finite():
    z = np.array([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0]])
    fig = P.min_max_scatter({"mnist": z}, "mnist")
    off = np.asarray(fig.axes[1].collections[0].get_offsets())
    assert np.all(np.isfinite(off)) and np.all((off >= 0) & (off <= 1))


def test_min_max_scatter_errors():
    with pytest.raises(ValueError):
        P.min_max_scatter({"mnist": np.ones(5)}, "mnist")
    with pytest.raises(ValueError):
        P.min_max_scatter({"mnist": np.ones((5, 1))}, "mnist")
    with pytest.raises(ValueError):
        P.min_max_scatter({"mnist": np.ones((5, 3))}, "mnist", n=0)


# ---------------------------------------------------------------------------
# ROC curves
# ---------------------------------------------------------------------------


def _scores(n=300, seed=3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.7).astype(int)
    scores = {m: y + rng.normal(0, s, n) for m, s in zip(METHODS, (1.0, 0.7, 0.4), strict=True)}
    return y, scores


def test_roc_panel_lines_chance_and_tpr95():
    y, scores = _scores()
    n_in = int(y.sum())
    # the positives as the in-distribution set (all correct), the rest as one dataset
    fig = P.roc_grid(
        np.ones(n_in, bool),
        {m: s[y == 1] for m, s in scores.items()},
        {"fgsm": {m: s[y == 0] for m, s in scores.items()}},
        "mnist",
        title="MNIST: FGSM",
    )
    (ax,) = fig.axes
    method_lines = [ln for ln in ax.lines if ln.get_label() in P.METHOD_LABELS.values()]
    assert len(method_lines) == len(METHODS)
    for ln, m in zip(method_lines, METHODS, strict=True):
        assert mcolors.same_color(ln.get_color(), P.METHOD_COLORS[m])
        x, t = ln.get_xdata(), ln.get_ydata()
        assert x[0] == 0 and t[-1] == 1 and np.all(np.diff(x) >= 0)
    texts = [t.get_text() for t in ax.texts]
    for m in METHODS:
        yy = np.r_[np.ones(n_in, int), np.zeros(len(y) - n_in, int)]
        assert f"AUROC {100 * auroc(yy, np.r_[scores[m][y == 1], scores[m][y == 0]]):.1f}" in texts
    assert len(ax.collections) == len(METHODS)  # vertical FPR@95 % TPR markers
    plt.close(fig)


def _grid_inputs(datasets):
    rng = np.random.default_rng(4)
    n_in = 200
    correct = rng.random(n_in) < 0.9
    in_scores = {m: correct + rng.normal(0, 0.5, n_in) for m in METHODS}
    ood = {
        d: {m: rng.normal(0.2 * i, 0.5, 30 + 5 * i) for m in METHODS}
        for i, d in enumerate(datasets)
    }
    return correct, in_scores, ood


def test_roc_grid_panels_and_legend():
    datasets = ["errors", "fgsm", "bim", "deepfool", "gaussian", "uniform", "cifar10"]
    correct, in_scores, ood = _grid_inputs(datasets)
    fig = P.roc_grid(correct, in_scores, ood, "mnist", ncols=4)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(datasets)
    assert len(fig.legends) == 1
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert all(P.METHOD_LABELS[m] in legend for m in METHODS)
    for ax, d in zip(fig.axes, datasets, strict=True):
        assert ax.get_title() == P.dataset_label(d, "mnist")
        assert _labelled(ax)
        method_lines = [ln for ln in ax.lines if ln.get_label() in P.METHOD_LABELS.values()]
        assert len(method_lines) == len(METHODS)
        y = np.concatenate([correct.astype(int), np.zeros(len(ood[d]["trust_score"]), int)])
        s = np.concatenate([in_scores["trust_score"], ood[d]["trust_score"]])
        texts = [t.get_text() for t in ax.texts]
        assert f"AUROC {100 * auroc(y, s):.1f}" in texts


def test_roc_grid_agrees_with_evaluation_table():
    datasets = ["fgsm", "mnist"]
    correct, in_scores, ood = _grid_inputs(datasets)
    fig = P.roc_grid(correct, in_scores, ood, "cifar10", ncols=1)
    table = evaluation_table(correct, in_scores, ood, experiment="cifar10", n_boot=0)
    for ax, d in zip(fig.axes, datasets, strict=True):
        texts = [t.get_text() for t in ax.texts]
        for m in METHODS:
            row = table[(table.dataset == d) & (table.method == m)].iloc[0]
            assert f"AUROC {row.auroc:.1f}" in texts


def test_roc_grid_errors():
    correct, in_scores, ood = _grid_inputs(["fgsm"])
    with pytest.raises(ValueError):
        P.roc_grid(correct, in_scores, {"svhn": ood["fgsm"]}, "mnist")
    with pytest.raises(ValueError):
        P.roc_grid(
            correct, in_scores, {"fgsm": {"trust_score": ood["fgsm"]["trust_score"]}}, "mnist"
        )
    with pytest.raises(ValueError):
        P.roc_grid(correct[:-1], in_scores, ood, "mnist")


# ---------------------------------------------------------------------------
# metric_comparison
# ---------------------------------------------------------------------------


def _paper():
    rows = [
        ("mnist", "errors", "softmax_baseline", 35.4, 86.3, 84.0, 89.6),
        ("mnist", "errors", "trust_score", 39.5, 86.5, 82.6, 88.9),
        ("mnist", "errors", "introspection_net", 35.8, 87.8, 82.9, 90.5),
        ("mnist", "fgsm", "softmax_baseline", 68.1, 85.6, 89.6, 79.0),
        ("mnist", "fgsm", "trust_score", 69.5, np.nan, 92.5, 81.3),
        ("mnist", "fgsm", "introspection_net", 8.7, 97.9, 98.7, 96.0),
        ("cifar10", "fgsm", "softmax_baseline", 71.5, 89.5, 93.7, 80.6),
    ]
    cols = ["experiment", "dataset", "method", "fpr_at_95tpr", "auroc", "aupr_in", "aupr_out"]
    return pd.DataFrame(rows, columns=cols)


def _ours():
    rows = []
    for d in ("errors", "fgsm", "gaussian"):  # gaussian: not in the paper fixture
        for i, m in enumerate(METHODS):
            v = 80.0 + i
            rows.append(
                {
                    "experiment": "mnist",
                    "dataset": d,
                    "method": m,
                    "auroc": v,
                    "auroc_lo": v - 2,
                    "auroc_hi": v + 1,
                    "fpr_at_95tpr": 20.0,
                    "fpr_at_95tpr_lo": np.nan,
                    "fpr_at_95tpr_hi": np.nan,
                }
            )
    return pd.DataFrame(rows)


def test_metric_comparison_bars_ci_and_paper_markers():
    fig = P.metric_comparison(_ours(), _paper(), metric="auroc")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert _labelled(ax)
    assert "AUROC" in ax.get_xlabel() and "%" in ax.get_xlabel()
    assert len(ax.patches) == 6  # 2 datasets in both x 3 methods; gaussian dropped
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == [80.0, 80.0, 81.0, 81.0, 82.0, 82.0]
    (paper,) = [c for c in ax.collections if c.get_label() == "paper"]
    offsets = np.asarray(paper.get_offsets())
    assert len(offsets) == 5  # one paper value is NaN
    assert sorted(offsets[:, 0]) == sorted([86.3, 86.5, 87.8, 85.6, 97.9])
    errorbars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(errorbars) == len(METHODS)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["Errors (black patches)", "FGSM"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [*(P.METHOD_LABELS[m] for m in METHODS), "paper"]


def test_metric_comparison_without_ci_and_explicit_experiment():
    ours = _ours().drop(columns="experiment")
    fig = P.metric_comparison(ours, _paper(), metric="fpr_at_95tpr", experiment="mnist")
    ax = fig.axes[0]
    assert "FPR" in ax.get_xlabel()
    assert len(ax.patches) == 6
    assert not [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]


def test_metric_comparison_errors():
    with pytest.raises(ValueError):
        P.metric_comparison(_ours(), _paper(), metric="accuracy")
    with pytest.raises(ValueError):
        P.metric_comparison(_ours().drop(columns="auroc_lo"), _paper())
    with pytest.raises(ValueError):
        P.metric_comparison(_ours().drop(columns="experiment"), _paper())
    with pytest.raises(ValueError):  # no row in common
        P.metric_comparison(_ours(), _paper(), experiment="cifar10")


# ---------------------------------------------------------------------------
# save_figure, style hygiene
# ---------------------------------------------------------------------------


def test_save_figure_atomic_png(tmp_path):
    fig = P.roc_grid(*_grid_inputs(["fgsm"]), "mnist")
    target = tmp_path / "a" / "b" / "roc.png"
    out = P.save_figure(fig, target, dpi=50)
    assert out == target and out.exists()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["roc.png"]
    P.save_figure(fig, str(target))  # overwrite in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["roc.png"]
    with pytest.raises(ValueError):
        P.save_figure(fig, tmp_path / "roc.pdf")


def test_save_figure_failure_leaves_nothing(tmp_path, monkeypatch):
    fig = P.image_grid(np.zeros((2, 4, 4)))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError):
        P.save_figure(fig, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_figures_do_not_change_global_rcparams():
    before = _rc_snapshot()
    P.learning_curves(_history(2))
    P.logit_distributions(_stats(), "mnist")
    P.min_max_scatter(_logits(), "cifar10", n=20)
    P.roc_grid(*_grid_inputs(["fgsm"]), "mnist")
    assert _rc_snapshot() == before


def test_module_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, introspection.plots; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_styled_figures_keep_the_interactive_mode_the_backend_chose():
    # In Jupyter, the first figure loads the inline backend, which turns interactive mode
    # on inside the style context; leaving the context must not turn it off again, or no
    # later figure of the notebook is shown.
    import matplotlib

    before = matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        P._styled(lambda: matplotlib.interactive(True))()
        assert matplotlib.is_interactive()
        P._styled(lambda: None)()
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(before)


def test_auroc_grid_keeps_the_table_order_and_labels():
    table = pd.DataFrame(
        {
            "dataset": ["fgsm", "fgsm", "bim", "bim"],
            "method": ["trust_score", "softmax_baseline"] * 2,
            "auroc": [1.0, 2.0, 3.0, 4.0],
        }
    )
    grid = P.auroc_grid(table, "mnist")
    assert grid.index.tolist() == [
        P.dataset_label("fgsm", "mnist"),
        P.dataset_label("bim", "mnist"),
    ]
    assert grid.columns.tolist() == [
        P.METHOD_LABELS["trust_score"],
        P.METHOD_LABELS["softmax_baseline"],
    ]
    assert grid.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
