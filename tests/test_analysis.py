import numpy as np
import pandas as pd
import pytest

from introspection import analysis
from introspection import paper as reported

METHODS = ("softmax_baseline", "trust_score", "introspection_net")


def fake_table(experiment, auroc):
    rows = []
    for (dataset, method), a in auroc.items():
        row = {"experiment": experiment, "dataset": dataset, "method": method}
        for m in ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out"):
            v = 100 - a if m == "fpr_at_95tpr" else a
            row.update({m: v, f"{m}_lo": v - 1, f"{m}_hi": v + 1})
        rows.append(row)
    return pd.DataFrame(rows)


def test_logit_statistics_and_welch():
    rng = np.random.default_rng(0)
    logits = {
        "mnist": rng.normal(5, 1, (500, 10)),
        "fgsm": rng.normal(2, 1, (500, 10)),
        "same": rng.normal(5, 1, (500, 10)),
    }
    s = analysis.logit_statistics(logits)
    np.testing.assert_allclose(s.loc["fgsm", "mean_logit"], logits["fgsm"].mean(), rtol=1e-12)
    np.testing.assert_allclose(s.loc["mnist", "max_logit"], logits["mnist"].max(1).mean())
    t = analysis.welch_tests({k: v.mean(1) for k, v in logits.items()}, "mnist")
    assert bool(t.loc["fgsm", "lower"]) and not bool(t.loc["same", "lower"])
    assert t.loc["fgsm", "p_value"] < 1e-10
    with pytest.raises(ValueError):
        analysis.welch_tests({"a": np.ones(3)}, "b")


def test_claims_on_a_table_like_the_papers():
    paper = reported.table2("cifar10")
    table = paper.copy()
    for m in ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out"):
        table[f"{m}_lo"], table[f"{m}_hi"] = table[m] - 0.5, table[m] + 0.5
    c = analysis.claims(table, "cifar10").set_index("claim")
    verdicts = dict(zip(c.index, c.verdict, strict=True))
    # On its own numbers every claim of the paper holds.
    assert set(verdicts.values()) == {"reproduced"}, verdicts
    assert any("DeepFool" in k for k in verdicts)
    cmp = analysis.compare_with_paper(table, paper)
    assert not cmp.outside_ci.any() and np.allclose(cmp.difference, 0)


def test_claims_detect_failures():
    auroc = {
        (d, m): 80.0
        for d in ("errors", "bim", "fgsm", "gaussian", "uniform", "cifar10", "fashion_mnist")
        for m in METHODS
    }
    auroc[("bim", "introspection_net")] = 95.0
    auroc[("errors", "trust_score")] = 60.0
    c = analysis.claims(fake_table("mnist", auroc), "mnist").set_index("claim")["verdict"]
    assert c.iloc[0] == "partly"  # best only on BIM
    assert c.iloc[1] == "not reproduced"  # OOD not near-perfect
    assert c.iloc[2] == "not reproduced"  # errors spread of 20 points


def test_table2_markdown_bolds_the_best():
    auroc = {("bim", m): a for m, a in zip(METHODS, (70.0, 80.0, 90.0), strict=True)}
    md = analysis.table2_markdown(fake_table("mnist", auroc))
    lines = md.splitlines()
    assert len(lines) == 2 + 3
    assert "**90.0 [89.0, 91.0]**" in lines[-1]  # best AUROC
    assert "**10.0 [9.0, 11.0]**" in lines[-1]  # lowest FPR is best
    assert "**" not in lines[2]


def test_paper_table_shipped_with_the_package():
    t = reported.table2()
    assert len(t) == 48 and set(t.experiment) == {"mnist", "cifar10"}
    assert (
        t.set_index(["experiment", "dataset", "method"]).loc[
            ("cifar10", "bim", "introspection_net"), "auroc"
        ]
        == 97.9
    )


def test_results_of_a_profile_are_summarised(tmp_path):
    import json

    paper = reported.table2()
    for exp in ("mnist", "cifar10"):
        (tmp_path / exp).mkdir()
        t = paper[paper.experiment == exp].copy()
        for m in ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out"):
            t[f"{m}_lo"], t[f"{m}_hi"] = t[m] - 1, t[m] + 1
        t.to_csv(tmp_path / exp / "table2.csv", index=False)
        (tmp_path / exp / "summary.json").write_text(
            json.dumps(
                {
                    "profile": "cpu",
                    "base_accuracy": 0.99,
                    "wall_seconds": {"base_model": 10.0},
                    "machine": {"cpu": "x", "cores": 2},
                }
            )
        )
    # a later stage's time, written after the summary
    (tmp_path / "mnist" / "stage_seconds.json").write_text(json.dumps({"seeds": 7.0}))
    tables, summaries = analysis.load_results(tmp_path)
    assert set(tables) == {"mnist", "cifar10"}
    runs = analysis.runs_table(summaries)
    assert runs.loc["paper (%)", "mnist"] == "99.65" and runs.loc["base_model (s)", "mnist"] == "10"
    assert runs.loc["seeds (s)", "mnist"] == "7"
    assert analysis.display_table(runs).loc["seeds (s)", "cifar10"] == "–"
    side = analysis.auroc_side_by_side(tables, paper)
    assert len(side) == 16 and side.loc[("cifar10", "bim"), ("paper", "introspection_net")] == 97.9
    rep = analysis.reproduction_summary(tables, summaries, paper)
    assert rep.loc["mnist", ["outside_ci", "cells"]].tolist() == [0, 24]
    assert rep.loc["mnist", "base_accuracy"] == pytest.approx(99.0)
    assert rep.loc["mnist", "claims"] == len(analysis.claims(tables["mnist"], "mnist"))


def test_confidence_table_and_difference_checks():
    rng = np.random.default_rng(0)
    logits = {
        "mnist": rng.normal(0, 1, (50, 10)) + 8 * np.eye(10)[rng.integers(0, 10, 50)],
        "deepfool": rng.normal(0, 1, (50, 10)),
    }
    conf = analysis.confidence_table(logits, "mnist")
    from scipy.special import softmax

    np.testing.assert_allclose(
        conf.loc["deepfool", "max softmax (%)"],
        100 * softmax(logits["deepfool"], axis=1).max(1).mean(),
    )
    assert conf.loc["deepfool", "paper max logit"] == 3.4

    paper = reported.table2("mnist")
    ours = paper.copy()
    for m in ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out"):
        ours[f"{m}_lo"], ours[f"{m}_hi"] = ours[m] - 0.5, ours[m] + 0.5
    # Two gaps: one that leaving out natural errors explains, one nothing explains.
    i = ours.index[(ours.dataset == "deepfool") & (ours.method == "softmax_baseline")][0]
    j = ours.index[(ours.dataset == "fgsm") & (ours.method == "trust_score")][0]
    ours.loc[i, ["auroc", "auroc_lo", "auroc_hi"]] = [88.1, 87.0, 89.0]  # paper 98.1
    ours.loc[j, ["auroc", "auroc_lo", "auroc_hi"]] = [70.6, 69.0, 72.0]  # paper 88.6
    correct_only = ours[["experiment", "dataset", "method", "auroc"]].copy()
    correct_only.loc[i, "auroc"] = 97.0
    spaces = pd.DataFrame({"features": {"fgsm": 70.6}, "pixels": {"fgsm": 75.0}})
    far = analysis.difference_checks(ours, paper, correct_only, spaces)
    assert far.index.tolist() == [("fgsm", "trust_score"), ("deepfool", "softmax_baseline")]
    d = far.loc[("deepfool", "softmax_baseline")]
    assert d.closest == "natural errors left out" and d.closes == pytest.approx(89.0)
    f = far.loc[("fgsm", "trust_score")]
    assert f["Trust Score on pixels"] == 75.0 and f.closest == "Trust Score on pixels"
    assert f.closes == pytest.approx(100 * 4.4 / 18.0) and f.closes < 50  # not explained
    precision = pd.DataFrame({"auroc float64": {"deepfool": 98.0}})
    far = analysis.difference_checks(ours, paper, correct_only, spaces, precision)
    assert far.loc[("deepfool", "softmax_baseline"), "closest"] == "a float64 softmax"
    exact = paper.assign(
        **{
            f"{m}_{b}": paper[m]
            for m in ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out")
            for b in ("lo", "hi")
        }
    )
    assert analysis.difference_checks(exact, paper, correct_only, spaces).empty


def test_softmax_precision_check_counts_float32_ties():
    # In-distribution logits with a gap of 40: float32 max softmax is exactly 1 (ties),
    # float64 still ranks them; the other set has a gap of 20 (1 - 2e-9: below float32
    # resolution too) so in float32 every score ties at 1 and the AUROC drops to 50.
    z_in = np.zeros((20, 10))
    z_in[:, 0] = 40.0
    z_out = np.zeros((30, 10))
    z_out[:, 0] = 20.0
    c = analysis.softmax_precision_check(z_in, np.ones(20, bool), {"bim": z_out})
    assert c.loc["bim", "auroc float64"] == 100.0
    assert c.loc["bim", "auroc float32"] == 50.0
    assert c.loc["bim", "ties in-distribution"] == 1.0 and c.loc["bim", "ties dataset"] == 1.0


def test_display_table_rounds_and_dashes_missing_values():
    table = pd.DataFrame({"auroc": [97.256, None], "n": [10, 20]}, index=["bim", "fgsm"])
    shown = analysis.display_table(table, 1)
    assert shown.loc["bim", "auroc"] == 97.3 and shown.loc["fgsm", "auroc"] == "–"
    assert shown["n"].tolist() == [10, 20]
    assert "NaN" not in shown.to_html() and "NaN" not in repr(shown)


def test_min_max_separation_tells_logits_from_softmax():
    rng = np.random.default_rng(0)
    # Two sets whose softmax is the same but whose logits are shifted by a constant:
    # the softmax cannot tell them apart, the logits can.
    base = rng.normal(0, 1, (300, 4))
    logits = {"clean": base[:150] + 5.0, "shifted": base[150:]}
    sep = analysis.min_max_separation(logits, "clean", seed=0)
    assert list(sep.index) == ["shifted"]
    assert sep.loc["shifted", "logits"] > 99
    assert 30 < sep.loc["shifted", "softmax"] < 70


def test_new_table2_claims():
    rows = []
    values = {"errors": (90.0, 91.0, 92.0), "bim": (60.0, 80.0, 99.0), "gaussian": (70, 75, 99.5)}
    for d, v in values.items():
        for m, a in zip(("softmax_baseline", "trust_score", "introspection_net"), v, strict=True):
            rows.append({"dataset": d, "method": m, "auroc": a})
    c = analysis.claims(pd.DataFrame(rows), "mnist").set_index("claim")
    hardest = c.loc[[k for k in c.index if k.startswith("Errors are")][0]]
    assert hardest.verdict == "reproduced" and "errors (92.0)" in hardest.evidence
    overall = c.loc[[k for k in c.index if "overall better" in k][0]]
    assert overall.verdict == "reproduced"
    margin = c.loc[[k for k in c.index if "large margin" in k][0]]
    # mean 96.8 against the Trust Score's 82.0: +14.8 points
    assert margin.verdict == "reproduced" and "+14.8" in margin.evidence
