"""Stages ``introspection_net`` and ``evaluation`` (chapters 4-5), and the run as a whole.

Section 3.2's sets (:func:`introspection_sets`), Introspection-Net and the two baselines
(:func:`fit_detectors`), their test scores and Table 2 (:func:`evaluate`); :func:`stages`
gives a run's stages, each computed or loaded when first read.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from . import artifacts, detectors, metrics, models, runner, splits
from .classifier import BaseModel, base_model, keras_model, training_subset
from .config import Config
from .generation import DataSet, Generation, misclassifications

__all__ = ["introspection_sets", "Fitted", "trust_fit_data", "fit_trust_score",
           "fit_introspection_net", "fit_detectors", "score_test_sets", "score_examples",
           "score_with", "Scores", "variant_scores", "variants_table", "evaluate", "Stages",
           "stages", "write_summary", "scores_table", "analysis_logits", "set_sizes",
           "trust_score_spaces", "evaluate_correct_only"]


def introspection_sets(cfg: Config, gen: Generation) -> splits.Splits:
    """Section 3.2's training, validation and test sets (indices into ``gen``)."""
    parts = {n: splits.Part(d.pool, d.source_index, d.correct) for n, d in gen.sets.items()}
    return splits.make_splits(
        parts, cfg.info["in_distribution"], n_train_in=cfg["n_train_in"],
        n_train_other=cfg["n_train_other"], n_test=cfg["n_test"], val_fraction=cfg["val_fraction"],
        partition=gen.partition, seed=cfg.stream("splits"),
    )


@dataclass
class Fitted:
    """The three detectors, fitted, and how they were obtained."""

    detectors: dict
    history: dict
    trust_fit_size: int
    run: runner.StageRun
    #: Stage parameters of the fit: :func:`score_test_sets` caches only scores of these.
    params: dict | None = None


def trust_fit_data(cfg: Config, model, space: str):
    """The Trust Score's fitting data: ``trust_n_fit`` base-training images in ``space``.

    ``space`` is ``"features"``, ``"logits"`` or ``"pixels"``; returns ``(X, y)``, true labels.
    The features and logits of this seeded subset are cached (``trust_fit_data``): every
    chapter from the evaluation on refits the Trust Score, and this inference dominates.
    """
    if space not in ("features", "logits", "pixels"):
        raise ValueError(f"space must be 'features', 'logits' or 'pixels'; got {space!r}.")
    x, y = training_subset(cfg, cfg["trust_n_fit"], "trust_fit")
    if space == "pixels":
        return x.reshape(len(x), -1), y

    def compute():
        feats, logits = models.predict_features(model, x)
        return {"features": feats, "logits": logits}

    params = {**cfg.stage_params("base_model"), "trust_n_fit": len(y)}
    arrays, _ = runner.run_stage(
        cfg, "base_model", "trust_fit_data", compute, "arrays", params, record=False
    )
    return arrays[space], y


def fit_trust_score(cfg: Config, model, space: str):
    """The Trust Score fitted in ``space`` on :func:`trust_fit_data`, and its number of images."""
    x_fit, y_fit = trust_fit_data(cfg, model, space)
    trust = detectors.TrustScore(k=cfg["trust_k"], alpha=cfg["trust_alpha"], reads=space)
    return trust.fit(x_fit, y_fit), len(y_fit)


def fit_introspection_net(
    cfg: Config, gen: Generation, sets: splits.Splits, seed: int | None = None, exclude=(),
    verbose: int = 0,
):
    """Train one Introspection-Net on Section 3.2's training set and return it (not cached).

    Parameters
    ----------
    seed : int, optional
        Seed of its weights and data order (default: stream ``introspection_net``, Table 2's).
    exclude : sequence of str
        Datasets removed from its training and validation sets.
    """
    logits = {n: d.logits for n, d in gen.sets.items()}
    train, val = sets.train, sets.val
    if len(exclude):
        train = train.subset(~np.isin(train.dataset, list(exclude)))
        val = val.subset(~np.isin(val.dataset, list(exclude)))
    net = detectors.IntrospectionNet(
        epochs=cfg["introspection_epochs"], batch_size=cfg["introspection_batch_size"],
        seed=cfg.stream("introspection_net") if seed is None else seed,
    )
    return net.fit(
        splits.gather(train, logits), train.label,
        validation_data=(splits.gather(val, logits), val.label), verbose=verbose,
    )


def fit_detectors(
    cfg: Config, gen: Generation, sets: splits.Splits, model=None, verbose: int = 0
) -> Fitted:
    """Train Introspection-Net (or load it) and fit the Softmax Baseline and Trust Score.

    The Trust Score is fitted on ``trust_n_fit`` base-training images (true labels) in the
    ``trust_feature`` space; ``model`` (the base classifier) defaults to :func:`base_model`'s.
    """
    t0 = time.perf_counter()
    params = cfg.stage_params("introspection_net")

    def compute():
        net = fit_introspection_net(cfg, gen, sets, verbose=verbose)
        return {"introspection_net": net.model_, "introspection_net_history": net.history_}

    stored, run = runner.run_stage(
        cfg, "introspection_net",
        {"introspection_net": "model", "introspection_net_history": "json"}, compute,
        record=False,  # the stage's time includes the Trust Score's fit, recorded below
    )
    net = detectors.IntrospectionNet(model=stored["introspection_net"])
    trust, n_fit = fit_trust_score(cfg, keras_model(cfg, model), cfg["trust_feature"])
    dets = {
        "softmax_baseline": detectors.SoftmaxBaseline(dtype=cfg["softmax_dtype"]),
        "trust_score": trust, "introspection_net": net,
    }
    run = runner.record_stage(cfg, "introspection_net", t0, run.reused)
    return Fitted(dets, stored["introspection_net_history"], n_fit, run, params=params)


def score_test_sets(cfg: Config, gen: Generation, sets: splits.Splits, fitted: Fitted) -> dict:
    """Every method's score on every test example, grouped by dataset.

    Returns ``{dataset: {"label": ..., method: scores}}``. The scores of detectors fitted by
    :func:`fit_detectors` with the current parameters are cached (``test_scores``): the Trust
    Score's neighbour queries take a while.
    """
    params = cfg.stage_params("introspection_net")
    cache = fitted.params == params
    scores = None
    if cache and artifacts.exists(cfg.artifacts_dir, "test_scores", params):
        scores = runner.load_artifact(cfg, "test_scores", "scores", params)
    if scores is None or set(scores) != set(gen.sets):
        scores = {
            name: score_examples(cfg, fitted, ds, sets.test.of(name).index)
            for name, ds in gen.sets.items()
        }
        if cache:
            runner.save_artifact(cfg, "test_scores", "scores", scores, params)
    return {name: {"label": sets.test.of(name).label, **scores[name]} for name in gen.sets}


def score_examples(cfg: Config, fitted: Fitted, ds: DataSet, rows) -> dict:
    """The paper's three methods' scores of some rows of one dataset, by method name."""
    return {method: score_with(det, ds, rows) for method, det in fitted.detectors.items()}


def score_with(det, ds: DataSet, rows) -> np.ndarray:
    """A detector's scores of some rows of a set, on what it reads."""
    return det.score(ds.read(det.reads)[rows], ds.logits[rows].argmax(1))


@dataclass
class Scores:
    """Test-set scores ``{dataset: {method: ndarray}}`` of some detectors, and how they came."""

    scores: dict
    run: runner.StageRun


def variant_scores(cfg: Config, gen, sets, stage: str, name: str, keys, train, progress, what):
    """Introspection-Net variants' test scores, ``{key: {dataset: {"introspection_net": s}}}``.

    ``train(key)`` gives a fitted :class:`~introspection.detectors.IntrospectionNet`; each
    variant is cached as ``<name>_<key>`` (a re-run resumes).
    """
    t0 = time.perf_counter()
    base_params = cfg.stage_params("introspection_net")
    out, reused = {}, True

    def compute(key):
        net = train(key)
        return {
            d: {"introspection_net": net.score(ds.logits[sets.test.of(d).index])}
            for d, ds in gen.sets.items()
        }

    for key in runner.progress_bar(list(keys), what, progress):
        params = {**base_params, "variant": key}
        out[key], run = runner.run_stage(
            cfg, stage, f"{name}_{key}", lambda key=key: compute(key), "scores", params, False
        )
        reused = reused and run.reused
    return out, runner.record_stage(cfg, stage, t0, reused)


def variants_table(cfg: Config, variants: dict, paper_scores: dict, column: str, value, csv: str):
    """Metrics (no intervals) of every variant's network, one ``column`` naming it; to ``csv``."""
    import pandas as pd

    in_name = cfg.info["in_distribution"]
    label = {"label": paper_scores[in_name]["label"]}
    frames = []
    for key, scores in variants.items():
        merged = {d: {**label, **s} if d == in_name else s for d, s in scores.items()}
        t = scores_table(cfg, merged, 0)
        t.insert(1, column, value(key))
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)
    runner.write_table(cfg, table, csv, index=False)
    return table


def evaluate(cfg: Config, scores: dict):
    """Table 2 with bootstrap 95 % CIs (a row per dataset x method), written to ``table2.csv``."""
    table = scores_table(cfg, scores, cfg["n_boot"])
    runner.write_table(cfg, table, "table2.csv", index=False)
    return table


class Stages:
    """The paper's stages of one run, each computed or loaded when it is first read.

    Examples
    --------
    >>> s = stages(cfg)  # doctest: +SKIP
    >>> s.table2  # trains or loads everything upstream of Table 2  # doctest: +SKIP
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @functools.cached_property
    def base(self) -> BaseModel:
        """:func:`base_model`."""
        return base_model(self.cfg, verbose=0)

    @property
    def model(self):
        """The base classifier (a Keras model)."""
        return self.base.model

    @functools.cached_property
    def gen(self) -> Generation:
        """:func:`misclassifications` (the classifier is loaded only if needed)."""
        return misclassifications(self.cfg, self.model if "base" in self.__dict__ else None)

    @functools.cached_property
    def sets(self) -> splits.Splits:
        """:func:`introspection_sets`."""
        return introspection_sets(self.cfg, self.gen)

    @functools.cached_property
    def fitted(self) -> Fitted:
        """:func:`fit_detectors`."""
        return fit_detectors(self.cfg, self.gen, self.sets, self.model, verbose=0)

    @functools.cached_property
    def scores(self) -> dict:
        """:func:`score_test_sets`."""
        return score_test_sets(self.cfg, self.gen, self.sets, self.fitted)

    @functools.cached_property
    def table2(self):
        """:func:`evaluate` (also written to ``table2.csv``)."""
        return evaluate(self.cfg, self.scores)

    @functools.cached_property
    def extra(self) -> Scores:
        """:func:`introspection.more_detectors.extra_detector_scores` (chapters 8 and 9)."""
        from .more_detectors import extra_detector_scores  # it imports this module

        return extra_detector_scores(self.cfg, self.gen, self.sets, self.model)


def stages(cfg: Config) -> Stages:
    """The run's stages, computed lazily (:class:`Stages`)."""
    return Stages(cfg)


def write_summary(run: Stages, claims):
    """Write the run's ``summary.json``: classifier, set sizes, generation, times, ``claims``."""
    base = run.base
    return runner.write_summary(
        run.cfg, base_accuracy=base.test_accuracy,
        set_sizes=set_sizes(run.sets).to_dict(orient="index"), generation=run.gen.stats,
        wall_seconds=runner.stage_timings(run.cfg), claims=claims.to_dict(orient="records"),
        base_model={"origin": base.origin, **base.history.get("trained_on", {})},
    )  # fmt: skip


def scores_table(cfg: Config, scores: dict, n_boot: int):
    """Table 2's rows for any set of methods' scores (not written anywhere).

    Parameters
    ----------
    scores : dict
        As from :func:`score_test_sets`; only the in-distribution entry needs ``"label"``.
    n_boot : int
        Bootstrap resamples of the 95 % CIs (0 = none).
    """
    in_name = cfg.info["in_distribution"]
    methods = [m for m in scores[in_name] if m != "label"]
    return metrics.evaluation_table(
        scores[in_name]["label"].astype(bool), {m: scores[in_name][m] for m in methods},
        {n: {m: s[m] for m in methods} for n, s in scores.items() if n != in_name},
        experiment=cfg.experiment, n_boot=n_boot, random_state=cfg.stream("bootstrap"),
    )


def analysis_logits(cfg: Config, gen: Generation, sets: splits.Splits) -> dict:
    """Logits of ``n_analysis`` test examples per dataset, for Figures 1 and 2.

    In-distribution, only correctly classified examples: the paper compares "correctly
    classified MNIST images" with the misclassifications.
    """
    in_name = cfg.info["in_distribution"]
    out = {}
    for name, ds in gen.sets.items():
        part = sets.test.of(name)
        rows = part.index[part.label == 1] if name == in_name else part.index
        out[name] = ds.logits[rows[: cfg["n_analysis"]]]
    return out


def set_sizes(sets: splits.Splits):
    """Examples per dataset in the train, validation and test sets, and those labelled "correct"."""
    import pandas as pd

    rows = {}
    for n in sets.test.counts():
        tr, va, te = sets.train.of(n), sets.val.of(n), sets.test.of(n)
        rows[n] = {"train": len(tr), "validation": len(va), "test": len(te),
                   "correct (train)": int(tr.label.sum()), "correct (test)": int(te.label.sum())}
    df = pd.DataFrame.from_dict(rows, orient="index").rename_axis("dataset")
    df.loc["total"] = df.sum()
    return df


def trust_score_spaces(
    cfg: Config, gen: Generation, sets: splits.Splits, model=None,
    spaces=("features", "logits", "pixels"),
):
    """AUROC (%) of the Trust Score per dataset, one column per feature space.

    The paper does not say where the Trust Score looks for neighbours; this shows how much
    that choice moves its row of Table 2.
    """
    import pandas as pd

    model = keras_model(cfg, model)
    in_name = cfg.info["in_distribution"]
    cols = {}
    for space in spaces:
        trust, _ = fit_trust_score(cfg, model, space)
        s = {name: score_with(trust, ds, sets.test.of(name).index) for name, ds in gen.sets.items()}
        in_correct = sets.test.of(in_name).label.astype(bool)
        cols[space] = {
            n: metrics.auroc(np.r_[in_correct, np.zeros(len(v), bool)], np.r_[s[in_name], v]) * 100
            for n, v in s.items() if n != in_name
        }
    return pd.DataFrame(cols)


def evaluate_correct_only(cfg: Config, scores: dict):
    """Table 2 with the in-distribution natural errors left out of every row (not written).

    The paper does not say how it counts the classifier's own mistakes on in-distribution
    test images; this variant keeps only the correctly classified ones, as positives.
    """
    in_name = cfg.info["in_distribution"]
    keep = scores[in_name]["label"].astype(bool)
    only = {m: v[keep] for m, v in scores[in_name].items()}
    return scores_table(cfg, {**scores, in_name: only}, 0)
