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
