"""Section 3.2's training, validation and test sets for Introspection-Net.

5000 in-distribution + 700 of each other dataset for training (10% held out for
validation), 2000 of each for testing; label 1 where the base classifier is right.
Each source image pool is split once into a training and a test half, so no image
(nor an attack or patch made from it) feeds both sides: :func:`make_splits`
asserts it. A :class:`Split` holds indices, not data; :func:`gather` collects rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Part", "Split", "Splits", "partition_sources", "make_splits", "gather"]


@dataclass(frozen=True)
class Part:
    """One dataset's candidate examples: their source image and whether the classifier is right.

    ``pool`` names the source images (e.g. ``"mnist_test"``), shared by every dataset
    made from them; ``source_index`` and ``correct`` have shape (N,).
    """

    pool: str
    source_index: np.ndarray
    correct: np.ndarray

    def __post_init__(self):
        src = np.asarray(self.source_index)
        cor = np.asarray(self.correct)
        if src.ndim != 1 or cor.shape != src.shape:
            raise ValueError(
                f"source_index and correct must be 1-D of the same length, got {src.shape} "
                f"and {cor.shape}."
            )
        if len(src) and (not np.issubdtype(src.dtype, np.integer) or src.min() < 0):
            raise ValueError("source_index must hold non-negative integers.")
        object.__setattr__(self, "source_index", src.astype(np.int64))
        object.__setattr__(self, "correct", cor.astype(bool))


@dataclass(frozen=True)
class Split:
    """Examples of several datasets, as arrays of shape (M,).

    Per example: its ``dataset``, ``index`` (row in that dataset's arrays), ``label``
    (1 if the base classifier is right, else 0) and ``source`` (image in the pool).
    """

    dataset: np.ndarray
    index: np.ndarray
    label: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, mask) -> Split:
        """The examples selected by a boolean mask or an index array."""
        return Split(self.dataset[mask], self.index[mask], self.label[mask], self.source[mask])

    def of(self, dataset: str) -> Split:
        """The examples of one dataset."""
        return self.subset(self.dataset == dataset)

    def counts(self) -> dict[str, int]:
        """Number of examples per dataset, in order of first appearance."""
        names, first = np.unique(self.dataset, return_index=True)
        return {str(n): int((self.dataset == n).sum()) for n in names[np.argsort(first)]}


@dataclass(frozen=True)
class Splits:
    """Training, validation and test sets, and the source partition behind them."""

    train: Split
    val: Split
    test: Split
    train_sources: dict[str, np.ndarray]
    test_sources: dict[str, np.ndarray]


def partition_sources(n_sources: int, train_fraction: float = 0.5, seed: int = 0):
    """Split source indices ``0..n_sources-1`` into disjoint training and test pools.

    Returns sorted ``(train, test)`` arrays, ``train_fraction`` (in (0, 1)) in ``train``.
    """
    if int(n_sources) != n_sources or n_sources < 2:
        raise ValueError(f"n_sources must be an integer >= 2, got {n_sources}.")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
    perm = np.random.default_rng(seed).permutation(int(n_sources))
    n_train = int(round(train_fraction * n_sources))
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def _draw(
    rng, candidates: np.ndarray, n: int, dataset: str, side: str, available: int
) -> np.ndarray:
    if n > len(candidates):
        raise ValueError(
            f"Dataset {dataset!r} has only {len(candidates)} examples whose source is on the "
            f"{side} side ({available} in all); asked for {n}. Generate more examples or "
            f"lower the set size."
        )
    return np.sort(rng.choice(candidates, size=n, replace=False))


def make_splits(
    parts: Mapping[str, Part],
    in_distribution: str,
    *,
    n_train_in: int = 5000,
    n_train_other: int = 700,
    n_test: int = 2000,
    val_fraction: float = 0.1,
    train_fraction: float = 0.5,
    partition: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    seed: int = 0,
) -> Splits:
    """Build Section 3.2's training, validation and test sets.

    Parameters
    ----------
    n_train_in, n_train_other, n_test : int
        Train + validation examples (paper: 5000 in-distribution, 700 each other), test (2000).
    val_fraction : float
        Share of training held out for validation (paper: 10%).
    partition : mapping of str to (ndarray, ndarray), optional
        Disjoint ``(train_sources, test_sources)`` for some pools, else :func:`partition_sources`.
    """
    if in_distribution not in parts:
        raise ValueError(f"in_distribution {in_distribution!r} is not one of {list(parts)}.")
    for label, v in (
        ("n_train_in", n_train_in),
        ("n_train_other", n_train_other),
        ("n_test", n_test),
    ):
        if int(v) != v or v < 1:
            raise ValueError(f"{label} must be a positive integer, got {v!r}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    rng = np.random.default_rng(seed)

    pools: dict[str, int] = {}
    for part in parts.values():
        size = int(part.source_index.max()) + 1 if len(part.source_index) else 0
        pools[part.pool] = max(pools.get(part.pool, 0), size)
    train_sources, test_sources = {}, {}
    partition = dict(partition or {})
    for k, (pool, size) in enumerate(sorted(pools.items())):
        if pool in partition:
            tr, te = (np.asarray(a, dtype=np.int64) for a in partition[pool])
            if np.isin(tr, te).any():
                raise ValueError(f"The given partition of pool {pool!r} is not disjoint.")
            train_sources[pool], test_sources[pool] = np.sort(tr), np.sort(te)
            continue
        if size < 2:
            raise ValueError(f"Pool {pool!r} has fewer than two source images.")
        tr, te = partition_sources(size, train_fraction, seed=seed + 1000 + k)
        train_sources[pool], test_sources[pool] = tr, te

    rows = {"train": [], "test": []}
    for name, part in parts.items():
        on_train = np.isin(part.source_index, train_sources[part.pool])
        on_test = np.isin(part.source_index, test_sources[part.pool])
        n_tr = n_train_in if name == in_distribution else n_train_other
        for side, mask, n in (("train", on_train, n_tr), ("test", on_test, n_test)):
            idx = _draw(rng, np.flatnonzero(mask), n, name, side, len(part.source_index))
            rows[side].append((name, idx, part.correct[idx], part.source_index[idx]))

    def assemble(chunks) -> Split:
        return Split(
            dataset=np.concatenate(
                [np.full(len(i), n, dtype=object) for n, i, _, _ in chunks]
            ).astype(str),
            index=np.concatenate([i for _, i, _, _ in chunks]),
            label=np.concatenate([c for _, _, c, _ in chunks]).astype(np.int64),
            source=np.concatenate([s for _, _, _, s in chunks]),
        )

    train_all, test = assemble(rows["train"]), assemble(rows["test"])
    n_val = int(round(val_fraction * len(train_all)))
    order = rng.permutation(len(train_all))
    val, train = train_all.subset(np.sort(order[:n_val])), train_all.subset(np.sort(order[n_val:]))

    # The guarantee the rest of the book relies on: no source image on both sides.
    for pool in pools:
        names = [n for n, p in parts.items() if p.pool == pool]
        tr_src = np.concatenate([train_all.of(n).source for n in names])
        te_src = np.concatenate([test.of(n).source for n in names])
        assert not np.isin(tr_src, te_src).any(), f"pool {pool}: a source image is on both sides"
    return Splits(train, val, test, train_sources, test_sources)


def gather(split: Split, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Collect the rows of a split from per-dataset arrays, in the split's order.

    ``arrays`` maps each dataset to an array whose first axis ``split.index`` indexes.
    """
    missing = sorted(set(split.dataset.tolist()) - set(arrays))
    if missing:
        raise KeyError(f"No array given for dataset(s) {missing}.")
    first = np.asarray(next(iter(arrays.values())))
    out = np.empty((len(split), *first.shape[1:]), dtype=first.dtype)
    for name in dict.fromkeys(split.dataset.tolist()):
        mask = split.dataset == name
        out[mask] = np.asarray(arrays[name])[split.index[mask]]
    return out
