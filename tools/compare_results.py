"""Compare a profile's result tables with those of an earlier git revision.

For a change that alters the random draws (e.g. the named random streams), the new
results cannot equal the old ones; what they should do is stay within the run-to-run
spread. Two yardsticks, both read from the *new* results:

- the run-to-run standard deviation ``std`` that chapter 10 measures over its draws
  (``draws.csv``: the paper's stages rerun with every random stream drawn anew), per
  dataset, method and metric. Old and new are two independent draws, so their difference
  has std ``sqrt(2) * std``: ``|new - old| <= 2 * std`` is expected of 84 % of the cells,
  ``<= 2 * sqrt(2) * std`` of 95 %. Rows of a method without draws (the detectors beyond
  the paper's three) have no yardstick and are counted apart;
- the bootstrap 95 % interval of the new cell: "old inside CI".

Usage (from the repository root)::

    python tools/compare_results.py --before 5464245 [--profile cpu] [--metric auroc]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import norm

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("fpr_at_95tpr", "auroc", "aupr_in", "aupr_out")
#: The metric tables and the columns that name a row of each.
TABLES = {
    "table2.csv": ["dataset", "method"],
    "detectors.csv": ["dataset", "method"],
    "leave_one_out.csv": ["held_out", "dataset", "method"],
    "unseen_attacks.csv": ["dataset", "method"],
    "seeds.csv": ["seed", "dataset", "method"],
    "protocol.csv": ["choice", "reading", "dataset", "method"],
}


def old_table(rev: str, path: str) -> pd.DataFrame | None:
    """A CSV as it was at git revision ``rev`` (None when absent there)."""
    out = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True)
    return pd.read_csv(io.BytesIO(out.stdout)) if out.returncode == 0 else None


#: Expected fraction of cells within 2 std and 2 sqrt(2) std when both are draws of one run.
EXPECTED = {"2 std": 2 * norm.cdf(2 / 2**0.5) - 1, "2.8 std": 2 * norm.cdf(2) - 1}


def draw_std(results: Path) -> pd.DataFrame:
    """Chapter 10's std (ddof=1) over draws, per (dataset, method) and metric."""
    draws = pd.read_csv(results / "draws.csv")
    return draws.groupby(["dataset", "method"])[list(METRICS)].std(ddof=1)


def compare(old: pd.DataFrame, new: pd.DataFrame, keys: list, std: pd.DataFrame, metric: str):
    """Per row: old, new, difference, the draws' std, within 2 and 2 sqrt(2) std, CI."""
    both = old.merge(new, on=keys, suffixes=("_old", "_new"))
    out = both[keys].copy()
    out["old"], out["new"] = both[f"{metric}_old"], both[f"{metric}_new"]
    out["difference"] = out.new - out.old
    index = pd.MultiIndex.from_frame(both[["dataset", "method"]])
    out["std"] = std[metric].reindex(index).to_numpy()
    for name, k in (("2 std", 2.0), ("2.8 std", 2 * 2**0.5)):
        out[f"within {name}"] = (out.difference.abs() <= k * out["std"]).where(out["std"].notna())
    lo, hi = f"{metric}_lo_new", f"{metric}_hi_new"
    if lo in both and both[lo].notna().all():
        out["old inside CI"] = (both[lo] <= out.old) & (out.old <= both[hi])
    return out


def main(argv=None) -> int:
    """Print, per experiment and table, how far the new values lie from the old ones."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="git revision of the earlier results")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--metric", default="auroc", choices=METRICS)
    p.add_argument("--rows", action="store_true", help="print every row of table2.csv")
    args = p.parse_args(argv)
    pd.set_option("display.width", 160)
    for exp in ("mnist", "cifar10"):
        results = ROOT / "book" / "results" / args.profile / exp
        if not (results / "draws.csv").is_file():
            print(f"{exp}: no draws.csv in {results.relative_to(ROOT)}; skipped")
            continue
        std = draw_std(results)
        n_draws = pd.read_csv(results / "draws.csv").draw.nunique()
        print(f"\n## {exp}: {args.metric}, new against {args.before} ({n_draws} draws; "
              f"expected within 2 std {EXPECTED['2 std']:.0%}, within 2.8 std "
              f"{EXPECTED['2.8 std']:.0%})")
        for name, keys in TABLES.items():
            path = results / name
            old = old_table(args.before, str(path.relative_to(ROOT)))
            if old is None or not path.is_file():
                continue
            c = compare(old, pd.read_csv(path), keys, std, args.metric)
            diff = c.difference.abs()
            n_std = int(c["std"].notna().sum())
            line = (
                f"{name:20s} {len(c):4d} rows: |difference| mean {diff.mean():5.2f}, max "
                f"{diff.max():5.2f}; within 2 / 2.8 std of the draws "
                f"{int(c['within 2 std'].sum())} / {int(c['within 2.8 std'].sum())} of {n_std}"
            )
            if "old inside CI" in c:
                inside = int(c["old inside CI"].sum())
                line += f"; old value inside the new 95 % CI {inside}/{len(c)}"
            print(line)
            if name == "table2.csv":
                cols = ["within 2 std", "within 2.8 std", "old inside CI"]
                by = c.groupby("method", sort=False)[cols].agg(
                    lambda v: f"{int(v.sum())}/{int(v.notna().sum())}")
                print(by.to_string())
            if name == "table2.csv" and args.rows:
                print(c.round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
