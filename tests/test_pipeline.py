"""The stages of the book on real MNIST, tiny: caching, resuming, staleness (slow)."""

import numpy as np
import pytest

from introspection import artifacts, classifier, config, generation, pipeline

from .test_end_to_end import data_dir

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

TINY = {
    "n_train": 2000,
    "epochs": 1,
    "n_source": 400,
    "n_train_in": 150,
    "n_train_other": 20,
    "n_test": 50,
    "n_analysis": 50,
    "introspection_epochs": 3,
    "trust_n_fit": 300,
    "n_boot": 20,
    "bim_nb_iter": 5,
    # A one-epoch model and five steps: the profiles' calibrated MNIST BIM (eps 0.1)
    # would flip too few images for the sets these tests need.
    "bim_eps": 0.3,
    "bim_eps_iter": 0.06,
    "deepfool_max_iter": 10,
}


def test_stages_cache_resume_and_recompute(tmp_path, monkeypatch):
    cfg = config.configure(
        "mnist",
        "smoke",
        data_dir=data_dir(),
        artifacts_dir=tmp_path / "a",
        results_dir=tmp_path / "r",
        **TINY,
    )
    base = classifier.base_model(cfg, verbose=0)
    gen = generation.misclassifications(cfg, base.model, progress=False)
    sets = pipeline.introspection_sets(cfg, gen)
    fitted = pipeline.fit_detectors(cfg, gen, sets, base.model)
    first = pipeline.score_test_sets(cfg, gen, sets, fitted)
    table = pipeline.evaluate(cfg, first)
    assert not (base.run.reused or gen.run.reused or fitted.run.reused)
    assert len(table) == 8 * 3 and (tmp_path / "r" / "table2.csv").is_file()
    spaces = pipeline.trust_score_spaces(cfg, gen, sets, base.model)
    assert list(spaces.columns) == ["features", "logits", "pixels"] and len(spaces) == 8
    np.testing.assert_allclose(  # the default space reproduces the table's Trust Score row
        spaces["features"].values,
        table[table.method == "trust_score"].set_index("dataset").loc[spaces.index, "auroc"],
        atol=1e-9,
    )
    only = pipeline.evaluate_correct_only(cfg, pipeline.score_test_sets(cfg, gen, sets, fitted))
    assert (only.n_pos == int(sets.test.of("mnist").label.sum())).all()
    assert set(sets.test.counts().values()) == {50}
    # Source images never on both sides.
    for n in ("mnist", "errors", "fgsm", "bim", "deepfool"):
        assert not np.isin(sets.train.of(n).source, sets.test.of(n).source).any()

    # A second run reuses everything and gives the same table.
    gen2 = generation.misclassifications(cfg, progress=False)
    fitted2 = pipeline.fit_detectors(cfg, gen2, pipeline.introspection_sets(cfg, gen2))
    assert gen2.run.reused and fitted2.run.reused
    # Reloaded, the sets and their statistics keep the experiment's order (the JSON
    # file sorts its keys; chapter 02's table and sentences read this order).
    order = config.EXPERIMENTS["mnist"]["datasets"]
    assert list(gen2.sets) == list(gen2.stats) == list(gen.stats) == order
    assert list(generation.generation_table(gen2).index) == order
    # The test scores and the Trust Score's fitting features come from their caches:
    # no scoring and no inference of the base model.
    assert artifacts.exists(cfg.artifacts_dir, "test_scores", fitted2.params)
    assert artifacts.exists(cfg.artifacts_dir, "trust_fit_data")

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "score_examples", refuse)
        m.setattr(pipeline.models, "predict_features", refuse)
        fitted2 = pipeline.fit_detectors(cfg, gen2, pipeline.introspection_sets(cfg, gen2))
        scores2 = pipeline.score_test_sets(cfg, gen2, sets, fitted2)
    for name, cols in first.items():
        assert set(scores2[name]) == set(cols)
        for col, v in cols.items():
            np.testing.assert_array_equal(scores2[name][col], v)
    table2 = pipeline.evaluate(cfg, scores2)
    np.testing.assert_allclose(table2.auroc, table.auroc, atol=1e-9)
    # Detectors not from fit_detectors are scored, never read from the cache.
    other = pipeline.Fitted(fitted2.detectors, fitted2.history, fitted2.trust_fit_size, fitted2.run)
    with monkeypatch.context() as m:
        m.setattr(pipeline, "score_examples", refuse)
        with pytest.raises(AssertionError, match="recomputed"):
            pipeline.score_test_sets(cfg, gen2, sets, other)
    # A corrupted score cache is detected and recomputed, with the same scores.
    path = cfg.artifacts_dir / "test_scores.npz"
    path.write_bytes(path.read_bytes()[:-50])
    assert not artifacts.exists(cfg.artifacts_dir, "test_scores", fitted2.params)
    scores3 = pipeline.score_test_sets(cfg, gen2, sets, fitted2)
    np.testing.assert_array_equal(scores3["bim"]["trust_score"], first["bim"]["trust_score"])
    assert artifacts.exists(cfg.artifacts_dir, "test_scores", fitted2.params)

    # Changing a parameter of a later stage keeps the earlier ones.
    cfg3 = config.configure(
        "mnist",
        "smoke",
        data_dir=data_dir(),
        artifacts_dir=tmp_path / "a",
        results_dir=tmp_path / "r",
        **{**TINY, "introspection_epochs": 2},
    )
    assert classifier.base_model(cfg3, verbose=0).run.reused
    gen3 = generation.misclassifications(cfg3, progress=False)
    assert gen3.run.reused
    fitted3 = pipeline.fit_detectors(cfg3, gen3, pipeline.introspection_sets(cfg3, gen3))
    assert not fitted3.run.reused and len(fitted3.history["loss"]) == 2

    # A corrupted artifact is detected and recomputed.
    path = cfg.artifacts_dir / "data_fgsm.npz"
    path.write_bytes(path.read_bytes()[:100])
    assert not artifacts.exists(
        cfg.artifacts_dir, "data_fgsm", cfg.stage_params("misclassifications")
    )
    gen4 = generation.misclassifications(cfg, progress=False)
    assert not gen4.run.reused
    np.testing.assert_array_equal(gen4["fgsm"].source_index, gen["fgsm"].source_index)
    np.testing.assert_allclose(gen4["fgsm"].x, gen["fgsm"].x, atol=1e-6)


RUN = """
import sys
from introspection import classifier, config, generation, pipeline
cfg = config.configure("mnist", "smoke", data_dir=sys.argv[1], artifacts_dir=sys.argv[2],
                       results_dir=sys.argv[3], **{tiny})
base = classifier.base_model(cfg, verbose=0)
gen = generation.misclassifications(cfg, base.model, progress=False)
sets = pipeline.introspection_sets(cfg, gen)
fitted = pipeline.fit_detectors(cfg, gen, sets, base.model)
pipeline.evaluate(cfg, pipeline.score_test_sets(cfg, gen, sets, fitted))
"""


def test_same_seed_same_table_even_after_a_kill(tmp_path):
    """Determinism (two fresh runs agree to 1e-6) and a run killed mid-stage resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    script = tmp_path / "run.py"
    script.write_text(RUN.replace("{tiny}", repr(TINY)))

    def run(name, kill_mid_stage=False):
        args = [
            sys.executable,
            str(script),
            data_dir(),
            str(tmp_path / name / "a"),
            str(tmp_path / name / "r"),
        ]
        if not kill_mid_stage:
            subprocess.run(args, check=True, timeout=600, capture_output=True)
            return pd.read_csv(tmp_path / name / "r" / "table2.csv")
        # Killed one second into the misclassification stage (the attacks): the
        # base model is saved, nothing of the stage is. Waiting on a marker, not a
        # fixed delay, keeps this independent of the machine's speed.
        root = tmp_path / name / "a"
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600

        def base_saved():
            return any(root.rglob("base_model_history.json"))

        while not base_saved() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended before it could be killed mid-stage"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return None

    first = run("one")
    second = run("two")
    pd.testing.assert_frame_equal(first, second, atol=1e-6, rtol=0)
    # Killed in the middle of the attacks, then run again.
    run("three", kill_mid_stage=True)
    assert not (tmp_path / "three" / "r" / "table2.csv").exists()  # it was stopped midway
    assert not any((tmp_path / "three" / "a").rglob("generation_stats.json"))
    third = run("three")
    pd.testing.assert_frame_equal(first, third, atol=1e-6, rtol=0)


def test_beyond_the_paper_stages(tmp_path):
    """More detectors, leave-one-out and seeds: tables, caching, consistency."""
    import pandas as pd

    from introspection import adaptive, more_detectors, seeds, unseen

    cfg = config.configure(
        "mnist",
        "smoke",
        data_dir=data_dir(),
        artifacts_dir=tmp_path / "a",
        results_dir=tmp_path / "r",
        **{**TINY, "detector_n_fit": 500, "n_seeds": 2, "mahalanobis_eps": 0.0},
    )
    base = classifier.base_model(cfg, verbose=0)
    gen = generation.misclassifications(cfg, base.model, progress=False)
    sets = pipeline.introspection_sets(cfg, gen)
    fitted = pipeline.fit_detectors(cfg, gen, sets, base.model)
    scores = pipeline.score_test_sets(cfg, gen, sets, fitted)
    table2 = pipeline.evaluate(cfg, scores)

    extra = more_detectors.extra_detector_scores(cfg, gen, sets, base.model, progress=False)
    assert not extra.run.reused
    table = more_detectors.detector_table(cfg, scores, extra)
    assert set(table.method) == {*scores["mnist"]} - {"label"} | set(more_detectors.EXTRA_METHODS)
    assert (tmp_path / "r" / "detectors.csv").is_file() and len(table) == 8 * 8
    # The paper's rows are the same as in Table 2 (same scores, same paired bootstrap).
    ours = table[table.method.isin(table2.method.unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, table2, atol=1e-9, rtol=0)
    # With epsilon = 0, the pre-processed Mahalanobis score is the plain one.
    for d in gen.sets:
        np.testing.assert_allclose(
            extra.scores[d]["mahalanobis_preprocessed"], extra.scores[d]["mahalanobis"], rtol=1e-4
        )
    # MaxLogit is the maximum logit of the test examples.
    test_in = sets.test.of("mnist").index
    np.testing.assert_allclose(
        extra.scores["mnist"]["max_logit"], gen["mnist"].logits[test_in].max(1), rtol=1e-6
    )
    again = more_detectors.extra_detector_scores(cfg, gen, sets, progress=False)
    assert again.run.reused
    np.testing.assert_array_equal(again.scores["fgsm"]["odin"], extra.scores["fgsm"]["odin"])
    best = more_detectors.best_per_row(table)
    assert list(best.index) == [n for n in gen.sets if n != "mnist"]

    loo, run = unseen.leave_one_out(cfg, gen, sets, progress=False)
    assert not run.reused and set(loo) == {n for n in gen.sets if n != "mnist"}
    full, held = unseen.leave_one_out_table(cfg, loo, scores, table2)
    assert len(full) == 8 * 8 and (tmp_path / "r" / "leave_one_out.csv").is_file()
    assert list(held.index) == list(loo)
    np.testing.assert_allclose(  # "seen" is the paper's network of Table 2
        held.seen.values,
        table2[table2.method == "introspection_net"].set_index("dataset").loc[list(loo), "auroc"],
    )
    assert unseen.leave_one_out(cfg, gen, sets, progress=False)[1].reused

    by_seed, run = seeds.seed_scores(cfg, gen, sets, fitted, progress=False)
    np.testing.assert_allclose(  # seed 0 is the network of the paper's stage
        by_seed[0]["bim"]["introspection_net"], scores["bim"]["introspection_net"]
    )
    other = by_seed[1]["bim"]["introspection_net"]
    assert not np.allclose(other, scores["bim"]["introspection_net"])
    seed_rows = seeds.seed_table(cfg, by_seed, scores)
    assert sorted(seed_rows.seed.unique()) == [0, 1] and (tmp_path / "r" / "seeds.csv").is_file()
    summary = seeds.seed_summary(seed_rows, table2)
    assert (summary["auroc std"] >= 0).all() and len(summary) == 8
    draws = seeds.draw_table(pipeline.stages(cfg))
    assert sorted(draws.draw.unique()) == [0, 1] and (tmp_path / "r" / "draws.csv").is_file()
    first = draws[draws.draw == 0].reset_index(drop=True)
    np.testing.assert_allclose(first.auroc, table2.auroc, atol=1e-9)  # draw 0 is Table 2's run
    assert not np.allclose(draws[draws.draw == 1].auroc, first.auroc)
    assert (cfg.artifacts_dir / "draws" / "1" / "test_scores.json").is_file()
    # The stage's time counts the other draw's stages.
    assert artifacts.exists(cfg.artifacts_dir, "timing_seeds__draws", cfg.stage_params("seeds"))
    spread = seeds.draw_spread(draws)
    assert spread.shape == (8, 3) and (spread.fillna(0) >= 0).all().all()

    attacked = unseen.unseen_attacks(cfg, gen, base.model, progress=False)
    stats = unseen.unseen_attack_stats(cfg)
    test_side = gen.partition["mnist_test"][1]
    for name, ds in attacked.items():
        assert len(ds.x) == stats[name]["kept"] > 0
        assert np.isin(ds.source_index, test_side).all()  # never a training-side source
        assert (ds.logits.argmax(1) != ds.y).all()  # every kept example is misclassified
    linf = (
        np.abs(
            attacked["pgd"].x
            - generation.load_in_distribution(cfg)[0][attacked["pgd"].source_index]
        )
        .reshape(len(attacked["pgd"].x), -1)
        .max(1)
    )
    assert linf.max() <= cfg["bim_eps"] + 1e-5
    att_scores = unseen.unseen_attack_scores(cfg, attacked, fitted, base.model, progress=False)
    unseen_table = unseen.unseen_attack_table(cfg, scores, extra, att_scores)
    assert set(unseen_table.dataset) == {"cw_l2", "pgd"} and len(unseen_table) == 2 * 8
    np.testing.assert_allclose(
        att_scores["pgd"]["max_logit"], attacked["pgd"].logits.max(1), rtol=1e-6
    )

    adaptive_table, run = adaptive.adaptive_attacks(
        cfg, gen, sets, fitted, scores, base.model, progress=False
    )
    assert not run.reused and (tmp_path / "r" / "adaptive.csv").is_file()
    assert len(adaptive_table) == len(adaptive.ADAPTIVE_EPS_FACTORS) * (3 * 5 - 1) + 2
    main = adaptive_table[adaptive_table.attack != "joint_pgd (SPSA)"]
    main = main[main.attack != "joint_pgd (exact, SPSA subset)"]
    for _, g in main.groupby(["detector", "attack"]):
        rates = g.evasion_rate.to_numpy()  # radii in increasing order, unbounded last
        assert np.all(np.diff(rates) >= 0)
    best = main[main.attack == "adaptive (best)"].set_index(["detector", "epsilon"]).evasion_rate
    for a in ("pgd", "joint_pgd", "logit_matching", "feature_matching"):
        other = main[main.attack == a].set_index(["detector", "epsilon"]).evasion_rate
        assert (best.reindex(other.index).values >= other.values).all()
    again, run = adaptive.adaptive_attacks(cfg, gen, sets, fitted, scores, progress=False)
    assert run.reused
    import json

    recorded = json.loads((tmp_path / "r" / "stage_seconds.json").read_text())
    assert {"base_model", "detectors", "unseen", "seeds", "adaptive"} <= set(recorded)
    pd.testing.assert_frame_equal(again, adaptive_table, check_dtype=False)
