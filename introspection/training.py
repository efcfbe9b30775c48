"""Training the base classifiers (Sections 2.1, 3.2) and Introspection-Net (Section 3.1).

Base classifiers (:data:`RECIPES`): MNIST as the paper (RMSprop, batch 64, 30 epochs,
:func:`augmentation`; it gives no schedule: RMSprop's 1e-3, cosine decay); CIFAR-10 as the
Wide ResNet's (Zagoruyko & Komodakis 2016: Nesterov SGD 0.9, 0.1 divided by 5 at 30/60/80 %).
Introspection-Net: RMSprop, mean squared error, 60 epochs, 10 % held out. Runs are seeded
(:func:`keras.utils.set_random_seed`, data order, augmentation).
"""

from __future__ import annotations

import functools
import shutil
import time
from pathlib import Path

import numpy as np

from .models import _check_positive_int

__all__ = [
    "RECIPES", "augmentation", "padded_random_crop", "learning_rate_schedule", "train_classifier",
    "train_introspection_net",
]

#: Training recipe of each experiment's base classifier.
RECIPES: dict[str, dict] = {
    "mnist": {"optimizer": "rmsprop", "learning_rate": 1e-3, "schedule": "cosine",
              "batch_size": 64, "epochs": 30, "augment": "mnist"},
    "cifar10": {"optimizer": "sgd", "learning_rate": 0.1, "schedule": "step",
                "batch_size": 128, "epochs": 200, "augment": "cifar10"},
}

_SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
_OPTIMIZERS = ("rmsprop", "sgd", "adam")


def augmentation(kind: str, seed: int = 0, pad: int = 4, fill: str = "zeros"):
    """The paper's data augmentation as Keras layers (active with ``training=True`` only).

    ``kind``: ``"mnist"`` (per-image rotations up to 10 degrees, zooms and shifts up to 10 %),
    ``"cifar10"`` (:func:`padded_random_crop` by ``pad`` with ``fill``, horizontal flips; Wide
    ResNet: 4, zeros; airbench: 2, reflection) or ``"none"``.
    """
    import keras
    from keras import layers

    # Keras layer seeds offset from the base classifier's (config.STREAMS: its draws keep them)
    if kind == "mnist":
        aug = [
            layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed),
            layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 2),
        ]
    elif kind == "cifar10":
        aug = [padded_random_crop(pad, seed=seed, fill=fill),
               layers.RandomFlip("horizontal", seed=seed + 1)]
    elif kind == "none":
        aug = [layers.Identity()]
    else:
        raise ValueError(f"Unknown augmentation {kind!r}; expected 'mnist', 'cifar10' or 'none'.")
    return keras.Sequential(aug, name=f"augment_{kind}")


def padded_random_crop(
    pad: int, seed: int | None = None, fill: str = "zeros", name: str = "padded_random_crop"
):
    """Pad images by ``pad`` pixels and crop a random window of the original size.

    The Wide ResNet recipe's crop: one uniform integer offset per image (Keras'
    ``RandomCrop`` uses one per batch), the identity unless ``training=True``. ``fill``:
    ``"zeros"`` or ``"reflect"`` (a reflection without repeating the edge).
    """
    import keras
    import tensorflow as tf

    _check_positive_int("pad", pad)
    pad = int(pad)
    if fill not in ("zeros", "reflect"):
        raise ValueError(f"fill must be 'zeros' or 'reflect', got {fill!r}.")
    mode = "CONSTANT" if fill == "zeros" else "REFLECT"

    class PaddedRandomCrop(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, images, training=None):
            if not training:
                return images
            n = tf.shape(images)[0]
            height, width = images.shape[1], images.shape[2]
            padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode=mode)
            offsets = keras.random.randint((n, 2), 0, 2 * pad + 1, seed=self.seed_generator)
            rows = offsets[:, :1] + tf.range(height)[None]
            cols = offsets[:, 1:] + tf.range(width)[None]
            out = tf.gather(padded, rows, axis=1, batch_dims=1)
            return tf.gather(out, cols, axis=2, batch_dims=1)

    return PaddedRandomCrop(name=name)


def learning_rate_schedule(name: str, learning_rate: float, total_steps: int):
    """A learning-rate schedule (a float if constant) over ``total_steps`` optimisation steps.

    ``name``: ``"constant"``; ``"cosine"`` (decay to 0); ``"step"`` (Wide ResNet's: divided by
    5 at 30, 60 and 80 % of the steps); ``"warmup_cosine"`` (airbench's: linear warm-up from
    0.2x over 23 % of the steps, then cosine decay to 0.07x).
    """
    import keras

    if name not in _SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; expected one of {_SCHEDULES}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}.")
    _check_positive_int("total_steps", total_steps)
    schedules, total_steps = keras.optimizers.schedules, int(total_steps)
    if name == "constant":
        return float(learning_rate)
    if name == "cosine":
        return schedules.CosineDecay(learning_rate, total_steps)
    if name == "warmup_cosine":
        warmup = max(1, int(round(0.23 * total_steps)))
        return schedules.CosineDecay(0.2 * learning_rate, max(1, total_steps - warmup), alpha=0.07,
                                     warmup_target=float(learning_rate), warmup_steps=warmup)
    bounds = sorted({max(1, int(total_steps * f)) for f in (0.3, 0.6, 0.8)})
    values = [learning_rate * 0.2**i for i in range(len(bounds) + 1)]
    return schedules.PiecewiseConstantDecay(bounds, values)


def _optimizer(name: str, lr, momentum: float = 0.9, bias_lr_scale: float = 1.0):
    import keras

    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {_OPTIMIZERS}.")
    if name != "sgd":
        return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[name](lr)
    if bias_lr_scale == 1.0:
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=True)
    return _bias_scaled_sgd()(bias_lr_scale, learning_rate=lr, momentum=momentum, nesterov=True)


@functools.cache
def _bias_scaled_sgd():
    """Keras' SGD with a larger learning rate for batch-normalisation biases (airbench)."""
    import keras

    class BiasScaledSGD(keras.optimizers.SGD):
        def __init__(self, bias_lr_scale, **kwargs):
            super().__init__(**kwargs)
            self.bias_lr_scale = float(bias_lr_scale)

        def update_step(self, gradient, variable, learning_rate):
            # The bias of a BatchNormalization layer: a Keras variable is named "beta",
            # the TensorFlow variable the backend passes here "<layer>/beta:0".
            if variable.name.split(":")[0].split("/")[-1] == "beta":
                learning_rate = learning_rate * self.bias_lr_scale
            super().update_step(gradient, variable, learning_rate)

    return BiasScaledSGD


def _check_xy(x, y, what: str):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.float32:
        raise ValueError(f"{what}: inputs must be float32 (see datasets.to_float), got {x.dtype}.")
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels.")
    if len(x) == 0:
        raise ValueError(f"{what}: no training data.")
    return x, y


def _read_history(path: Path) -> dict:
    """Per-epoch history from a CSVLogger file (the last row of an epoch wins)."""
    import pandas as pd

    if not path.is_file() or path.stat().st_size == 0:
        return {}
    rows = pd.read_csv(path, float_precision="round_trip").drop_duplicates("epoch", keep="last")
    rows = rows.sort_values("epoch").drop(columns="epoch").astype(float)
    return {k: rows[k].tolist() for k in rows} if len(rows) else {}


def _epoch_timer(bar_epochs: int | None = None):
    """A Keras callback recording each epoch's wall time in the history.

    With ``bar_epochs``, also a tqdm bar over the epochs with the last validation accuracy.
    """
    import keras
    from tqdm import tqdm

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self._bar = bar_epochs and tqdm(total=bar_epochs, desc="training", unit="epoch")

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = time.perf_counter() - self._t0
            if self._bar:
                self._bar.n = epoch + 1
                if logs and "val_accuracy" in logs:
                    self._bar.set_postfix(val_accuracy=f"{logs['val_accuracy']:.4f}", refresh=False)
                self._bar.refresh()

        def on_train_end(self, logs=None):
            if self._bar:
                self._bar.close()

    return EpochTimer()


def _lookahead(total_steps: int, steps_per_epoch: int, every: int = 5):
    """Airbench's Lookahead callback: every ``every`` steps the weights move to their average."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        _avg = None

        def on_epoch_begin(self, epoch, logs=None):
            self._step = epoch * steps_per_epoch

        def _vars(self):
            return [v for v in self.model.variables if "float" in str(v.dtype)]

        def on_train_batch_end(self, batch, logs=None):
            self._step += 1
            if self._avg is None:
                self._avg = [np.array(v.numpy()) for v in self._vars()]
            if self._step % every:
                return
            decay = 0.95**5 * min(1.0, self._step / total_steps) ** 3
            for v, a in zip(self._vars(), self._avg, strict=True):
                a *= decay
                a += (1.0 - decay) * v.numpy()
                v.assign(a)

        def on_train_end(self, logs=None):
            if self._avg is not None:
                for v, a in zip(self._vars(), self._avg, strict=True):
                    v.assign(a)

    return Lookahead()


def _batched_dataset(x, y, batch_size, seed, aug):
    """Seeded, reshuffled each epoch, batched, augmented by ``aug`` (None: not) and prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if aug is not None:
        # Sequential: the random layers draw from stateful seed generators, so parallel
        # calls would make the run irreproducible; prefetching still overlaps it.
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=None)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_classifier(
    model, x_train, y_train, *, epochs: int, batch_size: int, optimizer: str = "rmsprop",
    learning_rate: float = 1e-3, schedule: str = "cosine", augment: str = "none",
    momentum: float = 0.9, bias_lr_scale: float = 1.0, crop_pad: int = 4, crop_fill: str = "zeros",
    lookahead: bool = False, validation_data=None, seed: int = 0, verbose: int = 0,
    progress: bool = False, callbacks=None, backup_dir=None,
) -> dict:
    """Train a base classifier (logits output) with cross-entropy.

    Parameters
    ----------
    optimizer : {"rmsprop", "sgd", "adam"}
        With ``schedule``, ``augment``, ``crop_pad`` and ``crop_fill``: see
        :func:`learning_rate_schedule` and :func:`augmentation`.
    bias_lr_scale : float
        With ``"sgd"``: learning-rate factor of the batch-norm biases (airbench: 64).
    lookahead : bool
        Airbench's Lookahead averaging every 5 steps; the model ends with the average.
    seed : int
        Seeds Keras (layers built later, dropout), the data order and the augmentation.
    backup_dir : str or path-like, optional
        Checkpoint and history after each epoch; an interrupted run resumes from it (not
        bit-identically, the data order restarts); removed when training completes.

    Returns the history: per epoch ``loss``, ``accuracy``, ``epoch_seconds``, ``learning_rate``
    and ``val_*``.
    """
    import keras

    x_train, y_train = _check_xy(x_train, y_train, "train_classifier")
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    epochs, steps_per_epoch = int(epochs), int(np.ceil(len(x_train) / batch_size))
    keras.utils.set_random_seed(seed)
    lr = learning_rate_schedule(schedule, learning_rate, steps_per_epoch * epochs)
    opt = _optimizer(optimizer, lr, momentum=momentum, bias_lr_scale=bias_lr_scale)
    model.compile(
        optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    aug = augmentation(augment, seed=seed, pad=crop_pad, fill=crop_fill)
    ds = _batched_dataset(x_train, y_train, batch_size, seed, None if augment == "none" else aug)
    val = None
    if validation_data is not None:
        x_val, y_val = _check_xy(*validation_data, "validation_data")
        val = (x_val, y_val.astype(np.int64))
    extra = [_lookahead(steps_per_epoch * epochs, steps_per_epoch)] if lookahead else []
    timer = _epoch_timer(epochs if progress else None)
    if backup_dir is not None:
        backup_dir = Path(backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        extra += [keras.callbacks.CSVLogger(str(backup_dir / "history.csv"), append=True),
                  keras.callbacks.BackupAndRestore(str(backup_dir / "checkpoint"))]
    history = model.fit(
        ds, epochs=epochs, validation_data=val, batch_size=None if val is None else 512,
        shuffle=False,  # the dataset is shuffled above, by seed
        verbose=verbose, callbacks=[timer, *(callbacks or []), *extra],
    )
    out = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if backup_dir is not None:
        out = _read_history(backup_dir / "history.csv") or out
        shutil.rmtree(backup_dir, ignore_errors=True)
    out["learning_rate"] = [
        float(lr(steps_per_epoch * e)) if callable(lr) else lr for e in range(epochs)
    ]
    return out


def train_introspection_net(
    model, logits, labels, *, validation_data=None, validation_split: float = 0.1,
    epochs: int = 60, batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0,
    verbose: int = 0, steps_per_execution: int = 32,
) -> dict:
    """Train Introspection-Net to regress "prediction correct" (1) vs not (0); return its history.

    Parameters
    ----------
    validation_data : tuple of ndarray, optional
        ``(logits_val, labels_val)``; None holds out ``validation_split`` (paper: 10 %).
    epochs, batch_size : int
        The paper's 60 epochs; its batch size is not given (Keras' default).
    steps_per_execution : int
        Steps per call of the compiled training function: same weights, about 2x faster.
    """
    import keras

    logits, labels = np.asarray(logits, dtype=np.float32), np.asarray(labels, dtype=np.float32)
    if logits.ndim != 2 or labels.shape != (len(logits),):
        raise ValueError(
            f"Expected logits (N, K) and labels (N,), got {logits.shape} and {labels.shape}."
        )
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 (prediction wrong) or 1 (prediction correct).")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}.")
    if isinstance(steps_per_execution, bool):
        raise ValueError(f"steps_per_execution must be an integer, got {steps_per_execution!r}.")
    _check_positive_int("steps_per_execution", steps_per_execution)
    keras.utils.set_random_seed(seed)
    if validation_data is None and validation_split > 0:
        order = np.random.default_rng(seed).permutation(len(logits))
        val, train = np.split(order, [int(round(validation_split * len(logits)))])
        validation_data, logits, labels = (logits[val], labels[val]), logits[train], labels[train]
    elif validation_data is not None:
        validation_data = tuple(np.asarray(validation_data[i], dtype=np.float32) for i in (0, 1))
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate), loss="mean_squared_error",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        steps_per_execution=int(steps_per_execution),
    )
    history = model.fit(
        logits, labels, epochs=int(epochs), batch_size=int(batch_size),
        validation_data=validation_data, shuffle=True, verbose=verbose, callbacks=[_epoch_timer()],
    )
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
