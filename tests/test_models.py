import numpy as np
import pytest

from introspection import models


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
