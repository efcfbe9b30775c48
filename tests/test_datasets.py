import os
import time
from pathlib import Path

import numpy as np
import pytest

from introspection import datasets


def write_fake(directory: Path, name="mnist", n_train=20, n_test=10, **overrides):
    shape = datasets.DATASETS[name]["image_shape"]
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = directory / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    return path, arrays


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_load_from_directory(tmp_path, name):
    _, arrays = write_fake(tmp_path, name)
    (x_train, y_train), (x_test, y_test) = datasets.load(name, tmp_path)
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert x_train.dtype == np.uint8 and y_train.shape == (20,)


def test_env_var_is_used(tmp_path, monkeypatch):
    write_fake(tmp_path, "fashion_mnist")
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    (x_train, _), _ = datasets.load("fashion_mnist")
    assert x_train.shape == (20, 28, 28)


def test_data_dir_wins_over_env(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write_fake(a, n_train=5)
    write_fake(b, n_train=7)
    monkeypatch.setenv(datasets.ENV_VAR, str(b))
    assert len(datasets.load("mnist", a)[0][0]) == 5
    assert len(datasets.load("mnist", tmp_path / "empty")[0][0]) == 7


def test_offline_error_is_fast_and_clear(tmp_path, monkeypatch):
    # No file anywhere and (here and in CI) no network: one clear error within seconds.
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no cached download
    t0 = time.perf_counter()
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.load("mnist", tmp_path)
    assert time.perf_counter() - t0 < 30
    msg = str(info.value)
    assert str(tmp_path) in msg and "mnist.npz" in msg and datasets.ENV_VAR in msg


def test_unknown_name():
    with pytest.raises(ValueError, match="Unknown dataset"):
        datasets.load("svhn")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"y_test": None}, "missing key"),
        ({"x_train": np.zeros((20, 28, 27), np.uint8)}, "shape"),
        ({"x_train": np.zeros((20, 28, 28), np.float32)}, "dtype"),
        ({"y_train": np.full(20, 10, np.uint8)}, "labels"),
        ({"y_train": np.zeros(19, np.uint8)}, "labels"),
        ({"y_train": np.zeros((20, 1), np.uint8)}, "shape"),
    ],
)
def test_bad_files(tmp_path, overrides, match):
    write_fake(tmp_path, **overrides)
    with pytest.raises(datasets.DatasetFileError, match=match):
        datasets.load("mnist", tmp_path)


def test_truncated_file(tmp_path):
    path, _ = write_fake(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(datasets.DatasetFileError, match="truncated"):
        datasets.load("mnist", tmp_path)


def test_pickled_object_array_is_refused(tmp_path):
    write_fake(tmp_path, y_test=np.array([object()] * 10, dtype=object))
    with pytest.raises(datasets.DatasetFileError):
        datasets.load("mnist", tmp_path)


def test_to_float():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    f = datasets.to_float(x)
    assert f.shape == (1, 2, 2, 1) and f.dtype == np.float32
    np.testing.assert_allclose(f[0, :, :, 0], [[0, 1], [0.2, 0.4]], atol=1e-7)
    with pytest.raises(ValueError):
        datasets.to_float(f)


def test_noise_is_seeded_and_in_range():
    g1 = datasets.gaussian_noise(50, (28, 28, 1), seed=3)
    g2 = datasets.gaussian_noise(50, (28, 28, 1), seed=3)
    u = datasets.uniform_noise(50, (32, 32, 3), seed=3)
    np.testing.assert_array_equal(g1, g2)
    assert g1.dtype == np.float32 and g1.shape == (50, 28, 28, 1)
    assert 0 <= g1.min() and g1.max() <= 1 and 0 <= u.min() and u.max() <= 1
    assert abs(g1.mean() - 0.5) < 0.01 and abs(u.mean() - 0.5) < 0.01
    assert not np.array_equal(g1, datasets.gaussian_noise(50, (28, 28, 1), seed=4))
    with pytest.raises(ValueError):
        datasets.gaussian_noise(0, (28, 28, 1))
    with pytest.raises(ValueError):
        datasets.uniform_noise(5, (28, 28, 1), low=0.5, high=0.2)


def test_cross_dataset_conversions():
    rgb = np.zeros((2, 32, 32, 3), np.uint8)
    rgb[0, ..., 0] = 255  # pure red -> luma 0.299
    rgb[1] = 255
    g = datasets.cifar10_as_mnist(rgb)
    assert g.shape == (2, 28, 28, 1) and g.dtype == np.float32
    np.testing.assert_allclose(g[0], 0.299, atol=1e-5)
    np.testing.assert_allclose(g[1], 1.0, atol=1e-5)
    gray = np.full((3, 28, 28), 128, np.uint8)
    c = datasets.mnist_as_cifar10(gray)
    assert c.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(c, 128 / 255, atol=1e-5)


# Per-class training counts of the canonical files (see ../shared/datasets/README.md).
REAL = {
    "mnist": (
        (60000, 28, 28),
        (10000, 28, 28),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ),
    "fashion_mnist": ((60000, 28, 28), (10000, 28, 28), [6000] * 10),
    "cifar10": ((50000, 32, 32, 3), (10000, 32, 32, 3), [5000] * 10),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files(name):
    directory = os.environ.get(datasets.ENV_VAR)
    if not directory or not (Path(directory) / f"{name}.npz").is_file():
        pytest.skip(f"set {datasets.ENV_VAR} to a directory holding {name}.npz")
    (x_train, y_train), (x_test, y_test) = datasets.load(name)
    train_shape, test_shape, counts = REAL[name]
    assert x_train.shape == train_shape and x_test.shape == test_shape
    assert x_train.dtype == np.uint8 and y_train.shape == (train_shape[0],)
    assert np.bincount(y_train, minlength=10).tolist() == counts
    assert np.bincount(y_test, minlength=10).sum() == test_shape[0]
