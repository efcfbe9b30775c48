"""The book's stages, each computed once and cached as artifacts.

Every notebook calls one stage; a stage loads the earlier stages' artifacts when their
parameters (:meth:`introspection.config.Config.stage_params`) are unchanged and recomputes
them otherwise, so any notebook runs on its own and a re-run resumes. Stages:
:func:`base_model`, :func:`misclassifications` (Section 2.2), :func:`fit_detectors`,
:func:`evaluate` (Table 2); :class:`Stages` chains them lazily. Artifacts live under
``<artifacts_dir>/<experiment>/``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import artifacts, attacks, config, datasets, detectors, metrics, models, splits, training
from .config import ATTACKS, Config

__all__ = [
    "DataSet", "Generation", "StageRun", "load_in_distribution", "load_training_data",
    "build_classifier", "training_arguments", "base_model", "training_cost", "jpeg_cost",
    "misclassifications", "source_order", "generate_set", "introspection_sets",
    "fit_introspection_net", "fit_detectors", "score_test_sets", "score_examples", "score_with",
    "scores_table", "evaluate", "run_stage", "Scores", "classifier", "progress_bar",
    "variant_scores", "variants_table", "Stages", "stages", "write_summary", "write_table",
    "trust_score_spaces", "evaluate_correct_only",
]


@dataclass
class StageRun:
    """How a stage was obtained: computed now or reused from artifacts, and its time."""

    stage: str
    reused: bool
    seconds: float
    compute_seconds: float

    def line(self) -> str:
        """One-line summary for the notebook."""
        how = "reused from artifacts" if self.reused else "computed"
        extra = f" (computing it took {self.compute_seconds:.1f} s)" if self.reused else ""
        return f"{self.stage}: {how} in {self.seconds:.1f} s{extra}"


def _params_digest(params: dict) -> str:
    """Short hash of a stage's parameters, naming its scratch folders."""
    import hashlib

    text = json.dumps(artifacts.canonical_params(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _publish_seconds(cfg: Config, stage: str, seconds: float) -> None:
    """Record a stage's compute time in ``<results_dir>/stage_seconds.json`` (atomic)."""
    path = cfg.results_dir / "stage_seconds.json"
    try:
        current = json.loads(path.read_text())
        if not isinstance(current, dict):
            current = {}
    except (OSError, ValueError):
        current = {}
    current[stage] = round(float(seconds), 1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _timer_record(
    cfg: Config, stage: str, t0: float, reused: bool, at_least: float | None = None
) -> StageRun:
    seconds = time.perf_counter() - t0
    name = f"timing_{stage}"
    params = cfg.stage_params(stage)
    stored = None
    if reused and artifacts.exists(cfg.artifacts_dir, name, params):
        stored = artifacts.load_json(cfg.artifacts_dir, name)["compute_seconds"]
    compute = seconds if stored is None else stored
    if at_least is not None:  # e.g. the epochs of a training resumed after a kill
        compute = max(compute, float(at_least))
    if compute != stored:  # the record read by stage_timings holds the same figure
        artifacts.save_json(
            cfg.artifacts_dir, name, {"compute_seconds": compute}, params=params, seed=cfg.seed
        )
    _publish_seconds(cfg, stage, compute)
    return StageRun(stage, reused, seconds, compute)


def _load(cfg: Config, name: str, store: str, params: dict):
    """An artifact as :func:`run_stage` stores it (``scores``: ``{dataset: {method: array}}``)."""
    kind = "arrays" if store == "scores" else store
    value = getattr(artifacts, f"load_{kind}")(cfg.artifacts_dir, name, params=params)
    if store != "scores":
        return value
    out: dict = {}
    for key, v in value.items():
        d, m = key.split("__", 1)
        out.setdefault(d, {})[m] = v
    return out


def _save(cfg: Config, name: str, store: str, value, params: dict) -> None:
    if store == "scores":
        value = {f"{d}__{m}": np.asarray(v) for d, per in value.items() for m, v in per.items()}
    kind = "arrays" if store == "scores" else store
    getattr(artifacts, f"save_{kind}")(cfg.artifacts_dir, name, value, params=params, seed=cfg.seed)


def run_stage(
    cfg: Config, stage: str, name: str | dict, compute, store: str = "json",
    params: dict | None = None, record: bool = True,
) -> tuple:
    """Load a stage's artifact, or compute it and save it; return ``(value, StageRun)``.

    Parameters
    ----------
    name : str or dict
        The artifact, or ``{artifact: store}`` for several, returned by ``compute()`` as a dict.
    store : {"json", "arrays", "scores", "model"}
        JSON, a dict of arrays, ``{dataset: {method: scores}}`` or a Keras model.
    params : dict, optional
        The artifact's key (default ``cfg.stage_params(stage)``).
    record : bool
        Record the stage's compute time; otherwise the timing is only this call's.
    """
    t0 = time.perf_counter()
    params = cfg.stage_params(stage) if params is None else params
    names = name if isinstance(name, dict) else {name: store}
    reused = all(artifacts.exists(cfg.artifacts_dir, n, params) for n in names)
    if reused:
        value = {n: _load(cfg, n, st, params) for n, st in names.items()}
    else:
        value = compute() if isinstance(name, dict) else {name: compute()}
        for n, st in names.items():
            _save(cfg, n, st, value[n], params)
    value = value if isinstance(name, dict) else value[name]
    if record:
        return value, _timer_record(cfg, stage, t0, reused)
    seconds = time.perf_counter() - t0
    return value, StageRun(stage, reused, seconds, seconds)


# Data


def load_in_distribution(cfg: Config):
    """The source pool: the first ``n_source`` in-distribution test images (in [0, 1]), labels."""
    _, (x, y) = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    n = cfg["n_source"] or len(x)
    return datasets.to_float(x[:n]), y[:n].astype(np.int64)


def load_training_data(cfg: Config):
    """Base-classifier training images in [0, 1] and labels (a seeded ``n_train`` subset if set)."""
    (x, y), _ = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    if cfg["n_train"] is not None and cfg["n_train"] < len(x):
        idx = np.sort(
            np.random.default_rng(cfg.stream("classifier_subset")).choice(
                len(x), cfg["n_train"], replace=False
            )
        )
        x, y = x[idx], y[idx]
    return datasets.to_float(x), y.astype(np.int64)


# Stage 1: base classifier


@dataclass
class BaseModel:
    """The trained base classifier, its history and test accuracy.

    ``origin``: ``"trained"`` (now), ``"cache"`` or ``"published"``
    (:func:`introspection.config.published_weights_dir`); ``note``: why published weights
    were not used, when some exist.
    """

    model: object
    history: dict
    test_accuracy: float
    run: StageRun
    origin: str = "trained"
    note: str | None = None


_BASE_ARTIFACTS = ("base_model", "base_model_history")


def _relative(path: Path) -> str:
    """A path relative to the checkout, for what readers see (no machine's paths)."""
    root = config._repo_root()
    try:
        return str(Path(path).resolve().relative_to(root)) if root else Path(path).name
    except ValueError:
        return Path(path).name


def _forget_downstream(root: Path) -> None:
    """Delete every artifact but the base model's: they were made from other weights."""
    for name in artifacts.names(root):
        if name not in _BASE_ARTIFACTS and name != "timing_base_model":
            artifacts.remove(root, name)


def _import_published(cfg: Config, params: dict) -> str | None:
    """Copy the profile's published weights into the cache if they match; return None or why not."""
    src = config.published_weights_dir(cfg.profile, cfg.experiment)
    if src is None or not (src / "base_model.json").is_file():
        return "none published"
    try:  # hash and parameters verified, the model loaded in Keras' safe mode
        artifacts.load_json(src, "base_model_history", params=params)
        artifacts.load_model(src, "base_model", params=params)
    except (artifacts.ArtifactError, ValueError, OSError) as err:
        return f"the published weights ({_relative(src)}) were not used: {err}"
    _forget_downstream(cfg.artifacts_dir)
    for name in _BASE_ARTIFACTS:
        artifacts.copy(src, cfg.artifacts_dir, name, params=params)
    return None


def build_classifier(cfg: Config, x_train, for_training: bool = False):
    """The untrained base classifier of a configuration; ``for_training``: the copy that trains.

    That copy of a Wide ResNet uses fused batch normalisation (faster on CPU, same weights);
    that of the airbench net is initialised from ``x_train`` (whitening, identity init).
    ``x_train`` also gives the input standardisation's statistics.
    """
    import keras

    keras.utils.set_random_seed(cfg.seed)
    if cfg.info["model"] == "paper_cnn":
        return models.paper_cnn(input_shape=cfg.info["image_shape"])
    if cfg["architecture"] == "airbench":
        model = models.airbench_net(
            input_shape=cfg.info["image_shape"], weight_decay=cfg["weight_decay"],
            kernel_init=cfg["kernel_init"], input_mean=x_train.mean(axis=(0, 1, 2)),
            input_std=x_train.std(axis=(0, 1, 2)),
        )
        if for_training:
            models.init_airbench_net(model, x_train)
        return model
    return models.wide_resnet(
        cfg["wrn_depth"], cfg["wrn_width"], input_shape=cfg.info["image_shape"],
        dropout=cfg["wrn_dropout"], weight_decay=cfg["weight_decay"],
        input_mean=x_train.mean(axis=(0, 1, 2)), input_std=x_train.std(axis=(0, 1, 2)),
        fused_batchnorm=for_training,
    )


def training_arguments(cfg: Config) -> dict:
    """The base classifier's recipe: :func:`introspection.training.train_classifier`'s arguments."""
    out = {k: cfg[k] for k in ("epochs", "batch_size", "optimizer", "learning_rate", "schedule")}
    out["augment"] = cfg.experiment if cfg["augment"] else "none"
    if cfg.experiment != "mnist":
        cifar = ("momentum", "bias_lr_scale", "crop_pad", "crop_fill", "lookahead")
        out.update({k: cfg[k] for k in cifar})
    return out


def base_model(
    cfg: Config, verbose: int = 1, retrain: bool = False, progress: bool = False
) -> BaseModel:
    """The base classifier: from the cache, from the published weights, or trained now.

    Published weights (:func:`introspection.config.published_weights_dir`) are used if their
    parameters match, verified by hash and loaded in Keras' safe mode; ``retrain`` ignores them
    and the cache. Training resumes after the last finished epoch of an interrupted run.
    Replacing the cached model deletes the artifacts of later stages.
    """
    t0 = time.perf_counter()
    params = cfg.stage_params("base_model")
    root = cfg.artifacts_dir
    origin, note = "trained", None
    if not retrain:
        cached = all(artifacts.exists(root, n, params) for n in _BASE_ARTIFACTS)
        if cached:
            origin = "cache"
        else:
            note = _import_published(cfg, params)
            origin = "published" if note is None else origin
            note = None if note == "none published" else note
    if origin != "trained":
        model = artifacts.load_model(root, "base_model", params=params)
        history = artifacts.load_json(root, "base_model_history", params=params)
        run = _timer_record(
            cfg, "base_model", t0, True, at_least=sum(history.get("epoch_seconds", []))
        )
        return BaseModel(model, history, history["test_accuracy"], run, origin, note)
    history, model = _train_base_model(cfg, params, verbose, retrain, progress)
    _forget_downstream(root)
    artifacts.save_model(root, "base_model", model, params=params, seed=cfg.seed)
    artifacts.save_json(root, "base_model_history", history, params=params, seed=cfg.seed)
    run = _timer_record(
        cfg, "base_model", t0, False, at_least=sum(history.get("epoch_seconds", []))
    )
    return BaseModel(model, history, history["test_accuracy"], run, origin, note)


def _train_base_model(cfg: Config, params: dict, verbose: int, fresh: bool, progress: bool):
    """Train the base classifier; returns its history and a float32 model of its weights."""
    import shutil

    from . import hardware

    precision, reason = cfg.precision
    x_train, y_train = load_training_data(cfg)
    _, (x_test, y_test) = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    x_test = datasets.to_float(x_test)
    backup = cfg.artifacts_dir / f"base_model_training_{_params_digest(params)}"
    if fresh:  # from scratch: no resuming from an earlier run's checkpoint
        shutil.rmtree(backup, ignore_errors=True)
    with models.dtype_policy(precision):
        trained = build_classifier(cfg, x_train, for_training=True)
    history = training.train_classifier(
        trained, x_train, y_train, **training_arguments(cfg),
        validation_data=(x_test, y_test.astype(np.int64)), seed=cfg.seed, verbose=verbose,
        progress=progress,
        # Resumes after the last finished epoch if a previous run was interrupted.
        backup_dir=backup,
    )
    # Mixed precision keeps float32 weights; downstream uses a float32 model of standard layers.
    model = trained
    if precision != "float32" or cfg.info["model"] != "paper_cnn":
        model = build_classifier(cfg, x_train)
        model.set_weights(trained.get_weights())
    pred = models.predict_logits(model, x_test).argmax(axis=1)
    history["test_accuracy"] = float((pred == y_test).mean())
    history["n_parameters"] = models.count_params(model)
    history["train_images"] = len(x_train)
    info = hardware.cpu_info()
    history["trained_on"] = {
        "precision": precision, "precision_reason": reason, "cpu": info["model"],
        "isa": info["isa"], "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    return history, model


def training_cost(cfg: Config, base: BaseModel) -> dict:
    """What the base classifier's training cost: epochs, time, images/s and FLOP.

    Returns
    -------
    dict
        ``epochs``, ``seconds`` (sum of the epochs' wall times, test evaluation included),
        ``images_per_second``, ``forward_gflop`` (one image) and ``training_pflop`` (three
        forward passes per training image seen).
    """
    n_train = base.history.get("train_images") or (
        cfg["n_train"] or datasets.DATASETS[cfg.info["in_distribution"]]["n_train"]
    )
    epochs = len(base.history["loss"])
    seconds = float(sum(base.history.get("epoch_seconds", [])))
    forward = models.forward_flops(base.model)
    return {
        "epochs": epochs, "seconds": seconds,
        "images_per_second": n_train * epochs / seconds if seconds else float("nan"),
        "forward_gflop": forward / 1e9, "training_pflop": 3 * forward * n_train * epochs / 1e15,
    }


def jpeg_cost(cfg: Config, model, quality: int = 75, seed: int = 0) -> dict:
    """Test accuracy on the lossless and the JPEG-decoded images of the offline CIFAR-10.

    The offline copy's first 1,000 test images are lossless, the other 9,000 JPEG-decoded
    (:data:`introspection.datasets.OFFLINE_LOSSLESS`). Re-encoding the first ones at
    ``quality`` (the offline copy's: 75, 4:2:0) gives the cost of compression on the same images.

    Returns
    -------
    dict
        ``table``: per set, accuracy (%) and pixel change of one more JPEG round trip (small:
        already compressed); ``paired``: ``(points lost to compression, 95 % CI low, high)``.
    """
    import pandas as pd
    from scipy import stats

    if cfg.experiment != "cifar10":
        raise ValueError("jpeg_cost applies to CIFAR-10 only.")
    _, (x, y) = datasets.load("cifar10", cfg.data_dir)
    n = datasets.OFFLINE_LOSSLESS["cifar10"]["test"]
    recoded = datasets.jpeg_roundtrip(x[:n], quality=quality)
    rows, correct = {}, []
    for label, images, labels in (
        (f"first {n:,} (lossless)", x[:n], y[:n]),
        (f"other {len(x) - n:,} (JPEG-decoded)", x[n:], y[n:]),
        (f"first {n:,}, JPEG-encoded here (quality {quality})", recoded, y[:n]),
    ):
        ok = models.predict_logits(model, datasets.to_float(images)).argmax(axis=1) == labels
        correct.append(ok)
        again = datasets.jpeg_roundtrip(images[:n], quality=quality)
        rows[label] = {
            "images": len(images), "accuracy (%)": 100 * float(ok.mean()),
            "pixel change of one more round trip": float(
                np.abs(again.astype(np.int16) - images[:n]).mean()
            ),
        }
    lost = 100 * (correct[0].astype(float) - correct[2].astype(float))
    interval = stats.bootstrap(
        (lost,), np.mean, confidence_level=0.95, method="percentile", random_state=seed
    ).confidence_interval
    table = pd.DataFrame(rows).T.astype({"images": int})
    return {"table": table, "paired": (float(lost.mean()), interval.low, interval.high)}


# Stage 2: misclassified data


@dataclass
class DataSet:
    """One dataset of the experiment, with the base classifier's view of it.

    Attributes
    ----------
    source_index : ndarray of int64
        Index of each image's source within ``pool`` (e.g. ``"mnist_test"``, ``"gaussian"``).
    y : ndarray of int64
        True label of the source image (-1 for OOD data).
    logits, features : ndarray of float32
        The base classifier's logits and penultimate features.
    correct : ndarray of bool
        Whether the prediction is correct (False for every OOD, adversarial and patch example).
    """

    name: str
    x: np.ndarray
    source_index: np.ndarray
    pool: str
    y: np.ndarray
    logits: np.ndarray
    features: np.ndarray
    correct: np.ndarray

    def read(self, what: str) -> np.ndarray:
        """What a detector reads (:attr:`introspection.detectors.Detector.reads`)."""
        if what == "pixels":
            return self.x.reshape(len(self.x), -1)
        return {"logits": self.logits, "features": self.features, "images": self.x}[what]

    @property
    def prediction(self) -> np.ndarray:
        """The classifier's predicted labels."""
        return self.logits.argmax(axis=1)


@dataclass
class Generation:
    """Every dataset of the experiment, the source partition and generation statistics."""

    sets: dict[str, DataSet]
    partition: dict[str, tuple[np.ndarray, np.ndarray]]
    stats: dict
    run: StageRun | None = field(default=None)

    def __getitem__(self, name: str) -> DataSet:
        return self.sets[name]


def _norm_stats(x_adv: np.ndarray, x_src: np.ndarray) -> dict:
    d = (x_adv.astype(np.float64) - x_src.astype(np.float64)).reshape(len(x_adv), -1)
    if len(d) == 0:
        return {"mean_linf": None, "mean_l2": None}
    return {
        "mean_linf": float(np.abs(d).max(axis=1).mean()),
        "mean_l2": float(np.linalg.norm(d, axis=1).mean()),
    }


def _generate_until(fn, x, y, candidates: np.ndarray, target: int, name: str, side: str):
    """Run generator ``fn`` on chunks of ``candidates`` until ``target`` examples are kept."""
    kept_x, kept_src = [], []
    attempted = successes = 0
    pos = 0
    while sum(len(k) for k in kept_x) < target and pos < len(candidates):
        need = target - sum(len(k) for k in kept_x)
        chunk = candidates[pos : pos + max(64, int(need * 1.2) + 16)]
        pos += len(chunk)
        g = fn(x[chunk], y[chunk])
        attempted += g.stats["attempted"]
        successes += g.stats["kept"]
        kept_x.append(g.x[:need])
        kept_src.append(chunk[g.source_index[:need]])
    n = sum(len(k) for k in kept_x)
    if n < target:
        raise RuntimeError(
            f"{name}: only {n} misclassified examples from the {len(candidates)} source images on "
            f"the {side} side, {target} needed. Raise n_source or the attack budget, or lower "
            f"the set sizes."
        )
    xs, src = np.concatenate(kept_x), np.concatenate(kept_src)
    return (
        xs, src,
        {
            "attempted": attempted, "successes": successes,
            "success_rate": successes / attempted if attempted else None,
        },
    )


def _attack_fn(cfg: Config, model, name: str):
    if name == "fgsm":
        return lambda x, y: attacks.fgsm(
            model, x, y, eps=cfg["fgsm_eps"], loss_on=cfg["attack_loss"]
        )
    if name == "bim":
        return lambda x, y: attacks.bim(
            model, x, y, eps=cfg["bim_eps"], eps_iter=cfg.bim_step, nb_iter=cfg["bim_nb_iter"],
            early_stop=cfg["bim_early_stop"], loss_on=cfg["attack_loss"],
        )
    if name == "deepfool":
        return lambda x, y: attacks.deepfool(
            model, x, y, overshoot=cfg["deepfool_overshoot"], max_iter=cfg["deepfool_max_iter"]
        )
    raise ValueError(name)


def source_order(cfg: Config, n_pool: int):
    """Each side's in-distribution sources in the order they are tried, and its target.

    Returns
    -------
    order : dict
        ``{"train": indices, "test": indices}``, seeded permutations of the sides of
        :func:`introspection.splits.partition_sources`.
    targets : dict
        ``{"train": n_train_other, "test": n_test}``.
    """
    tr, te = splits.partition_sources(
        n_pool, cfg["train_fraction"], seed=cfg.stream("source_partition")
    )
    rng = np.random.default_rng(cfg.stream("source_order"))
    order = {"train": rng.permutation(tr), "test": rng.permutation(te)}
    return order, {"train": cfg["n_train_other"], "test": cfg["n_test"]}


def _patch_fill(cfg: Config):
    if cfg["patch_fill"] == "zero":
        return 0.0
    x_train, _ = load_training_data(cfg)
    return x_train.mean(axis=(0, 1, 2), dtype=np.float64)


def generate_set(cfg: Config, model, name: str, x_pool, y_pool, order: dict, targets: dict):
    """One misclassified set of :data:`~introspection.config.ATTACKS`, both sides.

    ``order`` and ``targets`` come from :func:`source_order`. Returns ``(x, source_index,
    stats)``: the examples (training side first), their sources in ``x_pool``, and per side
    the sources tried and kept, with the mean perturbation norms.
    """
    xs, srcs, st = [], [], {}
    for side in ("train", "test"):
        if name == "errors":
            cand = order[side]
            g = attacks.patch_errors(
                model, x_pool[cand], y_pool[cand], n_examples=targets[side],
                patch_size=cfg["patch_size"], max_tries=cfg["patch_max_tries"],
                max_per_source=cfg["patch_max_per_source"], fill=_patch_fill(cfg),
                seed=cfg.stream(f"patches_{side}"),
            )
            if len(g.x) < targets[side]:
                raise RuntimeError(
                    f"errors: only {len(g.x)} patch errors on the {side} side after "
                    f"{cfg['patch_max_tries']} tries per image; {targets[side]} needed. "
                    f"Raise patch_max_tries or n_source, or lower the set sizes."
                )
            x_side, src_side = g.x, cand[g.source_index]
            st[side] = {k: g.stats[k] for k in ("tries", "kept", "yield", "attempted")}
        else:
            x_side, src_side, st[side] = _generate_until(
                _attack_fn(cfg, model, name), x_pool, y_pool, order[side], targets[side], name, side
            )
        xs.append(x_side)
        srcs.append(src_side)
    x, src = np.concatenate(xs), np.concatenate(srcs)
    st.update(_norm_stats(x, x_pool[src]))
    return x, src, st


def _ood_images(cfg: Config, name: str, n: int):
    """``n`` OOD images of dataset ``name`` in the experiment's format, and their sources."""
    shape = cfg.info["image_shape"]
    if name == "gaussian":
        x = datasets.gaussian_noise(
            n, shape, mean=cfg["gaussian_mean"], std=cfg["gaussian_std"],
            seed=cfg.stream("gaussian"),
        )
        return x, np.arange(n)
    if name == "uniform":
        return datasets.uniform_noise(n, shape, seed=cfg.stream("uniform")), np.arange(n)
    _, (x_other, _) = datasets.load(name, cfg.data_dir)
    if n > len(x_other):
        raise ValueError(f"{name}: {n} images needed but its test set has {len(x_other)}.")
    idx = np.random.default_rng(cfg.stream("ood_pick")).permutation(len(x_other))[:n]
    if cfg.experiment == "mnist":
        x = (
            datasets.cifar10_as_mnist(x_other[idx])
            if name == "cifar10"
            else datasets.to_float(x_other[idx])
        )
    else:
        x = datasets.mnist_as_cifar10(x_other[idx])
    return x, idx


def _dataset_names(cfg: Config) -> list[str]:
    return list(cfg.info["datasets"])


def misclassifications(cfg: Config, model=None, progress: bool = True) -> Generation:
    """Generate (or load) every dataset of Section 2.2 with the classifier's logits.

    The source pool is split once, by seed, into a training and a test side. Patch errors
    and attacks are made from correctly classified sources of each side, in a seeded order,
    until ``n_train_other`` and ``n_test`` examples exist (no more images are attacked than
    needed). OOD sets get ``n_train_other + n_test`` images, split the same way. ``model``
    defaults to :func:`base_model`'s.
    """
    t0 = time.perf_counter()
    params = cfg.stage_params("misclassifications")
    names = _dataset_names(cfg)
    needed = ["partition", "generation_stats", *[f"data_{n}" for n in names]]
    x_pool, y_pool = load_in_distribution(cfg)
    if all(artifacts.exists(cfg.artifacts_dir, a, params) for a in needed):
        return _load_generation(cfg, params, names, x_pool, y_pool, t0)
    model = classifier(cfg, model)
    raw, stats, partition = _generate(cfg, model, names, x_pool, y_pool, progress)
    sets = {}
    for name, (x, src, pool_name, y) in raw.items():
        sets[name] = _view(cfg, model, name, x_pool if x is None else x, src, pool_name, y)
        stats[name]["n"] = len(sets[name].x)
        stats[name]["mean_max_logit"] = float(sets[name].logits.max(1).mean())
        arrays = {k: getattr(sets[name], k) for k in ("source_index", "y", "logits", "features",
                                                       "correct")}
        arrays["pool"] = np.array(pool_name)
        if x is not None:
            arrays["x"] = x
        artifacts.save_arrays(cfg.artifacts_dir, f"data_{name}", arrays, params=params,
                              seed=cfg.seed)
    stats[cfg.info["in_distribution"]]["accuracy"] = float(
        sets[cfg.info["in_distribution"]].correct.mean()
    )
    flat = {f"{k}__{side}": v[i] for k, v in partition.items()
            for i, side in enumerate(("train", "test"))}
    artifacts.save_arrays(cfg.artifacts_dir, "partition", flat, params=params, seed=cfg.seed)
    artifacts.save_json(cfg.artifacts_dir, "generation_stats", stats, params=params, seed=cfg.seed)
    return Generation(sets, partition, stats, _timer_record(cfg, "misclassifications", t0, False))


def _view(cfg: Config, model, name: str, images, src, pool: str, y) -> DataSet:
    """A dataset with the classifier's features and logits (only in-distribution can be correct)."""
    feats, logits = models.predict_features(model, images)
    in_dist = name == cfg.info["in_distribution"]
    correct = (logits.argmax(1) == y) if in_dist else np.zeros(len(images), bool)
    return DataSet(name, images, src, pool, y, logits, feats, correct)


def _generate(cfg: Config, model, names, x_pool, y_pool, progress: bool):
    """Every dataset's images ``(x or None, sources, pool, labels)``, statistics and partition."""
    # Text bars, not widgets: widgets render as raw text in the book's static HTML.
    from tqdm import tqdm

    in_name = cfg.info["in_distribution"]
    pool = f"{in_name}_test"
    order, targets = source_order(cfg, len(x_pool))
    partition = {pool: (np.sort(order["train"]), np.sort(order["test"]))}
    raw: dict[str, tuple] = {}
    stats: dict[str, dict] = {}
    bar = tqdm(names, desc=f"{cfg.experiment}: generating", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        t = time.perf_counter()
        if name == in_name:
            raw[name] = (None, np.arange(len(x_pool)), pool, y_pool)
            stats[name] = {"n": len(x_pool)}
        elif name in ATTACKS:
            x, src, st = generate_set(cfg, model, name, x_pool, y_pool, order, targets)
            raw[name] = (x, src, pool, y_pool[src])
            stats[name] = st
        else:
            n, n_train = cfg["n_train_other"] + cfg["n_test"], cfg["n_train_other"]
            x, src = _ood_images(cfg, name, n)
            ood_pool = name if name in ("gaussian", "uniform") else f"{name}_test"
            partition[ood_pool] = (src[:n_train], src[n_train:])
            raw[name] = (x, src, ood_pool, np.full(n, -1, np.int64))
            stats[name] = {"n": n}
        stats[name]["seconds"] = time.perf_counter() - t
    return raw, stats, partition


def _load_generation(cfg, params, names, x_pool, y_pool, t0) -> Generation:
    root = cfg.artifacts_dir
    sets = {}
    for name in names:
        a = artifacts.load_arrays(root, f"data_{name}", params=params)
        x = a["x"] if "x" in a else x_pool
        sets[name] = DataSet(name, x, a["source_index"], str(a["pool"]), a["y"], a["logits"],
                             a["features"], a["correct"])
    p = artifacts.load_arrays(root, "partition", params=params)
    pools = sorted({k.rsplit("__", 1)[0] for k in p})
    partition = {k: (p[f"{k}__train"], p[f"{k}__test"]) for k in pools}
    stored = artifacts.load_json(root, "generation_stats", params=params)
    # In the experiment's order, as the sets (the JSON file keeps its keys sorted).
    stats = {n: stored[n] for n in names if n in stored} | {
        n: v for n, v in stored.items() if n not in names
    }
    return Generation(sets, partition, stats, _timer_record(cfg, "misclassifications", t0, True))


def introspection_sets(cfg: Config, gen: Generation) -> splits.Splits:
    """Section 3.2's training, validation and test sets (indices into ``gen``)."""
    parts = {n: splits.Part(d.pool, d.source_index, d.correct) for n, d in gen.sets.items()}
    return splits.make_splits(
        parts, cfg.info["in_distribution"], n_train_in=cfg["n_train_in"],
        n_train_other=cfg["n_train_other"], n_test=cfg["n_test"], val_fraction=cfg["val_fraction"],
        partition=gen.partition, seed=cfg.seed,
    )


# Stage 4: Introspection-Net and the baselines


@dataclass
class Fitted:
    """The three detectors, fitted, and how they were obtained."""

    detectors: dict
    history: dict
    trust_fit_size: int
    run: StageRun
    #: Stage parameters of the fit: :func:`score_test_sets` caches only scores of these.
    params: dict | None = None


def _trust_features(space: str, model, x) -> np.ndarray:
    if space == "pixels":
        return x.reshape(len(x), -1)
    feats, logits = models.predict_features(model, x)
    return feats if space == "features" else logits


def trust_fit_data(cfg: Config, model, space: str):
    """The Trust Score's fitting data: ``trust_n_fit`` base-training images in ``space``.

    ``space`` is ``"features"``, ``"logits"`` or ``"pixels"``; returns ``(X, y)``, true labels.
    The features and logits of this seeded subset are cached (``trust_fit_data``): every
    chapter from the evaluation on refits the Trust Score, and this inference dominates.
    """
    if space not in ("features", "logits", "pixels"):
        raise ValueError(f"space must be 'features', 'logits' or 'pixels'; got {space!r}.")
    x_train, y_train = load_training_data(cfg)
    n_fit = min(cfg["trust_n_fit"], len(x_train))
    idx = np.sort(
        np.random.default_rng(cfg.stream("trust_fit")).choice(len(x_train), n_fit, replace=False)
    )
    if space == "pixels":
        return _trust_features(space, model, x_train[idx]), y_train[idx]

    def compute():
        feats, logits = models.predict_features(model, x_train[idx])
        return {"features": feats, "logits": logits}

    params = {**cfg.stage_params("base_model"), "trust_n_fit": int(n_fit)}
    arrays, _ = run_stage(
        cfg, "base_model", "trust_fit_data", compute, "arrays", params, record=False
    )
    return arrays[space], y_train[idx]


def _fit_trust_score(cfg: Config, model, space: str):
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
        Seed of its weights and data order (default ``cfg.seed``, the paper's network).
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
        seed=cfg.seed if seed is None else seed,
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

    stored, run = run_stage(
        cfg, "introspection_net",
        {"introspection_net": "model", "introspection_net_history": "json"}, compute,
        record=False,  # the stage's time includes the Trust Score's fit, recorded below
    )
    net = detectors.IntrospectionNet(model=stored["introspection_net"])
    history = stored["introspection_net_history"]
    reused = run.reused
    model = classifier(cfg, model)
    trust, n_fit = _fit_trust_score(cfg, model, cfg["trust_feature"])
    dets = {
        "softmax_baseline": detectors.SoftmaxBaseline(dtype=cfg["softmax_dtype"]),
        "trust_score": trust, "introspection_net": net,
    }
    run = _timer_record(cfg, "introspection_net", t0, reused)
    return Fitted(dets, history, n_fit, run, params=params)


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
        scores = _load(cfg, "test_scores", "scores", params)
    if scores is None or set(scores) != set(gen.sets):
        scores = {
            name: score_examples(cfg, fitted, ds, sets.test.of(name).index)
            for name, ds in gen.sets.items()
        }
        if cache:
            _save(cfg, "test_scores", "scores", scores, params)
    return {name: {"label": sets.test.of(name).label, **scores[name]} for name in gen.sets}


def score_examples(cfg: Config, fitted: Fitted, ds: DataSet, rows) -> dict:
    """The paper's three methods' scores of some rows of one dataset, by method name."""
    return {method: score_with(det, ds, rows) for method, det in fitted.detectors.items()}


def score_with(det, ds: DataSet, rows) -> np.ndarray:
    """A detector's scores of some rows of a set, on what it reads."""
    return det.score(ds.read(det.reads)[rows], ds.logits[rows].argmax(1))


# Stage 5: evaluation


@dataclass
class Scores:
    """Test-set scores ``{dataset: {method: ndarray}}`` of some detectors, and how they came."""

    scores: dict
    run: StageRun


def classifier(cfg: Config, model=None):
    """The base classifier given, or loaded from the artifacts."""
    return model if model is not None else base_model(cfg, verbose=0).model


def progress_bar(iterable, desc: str, enabled: bool = True):
    """A text progress bar over ``iterable`` (on stderr, which the book leaves out) if enabled."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False)


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

    for key in progress_bar(list(keys), what, progress):
        params = {**base_params, "variant": key}
        out[key], run = run_stage(
            cfg, stage, f"{name}_{key}", lambda key=key: compute(key), "scores", params, False
        )
        reused = reused and run.reused
    return out, _timer_record(cfg, stage, t0, reused)


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
    write_table(cfg, table, csv, index=False)
    return table


def evaluate(cfg: Config, scores: dict):
    """Table 2 with bootstrap 95 % CIs (a row per dataset x method), written to ``table2.csv``."""
    table = scores_table(cfg, scores, cfg["n_boot"])
    write_table(cfg, table, "table2.csv", index=False)
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


def stages(cfg: Config) -> Stages:
    """The run's stages, computed lazily (:class:`Stages`)."""
    return Stages(cfg)


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
        experiment=cfg.experiment, n_boot=n_boot, random_state=cfg.seed,
    )


def write_table(cfg: Config, table, name: str, index: bool = True) -> Path:
    """Write a DataFrame as CSV ``<results_dir>/<name>``, atomically; return its path."""
    path = cfg.results_dir / name
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=index, float_format="%.6g")
    os.replace(tmp, path)
    return path


def write_summary(cfg: Config, **entries) -> Path:
    """Write ``<results_dir>/summary.json``: the configuration, versions and ``entries``."""
    import platform

    from . import hardware

    cpu = hardware.cpu_info()
    chosen, reason = cfg.precision
    summary = {
        "experiment": cfg.experiment, "profile": cfg.profile, "seed": cfg.seed,
        "parameters": cfg.params, "overrides": cfg.overrides,
        "versions": artifacts.library_versions(),
        "machine": {
            "cpu": cpu["model"], "isa": cpu["isa"], "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        # What this machine would train in; the weights' own is in the ``base_model`` entry.
        "precision": {"parameter": cfg["precision"], "chosen": chosen, "reason": reason},
        **entries,
    }
    path = cfg.results_dir / "summary.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(artifacts.canonical_params(summary), indent=2))
    os.replace(tmp, path)
    return path


# Helpers for the chapters


def record_timing(cfg: Config, stage: str, seconds: float, part: str | None = None) -> None:
    """Record the wall time of a stage without artifacts (logit analysis, evaluation).

    ``part`` names one chapter's share of a stage computed by several (the evaluation);
    a stage's time is the sum of its parts.
    """
    name = f"timing_{stage}" + (f"__{part}" if part else "")
    artifacts.save_json(
        cfg.artifacts_dir, name, {"compute_seconds": seconds}, params=cfg.stage_params(stage),
        seed=cfg.seed,
    )
    _publish_seconds(cfg, stage, _stage_seconds(cfg, stage))


def _stage_seconds(cfg: Config, stage: str) -> float | None:
    """A stage's recorded compute time: the sum of its current parts (None if none)."""
    root, params = cfg.artifacts_dir, cfg.stage_params(stage)
    parts = [f"timing_{stage}", *artifacts.names(root, f"timing_{stage}__*")]
    found = [
        artifacts.load_json(root, n)["compute_seconds"]
        for n in parts
        if artifacts.exists(root, n, params)
    ]
    return float(sum(found)) if found else None


def stage_timings(cfg: Config) -> dict:
    """Seconds of each stage's last computation (sum of its parts), for stages with a record."""
    from .config import STAGES

    seconds = {stage: _stage_seconds(cfg, stage) for stage in STAGES}
    return {stage: s for stage, s in seconds.items() if s is not None}


def generation_table(gen: Generation):
    """Counts and yields of every generated dataset, one row per dataset.

    Columns: examples, attempted sources, success rate (%), patch tries and yield (errors),
    mean L-inf and L2 perturbation norms (attacks), mean max logit.
    """
    import pandas as pd

    rows = []
    for name, st in gen.stats.items():
        sides = [st[s] for s in ("train", "test") if isinstance(st.get(s), dict)]
        attempted = sum(s.get("attempted", 0) for s in sides) if sides else None
        row = {"dataset": name, "examples": st["n"], "attempted": attempted}
        if name == "errors":
            tries = sum(s["tries"] for s in sides)
            row["patch tries"] = tries
            row["yield (%)"] = 100 * sum(s["kept"] for s in sides) / tries
        elif sides:
            row["success rate (%)"] = 100 * sum(s["successes"] for s in sides) / attempted
        row["mean L-inf"] = st.get("mean_linf")
        row["mean L2"] = st.get("mean_l2")
        row["mean max logit"] = st["mean_max_logit"]
        if "accuracy" in st:
            row["classifier accuracy (%)"] = 100 * st["accuracy"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


def sample_images(ds: DataSet, n: int = 8, seed: int = 0):
    """A few images of a dataset with the classifier's prediction as titles.

    Returns ``(images, titles)``; a title reads ``"pred 3 (0.99)"`` (predicted class, its
    softmax probability), plus the source's true label when there is one.
    """
    idx = np.sort(np.random.default_rng(seed).choice(len(ds.x), min(n, len(ds.x)), replace=False))
    prob = detectors.softmax(ds.logits[idx])
    titles = []
    for k, i in enumerate(idx):
        t = f"pred {prob[k].argmax()} ({prob[k].max():.2f})"
        if ds.y[i] >= 0:
            t += f"\ntrue {ds.y[i]}"
        titles.append(t)
    return ds.x[idx], titles


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

    names = list(sets.test.counts())
    rows = []
    for n in names:
        tr, va, te = sets.train.of(n), sets.val.of(n), sets.test.of(n)
        rows.append(
            {
                "dataset": n, "train": len(tr), "validation": len(va), "test": len(te),
                "correct (train)": int(tr.label.sum()), "correct (test)": int(te.label.sum()),
            }
        )
    df = pd.DataFrame(rows).set_index("dataset")
    df.loc["total"] = df.sum()
    return df


# Checks behind the differences with the paper


def trust_score_spaces(
    cfg: Config, gen: Generation, sets: splits.Splits, model=None,
    spaces=("features", "logits", "pixels"),
):
    """AUROC (%) of the Trust Score per dataset, one column per feature space.

    The paper does not say where the Trust Score looks for neighbours; this shows how much
    that choice moves its row of Table 2.
    """
    import pandas as pd

    model = classifier(cfg, model)
    in_name = cfg.info["in_distribution"]
    cols = {}
    for space in spaces:
        trust, _ = _fit_trust_score(cfg, model, space)
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
