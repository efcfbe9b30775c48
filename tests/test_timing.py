import json

from introspection import config, runner


def test_a_stage_time_sums_its_parts_and_each_part_is_replaced(tmp_path):
    cfg = config.configure(
        "mnist", "smoke", artifacts_dir=tmp_path / "a", results_dir=tmp_path / "r"
    )
    runner.record_timing(cfg, "evaluation", 20.0)  # Table 2 chapter
    runner.record_timing(cfg, "evaluation", 100.0, part="differences")
    runner.record_timing(cfg, "logit_analysis", 3.0)
    assert runner.stage_timings(cfg) == {"evaluation": 120.0, "logit_analysis": 3.0}
    # Re-running one part replaces it; it is not added twice.
    runner.record_timing(cfg, "evaluation", 25.0)
    published = json.loads((tmp_path / "r" / "stage_seconds.json").read_text())
    assert published == {"evaluation": 125.0, "logit_analysis": 3.0}
    # Another configuration of the stage does not count.
    other = config.configure(
        "mnist", "smoke", artifacts_dir=tmp_path / "a", results_dir=tmp_path / "r", n_boot=7
    )
    assert "evaluation" not in runner.stage_timings(other)


def test_a_resumed_stage_records_at_least_its_epochs(tmp_path):
    import time

    cfg = config.configure(
        "mnist", "smoke", artifacts_dir=tmp_path / "a", results_dir=tmp_path / "r"
    )
    # A training resumed after a kill: this run took little, its epochs 500 s in all.
    run = runner.record_stage(cfg, "base_model", time.perf_counter(), False, at_least=500.0)
    assert run.compute_seconds == 500.0
    assert runner.stage_timings(cfg)["base_model"] == 500.0
    published = json.loads((tmp_path / "r" / "stage_seconds.json").read_text())
    assert published["base_model"] == 500.0


def test_a_reused_stage_with_an_extra_part_keeps_its_time_on_every_rerun(tmp_path):
    import time

    cfg = config.configure(
        "mnist", "smoke", artifacts_dir=tmp_path / "a", results_dir=tmp_path / "r"
    )
    # Chapter 09: the leave-one-out trainings (timed by the stage) and the attacks (a part).
    first = runner.record_stage(cfg, "unseen", time.perf_counter() - 100.0, False)
    runner.record_timing(cfg, "unseen", 40.0, part="attacks")
    for _ in range(2):  # re-executions that reuse everything
        again = runner.record_stage(cfg, "unseen", time.perf_counter(), True)
        assert again.compute_seconds == first.compute_seconds
        runner.record_timing(cfg, "unseen", 40.0, part="attacks")
        total = runner.stage_timings(cfg)["unseen"]
        assert abs(total - (first.compute_seconds + 40.0)) < 1e-6
