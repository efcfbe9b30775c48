"""Section 3.2's training, validation and test sets for Introspection-Net.

5000 in-distribution + 700 of each other dataset for training (10% held out for
validation), 2000 of each for testing; label 1 where the base classifier is right.
Each source image pool is split once into a training and a test half, so no image
(nor an attack or patch made from it) feeds both sides: :func:`make_splits`
asserts it. A :class:`Split` holds indices, not data; :func:`gather` collects rows.
"""

from __future__ import annotations

from collections import Counter
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
            raise ValueError(f"source_index and correct must be 1-D of the same length, got "
                             f"{src.shape} and {cor.shape}.")
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
        return {str(n): count for n, count in Counter(self.dataset.tolist()).items()}


@dataclass(frozen=True)
class Splits:
    """Training, validation and test sets, and the source partition behind them."""

    train: Split
    val: Split
    test: Split
    train_sources: dict[str, np.ndarray]
    test_sources: dict[str, np.ndarray]


def partition_sources(n_sources: int, train_fraction: float = 0.5, seed=0):
    """Split source indices ``0..n_sources-1`` into disjoint training and test pools.

    Returns sorted ``(train, test)`` arrays, ``train_fraction`` (in (0, 1)) in ``train``;
    ``seed``: an int or a ``numpy.random.SeedSequence``.
    """
    if int(n_sources) != n_sources or n_sources < 2:
        raise ValueError(f"n_sources must be an integer >= 2, got {n_sources}.")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
    perm = np.random.default_rng(seed).permutation(int(n_sources))
    n_train = int(round(train_fraction * n_sources))
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def _partition_pools(parts, partition, train_fraction, seed):
    """Training and test source indices of every pool: from ``partition`` or drawn."""
    pools: dict[str, int] = {}
    for part in parts.values():
        size = int(part.source_index.max()) + 1 if len(part.source_index) else 0
        pools[part.pool] = max(pools.get(part.pool, 0), size)
    partition = partition or {}
    train_sources, test_sources = {}, {}
    # a pool without a given partition draws its own from a child of the seed's stream
    children = np.random.SeedSequence(seed).spawn(len(pools))
    for child, (pool, size) in zip(children, sorted(pools.items()), strict=True):
        if pool in partition:
            tr, te = (np.asarray(a, dtype=np.int64) for a in partition[pool])
            if np.isin(tr, te).any():
                raise ValueError(f"The given partition of pool {pool!r} is not disjoint.")
            tr, te = np.sort(tr), np.sort(te)
        elif size < 2:
            raise ValueError(f"Pool {pool!r} has fewer than two source images.")
        else:
            tr, te = partition_sources(size, train_fraction, seed=child)
        train_sources[pool], test_sources[pool] = tr, te
    return train_sources, test_sources


def _assemble(chunks) -> Split:
    """One split from ``(dataset, index, correct, source)`` chunks."""
    dataset = np.concatenate([np.full(len(i), n, dtype=object) for n, i, *_ in chunks])
    _, index, correct, source = zip(*chunks, strict=True)
    label = np.concatenate(correct).astype(np.int64)
    return Split(dataset.astype(str), np.concatenate(index), label, np.concatenate(source))


def _check_disjoint(parts, train: Split, test: Split) -> None:
    """Assert the guarantee the rest of the book relies on: no source image on both sides."""
    for pool in dict.fromkeys(p.pool for p in parts.values()):
        names = [n for n, p in parts.items() if p.pool == pool]
        tr_src = np.concatenate([train.of(n).source for n in names])
        te_src = np.concatenate([test.of(n).source for n in names])
        assert not np.isin(tr_src, te_src).any(), f"pool {pool}: a source image is on both sides"


def make_splits(
    parts: Mapping[str, Part], in_distribution: str, *, n_train_in: int = 5000,
    n_train_other: int = 700, n_test: int = 2000, val_fraction: float = 0.1,
    train_fraction: float = 0.5, partition: Mapping | None = None, seed: int = 0,
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
    sizes = {"n_train_in": n_train_in, "n_train_other": n_train_other, "n_test": n_test}
    for label, v in sizes.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{label} must be a positive integer, got {v!r}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    rng = np.random.default_rng(seed)
    train_sources, test_sources = _partition_pools(parts, partition, train_fraction, seed)
    rows = {"train": [], "test": []}
    for name, part in parts.items():
        n_tr = n_train_in if name == in_distribution else n_train_other
        for side, sources, n in (("train", train_sources, n_tr), ("test", test_sources, n_test)):
            candidates = np.flatnonzero(np.isin(part.source_index, sources[part.pool]))
            if n > len(candidates):
                raise ValueError(
                    f"Dataset {name!r} has only {len(candidates)} examples whose source is on the "
                    f"{side} side ({len(part.source_index)} in all); asked for {n}. Generate more "
                    "examples or lower the set size."
                )
            idx = np.sort(rng.choice(candidates, size=n, replace=False))
            rows[side].append((name, idx, part.correct[idx], part.source_index[idx]))
    train_all, test = _assemble(rows["train"]), _assemble(rows["test"])
    n_val = int(round(val_fraction * len(train_all)))
    order = rng.permutation(len(train_all))
    val, train = train_all.subset(np.sort(order[:n_val])), train_all.subset(np.sort(order[n_val:]))
    _check_disjoint(parts, train_all, test)
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
