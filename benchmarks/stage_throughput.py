"""Benchmark: where the time of a profile goes, and each stage's throughput.

Reads what a run of the book recorded in its artifacts (no re-computation): the
per-epoch training times, each generated dataset's attack time and number of
images attacked, and the wall time of every stage. Then measures, in this run,
inference images/s of the base classifier on the in-distribution test images and
Trust Score queries/s (KD-tree on the profile's ``trust_n_fit`` training features).

    python benchmarks/stage_throughput.py --profile cpu [--experiment mnist|cifar10|all]

Needs ``$INTROSPECTION_DATA_DIR`` and the artifacts of a run of that profile
(``$INTROSPECTION_ARTIFACTS_DIR`` or ``artifacts/``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from introspection import artifacts, config, datasets, detectors, models, runner


def report(experiment: str, profile: str) -> None:
    """Print the throughput figures of one experiment's run of a profile."""
    cfg = config.configure(experiment, profile)
    root = cfg.artifacts_dir
    print(f"\n== {experiment}, profile {profile} (artifacts {root})")
    if not artifacts.exists(root, "base_model", cfg.stage_params("base_model")):
        print("   no trained base model for this profile: run the book first")
        return
    hist = artifacts.load_json(root, "base_model_history")
    (x_tr, _), (x_te, y_te) = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    n_train = cfg["n_train"] or len(x_tr)
    ep = np.asarray(hist["epoch_seconds"], dtype=float)
    print(
        f"   training : {n_train * len(ep) / ep.sum():8.1f} images/s "
        f"({len(ep)} epochs, median {np.median(ep):.0f} s/epoch)"
    )

    model = artifacts.load_model(root, "base_model")
    x = datasets.to_float(x_te[:2000])
    models.predict_features(model, x[:256])  # warm-up
    t = time.perf_counter()
    feats, _ = models.predict_features(model, x)
    print(f"   inference: {len(x) / (time.perf_counter() - t):8.1f} images/s (batch 256)")

    if artifacts.exists(root, "generation_stats"):
        stats = artifacts.load_json(root, "generation_stats")
        for name, st in stats.items():
            sides = [st[s] for s in ("train", "test") if isinstance(st.get(s), dict)]
            if not sides or not st.get("seconds"):
                continue
            attempted = sum(s.get("tries", s.get("attempted", 0)) for s in sides)
            print(
                f"   {name:9s}: {attempted / st['seconds']:8.1f} images/s attacked "
                f"({attempted} in {st['seconds']:.1f} s)"
            )

    n_fit = min(cfg["trust_n_fit"], len(x_tr))
    fit = datasets.to_float(x_tr[:n_fit])
    f_fit, z_fit = models.predict_features(model, fit)
    trust = detectors.TrustScore(k=cfg["trust_k"], alpha=cfg["trust_alpha"])
    trust.fit(f_fit, z_fit.argmax(1))
    t = time.perf_counter()
    trust.score(feats, y_te[: len(feats)])
    print(
        f"   trust score: {len(feats) / (time.perf_counter() - t):8.1f} queries/s "
        f"({feats.shape[1]}-d features, {n_fit} fitted points)"
    )

    rec = runner.stage_timings(cfg)
    total = sum(rec.values())
    if total:
        print(f"   wall time by stage (last computation; total {total / 60:.1f} min):")
        for stage, sec in rec.items():
            print(f"     {stage:20s} {sec:8.1f} s  {100 * sec / total:5.1f} %")


def main():
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--experiment", default="all")
    args = p.parse_args()
    exps = ("mnist", "cifar10") if args.experiment == "all" else (args.experiment,)
    for e in exps:
        report(e, args.profile)


if __name__ == "__main__":
    main()
