"""Benchmark: a Wide ResNet training step with Keras' and with fused batch normalisation.

Keras 3 normalises a batch with separate float32 element-wise operations (and as
many in the gradient); :func:`introspection.models.fused_batch_normalization` does
the same computation with TensorFlow's fused kernel. This times one training step
(forward, backward, SGD update; fixed random batch, no input pipeline) of the
profile's Wide ResNet, in float32 and mixed bfloat16, with each layer. The four
variants are interleaved in rounds so that a change in the machine's speed during
the run touches all of them; the median and the fastest round are printed.

    python benchmarks/batch_norm.py [--profile cpu] [--rounds 6] [--steps 4]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from introspection import config, models


def _step_function(cfg, policy: str, fused: bool, x, y):
    keras.utils.set_random_seed(0)
    with models.dtype_policy(policy):
        model = models.wide_resnet(
            cfg["wrn_depth"],
            cfg["wrn_width"],
            input_mean=[0.5] * 3,
            input_std=[0.25] * 3,
            fused_batchnorm=fused,
        )
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    opt.build(model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) + tf.add_n(model.losses)
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    step()  # tracing
    step()
    return step


def main() -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant and round")
    args = p.parse_args()
    cfg = config.configure("cifar10", args.profile)
    bs = cfg["batch_size"]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(bs, *cfg.info["image_shape"])).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, size=bs))
    variants = {
        (policy, fused): _step_function(cfg, policy, fused, x, y)
        for policy in ("float32", "mixed_bfloat16")
        for fused in (False, True)
    }
    ms = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k, step in variants.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                loss = step()
            loss.numpy()
            ms[k].append(1e3 * (time.perf_counter() - t) / args.steps)
    base = np.median(ms[("float32", False)])
    print(f"WRN-{cfg['wrn_depth']}-{cfg['wrn_width']}, batch {bs}, one training step:")
    for (policy, fused), v in ms.items():
        med = np.median(v)
        print(
            f"  {policy:15s} {'fused' if fused else 'Keras'} batch norm: median {med:6.1f} ms "
            f"(fastest {min(v):6.1f} ms), {bs / med * 1e3:5.0f} images/s, "
            f"{base / med:4.2f}x float32 with Keras' layer"
        )


if __name__ == "__main__":
    main()
