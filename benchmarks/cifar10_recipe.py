"""Benchmark: accuracy against training time of CIFAR-10 recipes, and what each ingredient buys.

Trains the `cpu` profile's CIFAR-10 classifier (airbench94's network and recipe,
``introspection.config.PROFILES``) and variants of it that each remove one
ingredient, all for the same number of epochs on the whole training set, and prints
for each: test accuracy, training minutes, images/s and training PFLOP, with the CPU
and the arithmetic it ran in. The variants:

- ``profile``: the profile's recipe as the book trains it;
- ``no_init``: without the whitening and identity initialisation
  (``models.init_airbench_net``): Keras' initialisation everywhere;
- ``no_bias_lr``: the batch-norm biases at the common learning rate
  (``bias_lr_scale`` 1 instead of 64);
- ``keras_init``: Keras' Glorot-uniform kernels instead of PyTorch's default
  (airbench's), three times the variance in the wide convolutions;
- ``wrn_crop``: the Wide ResNet recipe's augmentation (zero padding by 4 pixels)
  instead of airbench's (reflection, 2 pixels);
- ``wrn16_2``: the Wide ResNet the profile used before, WRN-16-2 with its recipe
  (SGD, Nesterov 0.9, learning rate 0.1, cosine schedule, batch 128, weight decay
  5e-4), for the same number of epochs.

Each run takes minutes per epoch on 2 cores; ``--epochs`` sets the common budget
(the profile's own, 15, by default). Needs ``$INTROSPECTION_DATA_DIR``.

    python benchmarks/cifar10_recipe.py [--epochs 4] [--variants profile no_init] [--out runs.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from introspection import classifier, config, datasets, hardware, models, training

VARIANTS = {
    "profile": {},
    "no_init": {},
    "no_bias_lr": {"bias_lr_scale": 1.0},
    "keras_init": {"kernel_init": "keras"},
    "wrn_crop": {"crop_pad": 4, "crop_fill": "zeros"},
    "wrn16_2": {
        "architecture": "wide_resnet",
        "wrn_depth": 16,
        "wrn_width": 2,
        "batch_size": 128,
        "learning_rate": 0.1,
        "momentum": 0.9,
        "bias_lr_scale": 1.0,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "crop_pad": 4,
        "crop_fill": "zeros",
    },
}


def run(variant: str, epochs: int, seed: int = 0) -> dict:
    """Train one variant; returns its figures."""
    cfg = config.configure(
        "cifar10", "cpu", seed=seed, overrides={**VARIANTS[variant], "epochs": epochs}
    )
    precision, _ = cfg.precision
    x, y = classifier.load_training_data(cfg)
    _, (x_test, y_test) = datasets.load("cifar10", cfg.data_dir)
    x_test = datasets.to_float(x_test)
    with models.dtype_policy(precision):
        model = classifier.build_classifier(cfg, x, for_training=variant != "no_init")
    t0 = time.perf_counter()
    hist = training.train_classifier(
        model, x, y, **classifier.training_arguments(cfg), seed=cfg.seed
    )
    seconds = time.perf_counter() - t0
    plain = classifier.build_classifier(cfg, x)
    plain.set_weights(model.get_weights())
    acc = float((models.predict_logits(plain, x_test).argmax(axis=1) == y_test).mean())
    flop = 3 * models.forward_flops(plain) * len(x) * epochs
    return {
        "variant": variant,
        "epochs": epochs,
        "test_accuracy": acc,
        "minutes": seconds / 60,
        "images_per_second": len(x) * epochs / seconds,
        "training_pflop": flop / 1e15,
        "final_train_accuracy": hist["accuracy"][-1],
        "precision": precision,
        "cpu": hardware.cpu_info()["model"],
        "cores": os.cpu_count(),
    }


def main():
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=config.configure("cifar10", "cpu")["epochs"])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="append each run's figures to this JSON-lines file")
    args = p.parse_args()
    cpu = hardware.cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['isa']}), {os.cpu_count()} cores")
    for variant in args.variants:
        r = run(variant, args.epochs, args.seed)
        print(
            f"{variant:11s} {r['epochs']:3d} epochs: {100 * r['test_accuracy']:6.2f} % test, "
            f"{r['minutes']:6.1f} min, {r['images_per_second']:6.0f} images/s, "
            f"{r['training_pflop']:.3f} PFLOP ({r['precision']})",
            flush=True,
        )
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
