"""Stage ``detectors`` (chapter 8): five detectors beyond the paper beside its three.

Max Logit, Energy, ODIN and Mahalanobis with and without input pre-processing, none of
which sees a misclassified example; their test scores are cached as ``detector_scores`` and
the table with the paper's methods is ``detectors.csv``.
"""

from __future__ import annotations

import numpy as np

from . import detectors, splits
from .classifier import keras_model, training_subset
from .config import Config
from .generation import Generation
from .pipeline import Scores, score_with, scores_table
from .runner import progress_bar, run_stage, write_table

__all__ = ["EXTRA_METHODS", "extra_detectors", "extra_detector_scores", "detector_table",
           "best_per_row"]

#: The detectors beyond the paper, in the order of the tables.
EXTRA_METHODS = ("max_logit", "energy", "odin", "mahalanobis", "mahalanobis_preprocessed")


def extra_detectors(cfg: Config, model) -> dict:
    """The five detectors beyond the paper (:data:`EXTRA_METHODS` -> detector), fitted.

    MaxLogit and Energy (``T = 1``) read the logits; ODIN the gradients too, with fixed
    ``odin_temperature`` and ``odin_eps``; both Mahalanobis variants fit class means and a
    tied covariance of the features on ``detector_n_fit`` labelled training images.
    """
    x_fit, y_fit = training_subset(cfg, cfg["detector_n_fit"], "detector_fit")
    # One fit serves both Mahalanobis variants: the pre-processed one only moves inputs.
    preprocessed = detectors.MahalanobisPreprocessed(model, epsilon=cfg["mahalanobis_eps"]).fit(
        x_fit, y_fit
    )
    odin = detectors.ODIN(model, temperature=cfg["odin_temperature"], epsilon=cfg["odin_eps"])
    return {
        "max_logit": detectors.MaxLogit(), "energy": detectors.EnergyScore(temperature=1.0).fit(),
        "odin": odin.fit(), "mahalanobis": preprocessed.mahalanobis_,
        "mahalanobis_preprocessed": preprocessed,
    }


def extra_detector_scores(
    cfg: Config, gen: Generation, sets: splits.Splits, model=None, progress: bool = True
) -> Scores:
    """Scores of :func:`extra_detectors` on every test set, cached as ``detector_scores``."""

    def compute():
        dets = extra_detectors(cfg, keras_model(cfg, model))
        scores = {}
        for dname in progress_bar(list(gen.sets), "detectors: scoring", progress):
            ds, rows = gen.sets[dname], sets.test.of(dname).index
            scores[dname] = {m: score_with(d, ds, rows) for m, d in dets.items()}
        return scores

    return Scores(*run_stage(cfg, "detectors", "detector_scores", compute, "scores"))


def detector_table(cfg: Config, paper_scores: dict, extra: Scores):
    """Table 2 with the paper's three methods and the five others, written to ``detectors.csv``.

    ``paper_scores``: :func:`introspection.pipeline.score_test_sets`; intervals are paired.
    """
    merged = {d: {**paper_scores[d], **extra.scores[d]} for d in paper_scores}
    table = scores_table(cfg, merged, cfg["n_boot"])
    write_table(cfg, table, "detectors.csv", index=False)
    return table


def best_per_row(table, metric: str = "auroc"):
    """The best method of each dataset by one metric (lower is better for FPR), and the runner-up.

    Columns ``best``, ``value``, ``runner-up``, ``runner-up value`` and ``best CI overlaps
    runner-up`` (the runner-up within the best's interval, where there is one).
    """
    import pandas as pd

    lower = metric == "fpr_at_95tpr"
    rows = []
    for d, g in table.groupby("dataset", sort=False):
        g = g.sort_values(metric, ascending=lower)
        best, second = g.iloc[0], g.iloc[1] if len(g) > 1 else None
        row = {"dataset": d, "best": best.method, "value": best[metric]}
        if second is not None:
            row["runner-up"] = second.method
            row["runner-up value"] = second[metric]
            lo, hi = best.get(f"{metric}_lo"), best.get(f"{metric}_hi")
            if lo is not None and np.isfinite(lo):
                row["best CI overlaps runner-up"] = bool(lo <= second[metric] <= hi)
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")
