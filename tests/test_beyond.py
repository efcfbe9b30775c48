"""Tables and figures of the chapters beyond the paper (fast, synthetic inputs)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from introspection import more_detectors, plots, seeds


def _table(values, ci=2.0):
    rows = []
    for (d, m), v in values.items():
        rows.append(
            {
                "dataset": d,
                "method": m,
                "auroc": v,
                "auroc_lo": v - ci,
                "auroc_hi": v + ci,
                "fpr_at_95tpr": 100 - v,
                "fpr_at_95tpr_lo": 100 - v - ci,
                "fpr_at_95tpr_hi": 100 - v + ci,
            }
        )
    return pd.DataFrame(rows)


def test_best_per_row_picks_by_metric_direction_and_checks_overlap():
    t = _table({("bim", "a"): 90.0, ("bim", "b"): 95.0, ("fgsm", "a"): 80.0, ("fgsm", "b"): 79.0})
    best = more_detectors.best_per_row(t)
    assert best.loc["bim", "best"] == "b" and best.loc["bim", "runner-up"] == "a"
    assert not best.loc["bim", "best CI overlaps runner-up"]  # 90 outside [93, 97]
    assert best.loc["fgsm", "best CI overlaps runner-up"]  # 79 inside [78, 82]
    # FPR: lower is better, so the same winners.
    fpr = more_detectors.best_per_row(t, "fpr_at_95tpr")
    assert list(fpr.best) == ["b", "a"] and fpr.loc["bim", "value"] == pytest.approx(5.0)


def test_seed_summary_mean_std_and_ci_width():
    by_seed = pd.DataFrame(
        {
            "seed": [0, 1, 2, 0, 1, 2],
            "dataset": ["bim"] * 3 + ["fgsm"] * 3,
            "method": ["introspection_net"] * 6,
            "fpr_at_95tpr": [1.0, 2.0, 3.0, 4.0, 4.0, 4.0],
            "auroc": [90.0, 92.0, 94.0, 80.0, 80.0, 80.0],
            "aupr_in": [1.0] * 6,
            "aupr_out": [1.0] * 6,
        }
    )
    table2 = _table({("bim", "introspection_net"): 90.0, ("fgsm", "introspection_net"): 80.0})
    for m in ("aupr_in", "aupr_out"):
        table2[f"{m}_lo"], table2[f"{m}_hi"] = 0.0, 1.0
    s = seeds.seed_summary(by_seed, table2)
    assert s.loc["bim", "auroc mean"] == pytest.approx(92.0)
    assert s.loc["bim", "auroc std"] == pytest.approx(2.0)  # ddof = 1
    assert s.loc["fgsm", "auroc std"] == 0.0
    assert s.loc["bim", "auroc CI width"] == pytest.approx(4.0)


def test_heatmap_annotates_finite_cells_only():
    v = pd.DataFrame([[99.0, np.nan], [60.0, 75.5]], index=["a", "b"], columns=["x", "y"])
    fig = plots.heatmap(v, title="t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == ["60.0", "75.5", "99.0"]
    plt.close(fig)
    with pytest.raises(ValueError):
        plots.heatmap(pd.DataFrame())


def test_seed_spread_draws_every_seed():
    by_seed = pd.DataFrame(
        {"seed": [0, 1, 0, 1], "dataset": ["bim", "bim", "fgsm", "fgsm"], "auroc": [1, 2, 3, 4.0]}
    )
    table2 = _table({("bim", "introspection_net"): 1.5, ("fgsm", "introspection_net"): 3.5})
    fig = plots.seed_spread(by_seed, table2, "mnist")
    dots = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o"]
    assert sum(len(ln.get_xdata()) for ln in dots) == 4
    plt.close(fig)


def test_new_methods_have_labels_and_distinct_colours():
    for m in more_detectors.EXTRA_METHODS:
        assert plots.method_label(m) != m
    colours = list(plots.METHOD_COLORS.values())
    assert len(set(colours)) == len(colours)


def test_detector_ranking_reads_the_intervals():
    from introspection import analysis

    t = _table(
        {
            ("bim", "softmax_baseline"): 90.0,
            ("bim", "introspection_net"): 95.0,
            ("bim", "max_logit"): 97.5,
            ("fgsm", "softmax_baseline"): 70.0,
            ("fgsm", "introspection_net"): 95.0,
            ("fgsm", "max_logit"): 60.0,
        }
    )
    rank = analysis.detector_ranking(t)
    assert rank.best.tolist() == ["max_logit", "introspection_net"]
    assert rank.free_above.tolist() == [True, False]  # max logit 97.5 above [94, 96]
    assert rank.free_reaches.tolist() == [True, False]
    assert rank.logits_reach.tolist() == [True, False]
    assert rank.loc["fgsm", "free"] == "softmax_baseline"


def test_adaptive_curves_one_line_per_detector_and_attack():
    rows = []
    for eps in (0.1, 0.3, None):
        for m in ("softmax_baseline", "introspection_net"):
            for a in ("pgd", "adaptive (best)", "joint_pgd"):
                rows.append({"epsilon": eps, "detector": m, "attack": a, "evasion_rate": 50.0})
    fig = plots.adaptive_curves(pd.DataFrame(rows), 0.3)
    lines = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o"]
    assert len(lines) == 4 and all(len(ln.get_xdata()) == 3 for ln in lines)
    assert fig.axes[0].get_xticklabels()[-1].get_text() == "unbounded"
    plt.close(fig)


def test_beyond_table_and_adaptive_headline(tmp_path):
    from introspection import analysis

    folder = tmp_path / "mnist"
    folder.mkdir()
    t2 = _table(
        {
            ("bim", "introspection_net"): 99.0,
            ("fgsm", "introspection_net"): 97.0,
            ("bim", "softmax_baseline"): 80.0,
            ("fgsm", "softmax_baseline"): 90.0,
        }
    )
    rows = []
    for eps in (0.15, 0.3, None):
        for m in ("softmax_baseline", "trust_score", "introspection_net"):
            for a, r in (("pgd", 20.0), ("adaptive (best)", 95.0)):
                rows.append({"epsilon": eps, "detector": m, "attack": a, "evasion_rate": r})
    pd.DataFrame(rows).to_csv(folder / "adaptive.csv", index=False)
    loo = _table({("bim", "introspection_net"): 90.0, ("fgsm", "introspection_net"): 96.0})
    loo["held_out"] = ["bim", "fgsm"]
    loo.to_csv(folder / "leave_one_out.csv", index=False)
    table = analysis.beyond_table(tmp_path, {"mnist": t2}, {"mnist": 0.3})
    assert table.loc["AUROC change on a kind left out of training (mean, worst)", "mnist"] == (
        "-5.0, -9.0 (bim)"
    )
    key = "evasion of introspection_net at Table 2's ε (plain PGD -> adaptive)"
    assert table.loc[key, "mnist"] == "20.0 % -> 95.0 %"
    held = analysis.adaptive_headline(tmp_path, {"mnist": t2}, {"mnist": 0.3})
    assert held.loc["mnist"].to_dict() == {
        "auroc": 98.0,
        "epsilon": 0.3,
        "pgd": 20.0,
        "adaptive": 95.0,
        "softmax_adaptive": 95.0,
        "trust_adaptive": 95.0,
    }
    rates = analysis.adaptive_rates(pd.read_csv(folder / "adaptive.csv"), 0.15)
    assert rates.loc["trust_score"].tolist() == [20.0, 95.0, 95.0]
