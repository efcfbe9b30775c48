"""The airbench network, its initialisation and recipe (CIFAR-10's cpu classifier)."""

import keras
import numpy as np
import pytest

from introspection import classifier, config, datasets, models, training


def test_airbench_net_shape_size_and_standard_layers(tmp_path):
    m = models.airbench_net(input_mean=[0.5] * 3, input_std=[0.25] * 3)
    assert models.count_params(m) == 1_973_920
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype(np.float32)
    assert m(x).shape == (3, 10) and m.get_layer("features").output.shape == (None, 256)
    assert m.get_layer("logits").dtype == "float32"
    # Saved and loaded in safe mode: nothing but Keras' own layers.
    path = models.save_model(m, tmp_path / "a.keras")
    np.testing.assert_allclose(models.load_model(path)(x), m(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        models.airbench_net(widths=(64, 256))


def test_kernel_initialisation_as_pytorch_or_keras():
    keras.utils.set_random_seed(0)
    torch_like = np.array(models.airbench_net().get_layer("g3c1").kernel)  # 256 -> 256
    glorot = np.array(models.airbench_net(kernel_init="keras").get_layer("g3c1").kernel)
    fan_in = 3 * 3 * 256
    # PyTorch's default: uniform on +-1/sqrt(fan_in), variance 1 / (3 fan_in).
    assert np.abs(torch_like).max() <= 1 / np.sqrt(fan_in) + 1e-7
    assert torch_like.var() == pytest.approx(1 / (3 * fan_in), rel=0.02)
    assert glorot.var() == pytest.approx(2 / (2 * fan_in), rel=0.02)
    with pytest.raises(ValueError, match="kernel_init"):
        models.airbench_net(kernel_init="he")


def test_whitening_and_identity_initialisation():
    rng = np.random.default_rng(0)
    # Correlated pixels: smooth images, so whitening has something to undo.
    x = rng.uniform(size=(400, 32, 32, 3)).astype(np.float32)
    x = (x + np.roll(x, 1, axis=1) + np.roll(x, 1, axis=2)) / 3
    m = models.airbench_net()
    models.init_airbench_net(m, x)
    kernel = np.array(m.get_layer("whiten").kernel)  # (2, 2, 3, 24)
    assert not m.get_layer("whiten").trainable
    # The first 12 filters whiten the 2x2 patches: their outputs have identity
    # covariance (eps aside); the last 12 are their negatives.
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12).astype(np.float64)
    out = patches @ kernel.reshape(12, 24)[:, :12]
    cov = out.T @ out / len(out)
    np.testing.assert_allclose(cov, np.eye(12), atol=0.05)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])
    # Identity filters: the first in_channels outputs of a 3x3 convolution copy its input.
    k = np.array(m.get_layer("g2c1").kernel)  # 64 -> 256
    centre = np.zeros((3, 3))
    centre[1, 1] = 1
    for i in (0, 17, 63):
        np.testing.assert_array_equal(k[:, :, i, i], centre)
        assert np.count_nonzero(k[:, :, :, i]) == 1
    assert np.count_nonzero(k[:, :, :, 64:]) > 0.9 * k[:, :, :, 64:].size


def test_forward_flops_known_answer():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)  # 8*8*4 outputs x 27 MACs
    x = keras.layers.Conv2D(5, 2)(x)  # 7*7*5 outputs x 16 MACs
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10)(x)  # 245 x 10 MACs
    m = keras.Model(inp, out)
    assert models.forward_flops(m) == 2 * (8 * 8 * 4 * 27 + 7 * 7 * 5 * 16 + 245 * 10)
    # airbench94's 0.36 PFLOP over 9.9 epochs of 50,000 images is 3 forward passes of ours.
    per_image = 0.36e15 / (9.9 * 50000) / 3
    assert models.forward_flops(models.airbench_net()) == pytest.approx(per_image, rel=0.05)


def test_warmup_cosine_schedule():
    s = training.learning_rate_schedule("warmup_cosine", 1.5, 1000)
    assert float(s(0)) == pytest.approx(0.3)
    assert float(s(230)) == pytest.approx(1.5, rel=1e-4)
    assert float(s(115)) == pytest.approx(0.9, rel=1e-3)  # linear warm-up
    assert float(s(1000)) == pytest.approx(0.07 * 1.5, rel=1e-3)
    values = [float(s(t)) for t in range(230, 1001, 50)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_bias_learning_rate_scale_applies_to_batchnorm_biases_only():
    def one_step(scale):
        keras.utils.set_random_seed(0)
        inp = keras.Input((4,))
        h = keras.layers.Dense(3, use_bias=False, name="dense")(inp)
        out = keras.layers.BatchNormalization(scale=False, name="bn")(h)
        m = keras.Model(inp, out)
        before = [np.array(w) for w in m.trainable_weights]
        opt = training._optimizer("sgd", 0.1, momentum=0.0, bias_lr_scale=scale)
        m.compile(optimizer=opt, loss="mse")
        x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
        y = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
        m.train_on_batch(x, y)
        return {w.name: np.array(w) - b for w, b in zip(m.trainable_weights, before, strict=True)}

    plain, scaled = one_step(1.0), one_step(64.0)
    np.testing.assert_allclose(scaled["beta"], 64 * plain["beta"], rtol=1e-5)
    np.testing.assert_allclose(scaled["kernel"], plain["kernel"], rtol=1e-6)


def test_reflect_crop_is_a_window_of_the_reflected_image():
    rng = np.random.default_rng(0)
    x = np.tile(rng.uniform(size=(1, 8, 8, 3)).astype(np.float32), (50, 1, 1, 1))
    out = np.asarray(training.padded_random_crop(2, seed=0, fill="reflect")(x, training=True))
    padded = np.pad(x[0], ((2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = [padded[dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
    for o in out:
        assert any(np.array_equal(o, w) for w in windows)
    with pytest.raises(ValueError, match="fill"):
        training.padded_random_crop(2, fill="wrap")


def test_jpeg_roundtrip_compresses_once():
    rng = np.random.default_rng(0)
    # Smooth colour images: JPEG changes them a little, and a second pass much less.
    x = rng.uniform(0, 255, size=(6, 32, 32, 3))
    x = ((x + np.roll(x, 1, 1) + np.roll(x, 1, 2)) / 3).astype(np.uint8)
    once = datasets.jpeg_roundtrip(x)
    twice = datasets.jpeg_roundtrip(once)
    assert once.shape == x.shape and once.dtype == np.uint8
    first = np.abs(once.astype(int) - x).mean()
    second = np.abs(twice.astype(int) - once).mean()
    assert first > 2 and second < first / 2
    with pytest.raises(ValueError):
        datasets.jpeg_roundtrip(x[..., :1])


def test_cifar_only_parameters_leave_mnist_keys_alone():
    mnist = config.configure("mnist", "cpu")
    key = mnist.stage_params("base_model")
    assert not {"architecture", "momentum", "bias_lr_scale", "crop_pad"} & set(key)
    cifar = config.configure("cifar10", "cpu")
    assert cifar.stage_params("base_model")["architecture"] == "airbench"
    other = config.configure("cifar10", "cpu", overrides={"bias_lr_scale": 1.0})
    assert other.stage_params("base_model") != cifar.stage_params("base_model")
    assert "architecture" not in mnist.table().index
    args = classifier.training_arguments(cifar)
    assert args["crop_fill"] == "reflect" and args["batch_size"] == 1024
    assert "momentum" not in classifier.training_arguments(mnist)


@pytest.fixture
def tiny_cifar(tmp_path):
    """Random images in the layout of cifar10.npz: the test needs no real data."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 256).astype(np.uint8),
        "x_test": rng.integers(0, 256, (1100, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 1100).astype(np.uint8),
    }
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "cifar10.npz", **arrays)
    return data


def test_airbench_trains_through_the_pipeline_into_a_standard_model(tiny_cifar, tmp_path):
    cfg = config.configure(
        "cifar10", "cpu", seed=12345, data_dir=tiny_cifar, artifacts_dir=tmp_path / "a",
        results_dir=tmp_path / "r", overrides={"epochs": 2, "batch_size": 64},
    )
    base = classifier.base_model(cfg, verbose=0)
    assert base.origin == "trained" and base.model.name == "airbench"
    assert len(base.history["loss"]) == 2 and np.isfinite(base.history["loss"]).all()
    # The learning rate warms up, then decays (the 64x of the biases is not in the log).
    assert base.history["learning_rate"][0] == pytest.approx(0.3)
    # The cached model is reloaded in safe mode and gives the same logits.
    again = classifier.base_model(cfg, verbose=0)
    assert again.origin == "cache"
    x = datasets.to_float(np.load(tiny_cifar / "cifar10.npz")["x_test"][:8])
    np.testing.assert_allclose(again.model(x), base.model(x), rtol=1e-5, atol=1e-5)
    cost = classifier.training_cost(cfg, base)
    assert cost["epochs"] == 2 and cost["images_per_second"] > 0
    assert cost["training_pflop"] == pytest.approx(
        3 * models.forward_flops(base.model) * 256 * 2 / 1e15
    )
    jpeg = classifier.jpeg_cost(cfg, base.model)
    table = jpeg["table"]
    assert list(table["images"]) == [1000, 100, 1000]
    lost, low, high = jpeg["paired"]
    assert lost == pytest.approx(table.iloc[0, 1] - table.iloc[2, 1]) and low <= lost <= high
    with pytest.raises(ValueError, match="CIFAR-10"):
        classifier.jpeg_cost(config.configure("mnist", "smoke"), base.model)


def test_lookahead_averages_every_five_steps_and_ends_on_the_average():
    class Stub:
        variables = [keras.Variable(np.zeros(3, "float32")), keras.Variable(np.int32(7))]

    total, per_epoch = 20, 10
    cb = training._lookahead(total, per_epoch)
    cb.set_model(Stub())
    w, i = Stub.variables[0], Stub.variables[1]
    avg, current = None, 0.0
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        for b in range(per_epoch):
            step = epoch * per_epoch + b + 1
            current = float(step)  # what the optimizer made of the weights
            w.assign(np.full(3, current, "float32"))
            cb.on_train_batch_end(b)
            if avg is None:
                avg = current
            if step % 5 == 0:
                decay = 0.95**5 * (step / total) ** 3
                avg = decay * avg + (1 - decay) * current
                current = avg
            np.testing.assert_allclose(np.asarray(w), current, rtol=1e-6)
    w.assign(np.full(3, 99.0, "float32"))
    cb.on_train_end()
    np.testing.assert_allclose(np.asarray(w), avg, rtol=1e-6)
    assert int(np.asarray(i)) == 7  # integer variables (seed states) are left alone


def test_airbench_stem_runs_in_float32_under_mixed_precision():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        m = models.airbench_net(widths=(8, 8, 8), input_mean=[0.5] * 3, input_std=[0.25] * 3)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    for name in ("standardize", "whiten", "whiten_relu", "logits"):
        assert m.get_layer(name).compute_dtype == "float32"
    assert m.get_layer("g1c1").compute_dtype == "bfloat16"
