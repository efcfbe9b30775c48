import numpy as np
import pytest

from introspection import splits


def make_parts(n_pool=1000, seed=0):
    rng = np.random.default_rng(seed)
    correct = rng.uniform(size=n_pool) > 0.02  # a few natural errors
    parts = {
        "mnist": splits.Part("mnist_test", np.arange(n_pool), correct),
        # Several patch errors may come from the same image.
        "errors": splits.Part("mnist_test", rng.integers(0, n_pool, 800), np.zeros(800, bool)),
        "fgsm": splits.Part(
            "mnist_test", np.sort(rng.choice(n_pool, 700, replace=False)), np.zeros(700, bool)
        ),
        "gaussian": splits.Part("gaussian", np.arange(600), np.zeros(600, bool)),
    }
    return parts, correct


def test_sizes_labels_and_disjoint_sources():
    parts, correct = make_parts()
    s = splits.make_splits(parts, "mnist", n_train_in=400, n_train_other=70, n_test=200, seed=1)
    train_all = {n: len(s.train.of(n)) + len(s.val.of(n)) for n in parts}
    assert train_all == {"mnist": 400, "errors": 70, "fgsm": 70, "gaussian": 70}
    assert s.test.counts() == {"mnist": 200, "errors": 200, "fgsm": 200, "gaussian": 200}
    n_train = 400 + 3 * 70
    assert len(s.val) == round(0.1 * n_train) and len(s.train) == n_train - len(s.val)
    # Labels: the classifier's correctness for in-distribution, 0 for everything else.
    for split in (s.train, s.val, s.test):
        m = split.of("mnist")
        np.testing.assert_array_equal(m.label, correct[m.index].astype(int))
        assert (split.label[split.dataset != "mnist"] == 0).all()
    # No source image on both sides, within each pool.
    for pool, names in {
        "mnist_test": ["mnist", "errors", "fgsm"],
        "gaussian": ["gaussian"],
    }.items():
        tr = np.concatenate(
            [np.concatenate([s.train.of(n).source, s.val.of(n).source]) for n in names]
        )
        te = np.concatenate([s.test.of(n).source for n in names])
        assert not set(tr) & set(te)
        assert set(tr) <= set(s.train_sources[pool]) and set(te) <= set(s.test_sources[pool])
    # Rows are unique within a dataset.
    for n in parts:
        rows = np.concatenate([s.train.of(n).index, s.val.of(n).index, s.test.of(n).index])
        assert len(np.unique(rows)) == len(rows)


def test_deterministic_by_seed():
    parts, _ = make_parts()
    kw = dict(n_train_in=300, n_train_other=50, n_test=100)
    a = splits.make_splits(parts, "mnist", seed=3, **kw)
    b = splits.make_splits(parts, "mnist", seed=3, **kw)
    c = splits.make_splits(parts, "mnist", seed=4, **kw)
    for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        np.testing.assert_array_equal(x.index, y.index)
        np.testing.assert_array_equal(x.dataset, y.dataset)
    assert not np.array_equal(a.test.index, c.test.index)


def test_too_few_examples_is_a_clear_error():
    parts, _ = make_parts()
    with pytest.raises(ValueError, match="'errors' has only .* asked for 500"):
        splits.make_splits(parts, "mnist", n_train_in=300, n_train_other=500, n_test=100)
    with pytest.raises(ValueError, match="n_test"):
        splits.make_splits(parts, "mnist", n_test=0)
    with pytest.raises(ValueError, match="in_distribution"):
        splits.make_splits(parts, "cifar10")


def test_part_validation():
    with pytest.raises(ValueError):
        splits.Part("p", np.arange(3), np.ones(4, bool))
    with pytest.raises(ValueError):
        splits.Part("p", np.array([-1, 2]), np.ones(2, bool))


def test_partition_sources():
    tr, te = splits.partition_sources(11, 0.5, seed=0)
    assert len(tr) == 6 and len(te) == 5 or len(tr) == 5 and len(te) == 6
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(11))


def test_gather_follows_split_order():
    parts, _ = make_parts()
    s = splits.make_splits(parts, "mnist", n_train_in=100, n_train_other=20, n_test=30, seed=0)
    arrays = {
        n: np.stack([np.arange(len(p.source_index)), np.full(len(p.source_index), k)], 1)
        for k, (n, p) in enumerate(parts.items())
    }
    g = splits.gather(s.test, arrays)
    names = list(parts)
    np.testing.assert_array_equal(g[:, 0], s.test.index)
    np.testing.assert_array_equal(g[:, 1], [names.index(d) for d in s.test.dataset])
    with pytest.raises(KeyError):
        splits.gather(s.test, {"mnist": arrays["mnist"]})


def test_given_partition_is_respected():
    parts, _ = make_parts()
    train = np.arange(0, 1000, 2)
    test = np.arange(1, 1000, 2)
    s = splits.make_splits(
        parts,
        "mnist",
        n_train_in=300,
        n_train_other=50,
        n_test=100,
        partition={"mnist_test": (train, test)},
        seed=0,
    )
    for n in ("mnist", "errors", "fgsm"):
        assert (np.concatenate([s.train.of(n).source, s.val.of(n).source]) % 2 == 0).all()
        assert (s.test.of(n).source % 2 == 1).all()
    with pytest.raises(ValueError, match="not disjoint"):
        splits.make_splits(
            parts,
            "mnist",
            n_train_in=10,
            n_train_other=5,
            n_test=5,
            partition={"mnist_test": (train, train)},
        )
