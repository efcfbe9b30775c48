"""Stage ``misclassifications`` (chapter 2, Section 2.2): every dataset of the experiment.

Patch errors and the FGSM, BIM and DeepFool attacks from correctly classified test images,
the OOD sets (noise, the other datasets), each with the classifier's logits and features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import attacks, datasets, detectors, models, splits
from .classifier import keras_model, load_training_data
from .config import ATTACKS, Config
from .runner import StageRun, run_stage

__all__ = ["load_in_distribution", "DataSet", "Generation", "source_order", "generate_set",
           "misclassifications", "generation_table", "sample_images"]


def load_in_distribution(cfg: Config):
    """The source pool: the first ``n_source`` in-distribution test images (in [0, 1]), labels."""
    _, (x, y) = datasets.load(cfg.info["in_distribution"], cfg.data_dir)
    n = cfg["n_source"] or len(x)
    return datasets.to_float(x[:n]), y[:n].astype(np.int64)


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
    linf, l2 = np.abs(d).max(axis=1), np.linalg.norm(d, axis=1)
    return {"mean_linf": attacks._or_none(np.mean, linf), "mean_l2": attacks._or_none(np.mean, l2)}


def _generate_until(fn, x, y, candidates: np.ndarray, target: int, name: str, side: str):
    """Run generator ``fn`` on chunks of ``candidates`` until ``target`` examples are kept."""
    kept_x, kept_src = [], []
    n = attempted = successes = pos = 0
    while n < target and pos < len(candidates):
        need = target - n
        chunk = candidates[pos : pos + max(64, int(need * 1.2) + 16)]
        pos += len(chunk)
        g = fn(x[chunk], y[chunk])
        attempted += g.stats["attempted"]
        successes += g.stats["kept"]
        kept_x.append(g.x[:need])
        kept_src.append(chunk[g.source_index[:need]])
        n += len(kept_x[-1])
    if n < target:
        raise RuntimeError(
            f"{name}: only {n} misclassified examples from the {len(candidates)} source images on "
            f"the {side} side, {target} needed. Raise n_source or the attack budget, or lower "
            f"the set sizes."
        )
    stats = {"attempted": attempted, "successes": successes,
             "success_rate": successes / attempted if attempted else None}  # fmt: skip
    return np.concatenate(kept_x), np.concatenate(kept_src), stats


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
    if cfg.experiment != "mnist":
        return datasets.mnist_as_cifar10(x_other[idx]), idx
    as_mnist = datasets.cifar10_as_mnist if name == "cifar10" else datasets.to_float
    return as_mnist(x_other[idx]), idx


def misclassifications(cfg: Config, model=None, progress: bool = True) -> Generation:
    """Generate (or load) every dataset of Section 2.2 with the classifier's logits.

    The source pool is split once, by seed, into a training and a test side. Patch errors
    and attacks are made from correctly classified sources of each side, in a seeded order,
    until ``n_train_other`` and ``n_test`` examples exist (no more images are attacked than
    needed). OOD sets get ``n_train_other + n_test`` images, split the same way. ``model``
    defaults to :func:`base_model`'s.
    """
    names = list(cfg.info["datasets"])
    x_pool, y_pool = load_in_distribution(cfg)

    def compute():
        m = keras_model(cfg, model)
        raw, stats, partition = _generate(cfg, m, names, x_pool, y_pool, progress)
        out = {}
        for name, (x, src, pool_name, y) in raw.items():
            ds = _view(cfg, m, name, x_pool if x is None else x, src, pool_name, y)
            stats[name] |= {"n": len(ds.x), "mean_max_logit": float(ds.logits.max(1).mean())}
            keep = ("source_index", "y", "logits", "features", "correct")
            out[f"data_{name}"] = {k: getattr(ds, k) for k in keep} | {"pool": np.array(pool_name)}
            if x is not None:
                out[f"data_{name}"]["x"] = x
        in_name = cfg.info["in_distribution"]
        stats[in_name]["accuracy"] = float(out[f"data_{in_name}"]["correct"].mean())
        out["partition"] = {f"{k}__{side}": v[i] for k, v in partition.items()
                            for i, side in enumerate(("train", "test"))}  # fmt: skip
        return out | {"generation_stats": stats}

    stores = {f"data_{n}": "arrays" for n in names} | {"partition": "arrays",
                                                       "generation_stats": "json"}  # fmt: skip
    value, run = run_stage(cfg, "misclassifications", stores, compute)
    sets = {}
    for name in names:
        a = value[f"data_{name}"]
        sets[name] = DataSet(name, a["x"] if "x" in a else x_pool, a["source_index"],
                             str(a["pool"]), a["y"], a["logits"], a["features"], a["correct"])
    p = value["partition"]
    pools = sorted({k.rsplit("__", 1)[0] for k in p})
    partition = {k: (p[f"{k}__train"], p[f"{k}__test"]) for k in pools}
    stored = value["generation_stats"]
    # In the experiment's order, as the sets (the JSON file keeps its keys sorted).
    stats = {n: stored[n] for n in dict.fromkeys([*names, *stored]) if n in stored}
    return Generation(sets, partition, stats, run)


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
    titles = [f"pred {p.argmax()} ({p.max():.2f})" + (f"\ntrue {ds.y[i]}" if ds.y[i] >= 0 else "")
              for p, i in zip(prob, idx, strict=True)]
    return ds.x[idx], titles
