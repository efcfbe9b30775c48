import numpy as np
import pytest

from introspection import config


def test_profiles_resolve_for_both_experiments(tmp_path):
    for profile in config.PROFILES:
        for exp in config.EXPERIMENTS:
            cfg = config.configure(exp, profile, artifacts_dir=tmp_path, results_dir=tmp_path)
            assert set(cfg.params) == set(config.PARAMETERS)
            assert cfg.artifacts_dir == tmp_path / exp / cfg.profile


def test_paper_profile_is_the_paper():
    cfg = config.configure("cifar10", "paper")
    assert (cfg["wrn_depth"], cfg["wrn_width"], cfg["epochs"]) == (28, 8, 200)
    m = config.configure("mnist", "paper")
    assert (m["epochs"], m["batch_size"], m["optimizer"]) == (30, 64, "rmsprop")
    assert (m["n_train_in"], m["n_train_other"], m["n_test"]) == (5000, 700, 2000)
    assert m["introspection_epochs"] == 60 and m["val_fraction"] == 0.1


def test_overrides_and_explicit_parameters(tmp_path):
    cfg = config.configure(
        "mnist",
        "smoke",
        artifacts_dir=tmp_path,
        results_dir=tmp_path,
        overrides={"epochs": 3, "fgsm_eps": 0.1},
        epochs=None,
        fgsm_eps=0.2,
    )
    assert cfg["epochs"] == 3  # None = "not given": the override stays
    assert cfg["fgsm_eps"] == 0.2  # an explicit value wins over overrides
    assert cfg.overrides == {"epochs": 3, "fgsm_eps": 0.2}
    assert (
        config.configure(
            "mnist",
            "smoke",
            n_source="null",
            n_test=100,
            n_train_in=200,
            artifacts_dir=tmp_path,
            results_dir=tmp_path,
        )["n_source"]
        is None
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"experiment": "svhn"}, "'experiment' must be one of mnist, cifar10"),
        ({"profile": "fast"}, "'profile' must be one of"),
        ({"seed": -1}, "'seed'"),
        ({"epochs": 0}, "'epochs' must be >= 1"),
        ({"epochs": "ten"}, "'epochs' must be an integer"),
        ({"epochs": 2.5}, "'epochs' must be an integer"),
        ({"fgsm_eps": 1.5}, "'fgsm_eps' must be <= 1.0"),
        ({"bim_eps": -0.1}, "'bim_eps' must be >= 0.0"),
        ({"n_test": 0}, "'n_test'"),
        ({"n_test": 6000}, "'n_test' .* exceeds"),
        ({"n_train": 10**6}, "'n_train' exceeds"),
        ({"trust_feature": "pca"}, "'trust_feature' must be one of features, logits, pixels"),
        ({"augment": "yes"}, "'augment' must be true or false"),
        ({"wrn_depth": 27}, "'wrn_depth' must be 6n\\+4"),
        ({"colour": 1}, "Unknown parameter 'colour'"),
        ({"data_dir": "/nonexistent/dir"}, "'data_dir'"),
        ({"overrides": [1]}, "'overrides' must be a mapping"),
    ],
)
def test_bad_input_fails_with_one_clear_line(kwargs, match, tmp_path):
    args = {
        "experiment": "mnist",
        "profile": "quick",
        "artifacts_dir": tmp_path,
        "results_dir": tmp_path,
        **kwargs,
    }
    with pytest.raises(config.ConfigError, match=match) as info:
        config.configure(args.pop("experiment"), args.pop("profile"), **args)
    assert "\n" not in str(info.value)


def test_unwritable_artifacts_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(config.ConfigError, match="'artifacts_dir': cannot write"):
        config.configure("mnist", "smoke", artifacts_dir=blocker, results_dir=tmp_path)


def test_stage_parameters_follow_dependencies(tmp_path):
    cfg = config.configure("mnist", "smoke", artifacts_dir=tmp_path, results_dir=tmp_path)
    base = cfg.stage_params("base_model")
    gen = cfg.stage_params("misclassifications")
    net = cfg.stage_params("introspection_net")
    assert "epochs" in base and "fgsm_eps" not in base
    assert set(base) < set(gen) and "fgsm_eps" in gen
    # Figure parameters of the logit analysis do not retrain Introspection-Net.
    assert "n_analysis" in cfg.stage_params("logit_analysis") and "n_analysis" not in net
    assert "n_boot" in cfg.stage_params("evaluation") and "n_boot" not in net


def test_table_lists_a_stage(tmp_path):
    cfg = config.configure(
        "cifar10", "smoke", artifacts_dir=tmp_path, results_dir=tmp_path, epochs=3
    )
    t = cfg.table("base_model")
    assert "epochs" in t.index and "fgsm_eps" not in t.index
    assert "(overridden)" in t.loc["epochs", "meaning"]


def test_stage_keys_hold_code_revisions_and_library_versions(tmp_path, monkeypatch):
    cfg = config.configure("mnist", "smoke", artifacts_dir=tmp_path, results_dir=tmp_path)
    base = cfg.stage_params("base_model")
    assert base["versions"] == config.key_versions()
    assert set(base["versions"]) == set(config.KEY_LIBRARIES)
    assert base["versions"]["tensorflow"] != "absent"
    before = {s: cfg.stage_params(s) for s in config.STAGES}
    # A change of the attacks' code re-keys them and everything downstream, not training.
    monkeypatch.setitem(config.REVISIONS, "misclassifications", 99)
    after = {s: cfg.stage_params(s) for s in config.STAGES}
    changed = {s for s in config.STAGES if after[s] != before[s]}
    assert changed == {s for s in config.STAGES if "misclassifications" in config.DEPENDS_ON[s]}
    # So does another library version.
    monkeypatch.setattr(config, "key_versions", lambda: {**base["versions"], "keras": "0.0"})
    assert cfg.stage_params("base_model")["versions"]["keras"] == "0.0"


def test_precision_is_validated(tmp_path):
    with pytest.raises(config.ConfigError, match="precision"):
        config.configure(
            "mnist", "smoke", artifacts_dir=tmp_path, results_dir=tmp_path, precision="float16"
        )
    # No profile names a precision: the hardware chooses (tests/test_hardware.py).
    cfg = config.configure("cifar10", "cpu", artifacts_dir=tmp_path, results_dir=tmp_path)
    assert cfg["precision"] == "auto"
    assert (
        config.configure(
            "cifar10", "paper", artifacts_dir=tmp_path, results_dir=tmp_path, precision="float32"
        )["precision"]
        == "float32"
    )


def test_a_parameter_at_its_neutral_value_stays_out_of_the_stage_keys(tmp_path):
    # Parameters added later leave the keys, and so every cached artifact, as they were
    # while they keep the behaviour from before them.
    cfg = config.configure("mnist", "smoke", artifacts_dir=tmp_path)
    for name in ("patch_fill", "patch_max_per_source", "attack_loss", "bim_early_stop"):
        assert name in cfg.params
        assert name not in cfg.stage_params("misclassifications")
    # the profiles compute the Softmax Baseline in float32, not at the neutral float64
    assert cfg.stage_params("evaluation")["softmax_dtype"] == "float32"
    changed = config.configure(
        "mnist", "smoke", artifacts_dir=tmp_path, bim_early_stop=True, softmax_dtype="float64"
    )
    assert changed.stage_params("misclassifications")["bim_early_stop"] is True
    assert "softmax_dtype" not in changed.stage_params("evaluation")
    assert "softmax_dtype" not in cfg.stage_params("misclassifications")


def test_random_streams_are_named_independent_seeds(tmp_path):
    import zlib

    cfg = config.configure("mnist", "smoke", seed=5, artifacts_dir=tmp_path)
    seeds = {name: cfg.stream(name) for name in config.STREAMS}
    assert len(set(seeds.values())) == len(seeds)  # no two streams share a seed
    assert all(0 <= s < 2**31 for s in seeds.values())
    # Known answer: SeedSequence(seed, spawn_key=(crc32(name), k)), first word, halved.
    ss = np.random.SeedSequence(5, spawn_key=(zlib.crc32(b"gaussian"), 0))
    assert cfg.stream("gaussian") == int(ss.generate_state(1)[0]) >> 1
    # The k-th seed of a stream; k = 0 is the stream's own; another run seed, other seeds.
    assert cfg.stream("introspection_net", 0) == seeds["introspection_net"]
    assert cfg.stream("introspection_net", 1) != seeds["introspection_net"]
    other = config.configure("mnist", "smoke", seed=6, artifacts_dir=tmp_path)
    assert all(other.stream(n) != s for n, s in seeds.items())
    with pytest.raises(KeyError, match="Unknown random stream"):
        cfg.stream("nope")


def test_a_redraw_draws_every_stream_anew_in_its_own_cache(tmp_path):
    import zlib

    cfg = config.configure("mnist", "smoke", seed=5, artifacts_dir=tmp_path)
    assert cfg.redraw(0) is cfg
    again = cfg.redraw(2)
    assert again.draw == 2 and cfg.draw == 0 and again.params == cfg.params
    # Known answer: the draw is the spawn key's third word; draw 0 keeps the published seeds.
    ss = np.random.SeedSequence(5, spawn_key=(zlib.crc32(b"splits"), 0, 2))
    assert again.stream("splits") == int(ss.generate_state(1)[0]) >> 1
    assert all(again.stream(n) != cfg.stream(n) for n in config.STREAMS)
    assert cfg.redraw(3).stream("splits") != again.stream("splits")
    # Its own artifacts and results, under the run's cache; its own keys, base model's too.
    assert again.artifacts_dir == cfg.artifacts_dir / "draws" / "2"
    assert again.results_dir == again.artifacts_dir / "results" and again.results_dir.is_dir()
    assert again.stage_params("evaluation") == {**cfg.stage_params("evaluation"), "draw": 2}
    assert "draw" not in cfg.stage_params("evaluation")
