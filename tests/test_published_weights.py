"""Published base classifiers: reused when they match, refused when corrupt or stale."""

import numpy as np
import pytest

from introspection import artifacts, build, classifier, config, hardware, training

ROOT = build.repo_root()


@pytest.fixture
def tiny_mnist(tmp_path):
    """A small random dataset in the files' layout: the test needs no real data."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (256, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 256).astype(np.uint8),
        "x_test": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 64).astype(np.uint8),
    }
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "mnist.npz", **arrays)
    return data


def configure(data, artifacts_dir, tmp_path, **params):
    # A seed of its own: the key of these weights of random data never equals a real one.
    return config.configure(
        "mnist", "smoke", seed=12345, data_dir=data, artifacts_dir=artifacts_dir,
        results_dir=tmp_path / "results", epochs=1, **params,
    )


def refuse(*args, **kwargs):
    raise AssertionError("trained instead of reusing the published weights")


def test_published_weights_are_reused_verified_and_refused_when_bad(
    tiny_mnist, tmp_path, monkeypatch
):
    published = tmp_path / "weights"
    monkeypatch.setattr(config, "published_weights_dir", lambda p, e: published / p / e)
    # Trained here, then published as `build --publish` does.
    cfg = configure(tiny_mnist, tmp_path / "a1", tmp_path)
    first = classifier.base_model(cfg, verbose=0)
    assert first.origin == "trained" and first.note is None
    made = first.history["trained_on"]
    assert made["precision"] == cfg.precision[0] and made["cpu"] == hardware.cpu_info()["model"]
    build.publish_weights("smoke", ["mnist"], {"seed": 12345, "data_dir": str(tiny_mnist),
                          "artifacts_dir": str(tmp_path / "a1")},
                          {"epochs": 1})
    folder = published / "smoke" / "mnist"
    assert {p.name for p in folder.iterdir()} == {
        "base_model.keras", "base_model.json", "base_model_history.data.json",
        "base_model_history.json"}
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    build.publish_weights("smoke", ["mnist"], {"seed": 12345, "data_dir": str(tiny_mnist),
                          "artifacts_dir": str(tmp_path / "a1")},
                          {"epochs": 1})
    assert before == {p.name: p.read_bytes() for p in folder.iterdir()}  # byte for byte

    # A fresh artifacts folder on a machine that would train in the other precision:
    # the published weights are used, nothing is trained.
    other = {"model": "Other CPU", "isa": "AVX2", "bf16": not hardware.cpu_info()["bf16"],
             "source": "/proc/cpuinfo", "machine": "x86_64", "flags": []}
    with monkeypatch.context() as m:
        m.setattr(hardware, "cpu_info", lambda *a, **k: other)
        m.setattr(training, "train_classifier", refuse)
        cfg2 = configure(tiny_mnist, tmp_path / "a2", tmp_path)
        # Stale artifacts of later stages (from other weights) must not survive the import.
        artifacts.save_json(cfg2.artifacts_dir, "data_fgsm", {"x": 1}, params={"a": 1})
        reused = classifier.base_model(cfg2, verbose=0)
        assert reused.origin == "published" and reused.note is None
        assert reused.history == first.history and reused.test_accuracy == first.test_accuracy
        assert not artifacts.names(cfg2.artifacts_dir, "data_*")
        x = np.random.default_rng(1).uniform(size=(8, 28, 28, 1)).astype(np.float32)
        np.testing.assert_array_equal(
            reused.model.predict(x, verbose=0), first.model.predict(x, verbose=0)
        )
        assert classifier.base_model(cfg2, verbose=0).origin == "cache"

    # Other parameters: reported, not used, trained instead.
    cfg3 = configure(tiny_mnist, tmp_path / "a3", tmp_path, batch_size=32)
    stale = classifier.base_model(cfg3, verbose=0)
    assert stale.origin == "trained" and "other parameters" in stale.note
    assert "batch_size" in stale.note

    # A corrupted file: reported, not used, trained instead.
    path = folder / "base_model.keras"
    path.write_bytes(path.read_bytes()[:-100])
    cfg4 = configure(tiny_mnist, tmp_path / "a4", tmp_path)
    corrupt = classifier.base_model(cfg4, verbose=0)
    assert corrupt.origin == "trained" and "does not match its manifest" in corrupt.note
    assert "were not used" in corrupt.note

    # retrain ignores the cache as well.
    with monkeypatch.context() as m:
        m.setattr(training, "train_classifier", refuse)
        with pytest.raises(AssertionError, match="trained instead"):
            classifier.base_model(cfg2, verbose=0, retrain=True)


@pytest.mark.parametrize("experiment", list(config.EXPERIMENTS))
def test_committed_cpu_weights_match_the_cpu_profile(experiment, tmp_path):
    """The committed weights verify and match the profile: `build --profile cpu` reuses them."""
    folder = ROOT / "weights" / "cpu" / experiment
    assert folder.is_dir(), "missing: python -m introspection build --profile cpu --publish"
    cfg = config.configure(experiment, "cpu", artifacts_dir=tmp_path, results_dir=tmp_path)
    params = cfg.stage_params("base_model")
    assert config.published_weights_dir("cpu", experiment) == folder
    history = artifacts.load_json(folder, "base_model_history", params=params)
    model = artifacts.load_model(folder, "base_model", params=params)  # Keras' safe mode
    assert model.output_shape == (None, 10) and {"precision", "cpu", "isa"} <= set(
        history["trained_on"])
    assert len(history["epoch_seconds"]) == cfg["epochs"]
