import numpy as np
import pandas as pd
import pytest

from introspection import config, protocol
from introspection.metrics import METRICS


@pytest.mark.parametrize("experiment", ["mnist", "cifar10"])
def test_every_reading_is_a_valid_configuration(experiment, tmp_path):
    readings = protocol.readings(experiment)
    choices = list(dict.fromkeys(r.choice for r in readings))
    assert choices == ["errors", "bim", "fgsm", "softmax", "trust", "defaults"]
    for choice in choices[:-1]:
        first = next(r for r in readings if r.choice == choice)
        assert first.label == protocol.OURS and not first.overrides
    for r in readings:
        assert set(r.overrides) <= set(config.PARAMETERS)
        config.configure(experiment, "cpu", artifacts_dir=tmp_path, overrides=r.overrides)
    labels = [(r.choice, r.label) for r in readings]
    assert len(set(labels)) == len(labels)
    for choice, (reading, _) in protocol.TEXT_SUPPORT.items():
        assert (choice, reading) in labels
    (before,) = [r for r in readings if r.choice == "defaults"]
    assert before.label == protocol.BEFORE
    assert before.overrides["softmax_dtype"] == "float64" and before.overrides["trust_alpha"] == 0


def test_a_reading_makes_again_only_the_sets_it_concerns():
    for experiment, before_sets in (("mnist", ("bim",)), ("cifar10", ())):
        by_label = {(r.choice, r.label): r for r in protocol.readings(experiment)}
        assert by_label[("defaults", protocol.BEFORE)].sets == before_sets
        # the loss on the probabilities is a reading of BIM, and separately of FGSM
        assert by_label[("bim", "loss on the probabilities")].sets == ("bim",)
        assert by_label[("fgsm", "loss on the probabilities")].sets == ("fgsm",)
        assert by_label[("bim", protocol.OURS)].sets == ()
        assert by_label[("trust", "features, alpha 0")].sets == ()


def _cells():
    rows = []
    for reading, shift in (("ours", 0.0), ("other", 10.0)):
        for dataset in ("errors", "bim"):
            for method in ("softmax_baseline", "introspection_net"):
                rows.append(
                    {
                        "choice": "bim",
                        "reading": reading,
                        "dataset": dataset,
                        "method": method,
                        **{m: 50.0 + (shift if dataset == "bim" else 0.0) for m in METRICS},
                        **{f"paper_{m}": 52.0 for m in METRICS},
                    }
                )
    cells = pd.DataFrame(rows)
    cells.loc[0, "paper_auroc"] = np.nan  # a cell the paper does not report
    return cells


def test_within_counts_the_cells_near_the_paper():
    counts = protocol.within(_cells())
    ours, other = counts.loc[("bim", "ours")], counts.loc[("bim", "other")]
    assert (ours.within, ours.cells) == (15, 15)  # 16 cells, one without a paper value
    assert (ours.row_within, ours.row_cells) == (8, 8)
    # the other reading moves the BIM row 10 points away: its 8 cells leave
    assert (other.within, other.row_within) == (8, 0)


def test_calibration_picks_the_reading_closest_to_the_paper():
    def row(choice, reading, mean, std, paper_mean=10.8, paper_std=5.2, **extra):
        return {
            "choice": choice,
            "reading": reading,
            "dataset": choice,
            "max_logit_mean": mean,
            "max_logit_std": std,
            "paper_max_logit_mean": paper_mean,
            "paper_max_logit_std": paper_std,
            "max_softmax_mean": 90.0,
            **extra,
        }

    calib = pd.DataFrame(
        [
            row("clean", "profile", 20.0, 5.0, 16.5, 5.0),
            row("bim", "profile", 28.0, 7.0),
            row("bim", "weak", 7.8, 1.2),  # a closer mean than "profile", a narrower law
            row("bim", "mid", 13.8, 5.2),
            {"choice": "bim", "reading": "broken", "dataset": "bim", "note": "too few"},
            {
                "choice": "deepfool",
                "reading": "profile",
                "dataset": "deepfool",
                "max_logit_mean": 4.0,
                "max_softmax_mean": 60.0,
                "paper_max_softmax_mean": 54.0,
            },
        ]
    )
    err = protocol.calibration_error(calib)
    # sqrt(dmean^2 + dstd^2); the softmax row by its difference in points
    expected = [3.5, np.hypot(17.2, 1.8), 5.0, 3.0, 6.0]
    assert err.error.tolist() == pytest.approx(expected)
    best = protocol.best_calibrated(calib)
    assert best == {"bim": ("mid", pytest.approx(3.0), pytest.approx(np.hypot(17.2, 1.8)))}


def test_remaining_names_the_reading_that_moves_a_far_cell():
    cells = _cells().copy()
    cells.loc[cells.reading == "ours", "reading"] = protocol.OURS
    cells["paper_auroc"] = 52.0
    # the BIM row of the profile is at 50 (within 5); move the paper away from it
    cells.loc[cells.dataset == "bim", "paper_auroc"] = 61.0
    left = protocol.remaining(cells)
    assert sorted(left.method) == ["introspection_net", "softmax_baseline"]
    assert set(left.dataset) == {"bim"}
    # the other reading puts BIM at 60: within 5 of 61
    assert left.closest.tolist() == ["bim: other"] * 2 and left.closes.all()
    assert left.closest_value.tolist() == [60.0, 60.0]
    # a cell no reading moves has no closest reading
    cells.loc[(cells.dataset == "errors"), "paper_auroc"] = 70.0
    left = protocol.remaining(cells).set_index("dataset")
    assert left.loc["errors", "closest"].isna().all()
    assert not left.loc["errors", "closes"].any()


def test_the_results_page_reads_the_study(tmp_path):
    from introspection import analysis

    (tmp_path / "mnist").mkdir()
    cells = _cells()
    cells.loc[cells.reading == "ours", "reading"] = protocol.OURS
    cells.to_csv(tmp_path / "mnist" / "protocol.csv", index=False)
    t2 = cells[cells.reading == protocol.OURS].assign(experiment="mnist")
    table = analysis.beyond_table(tmp_path, {"mnist": t2}, {"mnist": 0.1})
    key = "Table 2 cells within 5 points of the paper (profile; best single reading)"
    assert table.loc[key, "mnist"] == "15 of 15; 15 (bim: profile)"


def test_before_after_counts_the_interval_and_the_five_points():
    from introspection import paper as reported

    paper = reported.table2("mnist")
    rows = paper[paper.dataset.isin(["errors", "bim"])].copy()
    profile = rows.assign(**{f"{m}_lo": rows[m] - 1 for m in METRICS})
    profile = profile.assign(**{f"{m}_hi": rows[m] + 1 for m in METRICS})
    before = profile.copy()
    before["auroc"] += 3.0  # still within 5 points, outside the interval of +-1
    before["auroc_lo"] += 3.0
    before["auroc_hi"] += 3.0
    for c in ("fpr_at_95tpr", "fpr_at_95tpr_lo", "fpr_at_95tpr_hi"):
        before[c] += 6.0  # more than 5 points away, and outside
    cells = before.drop(columns="experiment").assign(choice="defaults", reading=protocol.BEFORE)
    out = protocol.before_after(cells, profile)
    n = int(rows[list(METRICS)].notna().sum().sum())
    assert out.loc[protocol.OURS].tolist() == [n, n, n]
    assert out.loc[protocol.BEFORE].tolist() == [n - 2 * len(rows), n - len(rows), n]


def test_cached_study_keeps_the_columns_in_the_order_they_were_made(tmp_path):
    from introspection import artifacts, protocol

    row = {c: 1.0 for c in protocol._CELLS} | {"extra": 2.0}
    artifacts.save_json(tmp_path, "cells", {"cells": [row]})
    loaded = pd.DataFrame(artifacts.load_json(tmp_path, "cells")["cells"])
    assert list(loaded.columns) != protocol._CELLS + ["extra"]  # JSON sorts its keys
    assert protocol._ordered(loaded, protocol._CELLS) == protocol._CELLS + ["extra"]
