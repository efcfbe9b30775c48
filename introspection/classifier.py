"""Stage ``base_model`` (chapter 1): the base classifier, trained, cached or published.

MNIST: the paper's Table 1 CNN; CIFAR-10: a Wide ResNet or airbench94's network
(:func:`build_classifier`), trained with the experiment's recipe (:func:`training_arguments`).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import artifacts, config, datasets, hardware, models, training
from .config import Config
from .runner import StageRun, params_digest, record_stage

hardware.import_tensorflow()  # before Keras imports it, without the start-up lines

__all__ = ["load_training_data", "training_subset", "BaseModel", "build_classifier",
           "training_arguments", "base_model", "keras_model", "training_cost", "jpeg_cost"]


def load_training_data(cfg: Config):
    """Base-classifier training images in [0, 1] and labels (a seeded ``n_train`` subset if set)."""
    (x, y), _ = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    if cfg["n_train"] is not None and cfg["n_train"] < len(x):
        idx = np.sort(np.random.default_rng(cfg.seed).choice(len(x), cfg["n_train"], replace=False))
        x, y = x[idx], y[idx]
    return datasets.to_float(x), y.astype(np.int64)


def training_subset(cfg: Config, n: int, stream: str):
    """``n`` base-training images (at most all) drawn from random ``stream``, and their labels."""
    x, y = load_training_data(cfg)
    rng = np.random.default_rng(cfg.stream(stream))
    idx = np.sort(rng.choice(len(x), min(n, len(x)), replace=False))
    return x[idx], y[idx]


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
    shutil.rmtree(root / "draws", ignore_errors=True)  # chapter 10's other draws
    for name in artifacts.names(root):
        if name not in _BASE_ARTIFACTS and name != "timing_base_model":
            artifacts.remove(root, name)


def _import_published(cfg: Config, params: dict) -> tuple[str, str | None]:
    """Copy the profile's published weights into the cache if they match: the origin and note."""
    src = config.published_weights_dir(cfg.profile, cfg.experiment)
    if src is None or not (src / "base_model.json").is_file():
        return "trained", None
    try:  # hash and parameters verified, the model loaded in Keras' safe mode
        artifacts.load_json(src, "base_model_history", params=params)
        artifacts.load_model(src, "base_model", params=params)
    except (artifacts.ArtifactError, ValueError, OSError) as err:
        return "trained", f"the published weights ({_relative(src)}) were not used: {err}"
    _forget_downstream(cfg.artifacts_dir)
    for name in _BASE_ARTIFACTS:
        artifacts.copy(src, cfg.artifacts_dir, name, params=params)
    return "published", None


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
    shared = {"input_shape": cfg.info["image_shape"], "weight_decay": cfg["weight_decay"],
              "input_mean": x_train.mean(axis=(0, 1, 2)), "input_std": x_train.std(axis=(0, 1, 2))}
    if cfg["architecture"] == "airbench":
        model = models.airbench_net(kernel_init=cfg["kernel_init"], **shared)
        if for_training:
            models.init_airbench_net(model, x_train)
        return model
    return models.wide_resnet(cfg["wrn_depth"], cfg["wrn_width"], dropout=cfg["wrn_dropout"],
                              fused_batchnorm=for_training, **shared)


def training_arguments(cfg: Config) -> dict:
    """The base classifier's recipe: :func:`introspection.training.train_classifier`'s arguments."""
    keys = ["epochs", "batch_size", "optimizer", "learning_rate", "schedule"]
    if cfg.experiment != "mnist":
        keys += ["momentum", "bias_lr_scale", "crop_pad", "crop_fill", "lookahead"]
    return {k: cfg[k] for k in keys} | {"augment": cfg.experiment if cfg["augment"] else "none"}


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
    if not retrain and all(artifacts.exists(root, n, params) for n in _BASE_ARTIFACTS):
        origin = "cache"
    elif not retrain:
        origin, note = _import_published(cfg, params)
    if origin != "trained":
        model = artifacts.load_model(root, "base_model", params=params)
        history = artifacts.load_json(root, "base_model_history", params=params)
    else:
        history, model = _train_base_model(cfg, params, verbose, retrain, progress)
        _forget_downstream(root)
        artifacts.save_model(root, "base_model", model, params=params, seed=cfg.seed)
        artifacts.save_json(root, "base_model_history", history, params=params, seed=cfg.seed)
    seconds = sum(history.get("epoch_seconds", []))
    run = record_stage(cfg, "base_model", t0, origin != "trained", at_least=seconds)
    return BaseModel(model, history, history["test_accuracy"], run, origin, note)


def _train_base_model(cfg: Config, params: dict, verbose: int, fresh: bool, progress: bool):
    """Train the base classifier; returns its history and a float32 model of its weights."""
    precision, reason = cfg.precision
    x_train, y_train = load_training_data(cfg)
    _, (x_test, y_test) = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    x_test = datasets.to_float(x_test)
    backup = cfg.artifacts_dir / f"base_model_training_{params_digest(params)}"
    if fresh:  # from scratch: no resuming from an earlier run's checkpoint
        shutil.rmtree(backup, ignore_errors=True)
    with models.dtype_policy(precision):
        trained = build_classifier(cfg, x_train, for_training=True)
    history = training.train_classifier(
        trained, x_train, y_train, **training_arguments(cfg),
        validation_data=(x_test, y_test.astype(np.int64)), seed=cfg.seed, verbose=verbose,
        progress=progress, backup_dir=backup,
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

    Keys ``epochs``, ``seconds`` (sum of the epochs' wall times, test evaluation included),
    ``images_per_second``, ``forward_gflop`` (one image) and ``training_pflop`` (three forward
    passes per training image seen).
    """
    n_train = base.history.get("train_images") or cfg["n_train"] or (
        datasets.DATASETS[cfg.info["in_distribution"]]["n_train"])
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
    Returns ``table``: per set, accuracy (%) and pixel change of one more JPEG round trip (small:
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
        again = datasets.jpeg_roundtrip(images[:n], quality=quality).astype(np.int16)
        change = float(np.abs(again - images[:n]).mean())
        rows[label] = {"images": len(images), "accuracy (%)": 100 * float(ok.mean()),
                       "pixel change of one more round trip": change}
    lost = 100 * (correct[0].astype(float) - correct[2].astype(float))
    interval = stats.bootstrap(
        (lost,), np.mean, confidence_level=0.95, method="percentile", random_state=seed
    ).confidence_interval
    table = pd.DataFrame(rows).T.astype({"images": int})
    return {"table": table, "paired": (float(lost.mean()), interval.low, interval.high)}


def keras_model(cfg: Config, model=None):
    """The base classifier given, or loaded from the artifacts."""
    return model if model is not None else base_model(cfg, verbose=0).model
