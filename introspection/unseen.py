"""Stage ``unseen`` (chapter 9): misclassifications Introspection-Net never trained on.

Leave-one-out networks (one kind held out of training in turn, ``unseen_scores_<kind>``,
``leave_one_out.csv``) and two attacks outside the paper, CW-L2 and PGD (``unseen_<attack>``,
``unseen_attack_scores``, ``unseen_attacks.csv``).
"""

from __future__ import annotations

import time

import numpy as np

from . import artifacts, attacks, models, pipeline, splits
from .classifier import keras_model
from .config import Config
from .generation import DataSet, Generation, load_in_distribution
from .more_detectors import extra_detectors
from .runner import StageRun, progress_bar, run_stage, write_table

__all__ = ["UNSEEN_ATTACKS", "leave_one_out", "leave_one_out_table", "unseen_attacks",
           "unseen_attack_stats", "unseen_attack_scores", "unseen_attack_table"]

#: Attacks generated beyond the paper, never used to train Introspection-Net.
UNSEEN_ATTACKS = ("cw_l2", "pgd")


def leave_one_out(
    cfg: Config, gen: Generation, sets: splits.Splits, progress: bool = True
) -> tuple[dict, StageRun]:
    """Introspection-Net trained without each kind of misclassification in turn.

    Each network trains on the paper's training set minus one dataset, with Table 2's seed,
    and is scored on every test set: ``{held_out: {dataset: {method: ndarray}}}``.
    """
    kinds = [n for n in gen.sets if n != cfg.info["in_distribution"]]

    def train(kind):
        return pipeline.fit_introspection_net(cfg, gen, sets, exclude=(kind,))

    return pipeline.variant_scores(
        cfg, gen, sets, "unseen", "unseen_scores", kinds, train, progress, "leave-one-out"
    )


def leave_one_out_table(cfg: Config, loo: dict, paper_scores: dict, table2):
    """Metrics of every held-out network, and the seen/unseen comparison.

    Returns ``full`` (one row per held-out kind and dataset, no intervals;
    ``leave_one_out.csv``) and ``unseen``: per held-out kind its AUROC (%) when seen
    (``seen lo``/``hi``: 95 % CI), when unseen, and the Softmax Baseline's and Trust Score's.
    """
    import pandas as pd

    full = pipeline.variants_table(cfg, loo, paper_scores, "held_out", str, "leave_one_out.csv")
    seen = table2.set_index(["dataset", "method"])
    rows = []
    for held_out in loo:
        on_it = full[(full.held_out == held_out) & (full.dataset == held_out)].iloc[0]
        s = seen.loc[(held_out, "introspection_net")]
        rows.append({
            "held out": held_out, "seen": s.auroc, "seen lo": s.auroc_lo, "seen hi": s.auroc_hi,
            "unseen": on_it.auroc, "change": on_it.auroc - s.auroc,
            "softmax_baseline": seen.loc[(held_out, "softmax_baseline")].auroc,
            "trust_score": seen.loc[(held_out, "trust_score")].auroc,
        })
    return full, pd.DataFrame(rows).set_index("held out")


def _attack(cfg: Config, model, name: str, x, y) -> attacks.Generated:
    if name == "cw_l2":
        return attacks.carlini_wagner_l2(
            model, x, y, binary_search_steps=cfg["cw_binary_steps"],
            max_iterations=cfg["cw_max_iter"], learning_rate=cfg["cw_lr"],
            lr_schedule=cfg["cw_lr_schedule"],
        )
    return attacks.bim(
        model, x, y, eps=cfg["bim_eps"], eps_iter=cfg.bim_step, nb_iter=cfg["bim_nb_iter"],
        rand_init=True, seed=cfg.stream("pgd_start"),
    )


def unseen_attacks(
    cfg: Config, gen: Generation, model=None, progress: bool = True
) -> dict[str, DataSet]:
    """CW-L2 and PGD examples from the first ``unseen_n`` test-side source images.

    Only correctly classified sources are attacked and the successes kept, as for the
    paper's attacks. CW-L2: cleverhans 4, ``cw_binary_steps`` x ``cw_max_iter`` Adam steps
    at ``cw_lr``; PGD: BIM's budget from a seeded uniform start (Madry et al., 2018).
    """
    pool = gen[cfg.info["in_distribution"]].pool
    out = {}
    for name in progress_bar(UNSEEN_ATTACKS, "unseen attacks", progress):

        def compute(name=name):
            m = keras_model(cfg, model)
            x_pool, y_pool = load_in_distribution(cfg)
            test_src = np.sort(gen.partition[pool][1])[: cfg["unseen_n"]]
            t = time.perf_counter()
            g = _attack(cfg, m, name, x_pool[test_src], y_pool[test_src])
            src = test_src[g.source_index]
            feats, logits = models.predict_features(m, g.x)
            arrays = {"x": g.x, "source_index": src, "y": y_pool[src], "logits": logits}
            return {
                f"unseen_{name}": {**arrays, "features": feats},
                f"unseen_{name}_stats": {**g.stats, "seconds": time.perf_counter() - t},
            }

        names = {f"unseen_{name}": "arrays", f"unseen_{name}_stats": "json"}
        a = run_stage(cfg, "unseen", names, compute, record=False)[0][f"unseen_{name}"]
        out[name] = DataSet(name, a["x"], a["source_index"], pool, a["y"], a["logits"],
                            a["features"], np.zeros(len(a["x"]), bool))
    return out


def unseen_attack_stats(cfg: Config) -> dict:
    """Statistics of the CW-L2 and PGD generation (success rate, norms, seconds), by attack."""
    params = cfg.stage_params("unseen")
    return {
        n: artifacts.load_json(cfg.artifacts_dir, f"unseen_{n}_stats", params=params)
        for n in UNSEEN_ATTACKS
    }


def unseen_attack_scores(
    cfg: Config, attacked: dict[str, DataSet], fitted: pipeline.Fitted, model=None,
    progress: bool = True,
) -> dict:
    """``{attack: {method: ndarray}}``: the paper's three methods and the five others (cached)."""

    def compute():
        extra = extra_detectors(cfg, keras_model(cfg, model))
        scores = {}
        for a in progress_bar(list(attacked), "scoring unseen attacks", progress):
            ds = attacked[a]
            rows = np.arange(len(ds.x))
            scores[a] = pipeline.score_examples(cfg, fitted, ds, rows)
            scores[a].update({m: pipeline.score_with(d, ds, rows) for m, d in extra.items()})
        return scores

    params = {**cfg.stage_params("unseen"), **cfg.stage_params("detectors")}
    name = "unseen_attack_scores"
    return run_stage(cfg, "unseen", name, compute, "scores", params, record=False)[0]


def unseen_attack_table(
    cfg: Config, paper_scores: dict, extra: pipeline.Scores, attacked_scores: dict
):
    """The eight detectors on the attacks nobody trained on, written to ``unseen_attacks.csv``."""
    in_name = cfg.info["in_distribution"]
    merged = {in_name: {**paper_scores[in_name], **extra.scores[in_name]}}
    order = list(merged[in_name])
    for a, per in attacked_scores.items():
        merged[a] = {m: per[m] for m in order if m != "label"}
    table = pipeline.scores_table(cfg, merged, cfg["n_boot"])
    write_table(cfg, table, "unseen_attacks.csv", index=False)
    return table
