"""Benchmark: base-model training FLOP/s against this machine's fp32 matmul rate.

For each base classifier of a profile (the paper's Table 1 CNN for MNIST, the
profile's network for CIFAR-10), in one run:

1. the fp32 matmul rate of this machine: the best of several ``tf.linalg.matmul``
   of two 2048 x 2048 matrices (2 * n^3 FLOP each);
2. the FLOP of one training step, counted analytically from the layers
   (convolutions and dense layers: 2 * MACs forward, x3 for forward + backward,
   the usual estimate; batch norm, activations and pooling are left out, so the
   figure is a slight underestimate);
3. the measured time of training steps (``model.fit`` on random images of the right
   shape, after a warm-up epoch), with the optimizer, batch size and augmentation-free
   input of the profile.

It prints images/s, achieved GFLOP/s and their ratio to the matmul rate, in float32
and under Keras' ``mixed_bfloat16`` policy, the CPU it ran on, and the precision that
``precision="auto"`` chooses on it (:mod:`introspection.hardware`), so that the
choice can be checked against the measured speeds on any machine.

    python benchmarks/training_efficiency.py [--profile cpu] [--steps 30] [--only float32]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from introspection import classifier, config, hardware, models


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 matmul rate over ``repeats`` runs, in GFLOP/s."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.linalg.matmul(a, b).numpy()  # warm-up
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def training_flops_per_image(model) -> float:
    """Forward + backward FLOP per image: three forward passes (models.forward_flops)."""
    return 3 * models.forward_flops(model)


def build(cfg):
    """The base classifier of a configuration, untrained, as the book trains it."""
    x = np.random.default_rng(0).uniform(size=(64, *cfg.info["image_shape"])).astype(np.float32)
    return classifier.build_classifier(cfg, x, for_training=True)


def main():
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--steps", type=int, default=30, help="timed training steps")
    p.add_argument(
        "--only", choices=("float32", "mixed_bfloat16"), help="time one precision only"
    )
    args = p.parse_args()

    cpu = hardware.cpu_info()
    chosen, reason = hardware.choose_precision("auto", cpu)
    print(f"CPU: {cpu['model']} ({cpu['isa']}; flags {' '.join(cpu['flags'])})")
    print(f"precision 'auto' here: {chosen} ({reason})")
    peak = matmul_gflops()
    print(f"fp32 matmul (2048 x 2048): {peak:.1f} GFLOP/s")
    policies = [args.only] if args.only else ["float32", "mixed_bfloat16"]
    rates = {}
    for exp in ("mnist", "cifar10"):
        cfg = config.configure(exp, args.profile)
        for policy in policies:
            keras.mixed_precision.set_global_policy(policy)
            model = build(cfg)
            opt = (
                keras.optimizers.SGD(0.01, momentum=0.9)
                if cfg["optimizer"] == "sgd"
                else keras.optimizers.RMSprop(1e-3)
            )
            model.compile(
                optimizer=opt,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            bs = cfg["batch_size"]
            rng = np.random.default_rng(0)
            x = rng.uniform(size=(bs * args.steps, *cfg.info["image_shape"])).astype(np.float32)
            y = rng.integers(0, 10, size=len(x))
            model.fit(x[: bs * 3], y[: bs * 3], batch_size=bs, epochs=1, verbose=0)  # warm-up
            t = time.perf_counter()
            model.fit(x, y, batch_size=bs, epochs=1, verbose=0)
            seconds = time.perf_counter() - t
            flops = training_flops_per_image(model)
            ips = len(x) / seconds
            rates[exp, policy] = ips
            achieved = flops * ips / 1e9
            print(
                f"{exp:8s} {model.name:>20s} {policy:15s} batch {bs:4d}: {ips:8.1f} images/s, "
                f"{flops / 1e6:8.1f} MFLOP/image, {achieved:7.1f} GFLOP/s = "
                f"{100 * achieved / peak:5.1f} % of the fp32 matmul rate"
            )
        if len(policies) == 2:
            ratio = rates[exp, "mixed_bfloat16"] / rates[exp, "float32"]
            faster = max(policies, key=lambda q: rates[exp, q])
            print(f"{exp:8s} mixed_bfloat16 / float32 speed: {ratio:.2f}x; "
                  f"faster here: {faster}; auto chooses {chosen}")
    keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":
    main()
