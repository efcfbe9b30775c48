import time

import numpy as np
import pandas as pd
import pytest

from introspection import metrics as M
from introspection.metrics import (
    METRICS,
    aupr_in,
    aupr_out,
    auroc,
    bootstrap_ci,
    evaluate,
    evaluate_with_ci,
    evaluation_table,
    fpr_at_tpr,
)

# ---------------------------------------------------------------------------
# A small case with ties, worked out by hand
# ---------------------------------------------------------------------------
#
#   score : 0.9  0.8  0.8  0.6  0.6  0.6  0.3  0.1
#   y     :  1    1    0    1    0    0    1    0        P = 4 positives, N = 4 negatives
#
# Distinct thresholds (accept score >= t), cumulative counts:
#   t = 0.9: TP 1 FP 0 -> (FPR, TPR) = (0.00, 0.25), precision 1/1
#   t = 0.8: TP 2 FP 1 -> (0.25, 0.50), precision 2/3
#   t = 0.6: TP 3 FP 3 -> (0.75, 0.75), precision 3/6
#   t = 0.3: TP 4 FP 3 -> (0.75, 1.00), precision 4/7
#   t = 0.1: TP 4 FP 4 -> (1.00, 1.00)
# AUROC (trapezoids from (0, 0)): 0.25 * (0.25 + 0.5) / 2 + 0.5 * (0.5 + 0.75) / 2
#   + 0.25 * 1 = 0.09375 + 0.3125 + 0.25 = 0.65625. Check by pairs (tie = 1/2):
#   positive 0.9 beats 4 negatives, 0.8 -> 3 + 1/2, 0.6 -> 1 + 2/2, 0.3 -> 1;
#   10.5 / 16 = 0.65625.
# AP-In = sum(recall increment * precision) = 1/4 * (1 + 2/3 + 3/6 + 4/7) = 115/168.
# AP-Out (negatives positive, thresholds from the low end, accept score <= t):
#   t = 0.1: neg 1 pos 0 -> precision 1;  t = 0.3: neg 1 pos 1 (no recall increment);
#   t = 0.6: neg 3 pos 2 -> 3/5;  t = 0.8: neg 4 pos 3 -> 4/7;
#   AP-Out = 1/4 * 1 + 2/4 * 3/5 + 1/4 * 4/7 = 97/140.
# FPR at TPR >= 0.95: the first threshold reaching it is t = 0.3 (TPR 1) -> FPR 3/4.
#   At TPR >= 0.5: t = 0.8 -> 1/4. At TPR >= 0.6: t = 0.6 -> 3/4 (the tie at 0.6 lets
#   in two negatives at once; no interpolation).
TIE_SCORE = np.array([0.9, 0.8, 0.8, 0.6, 0.6, 0.6, 0.3, 0.1])
TIE_Y = np.array([1, 1, 0, 1, 0, 0, 1, 0])


def test_hand_computed_case_with_ties():
    assert auroc(TIE_Y, TIE_SCORE) == pytest.approx(0.65625, abs=1e-12)
    assert aupr_in(TIE_Y, TIE_SCORE) == pytest.approx(115 / 168, abs=1e-12)
    assert aupr_out(TIE_Y, TIE_SCORE) == pytest.approx(97 / 140, abs=1e-12)
    assert fpr_at_tpr(TIE_Y, TIE_SCORE) == pytest.approx(0.75, abs=1e-12)
    assert fpr_at_tpr(TIE_Y, TIE_SCORE, tpr=0.5) == pytest.approx(0.25, abs=1e-12)
    assert fpr_at_tpr(TIE_Y, TIE_SCORE, tpr=0.6) == pytest.approx(0.75, abs=1e-12)
    res = evaluate(TIE_Y, TIE_SCORE)
    assert list(res) == list(METRICS)
    np.testing.assert_allclose(
        [res[k] for k in METRICS], [75.0, 65.625, 100 * 115 / 168, 100 * 97 / 140], atol=1e-10
    )


def test_order_of_examples_does_not_matter():
    perm = np.random.default_rng(0).permutation(len(TIE_Y))
    a, b = evaluate(TIE_Y, TIE_SCORE), evaluate(TIE_Y[perm], TIE_SCORE[perm])
    for k in METRICS:
        assert a[k] == pytest.approx(b[k], abs=1e-12)


def test_fpr_at_exact_tpr_boundary():
    # 20 positives at scores 20..1, negatives at 1.5 and 19.5. TPR 19/20 = 0.95 is
    # reached exactly at threshold 2, which accepts the negative at 19.5 only.
    s = np.r_[np.arange(20, 0, -1.0), 1.5, 19.5]
    y = np.r_[np.ones(20), 0, 0]
    assert fpr_at_tpr(y, s, tpr=0.95) == pytest.approx(0.5)
    assert fpr_at_tpr(y, s, tpr=0.951) == pytest.approx(1.0)


def test_perfect_and_reversed_scores():
    y = np.r_[np.ones(30), np.zeros(20)]
    s = np.r_[np.linspace(1, 2, 30), np.linspace(-1, 0, 20)]
    res = evaluate(y, s)
    assert res == pytest.approx(
        {"fpr_at_95tpr": 0.0, "auroc": 100.0, "aupr_in": 100.0, "aupr_out": 100.0}, abs=1e-9
    )
    rev = evaluate(y, -s)
    assert rev["auroc"] == pytest.approx(0.0) and rev["fpr_at_95tpr"] == pytest.approx(100.0)


def test_reversing_the_score_complements_auroc():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(y + rng.normal(0, 1, 500), 1)  # many ties
    assert auroc(y, -s) == pytest.approx(1 - auroc(y, s), abs=1e-12)
    assert evaluate(y, -s)["auroc"] == pytest.approx(100 - evaluate(y, s)["auroc"], abs=1e-9)
    # AUPR-Out is AUPR-In of the flipped problem
    assert aupr_out(y, s) == pytest.approx(aupr_in(1 - y, -s), abs=1e-12)


def test_uninformative_scores_give_auroc_50():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 20000)
    res = evaluate(y, rng.random(20000))
    assert res["auroc"] == pytest.approx(50.0, abs=1.5)
    assert res["fpr_at_95tpr"] == pytest.approx(95.0, abs=1.5)
    assert res["aupr_in"] == pytest.approx(100 * y.mean(), abs=1.5)


def test_constant_score_is_all_ties():
    y = np.array([1, 0, 1, 1, 0])
    res = evaluate(y, np.zeros(5))
    assert res["auroc"] == pytest.approx(50.0)
    assert res["fpr_at_95tpr"] == pytest.approx(100.0)
    assert res["aupr_in"] == pytest.approx(60.0)
    assert res["aupr_out"] == pytest.approx(40.0)


def test_boolean_labels_accepted():
    assert auroc(TIE_Y.astype(bool), TIE_SCORE) == pytest.approx(0.65625)


@pytest.mark.parametrize("func", [auroc, aupr_in, aupr_out, fpr_at_tpr, evaluate])
def test_input_errors(func):
    with pytest.raises(ValueError, match="both classes"):
        func(np.ones(5), np.arange(5.0))
    with pytest.raises(ValueError, match="NaN"):
        func([1, 0, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="entries"):
        func([1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="only 0"):
        func([1, 0, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="1-D"):
        func([[1, 0]], [[0.1, 0.2]])


def test_argument_errors():
    for tpr in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="tpr"):
            fpr_at_tpr(TIE_Y, TIE_SCORE, tpr=tpr)
    with pytest.raises(ValueError, match="ci"):
        bootstrap_ci(TIE_Y, TIE_SCORE, ci=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(TIE_Y, TIE_SCORE, n_boot=0)
    with pytest.raises(ValueError, match="n_boot"):
        evaluate_with_ci(TIE_Y, TIE_SCORE, n_boot=-1)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(TIE_Y, TIE_SCORE, metric="accuracy")


# ---------------------------------------------------------------------------
# The vectorised (one-sort) implementation
# ---------------------------------------------------------------------------


def _group_counts(y, s):
    ids, n_groups = M._group_ids(s)
    tp = np.bincount(ids[y == 1], minlength=n_groups)[None, :]
    fp = np.bincount(ids[y == 0], minlength=n_groups)[None, :]
    return tp, fp


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 300))
    y = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    y[:2] = [0, 1]
    s = np.round(y * rng.uniform(0, 2) + rng.normal(0, 1, n), int(rng.integers(0, 3)))
    tp, fp = _group_counts(y, s)
    fast = M._metrics_from_group_counts(tp, fp, int(y.sum()), int(n - y.sum()))
    slow = evaluate(y, s)
    for k in METRICS:
        assert 100 * fast[k][0] == pytest.approx(slow[k], abs=1e-10), k


def test_vectorised_metrics_hand_case():
    tp, fp = _group_counts(TIE_Y, TIE_SCORE)
    fast = M._metrics_from_group_counts(tp, fp, 4, 4)
    np.testing.assert_allclose(
        [fast[k][0] for k in METRICS], [0.75, 0.65625, 115 / 168, 97 / 140], atol=1e-12
    )


@pytest.mark.parametrize(
    ("name", "func"),
    [("fpr_at_95tpr", fpr_at_tpr), ("auroc", auroc), ("aupr_in", aupr_in), ("aupr_out", aupr_out)],
)
def test_fast_bootstrap_equals_generic_bootstrap(name, func):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    s = np.round(y + rng.normal(0, 1, 120), 1)
    fast = bootstrap_ci(y, s, metric=name, n_boot=60, random_state=7)
    slow = bootstrap_ci(y, s, metric=lambda a, b: 100 * func(a, b), n_boot=60, random_state=7)
    np.testing.assert_allclose(fast, slow, atol=1e-9)


# ---------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------


def _noisy(n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.7).astype(int)
    return y, y + rng.normal(0, 1.2, n)


def test_bootstrap_ci_contains_estimate_and_narrows():
    widths = []
    for n in (200, 5000):
        y, s = _noisy(n, seed=n)
        res = evaluate_with_ci(y, s, n_boot=300, random_state=0)
        for k in METRICS:
            assert res[f"{k}_lo"] <= res[k] <= res[f"{k}_hi"], (n, k)
        widths.append({k: res[f"{k}_hi"] - res[f"{k}_lo"] for k in METRICS})
        lo, hi = bootstrap_ci(y, s, metric="auroc", n_boot=300, random_state=0)
        assert (lo, hi) == (res["auroc_lo"], res["auroc_hi"])
    for k in METRICS:
        assert widths[1][k] < widths[0][k] / 2, k


def test_bootstrap_is_reproducible_and_stratified():
    y, s = _noisy(300, seed=4)
    a = evaluate_with_ci(y, s, n_boot=100, random_state=5)
    assert a == evaluate_with_ci(y, s, n_boot=100, random_state=5)
    assert a != evaluate_with_ci(y, s, n_boot=100, random_state=6)
    # one negative among many positives: every stratified resample keeps it
    y = np.r_[np.ones(50), 0]
    s = np.r_[np.arange(50.0), 10.5]
    lo, hi = bootstrap_ci(y, s, metric="auroc", n_boot=200)
    assert 0 < lo <= hi < 100


def test_evaluate_with_ci_keys_and_no_bootstrap():
    res = evaluate_with_ci(TIE_Y, TIE_SCORE, n_boot=0)
    assert list(res) == [*METRICS, *[f"{k}_{b}" for k in METRICS for b in ("lo", "hi")]]
    assert all(np.isnan(res[f"{k}_lo"]) for k in METRICS)
    assert res["auroc"] == pytest.approx(65.625)


def test_evaluate_with_ci_is_fast():
    y, s = _noisy(4000, seed=8)
    start = time.perf_counter()
    evaluate_with_ci(y, s, n_boot=1000)
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------
# Table 2
# ---------------------------------------------------------------------------


@pytest.fixture
def table_inputs():
    rng = np.random.default_rng(9)
    in_correct = rng.random(300) < 0.9
    in_scores = {
        "softmax_baseline": in_correct + rng.normal(0, 0.5, 300),
        "introspection_net": in_correct + rng.normal(0, 0.3, 300),
    }
    ood_scores = {
        "fgsm": {m: rng.normal(0, 0.5, 150) for m in ("introspection_net", "softmax_baseline")},
        "gaussian": {m: rng.normal(-10, 0.1, 80) for m in in_scores},
    }
    return in_correct, in_scores, ood_scores


def test_evaluation_table_shape_columns_order(table_inputs):
    in_correct, in_scores, ood_scores = table_inputs
    tab = evaluation_table(in_correct, in_scores, ood_scores, experiment="mnist", n_boot=50)
    assert isinstance(tab, pd.DataFrame)
    assert list(tab.columns) == [
        "experiment",
        "dataset",
        "method",
        "fpr_at_95tpr",
        "auroc",
        "aupr_in",
        "aupr_out",
        "fpr_at_95tpr_lo",
        "fpr_at_95tpr_hi",
        "auroc_lo",
        "auroc_hi",
        "aupr_in_lo",
        "aupr_in_hi",
        "aupr_out_lo",
        "aupr_out_hi",
        "n_pos",
        "n_neg",
    ]
    assert tab.shape == (4, 17)
    assert list(tab.experiment) == ["mnist"] * 4
    assert list(tab.dataset) == ["fgsm", "fgsm", "gaussian", "gaussian"]
    assert list(tab.method) == ["softmax_baseline", "introspection_net"] * 2
    n_err = int((~in_correct).sum())
    assert list(tab.n_pos) == [int(in_correct.sum())] * 4
    assert list(tab.n_neg) == [n_err + 150] * 2 + [n_err + 80] * 2
    assert (tab.auroc_lo <= tab.auroc).all() and (tab.auroc <= tab.auroc_hi).all()


def test_evaluation_table_counts_natural_errors_as_negatives(table_inputs):
    in_correct, in_scores, ood_scores = table_inputs
    tab = evaluation_table(in_correct, in_scores, ood_scores, experiment="mnist", n_boot=0)
    row = tab[(tab.dataset == "gaussian") & (tab.method == "softmax_baseline")].iloc[0]
    s = in_scores["softmax_baseline"]
    y = np.r_[in_correct.astype(int), np.zeros(80, int)]
    expected = evaluate(y, np.r_[s, ood_scores["gaussian"]["softmax_baseline"]])
    for k in METRICS:
        assert row[k] == pytest.approx(expected[k], abs=1e-12)
    # the gaussian scores are far below everything, so only the in-distribution errors
    # keep this row from being perfect
    assert row["auroc"] < 100.0
    no_errors = evaluate(
        np.r_[np.ones(in_correct.sum()), np.zeros(80)],
        np.r_[s[in_correct], ood_scores["gaussian"]["softmax_baseline"]],
    )
    assert no_errors["auroc"] == 100.0


def test_evaluation_table_paired_seed(table_inputs):
    in_correct, in_scores, ood_scores = table_inputs
    a = evaluation_table(in_correct, in_scores, ood_scores, experiment="x", n_boot=30)
    b = evaluation_table(in_correct, in_scores, ood_scores, experiment="x", n_boot=30)
    pd.testing.assert_frame_equal(a, b)


def test_evaluation_table_errors(table_inputs):
    in_correct, in_scores, ood_scores = table_inputs
    with pytest.raises(ValueError, match="methods"):
        evaluation_table(
            in_correct,
            in_scores,
            {"fgsm": {"softmax_baseline": np.zeros(3)}},
            experiment="x",
            n_boot=0,
        )
    with pytest.raises(ValueError, match="shape"):
        evaluation_table(in_correct[:10], in_scores, ood_scores, experiment="x", n_boot=0)
    with pytest.raises(ValueError, match="common"):
        bad = {"fgsm": {"softmax_baseline": np.zeros(3), "introspection_net": np.zeros(4)}}
        evaluation_table(in_correct, in_scores, bad, experiment="x", n_boot=0)
    with pytest.raises(ValueError, match="empty"):
        evaluation_table(in_correct, in_scores, {}, experiment="x", n_boot=0)
