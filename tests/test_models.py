import os

import numpy as np
import pytest

from introspection import hardware, models


def test_paper_cnn_matches_table1():
    m = models.paper_cnn()
    assert models.count_params(m) == 730_602
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in m.layers}
    assert shapes["conv1"] == (26, 26, 32)
    assert shapes["conv2"] == (24, 24, 32)
    assert shapes["pool1"] == (12, 12, 32)
    assert shapes["conv4"] == (12, 12, 64)
    assert shapes["pool2"] == (6, 6, 64)
    assert shapes["conv5"] == (6, 6, 128)
    assert shapes["flatten"] == (4608,)
    assert shapes["logits"] == (10,)
    # Logits are a first-class output: the last layer has no activation.
    assert m.get_layer("logits").activation.__name__ == "linear"


@pytest.mark.parametrize("depth, width, expected", [(28, 10, 36_497_146), (28, 8, 23_369_210)])
def test_wide_resnet_parameter_counts(depth, width, expected):
    assert models.count_params(models.wide_resnet(depth, width)) == expected


def test_wide_resnet_rejects_bad_depth():
    with pytest.raises(ValueError, match="multiple of 6"):
        models.wide_resnet(27, 2)
    with pytest.raises(ValueError):
        models.wide_resnet(16, 0)


def test_wide_resnet_standardises_inside_the_model():
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    m = models.wide_resnet(10, 1, input_mean=mean, input_std=std)
    inner = models.feature_model(m, "standardize")
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    z, _ = inner(x)
    np.testing.assert_allclose(np.asarray(z), (x - mean) / np.asarray(std), rtol=1e-4, atol=1e-5)


def test_introspection_net_shape():
    m = models.introspection_net()
    assert [layer.__class__.__name__ for layer in m.layers[1:]] == [
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "BatchNormalization",
        "Dense",
        "Dense",
    ]
    out = m(np.zeros((4, 10), np.float32))
    assert out.shape == (4, 1)
    assert np.all((np.asarray(out) >= 0) & (np.asarray(out) <= 1))


def test_predict_logits_and_features_batched():
    m = models.wide_resnet(10, 1)
    x = np.random.default_rng(1).uniform(size=(7, 32, 32, 3)).astype(np.float32)
    full = np.asarray(m(x, training=False))
    # Batches of 3 and 2 vs one of 7: oneDNN picks kernels per ISA and batch size, so
    # the float32 logits agree to float32 round-off only.
    np.testing.assert_allclose(
        models.predict_logits(m, x, batch_size=3), full, rtol=1e-5, atol=1e-5
    )
    feats, logits = models.predict_features(m, x, batch_size=2)
    assert feats.shape == (7, 64)  # 64 * width channels
    np.testing.assert_allclose(logits, full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no layer"):
        models.feature_model(m, "nope")


def test_save_and_load_keras_only(tmp_path):
    m = models.wide_resnet(10, 1, input_mean=[0.5] * 3, input_std=[0.25] * 3)
    x = np.random.default_rng(2).uniform(size=(3, 32, 32, 3)).astype(np.float32)
    path = models.save_model(m, tmp_path / "wrn.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["wrn.keras"]  # no temporary left behind
    loaded = models.load_model(path)
    np.testing.assert_allclose(
        models.predict_logits(loaded, x), models.predict_logits(m, x), atol=1e-6
    )
    with pytest.raises(ValueError, match=".keras"):
        models.save_model(m, tmp_path / "wrn.h5")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.keras")


def test_dtype_policy_is_scoped_and_logits_stay_float32():
    import keras

    before = keras.config.dtype_policy().name
    with models.dtype_policy("mixed_bfloat16"):
        cnn = models.paper_cnn()
        wrn = models.wide_resnet(10, 1)
    assert keras.config.dtype_policy().name == before
    for m in (cnn, wrn):
        assert m.get_layer("features").compute_dtype == "bfloat16"
        assert m.get_layer("logits").compute_dtype == "float32"
        assert m.output.dtype == "float32"
        assert all(w.dtype == "float32" for w in m.weights)  # weights stay float32
    with pytest.raises(ValueError, match="precision"):
        with models.dtype_policy("float16"):
            pass


# Under ONEDNN_MAX_CPU_ISA below bfloat16 (how an AVX2-only CPU is emulated on a newer
# one) TensorFlow still hands bfloat16 ops to oneDNN, which then has no primitive for
# them; a real AVX2-only CPU runs them (slowly) with TensorFlow's own kernels.
needs_bf16_kernels = pytest.mark.skipif(
    not hardware._onednn_allows_bf16(os.environ.get("ONEDNN_MAX_CPU_ISA", "")),
    reason="oneDNN is capped below bfloat16 (ONEDNN_MAX_CPU_ISA)",
)


@needs_bf16_kernels
def test_mixed_precision_weights_load_into_a_float32_model():
    import keras

    keras.utils.set_random_seed(0)
    with models.dtype_policy("mixed_bfloat16"):
        mixed = models.paper_cnn()
    plain = models.paper_cnn()
    plain.set_weights(mixed.get_weights())
    x = np.random.default_rng(0).uniform(size=(16, 28, 28, 1)).astype(np.float32)
    a = models.predict_logits(mixed, x)
    b = models.predict_logits(plain, x)
    assert plain.get_layer("features").compute_dtype == "float32"
    # Same weights, bfloat16 vs float32 arithmetic: close, not equal.
    np.testing.assert_allclose(a, b, atol=0.05 * np.abs(b).max())
    assert not np.array_equal(a, b)


def _bn_pair(**kwargs):
    """A Keras BatchNormalization and a fused one with the same weights."""
    import keras

    fused_cls = models.fused_batch_normalization()
    a = keras.layers.BatchNormalization(momentum=0.9, **kwargs)
    b = fused_cls(momentum=0.9, **kwargs)
    rng = np.random.default_rng(0)
    x = (3.0 + 2.0 * rng.standard_normal((8, 5, 6, 4))).astype(np.float32)
    a.build(x.shape)
    b.build(x.shape)
    weights = [w + rng.uniform(0.5, 1.5, size=w.shape).astype(np.float32) for w in a.get_weights()]
    a.set_weights(weights)
    b.set_weights(weights)
    return a, b, x


@pytest.mark.parametrize("center_scale", [True, False])
def test_fused_batch_normalization_matches_keras_in_training(center_scale):
    import tensorflow as tf

    a, b, x = _bn_pair(center=center_scale, scale=center_scale)
    assert isinstance(b, type(a))
    xt = tf.constant(x)
    outs, grads = [], []
    for layer in (a, b):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
            loss = tf.reduce_sum(tf.sin(y) * tf.range(1.0, 1.0 + y.shape[-1]))
        outs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [xt, *layer.trainable_weights])])
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    # The output is normalised per channel with the biased batch variance.
    if not center_scale:
        np.testing.assert_allclose(outs[1].mean(axis=(0, 1, 2)), 0, atol=1e-5)
        np.testing.assert_allclose(outs[1].var(axis=(0, 1, 2)), 1, atol=1e-2)
    for ga, gb in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-4)
    # Same moving statistics (Keras' momentum and biased variance), which moved: two
    # implementations summing 240 float32 values in their own orders, so float32 rtol.
    for wa, wb in zip(a.non_trainable_weights, b.non_trainable_weights, strict=True):
        np.testing.assert_allclose(wb.numpy(), wa.numpy(), rtol=1e-5)
    # Inference is Keras' own code: identical with identical weights.
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(b(xt, training=False).numpy(), a(xt, training=False).numpy())


def test_fused_batch_normalization_updates_statistics_like_keras():
    a, b, x = _bn_pair()
    before = b.moving_variance.numpy().copy()
    b(x, training=True)
    expected = 0.9 * before + 0.1 * x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(b.moving_variance.numpy(), expected, rtol=1e-5)
    assert not np.allclose(before, expected)


@needs_bf16_kernels
def test_fused_batch_normalization_under_bfloat16():
    import keras

    _, _, x = _bn_pair()
    with models.dtype_policy("mixed_bfloat16"):
        a = keras.layers.BatchNormalization()
        b = models.fused_batch_normalization()()
    ya = a(x.astype("bfloat16"), training=True)
    yb = b(x.astype("bfloat16"), training=True)
    assert yb.dtype == ya.dtype == "bfloat16"
    assert b.moving_mean.dtype == "float32"
    np.testing.assert_allclose(
        np.asarray(yb, dtype=np.float32), np.asarray(ya, dtype=np.float32), atol=0.03
    )


def test_wide_resnet_trained_fused_copies_into_a_standard_model():
    import keras

    keras.utils.set_random_seed(0)
    fused = models.wide_resnet(10, 1, fused_batchnorm=True)
    keras.utils.set_random_seed(0)
    plain = models.wide_resnet(10, 1)
    fused_cls = models.fused_batch_normalization()
    assert sum(isinstance(la, fused_cls) for la in fused.layers) == 7  # 2 per block + head
    assert not any(isinstance(la, fused_cls) for la in plain.layers)
    # Same initial weights from the same seed.
    for wf, wp in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(wf, wp)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=32)
    for m in (fused, plain):
        m.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    # One epoch of training gives the same weights, up to float32 round-off.
    for wf, wp in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(wf, wp, rtol=1e-3, atol=1e-4)
    copy = models.wide_resnet(10, 1)
    copy.set_weights(fused.get_weights())
    np.testing.assert_array_equal(models.predict_logits(copy, x), models.predict_logits(fused, x))
