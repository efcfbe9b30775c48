"""Reading the results (every number a chapter's text states): Table 2 against the paper, claims."""

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import paper as _paper
from .config import ATTACKS, EXPERIMENTS
from .detectors import SoftmaxBaseline, softmax
from .metrics import METRICS, auroc

__all__ = [
    "display_table", "LOWER_IS_BETTER", "logit_statistics", "welch_tests",
    "max_logit_comparison", "compare_with_paper", "table2_markdown", "claims",
    "claims_markdown", "load_results", "runs_table", "auroc_side_by_side", "logit_claims",
    "min_max_separation", "table2_vs_paper_markdown", "versions_table", "claims_for_experiment",
    "confidence_table", "softmax_precision_check", "TRAINING_FREE", "reproduction_summary",
    "difference_checks", "detector_ranking", "adaptive_rates", "adaptive_headline", "beyond_table",
]  # fmt: skip

#: Detectors that never see a misclassified example (the paper's future-work question).
TRAINING_FREE = (
    "softmax_baseline", "max_logit", "energy", "odin", "mahalanobis", "mahalanobis_preprocessed"
)  # fmt: skip

#: Metrics where a lower value is better.
LOWER_IS_BETTER = {"fpr_at_95tpr"}

_CLAIM_COLUMNS = ["claim", "verdict", "evidence"]


def display_table(table: pd.DataFrame, decimals: int = 1) -> pd.DataFrame:
    """A table as a page shows it: rounded, with an en dash where there is no value.

    Examples
    --------
    >>> display_table(pd.DataFrame({"auroc": [97.25, None]}))["auroc"].tolist()
    [97.2, '–']
    """
    out = table.round(decimals).astype(object)
    return out.where(table.notna(), "–")


def _markdown(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
    return "\n".join(lines)


def _cells_markdown(head, table: pd.DataFrame, labels, methods, cell) -> str:
    """Markdown of a row per row of ``table``: dataset and method labels, ``cell(row, metric)``."""
    labels, methods = dict(labels or {}), dict(methods or {})
    rows = [[labels.get(r["dataset"], r["dataset"]), methods.get(r["method"], r["method"]),
             *(cell(r, m) for m in METRICS)] for _, r in table.iterrows()]  # fmt: skip
    return _markdown(head, rows)


def _by_dataset(rows: Mapping[str, dict]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("dataset")


def _with_ci(value: float, lo: float, hi: float) -> str:
    return f"{value:.1f} [{lo:.1f}, {hi:.1f}]"


def logit_statistics(logits: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Section 2.3: per dataset's (N, K) logits, ``n`` and ``{mean,max,min}_logit[_std]``."""
    rows = {}
    for name, z in logits.items():
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or len(z) < 2:
            raise ValueError(f"{name}: expected logits (N >= 2, K), got shape {z.shape}.")
        rows[name] = {"n": len(z)}
        for stat, v in (("mean", z.mean(1)), ("max", z.max(1)), ("min", z.min(1))):
            rows[name] |= {f"{stat}_logit": v.mean(), f"{stat}_logit_std": v.std(ddof=1)}
    return _by_dataset(rows)


def welch_tests(values: Mapping[str, np.ndarray], reference: str) -> pd.DataFrame:
    """Welch's t-test of each dataset's values against ``reference``'s; ``lower``: p < 0.0001."""
    if reference not in values:
        raise ValueError(f"reference {reference!r} is not one of {list(values)}.")
    ref = np.asarray(values[reference], dtype=np.float64)

    def test(v):
        v = np.asarray(v, dtype=np.float64)
        t, p = stats.ttest_ind(ref, v, equal_var=False)
        return {
            "mean": v.mean(), "reference_mean": ref.mean(), "difference": ref.mean() - v.mean(),
            "t": float(t), "p_value": float(p), "lower": bool(v.mean() < ref.mean() and p < 1e-4),
        }  # fmt: skip

    return _by_dataset({n: test(v) for n, v in values.items() if n != reference})


def max_logit_comparison(stats_table: pd.DataFrame, in_distribution: str) -> pd.DataFrame:
    """Our max-logit mean ± std per dataset beside the paper's (Section 2.3, MNIST only)."""
    rows = {}
    for name, r in stats_table.iterrows():
        paper = _paper.max_logit(name, in_distribution)
        rows[name] = {"ours": f"{r['max_logit']:.1f} ± {r['max_logit_std']:.1f}",
                      "paper": f"{paper[0]} ± {paper[1]}" if paper else ""}  # fmt: skip
    return _by_dataset(rows)


def _merged(table: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    return table.merge(
        paper, on=["experiment", "dataset", "method"], how="left", suffixes=("", "_paper")
    )


def _vs_paper(r: pd.Series, m: str) -> dict:
    """Metric ``m`` of a row of :func:`_merged`: ours, CI, paper, difference, ``outside_ci``."""
    p, lo, hi = (r.get(f"{m}_{s}", np.nan) for s in ("paper", "lo", "hi"))
    out = bool(np.isfinite(p) and np.isfinite(lo) and not lo <= p <= hi)
    return {"ours": r[m], "lo": lo, "hi": hi, "paper": p, "difference": r[m] - p, "outside_ci": out}


def compare_with_paper(table: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, method, metric: ours, lo, hi, paper, difference, paper ``outside_ci`` ours."""
    rows = [{"dataset": r["dataset"], "method": r["method"], "metric": m, **_vs_paper(r, m)}
            for _, r in _merged(table, paper).iterrows() for m in METRICS]  # fmt: skip
    return pd.DataFrame(rows)


def _best(table: pd.DataFrame, metric: str) -> np.ndarray:
    """Which rows have the best ``metric`` of their dataset (none where all are NaN)."""
    by = table.groupby("dataset", sort=False)[metric]
    return np.isclose(table[metric], by.transform("min" if metric in LOWER_IS_BETTER else "max"))


def table2_markdown(
    table: pd.DataFrame, paper: pd.DataFrame | None = None,
    labels: Mapping[str, str] | None = None, methods: Mapping[str, str] | None = None,
) -> str:  # fmt: skip
    """Table 2 in Markdown: ``ours [lo, hi] (paper)``, the best per dataset and metric in bold."""
    order = np.argsort(pd.factorize(table["dataset"])[0], kind="stable")
    table = table.iloc[order].reset_index(drop=True)  # each dataset's rows together
    best = {m: _best(table, m) for m in METRICS}
    pap = None if paper is None else paper.set_index(["dataset", "method"])

    def cell(r, m):
        ci = np.isfinite(r.get(f"{m}_lo", np.nan))
        text = _with_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"]) if ci else f"{r[m]:.1f}"
        text = f"**{text}**" if best[m][r.name] else text
        key = (r["dataset"], r["method"])
        return text + (f" ({pap.loc[key, m]:.1f})" if pap is not None and key in pap.index else "")

    head = ["dataset", "method", "FPR at 95% TPR ↓", "AUROC ↑", "AUPR-In ↑", "AUPR-Out ↑"]
    return _cells_markdown(head, table, labels, methods, cell)


def table2_vs_paper_markdown(
    table: pd.DataFrame, paper: pd.DataFrame, labels: Mapping[str, str] | None = None,
    methods: Mapping[str, str] | None = None,
) -> str:  # fmt: skip
    """Table 2 in Markdown: paper → ours [95% CI] (difference), ⚠ where outside our CI."""

    def cell(r, m):
        c = _vs_paper(r, m)
        ours = _with_ci(c["ours"], c["lo"], c["hi"])
        if not np.isfinite(c["paper"]):
            return ours
        diff = f"{c['difference']:+.1f}"
        diff = f"(**{diff}**) ⚠" if c["outside_ci"] else f"({diff})"
        return f"{c['paper']:.1f} → {ours} {diff}"

    head = ["dataset", "method", "FPR95 ↓", "AUROC", "AUPR-In", "AUPR-Out"]
    return _cells_markdown(head, _merged(table, paper), labels, methods, cell)


def _verdict(n_ok: int, n_all: int = 1) -> str:
    """The verdict when ``n_ok`` of ``n_all`` checks hold (one check: ``n_ok`` a bool)."""
    ok = "reproduced" if n_ok == n_all else ("partly" if n_ok > 0 else "not reproduced")
    return ok if n_all else "not tested"


def claims(
    table: pd.DataFrame, experiment: str, close_margin: float = 5.0, large_margin: float = 5.0
) -> pd.DataFrame:
    """The claims of Sections 3.3 and 4 about Table 2; the margins are in AUROC points."""
    three = ["softmax_baseline", "trust_score", "introspection_net"]
    a = table.pivot(index="dataset", columns="method", values="auroc")
    a = a.reindex(table.dataset.unique())
    net, soft, trust = a["introspection_net"], a["softmax_baseline"], a["trust_score"]
    sets = EXPERIMENTS[experiment]["datasets"]
    ood = [d for d in sets if d not in (experiment, *ATTACKS) and d in a.index]
    targets = [d for d in ("bim", "fgsm") if d in a.index] + ood
    wins = [d for d in targets if net[d] > max(soft[d], trust[d])]
    evidence = "; ".join(
        f"{d}: {net[d]:.1f} vs {soft[d]:.1f} (softmax), {trust[d]:.1f} (trust)" for d in targets
    )
    near = [d for d in ood if net[d] >= 99.0]
    rows = [
        ("Introspection-Net has the best AUROC on BIM, FGSM and every OOD set",
         _verdict(len(wins), len(targets)), evidence),
        ("Introspection-Net is close to perfect on OOD data (AUROC >= 99)",
         _verdict(len(near), len(ood)), ", ".join(f"{d}: {net[d]:.1f}" for d in ood)),
    ]  # fmt: skip
    if "errors" in a.index:
        on_errors = a.loc["errors", three]
        spread = on_errors.max() - on_errors.min()
        evidence = ", ".join(f"{m}: {v:.1f}" for m, v in on_errors.items())
        claim = f"The three methods are close on errors (AUROC within {close_margin:g})"
        rows.append((claim, _verdict(spread <= close_margin), f"{evidence} (spread {spread:.1f})"))
    lowest = f"lowest: {net.idxmin()} ({net.min():.1f})"
    lowest += f"; errors {net['errors']:.1f}" if "errors" in net.index else ""
    mean = {m: a[m].mean() for m in three}
    margin = mean["introspection_net"] - max(mean["softmax_baseline"], mean["trust_score"])
    evidence = ", ".join(f"{m}: {v:.1f}" for m, v in mean.items())
    rows += [
        ("Errors are Introspection-Net's hardest task: its lowest AUROC (Section 3.3)",
         _verdict(net.idxmin() == "errors"), lowest),
        ("Introspection-Net is overall better than both baselines: the best mean AUROC over the "
         "rows (Section 3.3)", _verdict(margin > 0), f"mean AUROC {evidence}"),
        (f"... by a large margin (Section 4): at least {large_margin:g} points of mean AUROC "
         "over the better baseline", _verdict(margin >= large_margin),
         f"margin {margin:+.1f} points"),
    ]  # fmt: skip
    if experiment == "cifar10" and "deepfool" in a.index:
        s, n = soft["deepfool"], net["deepfool"]
        claim = "On CIFAR-10 the Softmax Baseline beats Introspection-Net on DeepFool"
        rows.append((claim, _verdict(s > n), f"AUROC softmax {s:.1f} vs Introspection-Net {n:.1f}"))
    return pd.DataFrame(rows, columns=_CLAIM_COLUMNS)


def claims_markdown(claims_table: pd.DataFrame) -> str:
    """The claims checklist (:func:`claims`) as a Markdown table."""
    mark = {"reproduced": "✔ ", "partly": "◐ ", "not reproduced": "✘ "}
    rows = claims_table[_CLAIM_COLUMNS].itertuples(index=False)
    return _markdown(_CLAIM_COLUMNS, [(c, mark.get(v, "") + v, e) for c, v, e in rows])


def logit_claims(
    tests: pd.DataFrame, stats_table: pd.DataFrame, experiment: str, in_distribution: str,
    separation: pd.DataFrame | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Section 2.3's claims as :func:`claims`; ``tests``: :func:`welch_tests` of the mean logit."""
    evidence = (f"{d}: {r['mean']:.3g} vs {r['reference_mean']:.3g}, p = {r['p_value']:.1e}"
                for d, r in tests.iterrows())  # fmt: skip
    rows = [("The mean logit is significantly lower (p < 0.0001) for every other dataset than for "
             "correctly classified in-distribution images",
             _verdict(tests["lower"].sum(), len(tests)), "; ".join(evidence))]  # fmt: skip
    order = [d for d in (in_distribution, "bim", "fgsm", "deepfool") if d in stats_table.index]
    paper = " > ".join(f"{_paper.MAX_LOGIT[d][0]:g}" for d in ("mnist", "bim", "fgsm", "deepfool"))
    wording = {
        "max_logit": "The max logit is lower for BIM, FGSM and DeepFool examples than for "
        f"in-distribution images (paper, MNIST: {paper})",
        "min_logit": "The min logit is lower too for BIM, FGSM and DeepFool examples "
        '(Section 2.3: "the same observation can be made about minimum values")',
    }
    if len(order) == 4:  # the clean set, BIM, FGSM and DeepFool
        for column, claim in wording.items():
            v, std = stats_table.loc[order, column], stats_table[column + "_std"]
            below = [d for d in order[1:] if v[d] < v[in_distribution]]
            evidence = ", ".join(f"{d}: {v[d]:.1f} ± {std[d]:.1f}" for d in order)
            rows.append((claim, _verdict(len(below), 3), evidence))
    if separation is not None and len(separation):
        better = (separation["logits"] > separation["softmax"]).sum()
        pairs = (f"{d}: {r['logits']:.1f} vs {r['softmax']:.1f}" for d, r in separation.iterrows())
        rows.append((
            "The min and max of the logits separate in-distribution images from the other sets "
            "better than those of the softmax (Figure 2)", _verdict(better, len(separation)),
            "AUROC of a logistic regression on (min, max), logits vs softmax: " + "; ".join(pairs),
        ))  # fmt: skip
    return pd.DataFrame(rows, columns=_CLAIM_COLUMNS)


def load_results(root) -> tuple[dict, dict]:
    """Each experiment's ``table2.csv`` and ``summary.json`` (with ``stage_seconds.json``)."""
    root, tables, summaries = Path(root), {}, {}
    for exp in ("mnist", "cifar10"):
        t, s = root / exp / "table2.csv", root / exp / "summary.json"
        if t.is_file() and s.is_file():
            tables[exp] = pd.read_csv(t)
            summaries[exp] = json.loads(s.read_text())
            if (stages := root / exp / "stage_seconds.json").is_file():
                summaries[exp].setdefault("wall_seconds", {}).update(json.loads(stages.read_text()))
    return tables, summaries


def runs_table(summaries: Mapping[str, dict]) -> pd.DataFrame:
    """Base accuracy beside the paper's, wall time per stage, machine: a column per experiment."""
    origin = {"trained": "trained by this run", "cache": "trained earlier, reused",
              "published": "the published ones"}  # fmt: skip
    cols = {}
    for exp, s in summaries.items():
        paper, m, w = _paper.ACCURACY.get(exp), s["machine"], s.get("base_model") or {}
        trained = f"{w['precision']} on {w['cpu']} ({w['isa']})" if "precision" in w else "—"
        cols[exp] = {
            "profile": s["profile"], "test accuracy (%)": f"{100 * s['base_accuracy']:.2f}",
            "paper (%)": f"{100 * paper:.2f}" if paper else "not stated",
            **{f"{k} (s)": f"{v:.0f}" for k, v in s.get("wall_seconds", {}).items()},
            "CPU": m["cpu"], "cores": m["cores"], "instruction set": m.get("isa", "—"),
            "base classifier trained in": trained,
            "base classifier weights": origin.get(w.get("origin"), "—"),
        }  # fmt: skip
    return pd.DataFrame(cols)


def versions_table(summaries: Mapping[str, dict]) -> pd.DataFrame:
    """Library versions and machine of each experiment's run, one column per experiment."""
    cols = {e: {**s.get("versions", {}), "CPU": (m := s["machine"])["cpu"], "cores": m["cores"],
                "platform": m.get("platform", "")} for e, s in summaries.items()}  # fmt: skip
    return pd.DataFrame(cols).fillna("")


def auroc_side_by_side(
    tables: Mapping[str, pd.DataFrame], paper: pd.DataFrame,
    methods: Mapping[str, str] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """AUROC, ours [95% CI] and the paper's, by (experiment, dataset) and (ours|paper, method)."""
    if not tables:
        return pd.DataFrame()
    d = pd.concat(compare_with_paper(t, paper).assign(experiment=e) for e, t in tables.items())
    d = d[d.metric == "auroc"]
    ours = [_with_ci(*v) for v in zip(d.ours, d.lo, d.hi, strict=True)]
    d = d.assign(ours=ours, method=d.method.replace(dict(methods or {})))
    return d.pivot(index=["experiment", "dataset"], columns="method", values=["ours", "paper"])


def min_max_separation(
    logits: Mapping[str, np.ndarray], in_distribution: str, seed: int = 0
) -> pd.DataFrame:
    """Figure 2 in numbers: 5-fold AUROC (%) of a logistic regression on (min, max) per space."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds, ref = StratifiedKFold(5, shuffle=True, random_state=seed), logits[in_distribution]

    def separation(z, space):
        v = [softmax(a) if space == "softmax" else np.asarray(a, np.float64) for a in (ref, z)]
        x = np.concatenate([np.c_[a.min(axis=1), a.max(axis=1)] for a in v])
        y = np.r_[np.ones(len(ref)), np.zeros(len(z))]
        model = make_pipeline(StandardScaler(), LogisticRegression())
        p = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
        return 100 * auroc(y, p)

    others = {n: z for n, z in logits.items() if n != in_distribution}
    rows = {n: {s: separation(z, s) for s in ("logits", "softmax")} for n, z in others.items()}
    return _by_dataset(rows)


def claims_for_experiment(folder, table: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The logit claims (if chapter 03 wrote its tables into ``folder``), then Table 2's."""
    found = {n: pd.read_csv(f, index_col=0) for n in ("tests", "stats", "separation")
             if (f := Path(folder) / f"logit_{n}.csv").is_file()}  # fmt: skip
    parts = [claims(table, experiment)]
    if "tests" in found and "stats" in found:
        sep = found.get("separation")
        parts.insert(0, logit_claims(found["tests"], found["stats"], experiment, experiment, sep))
    return pd.concat(parts, ignore_index=True)


def confidence_table(logits: Mapping[str, np.ndarray], experiment: str) -> pd.DataFrame:
    """Per dataset's test logits: mean max softmax (%) and max logit, and the paper's (or NaN)."""
    rows = {}
    for name, z in logits.items():
        z = np.asarray(z, dtype=np.float64)
        paper_logit = (_paper.max_logit(name, experiment) or [np.nan])[0]
        rows[name] = {
            "max softmax (%)": 100 * softmax(z, axis=1).max(1).mean(),
            "paper max softmax (%)": _paper.MAX_SOFTMAX.get(experiment, {}).get(name, np.nan),
            "max logit": z.max(1).mean(), "paper max logit": paper_logit,
        }  # fmt: skip
    return _by_dataset(rows)


def softmax_precision_check(
    in_logits: np.ndarray, in_correct: np.ndarray, logits: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Softmax Baseline AUROC (%) in float64 and float32, where p > 1 − 6·10⁻⁸ ties at 1.0."""
    in_correct = np.asarray(in_correct, dtype=bool)
    rows = {}
    for name, z in logits.items():
        y = np.r_[in_correct, np.zeros(len(z), bool)]
        rows[name] = {}
        for dtype in ("float64", "float32"):
            s_in, s_out = (SoftmaxBaseline(dtype).score(v) for v in (in_logits, z))
            rows[name][f"auroc {dtype}"] = 100 * auroc(y, np.r_[s_in, s_out])
        ties = {"in-distribution": s_in, "dataset": s_out}  # in float32
        rows[name] |= {f"ties {k}": float((v == 1).mean()) for k, v in ties.items()}
    return _by_dataset(rows)


def beyond_table(root, tables: Mapping[str, pd.DataFrame], paper_eps: Mapping[str, float]):
    """Headline numbers of the chapters beyond the paper; ``paper_eps``: each ``bim_eps``."""
    from .protocol import OURS, within

    names = ("detectors", "leave_one_out", "seeds", "unseen_attacks", "adaptive", "protocol")
    cols = {}
    for exp, t2 in tables.items():
        b = {n: pd.read_csv(f) for n in names if (f := Path(root) / exp / f"{n}.csv").is_file()}
        col = cols[exp] = {}
        if "detectors" in b:
            rank = detector_ranking(b["detectors"])
            wins = int((rank.best == "introspection_net").sum())
            col["Introspection-Net best of 8 detectors (AUROC)"] = f"{wins} of {len(rank)} kinds"
            key = "a detector without misclassified training data within its CI or above"
            col[key] = f"{int(rank.free_reaches.sum())} of {len(rank)} kinds"
        if "leave_one_out" in b:
            loo = b["leave_one_out"]
            diag = loo[loo.held_out == loo.dataset].set_index("dataset").auroc
            seen = t2[t2.method == "introspection_net"].set_index("dataset").auroc
            change = (diag - seen.reindex(diag.index)).dropna()
            key = "AUROC change on a kind left out of training (mean, worst)"
            col[key] = f"{change.mean():+.1f}, {change.min():+.1f} ({change.idxmin()})"
        if "seeds" in b:
            std = b["seeds"].groupby("dataset").auroc.std(ddof=1)
            col["seed-to-seed std of AUROC (median, max)"] = f"{std.median():.2f}, {std.max():.2f}"
        if "unseen_attacks" in b:
            u = b["unseen_attacks"].set_index(["dataset", "method"]).auroc
            for a in ("cw_l2", "pgd"):
                if (a, "introspection_net") in u.index:
                    key = f"AUROC on {a} (Introspection-Net / Softmax Baseline)"
                    col[key] = f"{u[a, 'introspection_net']:.1f} / {u[a, 'softmax_baseline']:.1f}"
        if "adaptive" in b and exp in paper_eps:
            rates = adaptive_rates(b["adaptive"], paper_eps[exp])
            for m, r in rates.dropna(subset=["pgd"]).iterrows():
                key = f"evasion of {m} at Table 2's ε (plain PGD -> adaptive)"
                col[key] = f"{r.pgd:.1f} % -> {r.adaptive:.1f} %"
        if "protocol" in b:
            counts = within(b["protocol"])
            ours = counts.xs(OURS, level="reading").within.iloc[0]
            (choice, reading), n_best = counts.within.idxmax(), counts.within.max()
            key = "Table 2 cells within 5 points of the paper (profile; best single reading)"
            col[key] = f"{ours} of {counts.cells.iloc[0]}; {n_best} ({choice}: {reading})"
    return pd.DataFrame(cols)


def reproduction_summary(
    tables: Mapping[str, pd.DataFrame], summaries: Mapping[str, dict], paper: pd.DataFrame,
    checklists: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Per experiment: claims reproduced (``checklists`` or :func:`claims`) and AUROC gaps."""
    rows = {}
    for exp, t in tables.items():
        c = checklists[exp] if checklists and exp in checklists else claims(t, exp)
        a, s = compare_with_paper(t, paper).query("metric == 'auroc'"), summaries[exp]
        rows[exp] = {
            "profile": s["profile"], "base_accuracy": 100 * s["base_accuracy"],
            **{v: int((c.verdict == v).sum()) for v in ("reproduced", "partly")}, "claims": len(c),
            "mean_gap": a.difference.abs().mean(), "outside_ci": int(a.outside_ci.sum()),
            "cells": len(a),
        }  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")


def difference_checks(
    table: pd.DataFrame, paper: pd.DataFrame, correct_only: pd.DataFrame,
    trust_spaces: pd.DataFrame, softmax_precision: pd.DataFrame | None = None,
    softmax_dtype: str = "float32", min_gap: float = 2.0,
) -> pd.DataFrame:  # fmt: skip
    """AUROC cells ``min_gap`` or more outside our CI, under chapter 06's checks (``closes``: %)."""
    d = compare_with_paper(table, paper)
    d = d[(d.metric == "auroc") & d.outside_ci & (d.difference.abs() >= min_gap)]
    d = d.sort_values("difference", key=np.abs, ascending=False)
    co = correct_only.set_index(["dataset", "method"])["auroc"]
    other = "float64" if softmax_dtype == "float32" else "float32"
    rows = []
    for _, r in d.iterrows():
        checks = {"natural errors left out": co.get((r["dataset"], r["method"]), np.nan)}
        if r["method"] == "trust_score" and r["dataset"] in trust_spaces.index:
            checks |= {f"Trust Score on {k}": v for k, v in trust_spaces.loc[r["dataset"]].items()}
        if (r["method"] == "softmax_baseline" and softmax_precision is not None
                and r["dataset"] in softmax_precision.index):  # fmt: skip
            checks[f"a {other} softmax"] = softmax_precision.loc[r["dataset"], f"auroc {other}"]
        gaps = {k: abs(v - r["paper"]) for k, v in checks.items() if np.isfinite(v)}
        best = min(gaps, key=gaps.get) if gaps else None
        rows.append({
            "dataset": r["dataset"], "method": r["method"], "ours": r["ours"],
            "paper": r["paper"], "gap": r["difference"], **checks, "closest": best,
            "closest_value": checks[best] if best else np.nan,
            "closes": 100 * (1 - gaps[best] / abs(r["difference"])) if best else np.nan,
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=None if rows else ["dataset", "method", "ours", "paper"])
    return out.set_index(["dataset", "method"])


def detector_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Per kind: the best detector, and whether a :data:`TRAINING_FREE` one reaches the net's CI."""
    rows = {}
    for d, block in table.groupby("dataset", sort=False):
        block = block.set_index("method")
        net = block.loc["introspection_net"]
        free = block.auroc.reindex(TRAINING_FREE).dropna()
        logit = block.auroc.reindex(["max_logit", "energy", "softmax_baseline"]).dropna()
        rows[d] = {
            "best": block.auroc.idxmax(), "best_auroc": block.auroc.max(), "net": net.auroc,
            "net_lo": net.auroc_lo, "net_hi": net.auroc_hi, "free": free.idxmax(),
            "free_auroc": free.max(), "free_reaches": bool(free.max() >= net.auroc_lo),
            "free_above": bool(free.max() > net.auroc_hi),
            "logits_reach": bool(logit.max() >= net.auroc_lo),
        }  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")


def adaptive_rates(table: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """Evasion rates (%) of plain PGD and the best adaptive attack at ``epsilon``, and unbounded."""
    detectors = list(dict.fromkeys(table.detector))

    def rate(t, attack):
        v = t[t.attack == attack].drop_duplicates("detector").set_index("detector").evasion_rate
        return v.reindex(detectors).astype(float).rename_axis(None)

    at, best = table[np.isclose(table.epsilon.astype(float), epsilon)], "adaptive (best)"
    cols = {"pgd": rate(at, "pgd"), "adaptive": rate(at, best)}
    return pd.DataFrame(cols | {"unbounded": rate(table[table.epsilon.isna()], best)})


def adaptive_headline(
    root, tables: Mapping[str, pd.DataFrame], paper_eps: Mapping[str, float]
) -> pd.DataFrame:
    """Per experiment: the net's mean AUROC on BIM and FGSM beside the evasion rates (%)."""
    rows = {}
    for exp, t2 in tables.items():
        if exp not in paper_eps or not (f := Path(root) / exp / "adaptive.csv").is_file():
            continue
        r = adaptive_rates(pd.read_csv(f), paper_eps[exp])
        attacks = t2[t2.dataset.isin(["bim", "fgsm"]) & (t2.method == "introspection_net")]
        rows[exp] = {
            "auroc": attacks.auroc.mean(), "epsilon": paper_eps[exp],
            "pgd": r.pgd["introspection_net"], "adaptive": r.adaptive["introspection_net"],
            "softmax_adaptive": r.adaptive["softmax_baseline"],
            "trust_adaptive": r.adaptive["trust_score"],
        }  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")
