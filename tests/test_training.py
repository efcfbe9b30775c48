import keras
import numpy as np
import pytest

from introspection import models, training


def blobs(n=600, seed=0):
    """Ten easy classes: a bright 7x7 square at a class-specific position."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.uniform(0, 0.2, (n, 28, 28, 1)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 5)
        x[i, 3 + 12 * r : 10 + 12 * r, 1 + 5 * q : 8 + 5 * q, 0] += 0.8
    return x, y


def test_classifier_training_learns_and_is_seeded():
    x, y = blobs(1200)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        m = models.paper_cnn()
        h = training.train_classifier(
            m,
            x,
            y,
            epochs=3,
            batch_size=64,
            optimizer="rmsprop",
            schedule="cosine",
            augment="mnist",
            validation_data=(x[:100], y[:100]),
            seed=0,
        )
        runs.append((h, models.predict_logits(m, x[:50])))
    h, logits = runs[0]
    assert set(h) >= {
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "epoch_seconds",
        "learning_rate",
    }
    assert h["loss"][-1] < h["loss"][0]
    assert h["val_accuracy"][-1] > 0.8
    assert (
        h["learning_rate"][0] == pytest.approx(1e-3)
        and h["learning_rate"][2] < h["learning_rate"][1] < 1e-3
    )
    np.testing.assert_allclose(runs[1][1], logits, rtol=1e-4, atol=1e-4)


def test_augmentations_keep_shape_and_range():
    x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype(np.float32)
    out = np.asarray(training.augmentation("cifar10", seed=1)(x, training=True))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    # A random crop of the zero-padded image plus a flip: shifted copies, not identity.
    assert not np.allclose(out, x)
    # Each image draws its own transformation; none at inference.
    same = np.tile(x[:1], (16, 1, 1, 1))
    for kind, images in (("cifar10", same), ("mnist", same[..., :1][:, :28, :28])):
        aug = training.augmentation(kind, seed=0)
        assert len({o.tobytes() for o in np.asarray(aug(images, training=True))}) > 8
        np.testing.assert_array_equal(np.asarray(aug(images, training=False)), images)
    np.testing.assert_array_equal(np.asarray(training.augmentation("none")(x)), x)
    with pytest.raises(ValueError):
        training.augmentation("svhn")


def test_padded_random_crop_shifts_each_image_on_its_own():
    rng = np.random.default_rng(0)
    x = np.tile(rng.uniform(0.1, 1, size=(1, 12, 10, 3)).astype(np.float32), (400, 1, 1, 1))
    layer = training.padded_random_crop(2, seed=0)
    out = np.asarray(layer(x, training=True))
    assert out.shape == x.shape
    padded = np.pad(x[0], ((2, 2), (2, 2), (0, 0)))
    shifts = []
    for o in out:
        # Each output is one window of the zero-padded image.
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(o, padded[dy : dy + 12, dx : dx + 10])
        ]
        assert len(hits) == 1
        shifts.append(hits[0])
    # Every image draws its own offset, uniform over the 25 positions.
    counts = np.bincount([5 * dy + dx for dy, dx in shifts], minlength=25)
    assert counts.min() > 3 and counts.max() < 35
    # The identity at inference; seeded.
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    again = np.asarray(training.padded_random_crop(2, seed=0)(x, training=True))
    np.testing.assert_array_equal(again, out)
    with pytest.raises(ValueError, match="pad"):
        training.padded_random_crop(0)


def test_step_schedule_follows_wrn_recipe():
    s = training.learning_rate_schedule("step", 0.1, 200)
    values = [float(s(t)) for t in (0, 59, 61, 119, 121, 159, 161, 199)]
    np.testing.assert_allclose(
        values, [0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008], rtol=1e-5
    )
    assert training.learning_rate_schedule("constant", 0.5, 10) == 0.5
    with pytest.raises(ValueError):
        training.learning_rate_schedule("linear", 0.1, 10)


def test_bad_training_input():
    m = models.paper_cnn()
    x, y = blobs(20)
    with pytest.raises(ValueError, match="float32"):
        training.train_classifier(m, x.astype(np.float64), y, epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="labels"):
        training.train_classifier(m, x, y[:5], epochs=1, batch_size=4)
    with pytest.raises(ValueError):
        training.train_classifier(m, x, y, epochs=0, batch_size=4)


def test_introspection_net_learns_a_logit_rule():
    # Confidence is 1 when the logits are high on average (the paper's Figure 1 cue):
    # a rule on the logits it must learn (examples near the boundary left out).
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (4000, 10)).astype(np.float32)
    mean = z.mean(axis=1)
    keep = np.abs(mean) > 0.3
    z, label = z[keep], (mean[keep] > 0).astype(np.float32)
    net = models.introspection_net()
    h = training.train_introspection_net(net, z, label, epochs=15, seed=0)
    assert len(h["loss"]) == 15 and "val_loss" in h
    assert h["val_accuracy"][-1] > 0.9
    with pytest.raises(ValueError, match="0 .* or 1"):
        training.train_introspection_net(net, z, label * 2, epochs=1)


def test_introspection_net_steps_per_execution_changes_nothing_but_speed():
    # Several steps per compiled call must give the same losses and weights as one:
    # same batches, same order, same dropout draws (ragged last batch included).
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (1000, 10)).astype(np.float32)
    label = (z.mean(axis=1) > 0).astype(np.float32)
    runs = []
    for spe in (1, 7):
        keras.utils.set_random_seed(4)
        net = models.introspection_net()
        h = training.train_introspection_net(
            net, z, label, epochs=3, seed=4, steps_per_execution=spe
        )
        runs.append((h, net.get_weights()))
    (h1, w1), (h7, w7) = runs
    np.testing.assert_allclose(h1["loss"], h7["loss"], rtol=1e-6)
    np.testing.assert_allclose(h1["val_loss"], h7["val_loss"], rtol=1e-6)
    for a, b in zip(w1, w7, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="steps_per_execution"):
        training.train_introspection_net(net, z, label, epochs=1, steps_per_execution=0)


def test_interrupted_training_resumes_from_the_last_epoch(tmp_path):
    x, y = blobs(300)
    backup = tmp_path / "backup"

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # killed after the second epoch

    keras.utils.set_random_seed(0)
    m = models.paper_cnn()
    with pytest.raises(KeyboardInterrupt):
        training.train_classifier(
            m, x, y, epochs=4, batch_size=64, seed=0, callbacks=[Interrupt()], backup_dir=backup
        )
    assert (backup / "history.csv").is_file()

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    keras.utils.set_random_seed(0)
    m2 = models.paper_cnn()
    h = training.train_classifier(
        m2, x, y, epochs=4, batch_size=64, seed=0, callbacks=[Record()], backup_dir=backup
    )
    assert seen == [2, 3]  # only the epochs that had not finished
    assert len(h["loss"]) == 4 and len(h["epoch_seconds"]) == 4
    assert not backup.exists()  # cleaned up after a complete run
