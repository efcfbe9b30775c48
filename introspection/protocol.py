"""The protocol study (chapter 12): how Table 2 moves with what the paper leaves open.

Each open choice has readings (profile overrides, or other positives for the errors
row). A reading remakes only its set, from the same sources, retrains Introspection-Net
and recomputes Table 2; it is calibrated against Section 2.3's max logits (MNIST) and
Section 3.3's mean max softmax (CIFAR-10). Entry point: :func:`protocol_study`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import attacks, classifier, config, detectors, generation, metrics, models, pipeline, runner
from . import paper as _paper
from .analysis import compare_with_paper
from .config import ATTACKS, Config

__all__ = [
    "Reading", "OURS", "TEXT_SUPPORT", "BEFORE", "readings", "protocol_study", "before_after",
    "within", "calibration_error", "best_calibrated", "remaining",
]  # fmt: skip


@dataclass(frozen=True)
class Reading:
    """One reading of an open choice: a label and the profile overrides it applies.

    ``choice``: ``"errors"``, ``"bim"``, ``"fgsm"``, ``"softmax"``, ``"trust"`` or ``"defaults"``
    (:data:`BEFORE`); ``positives="patched"``: the errors row's positives are the patched
    test images still classified right; ``remakes``: sets a multi-choice reading remakes.
    """

    choice: str
    label: str
    overrides: dict = field(default_factory=dict)
    positives: str = "clean"
    remakes: tuple = ()

    @property
    def sets(self) -> tuple:
        """The sets this reading makes again from the same sources."""
        if self.choice in ATTACKS:
            return (self.choice,) if self.overrides else ()
        return self.remakes


#: The profile's own reading, first in every choice (its values: ``Config.table``).
OURS = "profile"

#: Every open choice as the book read it before this study (MNIST's BIM at eps 0.3, step 0.03,
#: 20 steps; float64 softmax; unfiltered Trust Score); with intervals, for the before/after counts.
BEFORE = "defaults before the study"

_BEFORE = {  # (the earlier attack budgets, the sets they change)
    "mnist": ({"bim_eps": 0.3, "bim_eps_iter": 0.03, "bim_nb_iter": 20}, ("bim",)),
    "cifar10": ({}, ()),
}


def _eps_text(eps: float, experiment: str) -> str:
    return f"{eps:g}" if experiment == "mnist" else f"{eps * 255:g}/255"


def readings(experiment: str) -> list[Reading]:
    """Every reading studied for one experiment, each choice starting with the profile's.

    Budgets are absolute; a reading equal to the profile's is skipped when the study runs.
    """
    mnist = experiment == "mnist"
    # BIM: step eps/10 (MNIST) or eps/8 (CIFAR-10), 20 steps, as the profiles.
    bim_eps, step = ((0.3, 0.2, 0.15, 0.1), 10) if mnist else ((8 / 255, 4 / 255, 2 / 255), 8)
    fgsm_eps = (0.3, 0.2) if mnist else (8 / 255, 4 / 255)
    out = [
        Reading("errors", OURS),
        Reading("errors", "one error per source image", {"patch_max_per_source": 1}),
        Reading("errors", "several errors per source image", {"patch_max_per_source": None}),
        Reading("errors", "black patch (0 in pixels)", {"patch_fill": "zero"}),
        Reading("errors", "patch = 0 after standardisation", {"patch_fill": "mean"}),
        Reading("errors", "positives: patched images still right", positives="patched"),
        Reading("bim", OURS),
    ]
    for e in bim_eps:
        budget = {"bim_eps": e, "bim_eps_iter": e / step, "bim_nb_iter": 20}
        out.append(Reading("bim", f"eps {_eps_text(e, experiment)}, 20 steps", budget))
    v3 = {"bim_eps": 0.3, "bim_eps_iter": 0.05, "bim_nb_iter": 10}
    out += [
        Reading("bim", "cleverhans v3 defaults (eps 0.3, step 0.05, 10 steps)", v3),
        Reading("bim", "early stop at the first misclassification", {"bim_early_stop": True}),
        Reading("bim", "loss on the probabilities", {"attack_loss": "probabilities"}),
        Reading("fgsm", OURS),
    ]
    for e in fgsm_eps:
        out.append(Reading("fgsm", f"eps {_eps_text(e, experiment)}", {"fgsm_eps": e}))
    return out + [
        Reading("fgsm", "loss on the probabilities", {"attack_loss": "probabilities"}),
        Reading("softmax", OURS), Reading("softmax", "float64", {"softmax_dtype": "float64"}),
        Reading("softmax", "float32, as Keras' softmax layer", {"softmax_dtype": "float32"}),
        Reading("trust", OURS),
        Reading("trust", "features, alpha 0", {"trust_feature": "features", "trust_alpha": 0.0}),
        Reading("trust", "features, alpha 0.1", {"trust_feature": "features", "trust_alpha": 0.1}),
        Reading("trust", "logits, alpha 0.1", {"trust_feature": "logits", "trust_alpha": 0.1}),
        Reading("trust", "pixels, alpha 0.1", {"trust_feature": "pixels", "trust_alpha": 0.1}),
        Reading("defaults", BEFORE,
                {**_BEFORE[experiment][0], "softmax_dtype": "float64", "trust_alpha": 0.0},
                remakes=_BEFORE[experiment][1]),
    ]  # fmt: skip


def _is_profile(cfg: Config, r: Reading) -> bool:
    """Whether a reading is the profile's own (the same values, the same positives)."""
    same = all(
        cfg[k] == v or (isinstance(v, float) and np.isclose(cfg[k], v, rtol=1e-12, atol=0))
        for k, v in r.overrides.items()
    )
    return r.positives == "clean" and same


def _with(cfg: Config, overrides: dict) -> Config:
    return config.configure(
        cfg.experiment, cfg.profile, seed=cfg.seed, data_dir=cfg.data_dir,
        artifacts_dir=cfg.artifacts_dir.parent.parent, results_dir=cfg.results_dir,
        overrides={**cfg.overrides, **overrides},
    )  # fmt: skip


def _listed(r: Reading) -> list:
    """A reading as it enters the artifacts' keys."""
    return [r.choice, r.label, r.overrides, r.positives]


class _Scorer:
    """The three methods' scores of any rows of any set version, computed once each."""

    def __init__(self, model):
        self.model, self._memo, self._trust = model, {}, {}

    def trust(self, cfg: Config):
        key = (cfg["trust_feature"], cfg["trust_alpha"])
        if key not in self._trust:
            self._trust[key] = pipeline.fit_trust_score(cfg, self.model, cfg["trust_feature"])[0]
        return self._trust[key]

    def scores(self, cfg: Config, net, ds, version: str, rows) -> dict:
        z = ds.logits[rows]
        out = {"softmax_baseline": detectors.SoftmaxBaseline(cfg["softmax_dtype"]).score(z)}
        tkey = (ds.name, version, cfg["trust_feature"], cfg["trust_alpha"],
                np.asarray(rows).tobytes())  # fmt: skip
        if tkey not in self._memo:
            self._memo[tkey] = pipeline.score_with(self.trust(cfg), ds, rows)
        out["trust_score"] = self._memo[tkey]
        out["introspection_net"] = net.score(z)
        return out


def _regenerate(cfg: Config, model, gen, name: str):
    """The set ``name`` made again under ``cfg``, from the same sources in the same order."""
    x_pool, y_pool = generation.load_in_distribution(cfg)
    order, targets = generation.source_order(cfg, len(x_pool))
    x, src, _ = generation.generate_set(cfg, model, name, x_pool, y_pool, order, targets)
    return generation._view(cfg, model, name, x, src, gen[name].pool, y_pool[src])


def _patched_positives(cfg: Config, model, sets):
    """One random patch on every test-side source image: the patched test set."""
    x_pool, y_pool = generation.load_in_distribution(cfg)
    src = sets.test.of(cfg.info["in_distribution"]).index
    rng = np.random.default_rng(cfg.stream("patched_positives"))
    h, w = x_pool.shape[1:3]
    side = cfg["patch_size"]
    rows = rng.integers(0, h - side + 1, len(src))
    cols = rng.integers(0, w - side + 1, len(src))
    x = attacks._apply_patches(x_pool[src], rows, cols, side)
    feats, logits = models.predict_features(model, x)
    correct = logits.argmax(1) == y_pool[src]
    name = f"{cfg.info['in_distribution']}_patched"
    return generation.DataSet(name, x, src, "patched", y_pool[src], logits, feats, correct)


def _calibration(cfg: Config, ds, rows) -> dict:
    z = ds.logits[rows].astype(np.float64)
    top = z.max(1)
    soft = detectors.SoftmaxBaseline().score(z)
    paper = _paper.max_logit(ds.name, cfg.experiment)
    return {
        "dataset": ds.name, "n": int(len(rows)), "max_logit_mean": float(top.mean()),
        "max_logit_std": float(top.std(ddof=1)),
        "paper_max_logit_mean": paper[0] if paper else None,
        "paper_max_logit_std": paper[1] if paper else None,
        "max_softmax_mean": float(100 * soft.mean()),
        "paper_max_softmax_mean": _paper.MAX_SOFTMAX.get(cfg.experiment, {}).get(ds.name),
    }  # fmt: skip


def _reading(cfg, r, base, scorer, model):
    """Table 2's cells and the calibration rows of one reading."""
    gen, sets, net = base["gen"], base["sets"], base["net"]
    cfg_r = _with(cfg, r.overrides) if r.overrides else cfg
    changed = list(r.sets)
    if changed:
        new = {a: _regenerate(cfg_r, model, gen, a) for a in changed}
        gen = generation.Generation({**gen.sets, **new}, gen.partition, gen.stats)
        sets = pipeline.introspection_sets(cfg_r, gen)
        net = pipeline.fit_introspection_net(cfg_r, gen, sets)
    scores = {}
    for name, ds in gen.sets.items():
        rows = sets.test.of(name).index
        v = r.label if name in changed else OURS
        scores[name] = {"label": sets.test.of(name).label, **scorer.scores(cfg_r, net, ds, v, rows)}
    # Intervals only for the before/after comparison: they cost a bootstrap each.
    table = pipeline.scores_table(cfg_r, scores, n_boot=cfg["n_boot"] if r.label == BEFORE else 0)
    if r.positives == "patched":
        table, calib = _patched_errors_row(cfg, cfg_r, model, sets, net, scorer, scores, table)
    else:
        # calibrated: the sets the reading makes again, or, for the profile's, its choice's set
        calibrated = changed or ([r.choice] if r.choice in ATTACKS else [])
        calib = [_calibration(cfg, gen[a], sets.test.of(a).index) for a in calibrated]
    for c in calib:
        c.update(choice=r.choice, reading=r.label)
    table.insert(0, "reading", r.label)
    table.insert(0, "choice", r.choice)
    return table, calib


def _patched_errors_row(cfg, cfg_r, model, sets, net, scorer, scores, table):
    """Table 2 with its errors row remade on the patched positives, and their calibration."""
    patched = _patched_positives(cfg, model, sets)
    rows = np.arange(len(patched.x))
    p_scores = scorer.scores(cfg_r, net, patched, OURS, rows)
    errors = {"errors": {m: scores["errors"][m] for m in p_scores}}
    row = metrics.evaluation_table(patched.correct, p_scores, errors,
                                   experiment=cfg.experiment, n_boot=0)  # fmt: skip
    table = pd.concat([table[table.dataset != "errors"], row], ignore_index=True)
    return table, [_calibration(cfg, patched, rows[patched.correct])]


def protocol_study(cfg: Config, progress: bool = True):
    """Run (or load) every reading of :func:`readings`, compare it with the paper, write it.

    The cells are written to ``protocol.csv`` in the results folder.

    Returns
    -------
    cells, calibration : pandas.DataFrame
        Per reading x dataset x method, the four metrics (%) and ``paper_<metric>``
        (intervals only for :data:`BEFORE`); per reading, the max-logit mean and std and
        mean max softmax of its set beside the paper's, or a ``note`` if it cannot make it.
    """
    todo = [r for r in readings(cfg.experiment) if r.label == OURS or not _is_profile(cfg, r)]
    # the readings are part of the key: a reading added later is run, the others loaded
    digest = runner.params_digest({"readings": [_listed(r) for r in todo]})
    params = {**cfg.stage_params("protocol"), "readings": digest}
    stored, _ = runner.run_stage(
        cfg, "protocol", "protocol", lambda: _study(cfg, todo, progress), params=params
    )
    # JSON keeps its keys sorted: the columns in the order they were made
    cells = pd.DataFrame(stored["cells"])
    cells = cells[_ordered(cells, _CELLS)]
    runner.write_table(cfg, cells, "protocol.csv", index=False)
    calibration = pd.DataFrame(stored["calibration"])
    return cells, calibration[_ordered(calibration, _CALIBRATION)]


_CELLS = ["choice", "reading", "dataset", "method", *metrics.METRICS,
          *[f"{m}_{b}" for m in metrics.METRICS for b in ("lo", "hi")],
          *[f"paper_{m}" for m in metrics.METRICS]]
_CALIBRATION = ["dataset", "n", "max_logit_mean", "max_logit_std", "paper_max_logit_mean",
                "paper_max_logit_std", "max_softmax_mean", "paper_max_softmax_mean", "choice",
                "reading", "note"]


def _ordered(table, first: list) -> list:
    """``first``'s columns of ``table``, then any others."""
    return [c for c in first if c in table] + [c for c in table if c not in first]


def _study(cfg: Config, todo: list, progress: bool) -> dict:
    """Every reading of ``todo`` run or loaded, gathered."""
    from tqdm import tqdm

    model = classifier.base_model(cfg, verbose=0).model
    gen = generation.misclassifications(cfg, model, progress=False)
    sets = pipeline.introspection_sets(cfg, gen)
    fitted = pipeline.fit_detectors(cfg, gen, sets, model)
    base = {"gen": gen, "sets": sets, "net": fitted.detectors["introspection_net"]}
    scorer = _Scorer(model)
    in_name = cfg.info["in_distribution"]
    test_in = sets.test.of(in_name)
    clean = _calibration(cfg, gen[in_name], test_in.index[test_in.label.astype(bool)])
    deepfool = _calibration(cfg, gen["deepfool"], sets.test.of("deepfool").index)
    calib = [{**clean, "choice": "clean", "reading": OURS},
             {**deepfool, "choice": "deepfool", "reading": OURS}]  # fmt: skip
    tables = []
    for r in tqdm(todo, desc=f"{cfg.experiment}: readings", disable=not progress):
        # Each reading is kept as it is done: a rerun after a stop resumes.
        key = {**cfg.stage_params("protocol"), "reading": _listed(r)}
        name = f"protocol_reading_{runner.params_digest(key)}"
        done, _ = runner.run_stage(cfg, "protocol", name,
                                     lambda r=r: _run_reading(cfg, r, base, scorer, model),
                                     params=key, record=False)  # fmt: skip
        tables.append(pd.DataFrame(done["cells"]))
        calib += done["calibration"]
    cells = _with_paper(cfg, pd.concat(tables, ignore_index=True))
    calib = pd.DataFrame(calib).to_dict("records")
    return {"cells": cells.to_dict("records"), "calibration": calib}


def _with_paper(cfg: Config, cells):
    """The cells' columns in order, then the paper's value of each metric (``paper_<m>``)."""
    cells = cells.reindex(columns=_CELLS[:-len(metrics.METRICS)])
    paper = _paper.table2(cfg.experiment).set_index(["dataset", "method"])
    for m in metrics.METRICS:
        keys = zip(cells.dataset, cells.method, strict=True)
        cells[f"paper_{m}"] = [paper[m].get(key) for key in keys]
    return cells


def _run_reading(cfg, r, base, scorer, model) -> dict:
    """One reading's cells and calibration rows, or a note when it cannot make its set."""
    try:
        t, c = _reading(cfg, r, base, scorer, model)
        return {"cells": t.to_dict("records"), "calibration": c}
    except RuntimeError as err:  # the reading cannot make the set it needs
        note = str(err).split(". ")[0]
        row = {"choice": r.choice, "reading": r.label, "dataset": r.choice, "note": note}
        return {"cells": [], "calibration": [row]}


#: What the paper's text says for the choices it gives no number for: the reading it
#: supports, and the words. The attack budgets are decided by calibration instead.
TEXT_SUPPORT = {
    "softmax": (
        "float32, as Keras' softmax layer",
        "the paper's classifiers are Keras models whose last layer is a float32 softmax",
    ),
    "trust": (
        "features, alpha 0.1",
        'it uses "a filtered version of the training set", so alpha > 0 (the value 0.1 is '
        'ours); that it calls the Trust Score "model-agnostic" could point to the pixels, '
        "one adjective we do not take as enough to leave the usual penultimate features",
    ),
}


def within(cells, points: float = 5.0):
    """How many cells of each reading lie within ``points`` of the paper's value.

    Index (choice, reading); columns ``within``, ``cells`` (cells the paper reports), and
    ``row_within``, ``row_cells`` for the choice's row (all rows for softmax and trust).
    """
    out = []
    for (choice, reading), g in cells.groupby(["choice", "reading"], sort=False):
        ours = g[[*metrics.METRICS]].to_numpy(float)
        paper = g[[f"paper_{m}" for m in metrics.METRICS]].to_numpy(float)
        close = np.abs(ours - paper) <= points
        known = np.isfinite(paper)
        row = (g.dataset == choice).to_numpy() if choice in ATTACKS else np.ones(len(g), bool)
        out.append({
            "choice": choice, "reading": reading, "within": int(close.sum()),
            "cells": int(known.sum()), "row_within": int(close[row].sum()),
            "row_cells": int(known[row].sum()),
        })  # fmt: skip
    return pd.DataFrame(out).set_index(["choice", "reading"])


def calibration_error(calibration):
    """Distance of each reading's set to the paper's statistics outside Table 2 (``error``).

    For the max logit (MNIST, Section 2.3) the 2-Wasserstein distance of normal laws,
    ``sqrt(dmean**2 + dstd**2)``; for the mean max softmax (CIFAR-10, Section 3.3) the
    absolute difference in points. Only rows the paper has a value for are kept.
    """
    c = calibration.copy()
    d_mean = c.max_logit_mean - c.paper_max_logit_mean.astype(float)
    d_std = (c.max_logit_std - c.paper_max_logit_std.astype(float)).fillna(0.0)
    soft = (c.max_softmax_mean - c.paper_max_softmax_mean.astype(float)).abs()
    c["error"] = np.sqrt(d_mean**2 + d_std**2).fillna(soft)
    return c[c.error.notna()].reset_index(drop=True)


def best_calibrated(calibration) -> dict:
    """For each attack choice with a calibration target, the reading closest to it.

    Returns ``{choice: (reading, error, error of the profile's reading)}``.
    """
    c = calibration_error(calibration)
    out = {}
    for choice, g in c[c.choice.isin(ATTACKS)].groupby("choice", sort=False):
        if len(g) < 2:  # a set that is not a choice here (DeepFool): nothing to pick
            continue
        best = g.loc[g.error.idxmin()]
        ours = g.loc[g.reading == OURS, "error"]
        out[choice] = (best.reading, float(best.error), float(ours.iloc[0]))
    return out


def remaining(cells, metric: str = "auroc", points: float = 5.0):
    """The profile's cells still more than ``points`` from the paper, and what moved them.

    One row per such (dataset, method): ``profile``, ``paper``, the closest reading
    (``closest``, ``closest_value``) and ``closes`` (it lands within ``points``).
    """
    ours = cells[(cells.reading == OURS) & (cells.choice == cells.choice.iloc[0])]
    rows = []
    for _, r in ours.iterrows():
        paper = r[f"paper_{metric}"]
        if not np.isfinite(paper) or abs(r[metric] - paper) <= points:
            continue
        alt = cells[(cells.dataset == r.dataset) & (cells.method == r.method)]
        # the readings that move this cell at all (by more than 0.05 points)
        alt = alt[(alt.reading != OURS) & ((alt[metric] - r[metric]).abs() > 0.05)]
        gap = (alt[metric] - paper).abs()
        best = alt.loc[gap.idxmin()] if len(alt) else None
        rows.append({
            "dataset": r.dataset, "method": r.method, "profile": r[metric], "paper": paper,
            "closest": f"{best.choice}: {best.reading}" if best is not None else None,
            "closest_value": best[metric] if best is not None else np.nan,
            "closes": bool(best is not None and gap.min() <= points),
        })  # fmt: skip
    return pd.DataFrame(rows)


def before_after(cells, table2, points: float = 5.0):
    """Table 2 against the paper's, under the book's earlier defaults and the profile's.

    ``cells`` is :func:`protocol_study`'s (its :data:`BEFORE` reading has intervals),
    ``table2`` the profile's ``table2.csv``. Index :data:`BEFORE`, :data:`OURS`; columns
    ``inside_ci`` (paper value inside our 95 % CI), ``within`` (within ``points``), ``cells``.
    """
    paper = _paper.table2()
    before = cells[cells.reading == BEFORE].assign(experiment=table2.experiment.iloc[0])
    rows = {}
    for name, t in ((BEFORE, before), (OURS, table2)):
        if t.empty:  # a study run before this reading existed
            rows[name] = {"inside_ci": np.nan, "within": np.nan, "cells": np.nan}
            continue
        d = compare_with_paper(t, paper)
        d = d[d.paper.notna()]
        inside = d.lo.notna() & ~d.outside_ci
        rows[name] = {
            "inside_ci": int(inside.sum()) if d.lo.notna().all() else np.nan,
            "within": int((d.difference.abs() <= points).sum()), "cells": len(d),
        }
    return pd.DataFrame(rows).T
