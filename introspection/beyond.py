"""Beyond the paper: more detectors, unseen misclassifications, seeds, adaptive attacks.

Stages reuse the paper's artifacts (:mod:`introspection.pipeline`) and add their own:
``detectors`` (``detector_scores``: MaxLogit, Energy, ODIN, Mahalanobis with and without
pre-processing), ``unseen`` (leave-one-out ``unseen_scores_<kind>``; CW-L2 and PGD
``unseen_<attack>``, ``unseen_attack_scores``), ``seeds`` (``seed_scores_<k>``) and
``adaptive`` (``adaptive_results``). Tables: ``detectors.csv``, ``leave_one_out.csv``,
``seeds.csv``, ``unseen_attacks.csv`` and ``adaptive.csv``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import artifacts, attacks, detectors, models, splits
from .config import Config
from .pipeline import (
    DataSet,
    Fitted,
    Generation,
    StageRun,
    _timer_record,
    base_model,
    fit_introspection_net,
    load_in_distribution,
    load_training_data,
    run_stage,
    score_examples,
    score_with,
    scores_table,
    write_table,
)

__all__ = [
    "EXTRA_METHODS",
    "Scores",
    "extra_detectors",
    "extra_detector_scores",
    "detector_table",
    "best_per_row",
    "leave_one_out",
    "leave_one_out_table",
    "UNSEEN_ATTACKS",
    "unseen_attacks",
    "unseen_attack_scores",
    "unseen_attack_table",
    "unseen_attack_stats",
    "ADAPTIVE_EPS_FACTORS",
    "ADAPTIVE_DETECTORS",
    "adaptive_attacks",
    "seed_scores",
    "seed_table",
    "seed_summary",
]


def _model(cfg: Config, model=None):
    """The base classifier given, or loaded from the artifacts."""
    return model if model is not None else base_model(cfg, verbose=0).model


#: The detectors beyond the paper, in the order of the tables.
EXTRA_METHODS = ("max_logit", "energy", "odin", "mahalanobis", "mahalanobis_preprocessed")


@dataclass
class Scores:
    """Test-set scores of one or more detectors, and how they were obtained.

    ``scores`` is ``{dataset: {method: ndarray}}``, rows in ``splits.test.of(dataset)`` order.
    """

    scores: dict
    run: StageRun


def _progress(iterable, desc: str, enabled: bool, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


# More detectors


def _fit_images(cfg: Config):
    """A seeded subset of ``detector_n_fit`` base-training images and their labels."""
    x, y = load_training_data(cfg)
    n = min(cfg["detector_n_fit"], len(x))
    idx = np.sort(
        np.random.default_rng(cfg.stream("detector_fit")).choice(len(x), n, replace=False)
    )
    return x[idx], y[idx]


def extra_detectors(cfg: Config, model) -> dict:
    """The five detectors beyond the paper (:data:`EXTRA_METHODS` -> detector), fitted.

    MaxLogit and Energy (``T = 1``) use the logits only; ODIN the gradients too, with fixed
    ``odin_temperature`` and ``odin_eps``; both Mahalanobis variants fit class means and a
    tied covariance of the ``features`` on ``detector_n_fit`` labelled training images. None
    sees a misclassified example.
    """
    x_fit, y_fit = _fit_images(cfg)
    # One fit serves both Mahalanobis variants: the pre-processed one only moves inputs.
    preprocessed = detectors.MahalanobisPreprocessed(model, epsilon=cfg["mahalanobis_eps"]).fit(
        x_fit, y_fit
    )
    return {
        "max_logit": detectors.MaxLogit(),
        "energy": detectors.EnergyScore(temperature=1.0).fit(),
        "odin": detectors.ODIN(
            model, temperature=cfg["odin_temperature"], epsilon=cfg["odin_eps"]
        ).fit(),
        "mahalanobis": preprocessed.mahalanobis_,
        "mahalanobis_preprocessed": preprocessed,
    }


def extra_detector_scores(
    cfg: Config, gen: Generation, sets: splits.Splits, model=None, progress: bool = True
) -> Scores:
    """Scores of :func:`extra_detectors` on every test set, cached as ``detector_scores``."""

    def compute():
        dets = extra_detectors(cfg, _model(cfg, model))
        scores = {}
        for dname in _progress(list(gen.sets), "detectors: scoring", progress):
            ds, rows = gen.sets[dname], sets.test.of(dname).index
            scores[dname] = {m: score_with(d, ds, rows) for m, d in dets.items()}
        return scores

    return Scores(*run_stage(cfg, "detectors", "detector_scores", compute, "scores"))


def detector_table(cfg: Config, paper_scores: dict, extra: Scores):
    """Table 2 with the paper's three methods and the five others, written to ``detectors.csv``.

    ``paper_scores`` comes from :func:`introspection.pipeline.score_test_sets`; bootstrap
    intervals are paired across methods.
    """
    merged = {d: {**paper_scores[d], **extra.scores[d]} for d in paper_scores}
    table = scores_table(cfg, merged, cfg["n_boot"])
    write_table(cfg, table, "detectors.csv", index=False)
    return table


def best_per_row(table, metric: str = "auroc"):
    """The best method of each dataset by one metric (lower is better for FPR), and the runner-up.

    Returns
    -------
    pandas.DataFrame
        Index dataset; ``best``, ``value``, ``runner-up``, ``runner-up value`` and
        ``best CI overlaps runner-up`` (runner-up within the best's interval, if any).
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


# Introspection-Net variants: other training sets, other seeds


def _net_scores(net, gen: Generation, sets: splits.Splits) -> dict:
    return {
        d: {"introspection_net": net.score(ds.logits[sets.test.of(d).index])}
        for d, ds in gen.sets.items()
    }


def _variant_scores(cfg: Config, gen, sets, stage, name, extra_key, train, progress, what):
    """Per-variant scores, each cached as its own artifact (a re-run resumes)."""
    t0 = time.perf_counter()
    base_params = cfg.stage_params("introspection_net")
    out, reused = {}, True
    for key in _progress(list(extra_key), what, progress):
        params = {**base_params, "variant": key}
        out[key], run = run_stage(
            cfg,
            stage,
            f"{name}_{key}",
            lambda key=key: _net_scores(train(key), gen, sets),
            "scores",
            params,
            record=False,
        )
        reused = reused and run.reused
    return out, _timer_record(cfg, stage, t0, reused)


def leave_one_out(
    cfg: Config, gen: Generation, sets: splits.Splits, progress: bool = True
) -> tuple[dict, StageRun]:
    """Introspection-Net trained without each kind of misclassification in turn.

    For each dataset but the in-distribution one, a network is trained on the paper's
    training set minus that dataset, with the run's seed, and scored on every test set;
    cached as ``unseen_scores_<kind>``. Scores: ``{held_out: {dataset: {method: ndarray}}}``.
    """
    kinds = [n for n in gen.sets if n != cfg.info["in_distribution"]]
    return _variant_scores(
        cfg,
        gen,
        sets,
        "unseen",
        "unseen_scores",
        kinds,
        lambda k: fit_introspection_net(cfg, gen, sets, exclude=(k,)),
        progress,
        "leave-one-out",
    )


def leave_one_out_table(cfg: Config, loo: dict, paper_scores: dict, table2):
    """Metrics of every held-out network, and the seen/unseen comparison.

    Returns
    -------
    full : pandas.DataFrame
        One row per (held-out kind, dataset), no intervals; ``leave_one_out.csv``.
    unseen : pandas.DataFrame
        Per held-out kind, its AUROC (%) when seen (``seen lo``/``hi``: 95 % CI), when
        unseen, and of the Softmax Baseline and Trust Score (no misclassified training data).
    """
    import pandas as pd

    in_name = cfg.info["in_distribution"]
    label = {"label": paper_scores[in_name]["label"]}
    frames = []
    for held_out, scores in loo.items():
        merged = {d: {**label, **s} if d == in_name else s for d, s in scores.items()}
        t = scores_table(cfg, merged, 0)
        t.insert(1, "held_out", held_out)
        frames.append(t)
    full = pd.concat(frames, ignore_index=True)
    write_table(cfg, full, "leave_one_out.csv", index=False)
    seen = table2.set_index(["dataset", "method"])
    rows = []
    for held_out in loo:
        on_it = full[(full.held_out == held_out) & (full.dataset == held_out)].iloc[0]
        s = seen.loc[(held_out, "introspection_net")]
        rows.append(
            {
                "held out": held_out,
                "seen": s.auroc,
                "seen lo": s.auroc_lo,
                "seen hi": s.auroc_hi,
                "unseen": on_it.auroc,
                "change": on_it.auroc - s.auroc,
                "softmax_baseline": seen.loc[(held_out, "softmax_baseline")].auroc,
                "trust_score": seen.loc[(held_out, "trust_score")].auroc,
            }
        )
    return full, pd.DataFrame(rows).set_index("held out")


def seed_scores(
    cfg: Config, gen: Generation, sets: splits.Splits, fitted: Fitted, progress: bool = True
) -> tuple[dict, StageRun]:
    """Introspection-Net trained with ``n_seeds`` seeds (``seed``, ``seed + 1``, ...).

    The first is ``fitted``'s network; the others train on the same sets with another seed
    (weights and data order), each cached as ``seed_scores_<k>``.
    Scores: ``{k: {dataset: {"introspection_net": ndarray}}}``.
    """
    first = fitted.detectors["introspection_net"]

    def train(k):
        if k == 0:
            return first
        return fit_introspection_net(cfg, gen, sets, seed=cfg.seed + k)

    return _variant_scores(
        cfg, gen, sets, "seeds", "seed_scores", range(cfg["n_seeds"]), train, progress, "seeds"
    )


def seed_table(cfg: Config, by_seed: dict, paper_scores: dict):
    """Metrics of every seed's network (column ``seed``, no intervals), written to ``seeds.csv``."""
    import pandas as pd

    in_name = cfg.info["in_distribution"]
    label = {"label": paper_scores[in_name]["label"]}
    frames = []
    for k, scores in by_seed.items():
        merged = {d: {**label, **s} if d == in_name else s for d, s in scores.items()}
        t = scores_table(cfg, merged, 0)
        t.insert(1, "seed", cfg.seed + int(k))
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)
    write_table(cfg, table, "seeds.csv", index=False)
    return table


def seed_summary(seeds, table2):
    """Mean and standard deviation over seeds beside the bootstrap CI of one run.

    Returns
    -------
    pandas.DataFrame
        Per dataset: ``<metric> mean``, ``<metric> std`` (ddof=1) and ``<metric> CI width``
        (the width of the first seed's 95 % interval in ``table2``).
    """
    import pandas as pd

    ours = table2[table2.method == "introspection_net"].set_index("dataset")
    cols = {}
    for m in ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out"):
        g = seeds.groupby("dataset", sort=False)[m]
        cols[f"{m} mean"] = g.mean()
        cols[f"{m} std"] = g.std(ddof=1)
        cols[f"{m} CI width"] = ours[f"{m}_hi"] - ours[f"{m}_lo"]
    return pd.DataFrame(cols)


# Attacks nobody trained on

#: Attacks generated beyond the paper, never used to train Introspection-Net.
UNSEEN_ATTACKS = ("cw_l2", "pgd")


def _unseen_attack(cfg: Config, model, name: str, x, y) -> attacks.Generated:
    if name == "cw_l2":
        return attacks.carlini_wagner_l2(
            model,
            x,
            y,
            binary_search_steps=cfg["cw_binary_steps"],
            max_iterations=cfg["cw_max_iter"],
            learning_rate=cfg["cw_lr"],
            lr_schedule=cfg["cw_lr_schedule"],
        )
    return attacks.bim(
        model,
        x,
        y,
        eps=cfg["bim_eps"],
        eps_iter=cfg.bim_step,
        nb_iter=cfg["bim_nb_iter"],
        rand_init=True,
        seed=cfg.stream("pgd_start"),
    )


def unseen_attacks(
    cfg: Config, gen: Generation, model=None, progress: bool = True
) -> dict[str, DataSet]:
    """CW-L2 and PGD examples from the test-side source images, never trained on.

    The first ``unseen_n`` test-side sources of the in-distribution pool are attacked,
    the correctly classified ones only, keeping the successes, as for the paper's attacks.
    CW-L2: cleverhans 4, ``cw_binary_steps`` x ``cw_max_iter`` Adam steps at ``cw_lr`` (on
    100 MNIST images, 5 x 100 steps at 0.01 left 43 % unbroken, at 0.05 none). PGD: BIM's
    budget from a seeded uniform start in the eps-ball (Madry et al., 2018). Each is cached
    as ``unseen_<name>`` with its statistics (:func:`unseen_attack_stats`).
    """
    in_name = cfg.info["in_distribution"]
    pool = gen[in_name].pool
    out = {}
    for name in _progress(UNSEEN_ATTACKS, "unseen attacks", progress):

        def compute(name=name):
            m = _model(cfg, model)
            x_pool, y_pool = load_in_distribution(cfg)
            test_src = np.sort(gen.partition[pool][1])[: cfg["unseen_n"]]
            t = time.perf_counter()
            g = _unseen_attack(cfg, m, name, x_pool[test_src], y_pool[test_src])
            src = test_src[g.source_index]
            feats, logits = models.predict_features(m, g.x)
            arrays = {"x": g.x, "source_index": src, "y": y_pool[src], "logits": logits}
            return {
                f"unseen_{name}": {**arrays, "features": feats},
                f"unseen_{name}_stats": {**g.stats, "seconds": time.perf_counter() - t},
            }

        names = {f"unseen_{name}": "arrays", f"unseen_{name}_stats": "json"}
        a = run_stage(cfg, "unseen", names, compute, record=False)[0][f"unseen_{name}"]
        out[name] = DataSet(
            name,
            a["x"],
            a["source_index"],
            pool,
            a["y"],
            a["logits"],
            a["features"],
            np.zeros(len(a["x"]), bool),
        )
    return out


def unseen_attack_stats(cfg: Config) -> dict:
    """Statistics of the CW-L2 and PGD generation (success rate, norms, seconds), by attack."""
    params = cfg.stage_params("unseen")
    return {
        n: artifacts.load_json(cfg.artifacts_dir, f"unseen_{n}_stats", params=params)
        for n in UNSEEN_ATTACKS
    }


def unseen_attack_scores(
    cfg: Config,
    attacked: dict[str, DataSet],
    fitted: Fitted,
    model=None,
    progress: bool = True,
) -> dict:
    """Every detector's scores on the CW-L2 and PGD examples (cached).

    Returns
    -------
    dict
        ``{attack: {method: ndarray}}`` for the paper's three methods (``fitted``, trained as
        in Table 2) and :data:`EXTRA_METHODS`.
    """

    def compute():
        extra = extra_detectors(cfg, _model(cfg, model))
        scores = {}
        for a in _progress(list(attacked), "scoring unseen attacks", progress):
            ds = attacked[a]
            rows = np.arange(len(ds.x))
            per = score_examples(cfg, fitted, ds, rows)
            per.update({m: score_with(d, ds, rows) for m, d in extra.items()})
            scores[a] = per
        return scores

    params = {**cfg.stage_params("unseen"), **cfg.stage_params("detectors")}
    name = "unseen_attack_scores"
    return run_stage(cfg, "unseen", name, compute, "scores", params, record=False)[0]


def unseen_attack_table(cfg: Config, paper_scores: dict, extra: Scores, attacked_scores: dict):
    """The eight detectors on the attacks nobody trained on, written to ``unseen_attacks.csv``."""
    in_name = cfg.info["in_distribution"]
    merged = {in_name: {**paper_scores[in_name], **extra.scores[in_name]}}
    order = list(merged[in_name])
    for a, per in attacked_scores.items():
        merged[a] = {m: per[m] for m in order if m != "label"}
    table = scores_table(cfg, merged, cfg["n_boot"])
    write_table(cfg, table, "unseen_attacks.csv", index=False)
    return table


# Adaptive attacks on classifier + detector

#: L-inf radii of the adaptive attacks, as multiples of the paper's BIM/FGSM budget;
#: ``None`` is the unbounded attack (the whole pixel range).
ADAPTIVE_EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, None)

#: The paper's three detectors, each attacked in turn.
ADAPTIVE_DETECTORS = ("softmax_baseline", "trust_score", "introspection_net")


def _acceptors(cfg: Config, fitted: Fitted, taus: dict) -> dict:
    space = cfg["trust_feature"]
    if space == "pixels":
        raise ValueError(
            "The adaptive attacks need the Trust Score on features or logits, not pixels."
        )
    dets = fitted.detectors

    def make(m):
        det, tau = dets[m], taus[m]
        if m == "trust_score":
            return lambda f, z: det.score(f if space == "features" else z, z.argmax(1)) >= tau
        return lambda f, z: det.score(z) >= tau

    return {m: make(m) for m in ADAPTIVE_DETECTORS}


def _accept_all(f, z):
    return np.ones(len(z), bool)


def _evasion(fm, attack, todo, x, y, accept) -> dict:
    """Run ``attack(indices) -> x_adv`` on ``todo``; which evade each detector."""
    from . import adaptive

    out = {m: np.zeros(len(x), bool) for m in ADAPTIVE_DETECTORS}
    if len(todo) == 0:
        return out
    x_adv = attack(todo)
    for m in ADAPTIVE_DETECTORS:
        out[m][todo] = adaptive.evades(fm, x_adv, y[todo], accept[m])
    return out


def adaptive_attacks(
    cfg: Config,
    gen: Generation,
    sets: splits.Splits,
    fitted: Fitted,
    paper_scores: dict,
    model=None,
    progress: bool = True,
):
    """Evasion rate of adaptive white-box attacks against each of the paper's detectors.

    An input *evades* when misclassified and scored at least the threshold accepting 95 %
    of correct clean test images. The first ``adaptive_n`` correct test-side sources are
    attacked at each radius ``factor * bim_eps`` (:data:`ADAPTIVE_EPS_FACTORS`) by ``pgd``
    (detector ignored), ``joint_pgd`` (``lam`` in {1, 10} x ``kappa`` in {0, median margin};
    not the Trust Score, which has no gradient), ``logit_matching`` and ``feature_matching``
    (toward an accepted image of the runner-up class); ``adaptive (best)``: any of them. An
    evasion counts at every larger radius; SPSA joint PGD on ``spsa_n`` images checks for
    obfuscated gradients (:mod:`introspection.adaptive`). Cached as ``adaptive_results``.

    Returns
    -------
    tuple of (pandas.DataFrame, StageRun)
        Columns ``epsilon`` (empty = unbounded), ``eps_factor``, ``detector``, ``attack``,
        ``evasion_rate`` (%), ``n``; written to ``adaptive.csv``.
    """
    import pandas as pd

    def compute():
        rows = _adaptive_rows(cfg, gen, sets, fitted, paper_scores, _model(cfg, model), progress)
        return pd.DataFrame(rows).to_dict(orient="list")

    stored, run = run_stage(cfg, "adaptive", "adaptive_results", compute)
    table = pd.DataFrame(stored)
    table = table[["epsilon", "eps_factor", "detector", "attack", "evasion_rate", "n"]]
    write_table(cfg, table, "adaptive.csv", index=False)
    return table, run


@dataclass
class _Attacked:
    """What the adaptive attacks of one run share: sources, targets and thresholds."""

    fm: object
    x: np.ndarray
    y: np.ndarray
    targets: np.ndarray
    taus: dict
    scales: dict
    accept: dict
    kappa: float


def _adaptive_setup(cfg, gen, sets, fitted, paper_scores, model) -> _Attacked:
    """The correctly classified test-side sources, their targets and the thresholds."""
    from . import adaptive

    fm = models.feature_model(model)
    in_name = cfg.info["in_distribution"]
    label = paper_scores[in_name]["label"].astype(bool)
    taus = {
        m: adaptive.threshold_at_tpr(paper_scores[in_name][m][label]) for m in ADAPTIVE_DETECTORS
    }
    scales = {m: float(np.std(paper_scores[in_name][m][label])) or 1.0 for m in taus}
    accept = _acceptors(cfg, fitted, taus)

    # Sources: correctly classified test-side images.
    ds_in = gen[in_name]
    x_pool, y_pool = load_in_distribution(cfg)
    test_src = np.sort(gen.partition[ds_in.pool][1])
    _, z_src = models.predict_features(model, x_pool[test_src])
    ok = z_src.argmax(1) == y_pool[test_src]
    src = test_src[ok][: cfg["adaptive_n"]]
    x, y, z = x_pool[src], y_pool[src], z_src[ok][: cfg["adaptive_n"]]
    margins = np.sort(z, axis=1)
    kappa = float(np.median(margins[:, -1] - margins[:, -2]))

    # Targets: natural test images accepted by every detector.
    rows = sets.test.of(in_name)
    cand = rows.index[rows.label == 1]
    f_c, z_c = ds_in.features[cand], ds_in.logits[cand]
    allowed = np.all([accept[m](f_c, z_c) for m in ADAPTIVE_DETECTORS], axis=0)
    pick = adaptive.pick_targets(z, y, ds_in.y[cand], allowed, seed=cfg.stream("adaptive"))
    return _Attacked(fm, x, y, ds_in.x[cand][pick], taus, scales, accept, kappa)


def _attack_at(cfg, a: _Attacked, fitted, eps: float, evaded: dict) -> None:
    """Every attack at one radius; ``evaded`` gathers who evades which detector."""
    from . import adaptive

    steps, restarts, seed = cfg["adaptive_steps"], cfg["adaptive_restarts"], cfg.stream("adaptive")

    def pgd(t):
        return adaptive.joint_pgd(
            a.fm, a.x[t], a.y[t], score=None, tau=0.0, scale=1.0, accept=_accept_all,
            eps=eps, steps=steps, restarts=restarts, seed=seed,
        )[0]  # fmt: skip

    res = _evasion(a.fm, pgd, np.arange(len(a.x)), a.x, a.y, a.accept)
    for m in ADAPTIVE_DETECTORS:
        evaded[(m, "pgd")] |= res[m]

    def accept_all_three(f, zz):
        return np.all([a.accept[m](f, zz) for m in ADAPTIVE_DETECTORS], axis=0)

    for layer, key in (("logits", "logit_matching"), ("features", "feature_matching")):
        todo = np.flatnonzero(~np.all([evaded[(m, key)] for m in ADAPTIVE_DETECTORS], axis=0))

        def match(t, layer=layer):
            return adaptive.representation_matching(
                a.fm, a.x[t], a.y[t], a.targets[t], layer=layer, accept=accept_all_three,
                eps=eps, steps=steps,
            )[0]  # fmt: skip

        res = _evasion(a.fm, match, todo, a.x, a.y, a.accept)
        for m in ADAPTIVE_DETECTORS:
            evaded[(m, key)] |= res[m]
    configs = [(lam, kap) for lam in (1.0, 10.0) for kap in (0.0, a.kappa)]
    for m in ("softmax_baseline", "introspection_net"):
        for lam, kap in configs:
            todo = np.flatnonzero(~evaded[(m, "joint_pgd")])
            if len(todo) == 0:
                break
            _, ok_m = adaptive.joint_pgd(
                a.fm, a.x[todo], a.y[todo], score=fitted.detectors[m].score_tensor,
                tau=a.taus[m], scale=a.scales[m], accept=a.accept[m], eps=eps, steps=steps,
                lam=lam, kappa=kap, restarts=restarts, seed=seed,
            )  # fmt: skip
            evaded[(m, "joint_pgd")][todo[ok_m]] = True


def _adaptive_rows(cfg, gen, sets, fitted, paper_scores, model, progress) -> list[dict]:
    """The rows of :func:`adaptive_attacks`, computed."""
    from . import adaptive

    a = _adaptive_setup(cfg, gen, sets, fitted, paper_scores, model)
    base_eps = cfg["bim_eps"]
    names = ("pgd", "joint_pgd", "logit_matching", "feature_matching")
    evaded = {(m, n): np.zeros(len(a.x), bool) for m in ADAPTIVE_DETECTORS for n in names}
    rows_out = []
    for factor in _progress(list(ADAPTIVE_EPS_FACTORS), "adaptive attacks (radii)", progress):
        eps = 1.0 if factor is None else factor * base_eps
        _attack_at(cfg, a, fitted, eps, evaded)
        for m in ADAPTIVE_DETECTORS:
            # the Trust Score has no gradient: no joint PGD
            own = [n for n in names if not (m == "trust_score" and n == "joint_pgd")]
            best = np.any([evaded[(m, n)] for n in own], axis=0)
            for n, v in [*[(n, evaded[(m, n)]) for n in own], ("adaptive (best)", best)]:
                rows_out.append(
                    {
                        "epsilon": None if factor is None else eps,
                        "eps_factor": None if factor is None else factor,
                        "detector": m,
                        "attack": n,
                        "evasion_rate": 100 * float(v.mean()),
                        "n": len(a.x),
                    }
                )

    # Gradient-free check at the paper's radius, Introspection-Net.
    n_s = min(cfg["spsa_n"], len(a.x))
    m = "introspection_net"
    kw = dict(
        score=fitted.detectors[m].score_tensor,
        tau=a.taus[m],
        scale=a.scales[m],
        accept=a.accept[m],
        eps=base_eps,
        steps=cfg["adaptive_steps"],
        lam=1.0,
        kappa=a.kappa,
        restarts=1,
        seed=cfg.stream("adaptive"),
    )
    _, exact = adaptive.joint_pgd(a.fm, a.x[:n_s], a.y[:n_s], **kw)
    _, spsa = adaptive.joint_pgd(
        a.fm, a.x[:n_s], a.y[:n_s], gradient="spsa", spsa_samples=cfg["spsa_samples"], **kw
    )
    for n, v in (("joint_pgd (exact, SPSA subset)", exact), ("joint_pgd (SPSA)", spsa)):
        rows_out.append(
            {
                "epsilon": base_eps,
                "eps_factor": 1.0,
                "detector": m,
                "attack": n,
                "evasion_rate": 100 * float(v.mean()),
                "n": n_s,
            }
        )
    return rows_out
