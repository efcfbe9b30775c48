"""Benchmark: batched DeepFool against a per-image loop, same images, same results.

Prints the wall time of both, the speed-up and the largest difference between the
two sets of adversarial images. Uses the paper's Table 1 CNN, trained for one epoch
on a subset of MNIST when ``$INTROSPECTION_DATA_DIR`` holds ``mnist.npz`` (else on
random images, which still exercises the code).

    python benchmarks/deepfool_batched.py [--n 200] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from introspection import attacks, datasets, models, training


def _model_and_images(n: int):
    keras.utils.set_random_seed(0)
    model = models.paper_cnn()
    try:
        (x_tr, y_tr), (x_te, y_te) = datasets.load("mnist")
        training.train_classifier(model, datasets.to_float(x_tr[:10000]), y_tr[:10000],
                                  epochs=1, batch_size=64)
        return model, datasets.to_float(x_te[:n]), "MNIST test images, CNN trained 1 epoch"
    except datasets.DataNotFoundError:
        x = np.random.default_rng(0).uniform(size=(n, 28, 28, 1)).astype(np.float32)
        return model, x, "random images, untrained CNN"


def main() -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="number of images")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    model, x, what = _model_and_images(args.n)
    # Warm up (tracing) so both timings measure computation.
    attacks.deepfool_perturb(model, x[:2], batch_size=args.batch_size)
    attacks.deepfool_perturb(model, x[:1], batch_size=1)

    t0 = time.perf_counter()
    batched, it_b = attacks.deepfool_perturb(model, x, batch_size=args.batch_size)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [attacks.deepfool_perturb(model, x[i : i + 1], batch_size=1) for i in range(len(x))]
    t_loop = time.perf_counter() - t0
    looped = np.concatenate([s[0] for s in single])
    it_l = np.concatenate([s[1] for s in single])

    print(f"images: {len(x)} ({what})")
    print(f"batched (batch {args.batch_size}): {t_batched:.2f} s "
          f"({1000 * t_batched / len(x):.1f} ms/image)")
    print(f"per-image loop:              {t_loop:.2f} s ({1000 * t_loop / len(x):.1f} ms/image)")
    print(f"speed-up: {t_loop / t_batched:.1f}x")
    diff = np.abs(batched - looped).reshape(len(x), -1).max(axis=1)
    print(f"images with the same iteration count: {int((it_b == it_l).sum())}/{len(x)}; "
          f"max |difference| of the adversarial images: {diff.max():.2e} "
          f"(median {np.median(diff):.2e}); float round-off in batched and single-image "
          f"convolutions can move an image that sits on a decision boundary by one step")


if __name__ == "__main__":
    main()
