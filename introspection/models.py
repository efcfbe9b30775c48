"""Model builders: the paper's MNIST CNN, Wide ResNets, airbench and Introspection-Net.

Every classifier outputs **logits** (layer ``"logits"``, float32, no activation; the
softmax is :func:`introspection.detectors.softmax`) and names its penultimate layer
``"features"`` (used e.g. by the Trust Score). Inputs are float32 images in [0, 1].
Models hold Keras' standard layers only, saved and loaded as ``.keras`` in safe mode.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np

__all__ = [
    "paper_cnn", "wide_resnet", "airbench_net", "init_airbench_net", "introspection_net",
    "feature_model", "predict_logits", "predict_features", "count_params", "forward_flops",
    "dtype_policy", "fused_batch_normalization", "save_model", "load_model",
]


def paper_cnn(input_shape=(28, 28, 1), num_classes: int = 10, name: str = "paper_cnn"):
    """The CNN of the paper's Table 1 (MNIST; 730,602 parameters by default), logits as output."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(32, 3, padding="valid", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(32, 3, padding="valid", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Dropout(0.2, name="dropout1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.25, name="dropout2")(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu", name="conv5")(x)
    x = layers.Dropout(0.25, name="dropout3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    x = layers.BatchNormalization(name="features")(x)
    x = layers.Dropout(0.25, name="dropout4")(x)
    # float32 logits even under a mixed-precision policy (Keras' recommendation).
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def _standardize(x, input_mean, input_std, dtype=None):
    """A fixed per-channel ``Normalization`` layer named ``"standardize"``, or ``x`` itself."""
    from keras import layers

    if input_mean is None and input_std is None:
        return x
    if input_mean is None or input_std is None:
        raise ValueError("Give both input_mean and input_std, or neither.")
    mean, std = np.asarray(input_mean, dtype="float32"), np.asarray(input_std, dtype="float32")
    return layers.Normalization(mean=mean, variance=std**2, dtype=dtype, name="standardize")(x)


def _check_positive_int(label, value):
    if int(value) != value or value < 1:
        raise ValueError(f"{label} must be a positive integer, got {value}.")


def _l2(weight_decay):
    """The kernels' L2 penalty ``weight_decay / 2 * ||w||^2``, or None for 0."""
    from keras import regularizers

    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    return regularizers.L2(weight_decay / 2) if weight_decay > 0 else None


def _conv(filters, kernel, name, reg, init="he_normal", stride=1):
    """A bias-free, "same"-padded convolution (Wide ResNet's and airbench's)."""
    from keras import layers

    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                         kernel_initializer=init, kernel_regularizer=reg, name=name)


def _wrn_block(x, channels, stride, label, reg, batchnorm, dropout):
    """BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3 plus ``x`` (a 1x1 projection if reshaped)."""
    from keras import layers

    pre = batchnorm(name=f"{label}_bn1")(x)
    pre = layers.Activation("relu", name=f"{label}_relu1")(pre)
    shortcut = x
    if stride != 1 or x.shape[-1] != channels:
        shortcut = _conv(channels, 1, f"{label}_shortcut", reg, stride=stride)(pre)
    y = _conv(channels, 3, f"{label}_conv1", reg, stride=stride)(pre)
    y = batchnorm(name=f"{label}_bn2")(y)
    y = layers.Activation("relu", name=f"{label}_relu2")(y)
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{label}_dropout")(y)
    y = _conv(channels, 3, f"{label}_conv2", reg)(y)
    return layers.Add(name=f"{label}_add")([shortcut, y])


def wide_resnet(
    depth: int, width: int, *, input_shape=(32, 32, 3), num_classes: int = 10,
    dropout: float = 0.0, weight_decay: float = 5e-4, input_mean=None, input_std=None,
    fused_batchnorm: bool = False, name: str | None = None,
):
    """Pre-activation Wide ResNet WRN-depth-width (Zagoruyko & Komodakis, 2016).

    A 16-channel stem, three groups of ``(depth - 4) / 6`` blocks (16, 32, 64 x ``width``
    channels, strides 1, 2, 2), BN-ReLU-global average pooling (``"features"``) and a dense
    layer; named ``"wrn_<depth>_<width>"`` by default. WRN-28-10 has 36,497,146 parameters.

    Parameters
    ----------
    depth : int
        ``depth - 4`` a positive multiple of 6 (16, 22, 28, 40...).
    weight_decay : float
        L2 penalty ``weight_decay / 2 * ||w||^2`` on the kernels (the recipe's 5e-4).
    input_mean, input_std : sequence of float, optional
        Per-channel statistics: a fixed ``Normalization`` layer, so attacks stay in [0, 1].
    fused_batchnorm : bool
        :func:`fused_batch_normalization` layers (faster on CPU): for training only; copy
        the weights into a standard model to save it, as ``classifier.base_model`` does.
    """
    import keras
    from keras import layers

    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"depth - 4 must be a positive multiple of 6, got depth={depth}.")
    _check_positive_int("width", width)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    reg = _l2(weight_decay)
    batchnorm = fused_batch_normalization() if fused_batchnorm else layers.BatchNormalization
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _standardize(inputs, input_mean, input_std)
    x = _conv(16, 3, "stem", reg)(x)
    for group, (channels, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        for block in range((depth - 4) // 6):
            s = stride if block == 0 else 1
            x = _wrn_block(x, channels * width, s, f"g{group}b{block}", reg, batchnorm, dropout)
    x = batchnorm(name="head_bn")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    logits = layers.Dense(num_classes, kernel_regularizer=reg, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name or f"wrn_{depth}_{width}")


def airbench_net(
    widths=(64, 256, 256), *, input_shape=(32, 32, 3), num_classes: int = 10,
    weight_decay: float = 1.33e-3, logit_scale: float = 1 / 9, batchnorm_momentum: float = 0.6,
    kernel_init: str = "torch", input_mean=None, input_std=None, name: str = "airbench",
):
    """The fast CIFAR-10 network of airbench94 (Jordan 2024, arXiv 2404.00498), with ReLU.

    A fixed 2x2 whitening convolution (:func:`init_airbench_net`), three groups of two
    conv-BN-ReLU (max pooling after the first conv), global max pooling (``"features"``) and
    a dense layer times ``logit_scale``. ReLU replaces GELU: 1.3x faster on CPU
    (benchmarks/cifar10_recipe.py). 1,973,920 parameters with the default widths.

    Parameters
    ----------
    widths : tuple of 3 int
        Channels of the three groups (airbench94: 64, 256, 256).
    weight_decay : float
        L2 penalty ``weight_decay / 2 * ||w||^2`` on the kernels (airbench94's decoupled
        0.0153 per 1024 images at its learning rate).
    logit_scale, batchnorm_momentum : float
        Airbench94's 1/9 and 0.6 (Keras' momentum of the moving statistics).
    kernel_init : {"torch", "keras"}
        PyTorch's default (uniform, variance ``1 / (3 fan_in)``, as airbench94) or Glorot
        uniform; with batch norm the kernel scale sets the effective learning rate.
    """
    import keras
    from keras import layers

    if len(widths) != 3 or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"widths must be three positive integers, got {widths!r}.")
    reg = _l2(weight_decay)
    if kernel_init not in ("torch", "keras"):
        raise ValueError(f"kernel_init must be 'torch' or 'keras', got {kernel_init!r}.")
    init = "glorot_uniform"
    if kernel_init == "torch":
        init = keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    # The stem runs in float32 whatever the policy: the whitening scales weak patch
    # directions by up to 1/sqrt(eps) = 45, and bfloat16 gave them 4-11 % relative error.
    x = _standardize(inputs, input_mean, input_std, dtype="float32")
    channels = 2 * input_shape[-1] * 4
    x = layers.Conv2D(channels, 2, use_bias=False, trainable=False, dtype="float32",
                      name="whiten")(x)
    x = layers.Activation("relu", dtype="float32", name="whiten_relu")(x)
    for group, width in enumerate(widths, start=1):
        for i in (1, 2):
            label = f"g{group}c{i}"
            x = _conv(int(width), 3, label, reg, init)(x)
            if i == 1:
                x = layers.MaxPooling2D(2, name=f"g{group}_pool")(x)
            x = layers.BatchNormalization(scale=False, momentum=batchnorm_momentum,
                                          name=f"{label}_bn")(x)
            x = layers.Activation("relu", name=f"{label}_relu")(x)
    x = layers.GlobalMaxPooling2D(name="features")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_initializer=init, kernel_regularizer=reg,
                     dtype="float32", name="head")(x)
    logits = layers.Rescaling(logit_scale, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def init_airbench_net(model, x_train, n_images: int = 5000, eps: float = 5e-4) -> None:
    """Set the whitening and identity ("Dirac") initial weights of :func:`airbench_net`.

    ``"whiten"`` gets the eigenvectors of the 2x2-patch covariance of the first ``n_images``
    of ``x_train`` (float32 in [0, 1], standardised by the model), divided by
    ``sqrt(eigenvalue + eps)``, and their negatives (so the ReLU keeps both signs). In every
    other 3x3 convolution the first ``in_channels`` filters are the identity, an implicit
    residual connection.
    """
    x = np.asarray(x_train[:n_images], dtype=np.float32)
    if "standardize" in [layer.name for layer in model.layers]:
        x = np.asarray(model.get_layer("standardize")(x))
    whiten = model.get_layer("whiten")
    kh, kw, c, out = whiten.kernel.shape
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    # (N, H', W', C, kh, kw) -> one row per patch, in the kernel's (kh, kw, C) order
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * c).astype(np.float64)
    cov = patches.T @ patches / len(patches)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    scaled = vectors[:, order] / np.sqrt(values[order] + eps)
    kernel = np.concatenate([scaled, -scaled], axis=1)[:, :out]
    whiten.kernel.assign(kernel.reshape(kh, kw, c, out).astype(np.float32))
    for layer in model.layers:
        if layer.name != "whiten" and type(layer).__name__ == "Conv2D":
            k = np.array(layer.kernel)
            n = min(k.shape[2], k.shape[3])
            k[:, :, :, :n] = 0.0
            k[k.shape[0] // 2, k.shape[1] // 2, np.arange(n), np.arange(n)] = 1.0
            layer.kernel.assign(k)


def introspection_net(
    num_inputs: int = 10, hidden: int = 128, dropout: float = 0.2, name="introspection_net"
):
    """Introspection-Net (Section 3.1): a small regression net on the logits.

    We read "3 dense layers with 128 neurons" as three hidden layers plus a one-unit output;
    its sigmoid keeps the confidence in [0, 1].
    """
    import keras
    from keras import layers

    x = inputs = keras.Input(shape=(int(num_inputs),), name="logits")
    for i in (1, 2):
        x = layers.Dense(hidden, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = layers.BatchNormalization(name="batchnorm")(x)
    x = layers.Dense(hidden, activation="relu", name="dense3")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="confidence")(x)
    return keras.Model(inputs, outputs, name=name)


def feature_model(model, layer: str = "features"):
    """A model with the same input returning ``(output of layer, logits)``."""
    import keras

    try:
        features = model.get_layer(layer).output
    except ValueError as err:
        raise ValueError(f"Model {model.name!r} has no layer named {layer!r}.") from err
    return keras.Model(model.input, [features, model.output], name=f"{model.name}_features")


def _batches(x, batch_size) -> list[np.ndarray]:
    """``x`` as float32, in batches of ``batch_size`` examples."""
    _check_positive_int("batch_size", batch_size)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2:
        raise ValueError(f"Expected a batch of inputs, got shape {x.shape}.")
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def predict_logits(model, x, batch_size: int = 256) -> np.ndarray:
    """Logits ``(N, num_classes)`` of ``model`` on ``x``, in inference mode, batch by batch."""
    batches = _batches(x, batch_size)
    if not batches:
        return np.zeros((0, model.outputs[0].shape[-1]), dtype=np.float32)
    out = [np.asarray(model(batch, training=False)) for batch in batches]
    return np.concatenate(out).astype(np.float32)


def predict_features(model, x, layer: str = "features", batch_size: int = 256):
    """Features ``(N, D)`` (flattened per example) and logits of a classifier on ``x``."""
    batches, fm = _batches(x, batch_size), feature_model(model, layer)
    if not batches:
        raise ValueError("x is empty.")
    out = [[np.asarray(a) for a in fm(batch, training=False)] for batch in batches]
    feats = np.concatenate([f.reshape(len(z), -1) for f, z in out]).astype(np.float32)
    return feats, np.concatenate([z for _, z in out]).astype(np.float32)


@functools.cache
def fused_batch_normalization():
    """Keras' ``BatchNormalization`` computed in training by TensorFlow's fused kernel.

    On CPU Keras 3's separate element-wise batch-norm passes cost more than a Wide ResNet's
    convolutions. This subclass trains with ``tf.compat.v1.nn.fused_batch_norm`` and updates
    the moving statistics as Keras; the rest is Keras' code. Same constructor and weights as
    the standard layer; outputs agree to float32 round-off (tests/test_models.py).
    """
    import keras

    class FusedBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            fused = (
                training and self.trainable and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4 and self.axis in (3, -1)
                and keras.backend.backend() == "tensorflow"
            )
            if not fused:
                return super().call(inputs, training=training, mask=mask)
            import tensorflow as tf

            channels = inputs.shape[-1]
            gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
            beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), "float32")
            variance = variance * (n - 1.0) / n
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
            return tf.cast(y, self.compute_dtype)

    return FusedBatchNormalization


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Build layers under a Keras dtype policy, restoring the previous one afterwards.

    ``policy``: ``"float32"`` or ``"mixed_bfloat16"`` (bfloat16 compute, float32 weights; the
    ``"logits"`` layer stays float32).

    Examples
    --------
    >>> with dtype_policy("mixed_bfloat16"):  # doctest: +SKIP
    ...     model = paper_cnn()
    """
    import keras

    if policy not in ("float32", "mixed_bfloat16"):
        raise ValueError(f"Unknown precision {policy!r}; expected 'float32' or 'mixed_bfloat16'.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def count_params(model) -> int:
    """All parameters of a model: trainable weights and BatchNorm statistics."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def forward_flops(model) -> int:
    """Floating-point operations of one image's forward pass through the weight layers.

    Two per multiply-add of ``Conv2D`` and ``Dense`` layers; a training step costs ~3x this.
    """
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Dense"):  # a convolution's kernel applies at every position
            positions = np.prod(layer.output.shape[1:-1]) if kind == "Conv2D" else 1
            total += 2 * int(positions) * int(np.prod(layer.kernel.shape))
    return total


def _check_keras_path(path) -> Path:
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Models are stored in the .keras format only; got {path.name!r}.")
    return path


def save_model(model, path) -> Path:
    """Save a model to a ``.keras`` file atomically (temporary file, then rename)."""
    from .artifacts import atomic_write

    path = _check_keras_path(path)
    atomic_write(path, model.save)
    return path


def load_model(path, compile: bool = False):
    """Load a ``.keras`` model (from :func:`save_model`) in safe mode."""
    import keras

    path = _check_keras_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    return keras.models.load_model(path, compile=compile, safe_mode=True)
