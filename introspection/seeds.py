"""Stage ``seeds`` (chapter 10): Introspection-Net trained with ``n_seeds`` seeds of its stream.

The spread over seeds beside one run's bootstrap interval; scores cached as
``seed_scores_<k>``, metrics in ``seeds.csv``.
"""

from __future__ import annotations

from . import metrics, splits
from .config import Config
from .generation import Generation
from .pipeline import Fitted, fit_introspection_net, variant_scores, variants_table
from .runner import StageRun

__all__ = ["seed_scores", "seed_table", "seed_summary"]


def seed_scores(
    cfg: Config, gen: Generation, sets: splits.Splits, fitted: Fitted, progress: bool = True
) -> tuple[dict, StageRun]:
    """Test scores of Introspection-Net trained with the seeds ``k = 0, 1, ...`` of its stream.

    Seed ``k`` is ``cfg.stream("introspection_net", k)`` (weights and data order); the first
    is ``fitted``'s network. Scores: ``{k: {dataset: {"introspection_net": ndarray}}}``.
    """
    first = fitted.detectors["introspection_net"]

    def train(k):
        seed = cfg.stream("introspection_net", k)
        return first if k == 0 else fit_introspection_net(cfg, gen, sets, seed=seed)

    return variant_scores(
        cfg, gen, sets, "seeds", "seed_scores", range(cfg["n_seeds"]), train, progress, "seeds"
    )


def seed_table(cfg: Config, by_seed: dict, paper_scores: dict):
    """Metrics of every seed's network (column ``seed``: its ``k``), written to ``seeds.csv``."""
    return variants_table(cfg, by_seed, paper_scores, "seed", int, "seeds.csv")


def seed_summary(seeds, table2):
    """Per dataset: ``<metric> mean``, ``std`` (ddof=1) over seeds, one run's ``CI width``."""
    import pandas as pd

    ours = table2[table2.method == "introspection_net"].set_index("dataset")
    cols = {}
    for m in metrics.METRICS:
        g = seeds.groupby("dataset", sort=False)[m]
        cols[f"{m} mean"] = g.mean()
        cols[f"{m} std"] = g.std(ddof=1)
        cols[f"{m} CI width"] = ours[f"{m}_hi"] - ours[f"{m}_lo"]
    return pd.DataFrame(cols)
