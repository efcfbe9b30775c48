"""Stage ``seeds`` (chapter 10): how much one run's random choices decide Table 2.

Introspection-Net trained with ``n_seeds`` seeds of its stream (scores cached as
``seed_scores_<k>``, metrics in ``seeds.csv``); the paper's stages run ``n_draws`` times,
every random choice after the base classifier drawn anew (``draws.csv``).
"""

from __future__ import annotations

import time

from . import artifacts, metrics, pipeline, runner, splits
from .config import Config
from .generation import Generation
from .runner import StageRun

__all__ = ["seed_scores", "seed_table", "seed_summary", "draw_table", "draw_spread"]


def seed_scores(cfg: Config, gen: Generation, sets: splits.Splits, fitted: pipeline.Fitted,
                progress: bool = True) -> tuple[dict, StageRun]:  # fmt: skip
    """Test scores of Introspection-Net trained with the seeds ``k = 0, 1, ...`` of its stream.

    Seed ``k`` is ``cfg.stream("introspection_net", k)`` (weights and data order); the first
    is ``fitted``'s network. Scores: ``{k: {dataset: {"introspection_net": ndarray}}}``.
    """
    first = fitted.detectors["introspection_net"]

    def train(k):
        seed = cfg.stream("introspection_net", k)
        return first if k == 0 else pipeline.fit_introspection_net(cfg, gen, sets, seed=seed)

    return pipeline.variant_scores(
        cfg, gen, sets, "seeds", "seed_scores", range(cfg["n_seeds"]), train, progress, "seeds"
    )


def seed_table(cfg: Config, by_seed: dict, paper_scores: dict):
    """Metrics of every seed's network (column ``seed``: its ``k``), written to ``seeds.csv``."""
    return pipeline.variants_table(cfg, by_seed, paper_scores, "seed", int, "seeds.csv")


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


def draw_table(run: pipeline.Stages):
    """Table 2 without intervals (column ``draw``) of ``n_draws`` runs, written to ``draws.csv``.

    Draw 0 is ``run``; draw ``d`` runs the paper's stages on the same base classifier with
    draw ``d`` of every random stream (:meth:`introspection.config.Config.redraw`): other
    source images, patches, noise, sets, Trust Score fit and Introspection-Net seed. Each
    draw's generation of the misclassified sets shows its own progress bar.
    """
    import pandas as pd

    frames, seconds = [], 0.0
    for d in range(run.cfg["n_draws"]):
        other = run if d == 0 else pipeline.stages(run.cfg.redraw(d))
        other.base = run.base
        fitted, t0 = other.fitted, time.perf_counter()
        fresh = not artifacts.exists(other.cfg.artifacts_dir, "test_scores", fitted.params)
        frames.append(pipeline.scores_table(other.cfg, other.scores, 0))
        frames[-1].insert(1, "draw", d)
        if d and fresh:  # the test sets' scores: the draw's share of the evaluation
            runner.record_timing(other.cfg, "evaluation", time.perf_counter() - t0)
        seconds += sum(runner.stage_timings(other.cfg).values()) if d else 0.0
    runner.record_timing(run.cfg, "seeds", seconds, part="draws")
    table = pd.concat(frames, ignore_index=True)
    runner.write_table(run.cfg, table, "draws.csv", index=False)
    return table


def draw_spread(draws, by_seed=None, metric: str = "auroc"):
    """``metric``'s std (ddof=1) over draws: a row per dataset, a column per method.

    With ``by_seed`` (:func:`seed_table`), Introspection-Net's std over seeds alone beside them.
    """
    out = draws.pivot_table(metric, "dataset", "method", "std", sort=False)
    if by_seed is not None:
        out["introspection_net, seeds only"] = by_seed.groupby("dataset")[metric].std(ddof=1)
    return out
