"""Loading the image datasets and building the out-of-distribution sets of Section 2.2.

In-distribution: MNIST and CIFAR-10; OOD: Gaussian and uniform noise, Fashion-MNIST and
the other dataset of the pair, converted to the in-distribution format
(:func:`cifar10_as_mnist`, :func:`mnist_as_cifar10`). :func:`load` reads ``<name>.npz``
(Keras' layout, ``allow_pickle=False``) from ``data_dir``, then ``$INTROSPECTION_DATA_DIR``,
then Keras' downloader; :func:`to_float` gives the float32 ``[0, 1]`` NHWC images every
model, attack and detector uses.
"""

from __future__ import annotations

import os
import socket
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS", "ENV_VAR", "DataNotFoundError", "DatasetFileError", "load", "to_float",
    "gaussian_noise", "uniform_noise", "convert_images", "cifar10_as_mnist", "mnist_as_cifar10",
    "OFFLINE_LOSSLESS", "jpeg_roundtrip",
]

#: Environment variable naming a directory of ``<name>.npz`` files.
ENV_VAR = "INTROSPECTION_DATA_DIR"

#: Expected image shape (without the sample axis) and split sizes of each dataset.
DATASETS: dict[str, dict] = {
    "mnist": {"image_shape": (28, 28), "n_train": 60000, "n_test": 10000},
    "fashion_mnist": {"image_shape": (28, 28), "n_train": 60000, "n_test": 10000},
    "cifar10": {"image_shape": (32, 32, 3), "n_train": 50000, "n_test": 10000},
}

#: First images of each split that are bit-exact in the offline CIFAR-10 copy
#: (``shared/datasets/cifar10.npz``); the other 55,000 went through JPEG (q75, 4:2:0).
OFFLINE_LOSSLESS = {"cifar10": {"train": 4000, "test": 1000}}

_KEYS = ("x_train", "y_train", "x_test", "y_test")
_NUM_CLASSES = 10
# Seconds Keras' downloader may wait for the network.
_DOWNLOAD_TIMEOUT = 10.0


class DataNotFoundError(FileNotFoundError):
    """No data file was found and Keras could not download the dataset."""


class DatasetFileError(ValueError):
    """A dataset file exists but is unreadable or does not hold what it should."""


def _candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """``data_dir``, then ``$INTROSPECTION_DATA_DIR``, where given."""
    dirs = (data_dir, os.environ.get(ENV_VAR) or None)
    return [Path(d).expanduser() for d in dirs if d is not None]


def _check_arrays(arrays: dict[str, np.ndarray], name: str, origin: str) -> None:
    """Validate shapes, dtypes and label ranges; raise DatasetFileError otherwise."""
    image_shape = DATASETS[name]["image_shape"]
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8:
            raise DatasetFileError(f"{origin}: x_{split} has dtype {x.dtype}, expected uint8.")
        if x.ndim != 1 + len(image_shape) or x.shape[1:] != image_shape:
            raise DatasetFileError(f"{origin}: x_{split} has shape {x.shape}, expected "
                                   f"(N, {', '.join(map(str, image_shape))}).")
        if y.ndim != 1:
            raise DatasetFileError(f"{origin}: y_{split} has shape {y.shape}, expected (N,).")
        if not np.issubdtype(y.dtype, np.integer):
            raise DatasetFileError(f"{origin}: y_{split} has dtype {y.dtype}, expected integers.")
        if len(y) != len(x):
            raise DatasetFileError(f"{origin}: x_{split} has {len(x)} images but y_{split} has "
                                   f"{len(y)} labels.")
        if len(y) == 0:
            raise DatasetFileError(f"{origin}: the {split} split is empty.")
        if y.min() < 0 or y.max() >= _NUM_CLASSES:
            raise DatasetFileError(f"{origin}: y_{split} holds labels in [{y.min()}, {y.max()}], "
                                   "expected 0..9.")


def _read_npz(path: Path, name: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            arrays = {} if missing else {k: f[k] for k in _KEYS}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise DatasetFileError(
            f"{path}: cannot be read as a .npz archive ({type(err).__name__}: {err}). "
            "The file may be truncated or corrupted: copy it again."
        ) from err
    if missing:
        raise DatasetFileError(f"{path}: missing key(s) {', '.join(missing)}; a dataset file "
                               f"must hold {', '.join(_KEYS)}.")
    _check_arrays(arrays, name, str(path))
    return arrays


def _keras_download(name: str, looked_in: list[Path]) -> dict[str, np.ndarray]:
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT)
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as err:  # noqa: BLE001 - any failure of the downloader means "no data"
        where = ", ".join(str(d) for d in looked_in) if looked_in else "(no directory given)"
        raise DataNotFoundError(
            f"Dataset '{name}' not found: no file {name}.npz in {where}, and Keras could not "
            f"download it ({type(err).__name__}: {err}). Put {name}.npz (keys x_train, y_train, "
            f"x_test, y_test, uint8) in a directory and pass it as data_dir=... or set "
            f"{ENV_VAR}=/path/to/that/directory (expected files: mnist.npz, fashion_mnist.npz, "
            f"cifar10.npz)."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    arrays = {"x_train": np.asarray(x_train), "y_train": np.asarray(y_train).reshape(-1),
              "x_test": np.asarray(x_test), "y_test": np.asarray(y_test).reshape(-1)}
    _check_arrays(arrays, name, f"keras.datasets.{name}")
    return arrays


def load(name: str, data_dir: str | os.PathLike | None = None):
    """Load a dataset as uint8 arrays in Keras' layout.

    Parameters
    ----------
    name : {"mnist", "fashion_mnist", "cifar10"}
    data_dir : str or path-like, optional
        Directory holding ``<name>.npz``; else ``$INTROSPECTION_DATA_DIR``, then Keras.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of ndarray
        Images ``(N, 28, 28)`` or ``(N, 32, 32, 3)`` uint8; labels ``(N,)`` in 0..9.
        :class:`DataNotFoundError` if there is no file and no download (e.g. offline),
        :class:`DatasetFileError` if a file is truncated or holds the wrong arrays.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load("mnist", "../shared/datasets")  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype
    ((60000, 28, 28), dtype('uint8'))
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    dirs = _candidate_dirs(data_dir)
    path = next((p for d in dirs if (p := d / f"{name}.npz").is_file()), None)
    arrays = _keras_download(name, dirs) if path is None else _read_npz(path, name)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def to_float(x: np.ndarray) -> np.ndarray:
    """Convert uint8 images ``(N, H, W[, C])`` to float32 ``x / 255``, shape (N, H, W, C)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"to_float expects uint8 images, got {x.dtype}.")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"to_float expects (N, H, W) or (N, H, W, C) images, got shape {x.shape}.")
    return x.astype(np.float32) / np.float32(255.0)


def _check_noise_args(n: int, shape) -> tuple[int, ...]:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape!r}.")
    return shape


def gaussian_noise(n: int, shape, *, mean: float = 0.5, std: float = 0.25, seed: int = 0):
    """Gaussian noise images ``(n, *shape)`` in the [0, 1] pixel scale, float32 and clipped."""
    shape = _check_noise_args(n, shape)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}.")
    x = np.random.default_rng(seed).normal(mean, std, size=(int(n), *shape))
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def uniform_noise(n: int, shape, *, low: float = 0.0, high: float = 1.0, seed: int = 0):
    """Uniform noise images U(low, high), ``0 <= low < high <= 1``, shape ``(n, *shape)``."""
    shape = _check_noise_args(n, shape)
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"Need 0 <= low < high <= 1, got low={low}, high={high}.")
    x = np.random.default_rng(seed).uniform(low, high, size=(int(n), *shape))
    return x.astype(np.float32)


# ITU-R BT.601 luma weights, as tf.image.rgb_to_grayscale and PIL's "L" mode.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def convert_images(x: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """Convert uint8 (0..255) or float ([0, 1]) images to ``size`` (h, w) and 1 or 3 ``channels``.

    Colour to grey by BT.601 luma, grey to colour by repeating the channel; bilinear
    antialiased resizing (``keras.ops.image.resize``). Returns float32 NHWC in [0, 1].
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    x = np.asarray(x)
    x = x[..., None] if x.ndim == 3 else x
    x = to_float(x) if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"Expected (N, H, W[, 1 or 3]) images, got shape {x.shape}.")
    if x.shape[-1] == 3 and channels == 1:
        x = (x @ _LUMA)[..., None]
    if tuple(x.shape[1:3]) != tuple(size):
        import keras

        x = keras.ops.convert_to_numpy(
            keras.ops.image.resize(x, tuple(size), interpolation="bilinear", antialias=True)
        )
    if x.shape[-1] == 1 and channels == 3:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def cifar10_as_mnist(x: np.ndarray) -> np.ndarray:
    """CIFAR-10 uint8 images as MNIST-shaped OOD inputs: grey, (N, 28, 28, 1) float32."""
    return convert_images(x, (28, 28), 1)


def mnist_as_cifar10(x: np.ndarray) -> np.ndarray:
    """MNIST or Fashion-MNIST uint8 images as CIFAR-10-shaped OOD inputs: (N, 32, 32, 3)."""
    return convert_images(x, (32, 32), 3)


def jpeg_roundtrip(x: np.ndarray, quality: int = 75, subsampling: str = "4:2:0") -> np.ndarray:
    """Encode uint8 colour images ``(N, H, W, 3)`` as JPEG and decode them (Pillow).

    What the offline CIFAR-10 copy did to 55,000 images (:data:`OFFLINE_LOSSLESS`):
    applied to the lossless ones, it measures what the compression costs a classifier.
    ``quality`` is 1..95; ``subsampling`` one of ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``.
    """
    import io

    from PIL import Image

    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"Expected uint8 colour images (N, H, W, 3), got {x.dtype} {x.shape}.")
    modes = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
    if subsampling not in modes:
        raise ValueError(f"subsampling must be one of {', '.join(modes)}, got {subsampling!r}.")
    out = np.empty_like(x)
    for i, image in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=int(quality),
                                    subsampling=modes[subsampling])
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out
