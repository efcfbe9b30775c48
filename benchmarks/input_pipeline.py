"""Benchmark: whether the input pipeline keeps up with base-classifier training.

For each experiment's base classifier in a profile (with the profile's precision,
batch size and optimiser), one epoch of :func:`introspection.training.train_classifier`
on the same subset of real training images, three ways:

1. with the paper's augmentation (the ``tf.data`` pipeline the book uses: shuffle,
   batch, augmentation map, prefetch);
2. without augmentation (same pipeline, no map);
3. the augmentation pipeline alone, iterated without training.

If (1) is close to (2), augmentation is hidden behind the training step; (3) says
how long the input side takes on its own. Needs ``$INTROSPECTION_DATA_DIR``.

    python benchmarks/input_pipeline.py [--profile cpu] [--n 6400] [--experiment all]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from introspection import classifier, config, datasets, models, training


def _epoch_seconds(cfg, x, y, augment: bool) -> float:
    keras.utils.set_random_seed(0)
    with models.dtype_policy(cfg.precision[0]):
        model = classifier.build_classifier(cfg, x, for_training=True)
    # Two epochs: the first includes tracing, the second is the one timed.
    recipe = {**classifier.training_arguments(cfg), "epochs": 2}
    if not augment:
        recipe["augment"] = "none"
    hist = training.train_classifier(model, x, y, **recipe)
    return hist["epoch_seconds"][-1]


def _input_only_seconds(cfg, x, y) -> float:
    crop = {"pad": cfg["crop_pad"], "fill": cfg["crop_fill"]} if cfg.experiment != "mnist" else {}
    aug = training.augmentation(cfg.experiment, seed=0, **crop)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))
    ds = ds.shuffle(len(x), seed=0).batch(cfg["batch_size"])
    ds = ds.map(lambda a, b: (aug(a, training=True), b)).prefetch(tf.data.AUTOTUNE)
    for _ in ds:  # warm-up (tracing)
        pass
    t = time.perf_counter()
    for _ in ds:
        pass
    return time.perf_counter() - t


def main() -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--n", type=int, default=6400, help="training images per epoch")
    p.add_argument("--experiment", default="all", help="mnist, cifar10 or all")
    args = p.parse_args()
    exps = list(config.EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    for exp in exps:
        cfg = config.configure(exp, args.profile)
        (x_tr, y_tr), _ = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
        x = datasets.to_float(x_tr[: args.n])
        y = y_tr[: args.n]
        with_aug = _epoch_seconds(cfg, x, y, True)
        without = _epoch_seconds(cfg, x, y, False)
        alone = _input_only_seconds(cfg, x, y)
        print(
            f"{exp:8s} ({cfg.precision[0]}, batch {cfg['batch_size']}, {len(x)} images): "
            f"epoch with augmentation {with_aug:6.1f} s ({len(x) / with_aug:6.0f} img/s), "
            f"without {without:6.1f} s ({len(x) / without:6.0f} img/s): augmentation costs "
            f"{100 * (with_aug / without - 1):+5.1f} %; the input pipeline alone "
            f"{alone:5.2f} s ({len(x) / alone:7.0f} img/s)"
        )


if __name__ == "__main__":
    main()
